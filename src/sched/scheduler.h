// Scheduler: owns the map of loaded models (one runner process each) and decides when they load
// and unload. Requests take a move-only Lease on a model; the keep-alive timer starts when the
// last lease is dropped; a model is unloaded only while no lease is held.
//
// Rules (Ollama's, see shared/reference/ollama-behaviour.md §2):
// - A model is identified by its weights file; two names for one file share one runner.
// - Acquire on a loaded model takes a lease (at most num_parallel at once; the rest wait), stops
//   its expiry timer and, when keep_alive is given, replaces the model's duration.
// - When the last lease is dropped: duration 0 unloads now, a negative ("forever") never
//   expires, otherwise expires_at = now + duration.
// - A model loads once however many requests wait for it; a failed load reaches every waiter.
// - One load at a time. Before a load the model's footprint is predicted (GGUF metadata: weights,
//   KV cache, compute buffers); after it, the runner's measured resident memory replaces the
//   prediction. A model predicted above the whole budget fails at once (never swaps the machine)
//   with kFailedPrecondition (HTTP 500, as Ollama answers a model too large for the system: a
//   retry cannot help, unlike kResourceExhausted's 503).
// - When a load would exceed max_loaded or the memory budget, idle models are unloaded to make
//   room, cheapest first (see EvictionCost). Never a pinned model, one with requests in flight or
//   queued for it, or one still loading; when nothing can go, the request waits.
// - Requests waiting beyond max_queue get kResourceExhausted ("server busy").
//
// Eviction cost: the expected time lost by evicting a model, per byte it frees:
//     cost = reload_seconds × reuse_likelihood / bytes,   reuse_likelihood = 1 / (1 + idle_minutes)
// where reload_seconds is the model's own measured load time. Models are evicted in increasing
// cost until the new one fits: a big model that reloads fast and has been idle long goes first;
// a small one in steady use stays.
//
// Observability: every load, failed load, unload and eviction is logged as one line and
// appended to events() with its reason (UnloadReason), duration and bytes; Stats() returns the
// counters (loads, load times, requests, cold starts, unloads by reason, memory × time resident
// and idle, accumulated at each state change with the injected clock).
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "runner/model_runner.h"
#include "sched/event_log.h"
#include "sched/policy.h"
#include "sched/residency_stats.h"

namespace resident::sched {

// keep_alive: a duration, or kForever.
inline constexpr Duration kForever = Duration::max();

struct ModelSpec {
  std::string name;            // the model's name ("demo:latest"): policy entries and reports
  runner::LoadRequest load;    // load.model_path identifies the model
  // The file behind model_path (device, inode, size, mtime; empty if unknown): when it differs
  // from the loaded model's, the file was replaced and the model is loaded again.
  std::string file_identity;
};

// Predicts the bytes a model will use once loaded with these options. Errors (e.g. an
// unreadable file) fail the request before any runner starts.
using FootprintPredictor = std::function<Result<uint64_t>(const ModelSpec&)>;

struct LoadedModel {
  std::string name;
  std::string path;
  runner::ModelFacts facts;
  pid_t pid = 0;
  int active_requests = 0;
  Duration keep_alive{0};
  std::optional<WallTime> expires_at;  // nullopt: in use, or forever
  bool forever = false;
  bool pinned = false;
  uint64_t predicted_bytes = 0;
  uint64_t measured_bytes = 0;         // 0 until measured
  Duration load_duration{0};           // how long its load took
};

class Scheduler;

// A request's hold on a loaded model. Dropping it releases the model (and may start its timer).
class Lease {
 public:
  Lease() = default;
  Lease(Lease&& other) noexcept { *this = std::move(other); }
  Lease& operator=(Lease&& other) noexcept;
  ~Lease() { Release(); }
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;

  runner::ModelRunner& runner() const { return *runner_; }
  // Time this request spent waiting for and loading the model (0 when it was loaded).
  Duration load_duration() const { return load_duration_; }
  void Release();

 private:
  friend class Scheduler;
  Scheduler* sched_ = nullptr;
  std::string key_;
  runner::ModelRunner* runner_ = nullptr;
  Duration load_duration_{0};
};

class Scheduler {
 public:
  struct Options {
    int max_loaded = 3;
    int num_parallel = 1;
    int max_queue = 512;
    Duration default_keep_alive = std::chrono::minutes(5);  // used when policy is unset
    std::optional<Policy> policy;  // per-model keep_alive and pins, clamps
    uint64_t memory_budget = 0;    // bytes; 0: no budget
    FootprintPredictor predictor;  // unset: every model is predicted at 0 bytes
    bool timer_thread = true;      // false in tests: call Tick() instead
    size_t event_log_capacity = 1000;  // events kept by events()
  };

  Scheduler(Options options, runner::RunnerFactory& factory, const Clock& clock);
  ~Scheduler();  // unloads every model

