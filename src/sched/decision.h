// The scheduler's residency decisions as pure functions: given what is loaded and what is asked,
// what to do (take a lease, wait, unload or evict these, load, prewarm, fail with this status).
// Scheduler performs them (processes, waiting, unlocking for I/O); the simulator drives the same
// Scheduler, so both run these decisions and nothing else decides.
//
// The rules (Ollama's, plus the budget):
// - A request for a loaded model takes a lease while fewer than num_parallel hold one; a model
//   still loading is waited for; a dead runner is replaced; other load options (or another file
//   under the same path) reload it once no lease is held.
// - A request for a model not loaded: its footprint is predicted first; one above the whole
//   budget fails (kFailedPrecondition: a retry cannot help). One load at a time, and none while
//   memory is still being returned. When the load fits (max_loaded and the budget), it loads;
//   else idle models are evicted, least expected cost first (EvictionCost), never a pinned model,
//   one with requests in flight or queued, or one still loading; when those cannot make room the
//   request waits; when even the pinned models alone leave no room, it fails.
// - A request arriving with max_queue requests already waiting fails with "server busy".
// - A prewarm (keep_alive "auto", learner.h) loads a model only into room that is free now: it
//   never evicts, never exceeds the budget or max_loaded, and never waits.
//
// Sleeping (sleep_after; a model whose sleep_after is unset never sleeps and none of this applies):
// - A sleeping model's runner freed its context (KV cache, compute buffers) and keeps its process
//   and weights; it counts against the budget at what it holds asleep, and still counts as one of
//   max_loaded. An idle model sleeps once its sleep_after has run out (DecideSleep); its keep_alive
//   still unloads it when it runs out, whatever its tier (DecideTick).
// - A request for a sleeping model wakes it (kWake): at once when what it needs awake fits the
//   budget, else room is made for the difference as for a load (below), never by sleeping or
//   evicting the model itself. A model falling asleep or waking is waited for (kTier).
// - Under memory pressure (a load or a wake that does not fit the budget, while the count fits),
//   idle models that may sleep (sleep_after set, not pinned) are put to sleep instead of being
//   unloaded (kSleep), cheapest first, when sleeping them frees enough; else models are evicted as
//   above (a sleeping model among them, at its sleeping bytes).
//
// GPUs (docs/gpu.md): a model placed on a GPU holds `vram_bytes` of that device's memory, and
// `bytes` of host memory. Each device has its own budget (GpuBudget: what resident's models may
// use there). A load (or a prewarm) fits when its host bytes fit the memory budget and its VRAM
// fits its device; when VRAM is what it lacks, the idle models on that device are evicted first
// (cheapest first), and models elsewhere only for what host memory or the count still lacks.
// Sleeping frees host memory only: it is used when VRAM already fits.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "sched/residency_stats.h"

namespace resident::sched {

struct Limits {
  int max_loaded = 3;
  int num_parallel = 1;
  int max_queue = 512;
  uint64_t memory_budget = 0;  // bytes; 0: none
};

// One model in the scheduler's map, as decisions see it.
struct ModelView {
  std::string_view key;        // its weights' path: what identifies a model
  bool loading = false;        // else loaded (ready)
  bool alive = true;           // its runner process (when loaded)
  int refs = 0;                // leases held
  int queued = 0;              // requests waiting inside Acquire for it
  bool pinned = false;
  uint64_t bytes = 0;          // measured, else predicted
  TimePoint last_used{};       // breaks equal costs: least recently used first
  std::optional<TimePoint> expires_at;  // idle with a keep_alive timer
  // Sleeping (see above). `bytes` of a sleeping model is what it holds asleep.
  bool sleeping = false;
  bool changing_tier = false;         // falling asleep or waking now: nothing else touches it
  bool may_sleep = false;             // its sleep_after is set: memory pressure may put it to sleep
  std::optional<TimePoint> sleep_at;  // idle and awake: when its sleep_after runs out
  uint64_t awake_bytes = 0;           // sleeping: what it holds awake (a wake needs the difference)
  uint64_t asleep_bytes = 0;          // awake: what it is expected to hold asleep
  int gpu = -1;                       // the device index its layers are on (-1: none)
  uint64_t vram_bytes = 0;            // what it holds there (measured, else predicted)
};

// What resident's models may hold on one GPU: its memory less a safety margin and less what other
// processes use there.
struct GpuBudget {
  int index = 0;
  uint64_t capacity = 0;
};

struct SchedulerView {
  std::vector<ModelView> models;
  uint64_t unloading_bytes = 0;  // runners being closed: still in use until they are gone
  int unloading = 0;
  bool loading = false;          // a load is running
  bool shutdown = false;
  int waiting = 0;               // requests inside Acquire
  std::vector<GpuBudget> gpus;   // empty: no GPU
  // The eviction cost of an idle model (EvictionCost; lower goes first, equal costs least
  // recently used first). Called only for eviction candidates, when room is needed.
  std::function<double(const ModelView&)> eviction_cost;

