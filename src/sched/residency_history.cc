#include "sched/residency_history.h"

#include <pthread.h>

namespace resident::sched {

ResidencyHistory::ResidencyHistory(Duration span, size_t max_samples) : span_(span), max_samples_(max_samples) {}

uint32_t ResidencyHistory::NameIndexLocked(const std::string& name) {
  for (uint32_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) return i;
  }
  names_.push_back(name);
  return static_cast<uint32_t>(names_.size() - 1);
}

void ResidencyHistory::Add(const Sample& sample) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!samples_.empty() && sample.time < samples_.back().time) return;
  Kept k{sample.time, sample.budget, sample.in_use, {}};
  k.models.reserve(sample.models.size());
  for (const auto& [name, bytes] : sample.models) k.models.emplace_back(NameIndexLocked(name), bytes);
  samples_.push_back(std::move(k));
  while (!samples_.empty() && (samples_.size() > max_samples_ || samples_.front().time < sample.time - span_)) {
    samples_.pop_front();
  }
}

std::vector<ResidencyHistory::Sample> ResidencyHistory::Since(WallTime after) const {
  std::vector<Sample> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const Kept& k : samples_) {
    if (k.time <= after) continue;
    Sample s{k.time, k.budget, k.in_use, {}};
    s.models.reserve(k.models.size());
    for (const auto& [index, bytes] : k.models) s.models.emplace_back(names_[index], bytes);
    out.push_back(std::move(s));
  }
  return out;
}

size_t ResidencyHistory::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return samples_.size();
}

HistorySampler::HistorySampler(const Scheduler& scheduler, const Clock& clock, ResidencyHistory& history,
                               std::chrono::milliseconds period)
    : scheduler_(scheduler), clock_(clock), history_(history), period_(period) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "history");  // its CPU time shows in /proc/PID/task
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      SampleNow();
      lock.lock();
      cv_.wait_for(lock, period_, [&] { return stop_; });
    }
  });
}

HistorySampler::~HistorySampler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HistorySampler::SampleNow() {
  ResidencyStats stats = scheduler_.Stats();
  ResidencyHistory::Sample s;
  s.time = clock_.WallNow();
  s.budget = stats.memory_budget;
  s.in_use = stats.memory_in_use;
  for (const auto& [name, m] : stats.models) {
    uint64_t bytes = m.measured_bytes ? m.measured_bytes : m.predicted_bytes;
    if (bytes > 0) s.models.emplace_back(name, bytes);
  }
  history_.Add(s);
}

}  // namespace resident::sched
