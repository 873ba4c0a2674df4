// What the scheduler counts about residency, as plain values: per model, loads and their
// durations, requests and cold starts, unloads by reason, and memory × time while loaded and
// while idle. Scheduler::Stats() returns them; api/ formats them for Prometheus (/metrics).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/histogram.h"

namespace resident::sched {

// Why a model was unloaded.
enum class UnloadReason {
  kExpired,  // its keep_alive ran out
  kMemory,   // evicted to make room within the memory budget
  kCount,    // evicted to stay within max_loaded (RESIDENT_MAX_LOADED_MODELS)
  kManual,   // keep_alive 0 (from a request or the policy file), a stop, a delete
  kReload,   // unloaded to load it again with different load options
  kExited,   // its runner process was gone (crashed, killed)
};
inline constexpr size_t kUnloadReasonCount = 6;
inline constexpr std::array<UnloadReason, kUnloadReasonCount> kAllUnloadReasons = {
    UnloadReason::kExpired, UnloadReason::kMemory, UnloadReason::kCount,
    UnloadReason::kManual,  UnloadReason::kReload, UnloadReason::kExited};

// "expired", "memory", "count", "manual", "reload", "exited".
std::string_view ReasonName(UnloadReason reason);

// Upper bounds of the load-time histogram, in seconds: 0.1 … 120.
std::vector<double> LoadSecondsBuckets();

// Why a model was put to sleep (its context freed, its runner and weights kept; sleep_after).
enum class SleepReason {
  kIdle,    // idle for its sleep_after
  kMemory,  // to make room within the memory budget, instead of unloading it
};
inline constexpr size_t kSleepReasonCount = 2;
inline constexpr std::array<SleepReason, kSleepReasonCount> kAllSleepReasons = {SleepReason::kIdle,
                                                                               SleepReason::kMemory};
// "idle", "memory".
std::string_view SleepReasonName(SleepReason reason);

struct ModelStats {
  // Counters since the server started.
  uint64_t loads = 0;          // loads that finished
  uint64_t load_failures = 0;  // loads that failed
  Histogram load_seconds{LoadSecondsBuckets()};
  uint64_t requests = 0;       // leases granted
  uint64_t cold_starts = 0;    // of those, requests that waited for a load (theirs or another's)
  std::array<uint64_t, kUnloadReasonCount> unloads{};  // indexed by UnloadReason
  // keep_alive "auto": loads ahead of a predicted request, those whose request found the model
  // loaded, and those that did not (the request came first, found no room, or never came).
  uint64_t prewarms = 0;
  uint64_t prewarm_hits = 0;
  uint64_t prewarm_misses = 0;
  // Bytes × seconds while the model counted against the budget (from the start of its load to
  // its unload), and the part of it with no request holding the model (loaded and idle). Bytes
  // are the measured figure once there is one, else the prediction.
  double resident_byte_seconds = 0;
  double idle_byte_seconds = 0;

  // Now: all zero/false while the model is not loaded.
  bool loaded = false;           // loaded or loading
  uint64_t predicted_bytes = 0;
  uint64_t measured_bytes = 0;   // 0 until measured
  int queued_requests = 0;       // requests waiting inside Acquire for this model (load, slot, room)

  uint64_t unloads_for(UnloadReason r) const { return unloads[static_cast<size_t>(r)]; }

  // Sleeping (sleep_after): times the model was put to sleep, by reason, and woken by a request
  // (how long each wake took).
  std::array<uint64_t, kSleepReasonCount> sleeps{};  // indexed by SleepReason
  uint64_t wakes = 0;
  Histogram wake_seconds{LoadSecondsBuckets()};
  bool sleeping = false;         // now: asleep (measured_bytes is then what it holds asleep)

  uint64_t sleeps_for(SleepReason r) const { return sleeps[static_cast<size_t>(r)]; }
};

struct ResidencyStats {
  std::map<std::string, ModelStats> models;  // by model name: every model loaded since start
  uint64_t memory_budget = 0;                // 0: no budget
  uint64_t memory_in_use = 0;                // Scheduler::MemoryInUse()
  int loaded_models = 0;                     // loaded or loading
  int max_loaded = 0;
  int queued_requests = 0;                   // requests inside Acquire, waiting
};

}  // namespace resident::sched
