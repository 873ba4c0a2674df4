// Scheduler: owns the map of loaded models (one runner process each) and decides when they load
// and unload. Requests take a move-only Lease on a model; the keep-alive timer starts when the
// last lease is dropped; a model is unloaded only while no lease is held.
//
// What to do is decided by the pure functions of decision.h (the rules are written there); this
// class performs their decisions: it keeps the map, waits, starts and closes runners outside its
// lock, and counts and logs. Acquire is a loop: decide, perform, decide again.
//
// keep_alive (Ollama's rules):
// - Acquire on a loaded model stops its expiry timer and, when a keep_alive is given, replaces
//   the model's; a fresh load without one takes the policy's default.
// - When the last lease is dropped: 0 unloads now, forever never expires, a duration sets
//   expires_at = now + duration, and "auto" asks the learner (learner.h): keep for a while, or
//   unload now and prewarm (load again into free room shortly before the request it predicts).
// - Unload() is sticky: requests in flight finish, and their keep_alive does not cancel it.
//
// Every model's idle gaps are recorded (UsageHistory, by model name) whatever its keep_alive, so
// that switching to "auto" starts from what is known; for "auto" models, the learned reuse
// probability also weighs their eviction cost.
//
// Sleeping (sleep_after, decision.h): an idle model's runner frees its context once its
// sleep_after has run out (Tick), or when memory is short (Acquire, instead of an unload); the
// budget then counts what it measured asleep. A request wakes it (Acquire); its keep_alive still
// unloads it. While a model falls asleep or wakes (outside the lock) nothing else touches it.
//
// Observability: every load, failed load, unload, eviction and prewarm is logged as one line and
// appended to events() with its reason; Stats() returns the counters (loads, load times,
// requests, cold starts, unloads by reason, prewarms and their hits and misses, memory × time
// resident and idle, accumulated at each state change with the injected clock).
#pragma once

#include <algorithm>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/gpu_discovery.h"
#include "core/keep_alive.h"
#include "core/status.h"
#include "runner/model_runner.h"
#include "sched/decision.h"
#include "sched/event_log.h"
#include "sched/gpu_split.h"
#include "sched/learner.h"
#include "sched/policy.h"
#include "sched/residency_stats.h"