  const ModelView* Find(std::string_view key) const;
  uint64_t MemoryInUse() const;  // the models' bytes and the unloading bytes
  uint64_t VramInUse(int gpu) const;  // the models' VRAM on that device
  const GpuBudget* Gpu(int index) const;
};

// Expected seconds lost per byte freed by evicting a model: its reload time × how likely it is to
// be asked for again soon, per byte.
double EvictionCost(double reload_s, double reuse_probability, uint64_t bytes);
// The reuse probability without a learned history: 1 / (1 + idle minutes).
double DefaultReuseProbability(Duration idle);

struct Eviction {
  std::string key;
  UnloadReason reason;  // kMemory / kCount for evictions; kExited, kReload, kExpired otherwise
};

// A model to put to sleep, and why.
struct SleepOrder {
  std::string key;
  SleepReason reason;
};

struct Decision {
  enum class Kind {
    kLease,    // take a lease on the loaded model
    kWait,     // wait for a change (see `waiting_for`), then decide again
    kPredict,  // predict the model's footprint (file I/O, outside the lock), then decide again
    kUnload,   // unload `unload` (then decide again)
    kLoad,     // load the model
    kFail,     // fail the request with `error`
    kSleep,    // put `sleep` to sleep (then decide again)
    kWake,     // wake the sleeping model, then take a lease
  };
  // kTier: the model is falling asleep or waking.
  enum class Wait { kNone, kLoad, kSlot, kReload, kOtherLoad, kRoom, kTier };
  Kind kind = Kind::kWait;
  Wait waiting_for = Wait::kNone;
  std::vector<Eviction> unload;
  Status error;
  std::vector<SleepOrder> sleep;
};

struct AcquireAsk {
  std::string_view key;
  std::string_view name;               // for messages
  bool matches_loaded = true;          // the loaded model (if any) has this request's options and file
  std::optional<uint64_t> predicted;   // the footprint in host memory, once predicted
  int gpu = -1;                        // with it: the device its offloaded layers go to (-1: none)
  uint64_t predicted_vram = 0;         // and what they need there
  bool arriving = false;               // first decision of this request (the queue limit applies)
};

// What Acquire does next for `ask`.
Decision DecideAcquire(const SchedulerView& view, const Limits& limits, const AcquireAsk& ask);

// The idle models to unload at `now`: expired timers (kExpired) and dead runners (kExited),
// sleeping ones included.
std::vector<Eviction> DecideTick(const SchedulerView& view, TimePoint now);

// The idle awake models to put to sleep at `now` (kIdle): those whose sleep_after has run out,
// unless DecideTick unloads them at `now`. The other half of a tick: the timer performs DecideTick's
// unloads, then these.
std::vector<SleepOrder> DecideSleep(const SchedulerView& view, TimePoint now);

// Whether a prewarm of a model of `bytes` loads now: kLoad, or kWait (no room now, or a load or
// unload is running: the prewarm is skipped or retried by the caller), or kLease when it is
// already loaded or loading (nothing to do).
Decision DecidePrewarm(const SchedulerView& view, const Limits& limits, std::string_view key, uint64_t bytes,
                       int gpu = -1, uint64_t vram = 0);

}  // namespace resident::sched