  // Blocks until the model is loaded and a slot is free. keep_alive: nullopt keeps the model's
  // current duration (the default on a fresh load). Errors: the load's error, kUnavailable if
  // the scheduler is shutting down, kResourceExhausted when the queue is full, kFailedPrecondition
  // when the model can never fit the memory budget (alone, or next to the pinned models).
  Result<Lease> Acquire(const ModelSpec& spec, std::optional<Duration> keep_alive);

  // Bytes the loaded (and loading, and unloading) models count against the budget.
  uint64_t MemoryInUse() const;
  uint64_t memory_budget() const { return options_.memory_budget; }

  // Sets the model's keep_alive to 0: unloads it now if idle, else when its last lease drops.
  // Sticky: a request that takes a lease before then (one in flight or waiting for the load) is
  // served, but its keep_alive does not cancel the unload. Returns once that entry is unloaded
  // (or at once, if it was not loaded); a request arriving after that loads the model anew, and
  // Unload does not wait for the new load.
  void Unload(const std::string& model_path);

  // Requests inside Acquire (waiting for a load, a slot or room), for metrics and tests.
  int QueuedRequests() const;

  // Loaded models, newest expiry first.
  std::vector<LoadedModel> Snapshot() const;

  // The residency counters of every model loaded since start, with the memory × time of the
  // models loaded now counted up to now.
  ResidencyStats Stats() const;

  // Loads, failed loads, unloads and evictions, newest last. Closed by Shutdown().
  const EventLog& events() const { return events_; }

  // Unloads models whose timer has expired. The timer thread calls it; tests call it directly.
  void Tick();

  // Unloads everything and refuses new requests. Idempotent.
  void Shutdown();

 private:
  friend class Lease;
  enum class State { kLoading, kReady, kFailed };
  struct Entry {
    ModelSpec spec;
    State state = State::kLoading;
    std::unique_ptr<runner::ModelRunner> runner;
    Status load_error;
    int refs = 0;
    Duration keep_alive{0};
    bool unload_requested = false;  // Unload(): unload when the last lease drops, whatever keep_alive
    std::optional<TimePoint> expires_at;  // TimePoint::max() for a keep_alive beyond the clock's range
    TimePoint last_used{};
    bool pinned = false;
    int queued = 0;                 // requests waiting inside Acquire for this model
    uint64_t predicted_bytes = 0;
    uint64_t measured_bytes = 0;
    TimePoint measured_at{};
    Duration load_duration{0};
    TimePoint accrued_at{};         // memory × time is counted in stats_ up to here
    uint64_t Bytes() const { return measured_bytes ? measured_bytes : predicted_bytes; }
  };

  void Release(const std::string& key, runner::ModelRunner* runner);
  // The keep_alive a request ends up with (request, else entry/default; clamped; pins).
  Duration ResolveKeepAlive(const ModelSpec& spec, std::optional<Duration> requested, bool fresh) const;
  // Picks models to unload so that a load of `bytes` fits; empty when it cannot fit now.
  // *blocked_by_pins: it could never fit because of pinned models alone.
  std::vector<std::shared_ptr<Entry>> ChooseVictims(uint64_t bytes, bool* never_fits) const;
  uint64_t MemoryInUseLocked() const;
  // Removes the entry from the map, counting and logging the unload (`for_model`: the model an
  // eviction makes room for; `log_detail` is appended to the log line); the runner is closed by
  // the caller after unlocking.
  struct Detached {
    std::unique_ptr<runner::ModelRunner> runner;
    uint64_t bytes = 0;
  };
  Detached Detach(const std::string& key, UnloadReason reason, const std::string& for_model = "",
                  const std::string& log_detail = "");
  // Adds the entry's memory × time since e.accrued_at to stats_, up to `now`. Call before any
  // change to its state, refs or bytes, and before it leaves the map.
  void Accrue(Entry& e, TimePoint now);
  // Stamps, logs and stores an event.
  void Emit(ResidencyEvent event, const std::string& log_detail = "");
  void CloseDetached(std::vector<Detached> runners);
  bool SameLoadOptions(const runner::LoadRequest& a, const runner::LoadRequest& b) const;
  void TimerLoop();

  const Options options_;
  runner::RunnerFactory& factory_;
  const Clock& clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;        // entry state, refs, loads and unloads changed
  std::condition_variable timer_cv_;  // a timer was armed, or shutdown
  // By model path; guarded by mu_. Shared because requests waiting on a load keep the entry to
  // read its outcome after a failed load has removed it from the map.
  std::map<std::string, std::shared_ptr<Entry>> entries_;
  int waiting_ = 0;                   // requests inside Acquire; guarded by mu_
  int unloading_ = 0;                 // runners being closed outside the lock; guarded by mu_
  uint64_t unloading_bytes_ = 0;      // their bytes, still in use until closed; guarded by mu_
  bool loading_ = false;              // one load at a time; guarded by mu_
  bool shutdown_ = false;             // guarded by mu_
  std::map<std::string, ModelStats> stats_;  // by model name; guarded by mu_
  EventLog events_;
  std::thread timer_;
};

}  // namespace resident::sched