namespace resident::sched {

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

// Places a model on a GPU (gpu_split.h), given the room each device has for it; its num_gpu is
// spec.load.n_gpu_layers. Errors as the predictor's.
using GpuPlanner = std::function<Result<GpuPlacement>(const ModelSpec&, const std::vector<GpuRoom>&)>;

struct LoadedModel {
  std::string name;
  std::string path;
  runner::ModelFacts facts;
  pid_t pid = 0;
  int active_requests = 0;
  KeepAlive keep_alive;                // as set (the request's, the policy's, or "auto")
  std::string keep_alive_reason;       // why this keep_alive: where it came from, or auto's plan
  std::optional<Duration> planned_keep;  // auto: how long the latest plan keeps it once idle
  std::optional<WallTime> expires_at;  // nullopt: in use, or forever
  bool pinned = false;
  bool prewarmed = false;              // loaded ahead of a predicted request, not used yet
  uint64_t predicted_bytes = 0;
  uint64_t measured_bytes = 0;         // 0 until measured
  // On a GPU: the device, its layers there, and the VRAM it holds (measured, else predicted);
  // the bytes above are host memory. gpu -1: CPU only.
  int gpu = -1;
  int gpu_layers = 0;
  int total_layers = 0;
  uint64_t vram_bytes = 0;
  uint64_t vram_predicted = 0;
  Duration load_duration{0};           // how long its load took
  // Sleeping (sleep_after): asleep, the runner holds its weights and process but no context;
  // sleeping_bytes is then its measured memory (what the budget counts) and measured_bytes what it
  // held awake.
  bool sleeping = false;
  uint64_t sleeping_bytes = 0;
  std::optional<KeepAlive> sleep_after;  // nullopt: it never sleeps
  std::optional<WallTime> sleeps_at;     // idle and awake: when it will sleep
};

// A model unloaded by "auto" that will be loaded again ahead of its next predicted request.
struct PendingPrewarm {
  std::string name;
  WallTime load_at{};   // when its load starts
  WallTime ready_at{};  // when the learner expects the next request
  std::string reason;
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
    KeepAlive default_keep_alive = KeepAlive::Of(kDefaultKeepAlive);  // used when policy is unset
    std::optional<Policy> policy;  // per-model keep_alive, pins, cold start costs, clamps
    uint64_t memory_budget = 0;    // bytes; 0: no budget
    FootprintPredictor predictor;  // unset: every model is predicted at 0 bytes
    bool timer_thread = true;      // false in tests and the simulator: call Tick() instead
    size_t event_log_capacity = 1000;  // events kept by events()
    LearnerConfig learner;         // keep_alive "auto"
    ColdStartCost cold_start_cost; // for "auto" when policy is unset (else the policy's)
    // Sleeping: how long a model stays idle before its context is freed (policy.h sleep_after),
    // when policy is unset (else the policy's); nullopt: models never sleep.
    std::optional<KeepAlive> default_sleep_after;
    // The share (0..1) of a model file that is in the page cache now (page_cache.h), for the
    // reload time in the eviction cost; unset, or nullopt for a file: taken as unchanged since the
    // load. Called with the scheduler's lock held: it must be cheap (cached).
    std::function<std::optional<double>(const std::string& path)> page_cache_fraction;
    // How fast a model file's bytes that are not in the page cache are read back at a reload.
    double disk_read_bytes_per_s = 250e6;
    // GPUs (docs/gpu.md): the devices, read before each load decision (unset, or none found:
    // every model runs on the CPU and nothing below applies); how a model is placed on them; and
    // the VRAM left free on every device. After an unload, the device's free memory is awaited
    // (at most gpu_release_wait) until the model's VRAM is back.
    const GpuDiscovery* gpus = nullptr;
    GpuPlanner gpu_planner;
    uint64_t gpu_margin_bytes = 512ull << 20;
    Duration gpu_release_wait = std::chrono::seconds(5);
  };

  Scheduler(Options options, runner::RunnerFactory& factory, const Clock& clock);
  ~Scheduler();  // unloads every model

  // Blocks until the model is loaded and a slot is free. keep_alive: nullopt keeps the model's
  // current one (the default on a fresh load). `stop` (the client went away) ends the wait:
  // kCancelled, and the request never runs nor counts as one of its model's requests; a load
  // (or a wake) this request started itself is finished first and the lease taken (the caller
  // drops it). A sleeping model is woken (the wake is the lease's load_duration).
  // Errors: the load's error, kUnavailable if the scheduler is shutting down,
  // kResourceExhausted when the queue is full, kFailedPrecondition when the model can never fit
  // the memory budget (alone, or next to the pinned models), kCancelled.
  Result<Lease> Acquire(const ModelSpec& spec, std::optional<KeepAlive> keep_alive, std::stop_token stop = {});

  // Loads the model in the background at the next Tick (the timer thread's, or the caller's), into
  // free room without evicting anything, and again whenever its runner dies; while there is no
  // room (or another load runs) it is tried again a quarter second later (NextTimer()), not at
  // once. Its keep_alive is the policy's default, counted from the load.
  void Preload(const ModelSpec& spec);

  // What Acquire would decide now for this model, after predicting its footprint (no lease is
  // taken, nothing changes). The simulator asks it before an arrival to know whether the request
  // would wait for room.
  Decision Probe(const ModelSpec& spec);

  // Bytes the loaded (and loading, and unloading) models count against the budget.
  uint64_t MemoryInUse() const;
  uint64_t memory_budget() const { return options_.memory_budget; }

