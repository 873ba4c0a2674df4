// The memory history behind the dashboard's chart: what each model held, sampled every few
// seconds over the last hour, with the budget and the total in use.
//
// ResidencyHistory is the ring buffer (a value with a lock; samples older than its span, or
// beyond its count, are dropped as new ones come). HistorySampler fills it from
// Scheduler::Stats() on a thread of its own, every `period` of real time. Cost: one Stats() call
// a period (a copy of the per-model counters under the scheduler's lock, a few microseconds with
// a few models) and about 16 bytes per model per sample (1,800 samples an hour at 2 s).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "sched/scheduler.h"

namespace resident::sched {

class ResidencyHistory {
 public:
  struct Sample {
    WallTime time{};
    uint64_t budget = 0;  // 0: none
    uint64_t in_use = 0;  // Scheduler::MemoryInUse(): loaded, loading and unloading models
    std::vector<std::pair<std::string, uint64_t>> models;  // bytes of each model loaded or loading
  };

  explicit ResidencyHistory(Duration span = std::chrono::hours(1), size_t max_samples = 4096);

  // Keeps a sample (times must not go backwards: an older one is dropped), then drops those
  // older than `span` before it, and the oldest beyond max_samples. Thread-safe.
  void Add(const Sample& sample);
  // The samples newer than `after`, oldest first. Thread-safe.
  std::vector<Sample> Since(WallTime after) const;
  size_t size() const;
  Duration span() const { return span_; }

 private:
  struct Kept {
    WallTime time{};
    uint64_t budget = 0;
    uint64_t in_use = 0;
    std::vector<std::pair<uint32_t, uint64_t>> models;  // (index in names_, bytes)
  };
  uint32_t NameIndexLocked(const std::string& name);

  const Duration span_;
  const size_t max_samples_;
  mutable std::mutex mu_;
  std::deque<Kept> samples_;        // guarded by mu_; oldest first
  // Every model name seen since start (a model's name is kept once, not per sample); guarded by mu_.
  std::vector<std::string> names_;
};

// Samples the scheduler into a history every `period` (real time) until destroyed.
class HistorySampler {
 public:
  HistorySampler(const Scheduler& scheduler, const Clock& clock, ResidencyHistory& history,
                 std::chrono::milliseconds period = std::chrono::seconds(2));
  ~HistorySampler();
  HistorySampler(const HistorySampler&) = delete;
  HistorySampler& operator=(const HistorySampler&) = delete;

  std::chrono::milliseconds period() const { return period_; }
  // One sample now (the thread calls it every period).
  void SampleNow();

 private:
  const Scheduler& scheduler_;
  const Clock& clock_;
  ResidencyHistory& history_;
  const std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace resident::sched