  // Sets the model's keep_alive to 0: unloads it now if idle, else when its last lease drops.
  // Sticky: a request that takes a lease before then (one in flight or waiting for the load) is
  // served, but its keep_alive does not cancel the unload. Returns once that entry is unloaded
  // (or at once, if it was not loaded); a request arriving after that loads the model anew, and
  // Unload does not wait for the new load. A pending prewarm of the model is cancelled.
  void Unload(const std::string& model_path);

  // Requests inside Acquire (waiting for a load, a slot or room), for metrics and tests.
  int QueuedRequests() const;

  // Loaded models, newest expiry first.
  std::vector<LoadedModel> Snapshot() const;
  // Models that "auto" unloaded and will load again, soonest first.
  std::vector<PendingPrewarm> Prewarms() const;

  // The residency counters of every model loaded since start, with the memory × time of the
  // models loaded now counted up to now.
  ResidencyStats Stats() const;

  // Loads, failed loads, unloads, evictions and prewarms, newest last. Closed by Shutdown().
  const EventLog& events() const { return events_; }

  // What the learner knows, by model name (to save it), and a saved copy to start from
  // (replaces what is known of those models; call before the first request).
  std::map<std::string, UsageHistory> Histories() const;
  void RestoreHistories(const std::map<std::string, UsageHistory>& histories);
  // Increases whenever a history changes (so that a saver writes only when needed).
  uint64_t history_version() const;

  // Unloads models whose timer has expired and runners that died, then starts due prewarms and
  // preloads (one load at a time: a load runs inside this call). The timer thread calls it;
  // tests and the simulator call it directly.
  void Tick();
  // When Tick next has something to do: the earliest expiry or prewarm (max(): nothing).
  TimePoint NextTimer() const;

  // Unloads everything and refuses new requests. Idempotent.
  void Shutdown();

 private:
  friend class Lease;
  enum class State { kLoading, kReady, kFailed };
  enum class Origin { kRequest, kPrewarm, kPreload };
  struct Entry {
    ModelSpec spec;
    State state = State::kLoading;
    Origin origin = Origin::kRequest;
    std::unique_ptr<runner::ModelRunner> runner;
    Status load_error;
    int refs = 0;
    KeepAlive keep_alive;
    std::string keep_alive_reason;
    bool unload_requested = false;  // Unload(): unload when the last lease drops, whatever keep_alive
    std::optional<TimePoint> expires_at;  // TimePoint::max() for a keep_alive beyond the clock's range
    TimePoint last_used{};
    bool pinned = false;
    bool prewarmed = false;         // loaded by a prewarm and not used yet
    bool prewarm_late = false;      // a request came while its prewarm was still loading
    int queued = 0;                 // requests waiting inside Acquire for this model
    uint64_t predicted_bytes = 0;
    uint64_t measured_bytes = 0;
    TimePoint measured_at{};
    Duration load_duration{0};
    TimePoint accrued_at{};         // memory × time is counted in stats_ up to here
    // Sleeping (decision.h): asleep, it counts at sleeping_bytes; falling asleep or waking
    // (changing_tier) it counts awake, and only the thread doing it touches its runner.
    std::optional<KeepAlive> sleep_after;  // resolved at load (policy); nullopt: never sleeps
    std::optional<TimePoint> sleep_at;     // idle and awake with a finite sleep_after
    bool sleeping = false;
    bool changing_tier = false;
    uint64_t sleeping_bytes = 0;     // measured after its latest sleep (0: never slept)
    std::optional<double> cached_at_load;  // share of its file in the page cache when its load began
    GpuPlacement placement;          // where its layers are (gpu -1: CPU only)
    uint64_t measured_vram = 0;      // its runner's VRAM, measured after the load (0: not yet)
    uint64_t Vram() const { return placement.gpu < 0 ? 0 : measured_vram ? measured_vram : placement.vram_bytes; }
    uint64_t Bytes() const {
      if (sleeping && sleeping_bytes) return sleeping_bytes;
      return measured_bytes ? measured_bytes : predicted_bytes;
    }
  };
  struct Learning {
    UsageHistory history;
    // Plans by ContextBucket (they depend on the latest gap), made again once stale.
    struct Cached {
      ResidencyPlan plan;
      uint64_t requests_at = 0;
      double at = 0;
    };
    std::map<int, Cached> plans;
    const ResidencyPlan* latest = nullptr;  // the plan used last (for reports)
  };
  struct Prewarm {
    ModelSpec spec;
    TimePoint load_at{};
    TimePoint ready_at{};
    TimePoint keep_until{};
    std::string reason;
  };
  struct PreloadWant {
    ModelSpec spec;
    bool wanted = true;  // load at the next tick (at start, and after its runner died)
    TimePoint retry_at{};  // found no room or another load running: not tried again before this
  };
  struct Detached {
    std::unique_ptr<runner::ModelRunner> runner;
    uint64_t bytes = 0;
    int gpu = -1;
    uint64_t vram = 0;
  };

  Result<Lease> AcquireLocked(std::unique_lock<std::mutex>& lock, const ModelSpec& spec,
                              std::optional<KeepAlive> keep_alive, const std::stop_token& stop);
  // The decisions' view of the map (decision.h).
  SchedulerView ViewLocked() const;
  // Raises each loaded model's measured bytes to its runner's latest sampled memory when that
  // is more (ModelRunner::SampledRssBytes): a runner that grows counts as it grows, up to its
  // memory cap. Called before every decision, so that decisions and reports agree.
  void RefreshMeasuredLocked();
  TimePoint NextTimerLocked() const;
  Limits limits() const;
  // Starts a runner for `e` (already in the map as kLoading) with the lock released; returns with
  // it held and the entry kReady, or its error (the entry removed, waiters woken).
  Status LoadLocked(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Entry>& e);
  void Release(const std::string& key, runner::ModelRunner* runner);
  // The keep_alive a request ends up with (request, else entry/default; clamped; pins); nullopt:
  // keep the model's current one. *why (if given): where it came from, for /api/ps ("" for auto,
  // whose plan explains itself).
  std::optional<KeepAlive> ResolveKeepAlive(const ModelSpec& spec, std::optional<KeepAlive> requested, bool fresh,
                                            std::string* why = nullptr) const;
  // The model's timer once idle: its keep_alive, or the learner's plan for "auto" (which may
  // unload it now and leave a prewarm). Returns the runners to close.
  void StartTimerLocked(const std::string& key, Entry& e, std::vector<Detached>& to_close);
  const ResidencyPlan& PlanLocked(const std::string& name, const Entry& e);
  CostModel CostFor(const std::string& name, uint64_t bytes, double load_s) const;
  double WallSeconds() const;
  uint64_t MemoryInUseLocked() const;
  // Removes the entry from the map, counting and logging the unload (`for_model`: the model an
  // eviction makes room for; `log_detail` is appended to the log line); the runner is closed by
  // the caller after unlocking.
  Detached Detach(const std::string& key, UnloadReason reason, const std::string& for_model = "",
                  const std::string& log_detail = "", const std::string& explanation = "");
  // Adds the entry's memory × time since e.accrued_at to stats_, up to `now`. Call before any
  // change to its state, refs or bytes, and before it leaves the map.
  void Accrue(Entry& e, TimePoint now);
  // Stamps, logs and stores an event.
  void Emit(ResidencyEvent event, const std::string& log_detail = "");
  void PrewarmOutcome(const std::string& name, bool hit, const std::string& why);
  void CloseDetached(std::vector<Detached> runners);
  bool SameLoadOptions(const runner::LoadRequest& a, const runner::LoadRequest& b) const;
  // One due prewarm or preload, if any: decided and performed (the load runs unlocked).
  bool StartBackgroundLoadLocked(std::unique_lock<std::mutex>& lock);
  void TimerLoop();
  // Puts these models to sleep (the runners' calls run unlocked), counting and logging each;
  // `for_model`: the model a memory-pressure sleep makes room for. A runner that fails to sleep
  // stays awake (a dead one is reaped by the next decision).
  void SleepLocked(std::unique_lock<std::mutex>& lock, const std::vector<SleepOrder>& orders,
                   const std::string& for_model = "");
  // Wakes the sleeping entry (unlocked while the runner recreates its context). Errors: the
  // runner's; the entry is then unloaded and the caller loads the model afresh.
  Status WakeLocked(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Entry>& e);
  // The bytes a model is expected to hold asleep: measured at its latest sleep, else its weights
  // plus the process (sched/footprint.h's rule), never more than it holds awake.
  static uint64_t ExpectedSleepingBytes(const Entry& e);
  // The model's sleep_after (the policy's entry, else the default); nullopt: it never sleeps.
  std::optional<KeepAlive> SleepAfterFor(const std::string& name) const;
  // The GPUs' budgets (decision.h) from gpu_devices_ and what resident's models hold there.
  std::vector<GpuBudget> GpuBudgetsLocked() const;
  // Reads the devices (unlocked) and places `spec` on them (gpu_planner); without GPUs configured
  // (options_.gpus or the planner unset): nullopt (the predictor decides, CPU only). *epoch: gpu_epoch_ when the devices were
  // read (a placement made before a later load or unload ended is made again).
  std::optional<Result<GpuPlacement>> PlaceLocked(std::unique_lock<std::mutex>& lock, const ModelSpec& spec,
                                                  uint64_t* epoch = nullptr);
  // Waits (at most gpu_release_wait) until d.vram more bytes are free on d.gpu than `free_before`;
  // returns the devices as last read (with the memory back, or what the driver still holds).
  std::vector<GpuDevice> AwaitVramBack(const Detached& d, uint64_t free_before) const;
  // The seconds a reload of the model would take: its measured load time, corrected by how much
  // more (or less) of its file must be read from disk now than at its load.
  double ReloadSecondsLocked(const Entry& e) const;

  const Options options_;
  runner::RunnerFactory& factory_;
  const Clock& clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;        // entry state, refs, loads and unloads changed
  std::condition_variable timer_cv_;  // a timer was armed, or shutdown
  // By model path; guarded by mu_. Shared because requests waiting on a load keep the entry to
  // read its outcome after a failed load has removed it from the map.
  std::map<std::string, std::shared_ptr<Entry>> entries_;
  std::map<std::string, Learning> learning_;   // by model name; guarded by mu_
  PriorGaps prior_;                   // what is typical, for models with few gaps; guarded by mu_
  double prior_at_ = -1;              // when prior_ was built (wall seconds); guarded by mu_
  std::map<std::string, Prewarm> prewarms_;    // by model path; guarded by mu_
  std::map<std::string, PreloadWant> preloads_;  // by model path; guarded by mu_
  uint64_t history_version_ = 0;      // guarded by mu_
  int waiting_ = 0;                   // requests inside Acquire; guarded by mu_
  int unloading_ = 0;                 // runners being closed outside the lock; guarded by mu_
  uint64_t unloading_bytes_ = 0;      // their bytes, still in use until closed; guarded by mu_
  bool loading_ = false;              // one load at a time; guarded by mu_
  std::vector<GpuDevice> gpu_devices_;  // as last read (before a load decision); guarded by mu_
  uint64_t gpu_epoch_ = 0;            // loads and unloads ended (device readings before are stale); guarded by mu_
  bool shutdown_ = false;             // guarded by mu_
  std::map<std::string, ModelStats> stats_;  // by model name; guarded by mu_
  int changing_tier_ = 0;             // entries falling asleep or waking now; guarded by mu_
  EventLog events_;
  std::thread timer_;
};

}  // namespace resident::sched
