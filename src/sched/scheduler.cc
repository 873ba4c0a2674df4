#include "sched/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

#include "core/bytes.h"

namespace resident::sched {
namespace {

constexpr Duration kMeasureEvery = std::chrono::seconds(2);

std::string Idle(Duration d) {
  return KeepAlive::Of(std::chrono::duration_cast<std::chrono::seconds>(d)).ToString();
}

KeepAlive ToKeepAlive(Duration d) { return d == kForever ? KeepAlive::Forever() : KeepAlive::Of(d); }
Duration ToDuration(const KeepAlive& k) { return k.forever ? kForever : k.duration; }

}  // namespace

Lease& Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Release();
    sched_ = std::exchange(other.sched_, nullptr);
    key_ = std::move(other.key_);
    runner_ = std::exchange(other.runner_, nullptr);
    load_duration_ = other.load_duration_;
  }
  return *this;
}

void Lease::Release() {
  if (sched_ != nullptr) {
    std::exchange(sched_, nullptr)->Release(key_, runner_);
    runner_ = nullptr;
  }
}

Scheduler::Scheduler(Options options, runner::RunnerFactory& factory, const Clock& clock)
    : options_(std::move(options)), factory_(factory), clock_(clock) {
  if (options_.timer_thread) timer_ = std::thread([this] { TimerLoop(); });
}

Scheduler::~Scheduler() { Shutdown(); }

bool Scheduler::SameLoadOptions(const runner::LoadRequest& a, const runner::LoadRequest& b) const {
  return a.n_ctx == b.n_ctx && a.n_batch == b.n_batch && a.n_threads == b.n_threads &&
         a.n_gpu_layers == b.n_gpu_layers && a.use_mmap == b.use_mmap && a.n_parallel == b.n_parallel;
}

Duration Scheduler::ResolveKeepAlive(const ModelSpec& spec, std::optional<Duration> requested, bool fresh) const {
  const Policy* policy = options_.policy ? &*options_.policy : nullptr;
  Duration d;
  if (requested) {
    d = policy ? ToDuration(policy->Clamp(ToKeepAlive(*requested))) : *requested;
  } else if (fresh) {
    d = policy ? ToDuration(policy->DefaultFor(spec.name)) : options_.default_keep_alive;
  } else {
    return Duration::min();  // keep the model's current duration
  }
  // A pinned model never expires; only an explicit keep_alive 0 (or a stop) unloads it.
  if (policy && policy->Pinned(spec.name) && d != Duration::zero()) d = kForever;
  return d;
}

uint64_t Scheduler::MemoryInUseLocked() const {
  uint64_t total = unloading_bytes_;
  for (const auto& [key, e] : entries_) total += e->Bytes();
  return total;
}

uint64_t Scheduler::MemoryInUse() const {
  std::lock_guard<std::mutex> lock(mu_);
  return MemoryInUseLocked();
}

std::vector<std::shared_ptr<Scheduler::Entry>> Scheduler::ChooseVictims(uint64_t bytes, bool* never_fits) const {
  *never_fits = false;
  const TimePoint now = clock_.Now();
  const uint64_t budget = options_.memory_budget;
  uint64_t in_use = MemoryInUseLocked();
  size_t count = entries_.size();
  auto fits = [&](uint64_t used, size_t n) {
    return static_cast<int>(n) < options_.max_loaded && (budget == 0 || used + bytes <= budget);
  };
  if (fits(in_use, count)) return {};

  // Could it ever fit? Only pinned models (and ones being unloaded, which will go) stay.
  uint64_t pinned_bytes = 0;
  size_t pinned_count = 0;
  for (const auto& [key, e] : entries_) {
    if (e->pinned) {
      pinned_bytes += e->Bytes();
      ++pinned_count;
    }
  }
  if (!fits(pinned_bytes, pinned_count)) {
    *never_fits = true;
    return {};
  }

  struct Candidate {
    std::shared_ptr<Entry> entry;
    double cost;
  };
  std::vector<Candidate> candidates;
  for (const auto& [key, e] : entries_) {
    if (e->state != State::kReady || e->refs > 0 || e->queued > 0 || e->pinned) continue;
    double idle_min = std::chrono::duration<double>(now - e->last_used).count() / 60.0;
    double reload_s = std::max(0.001, std::chrono::duration<double>(e->load_duration).count());
    double reuse = 1.0 / (1.0 + std::max(0.0, idle_min));
    double cost = reload_s * reuse / static_cast<double>(std::max<uint64_t>(1, e->Bytes()));
    candidates.push_back({e, cost});
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.cost != b.cost) return a.cost < b.cost;
    return a.entry->last_used < b.entry->last_used;
  });
  std::vector<std::shared_ptr<Entry>> victims;
  for (const Candidate& c : candidates) {
    victims.push_back(c.entry);
    in_use -= c.entry->Bytes();
    --count;
    if (fits(in_use, count)) return victims;
  }
  return {};  // not enough idle models now: wait
}

Result<Lease> Scheduler::Acquire(const ModelSpec& spec, std::optional<Duration> keep_alive) {
  const std::string& key = spec.load.model_path;
  const TimePoint start = clock_.Now();
  std::unique_lock<std::mutex> lock(mu_);
  if (shutdown_) return Status::Unavailable("the server is shutting down");
  if (waiting_ >= options_.max_queue) {
    return Status::ResourceExhausted("server busy, please try again.  maximum pending requests exceeded");
  }
  ++waiting_;
  std::shared_ptr<Entry> queued_on;  // the entry this request counts as queued for
  struct Unwait {
    Scheduler* s;
    std::shared_ptr<Entry>* q;
    ~Unwait() {
      --s->waiting_;
      if (*q) --(*q)->queued;
    }
  } unwait{this, &queued_on};
  auto queue_on = [&](const std::shared_ptr<Entry>& e) {
    if (queued_on == e) return;
    if (queued_on) --queued_on->queued;
    queued_on = e;
    ++e->queued;
  };
  auto close_now = [&](std::vector<Detached> d) {
    lock.unlock();
    CloseDetached(std::move(d));
    lock.lock();
  };
  auto close_one = [&](const std::string& k) {
    std::vector<Detached> d;
    d.push_back(Detach(k));
    close_now(std::move(d));
  };
  std::optional<uint64_t> predicted;

  while (true) {
    if (shutdown_) return Status::Unavailable("the server is shutting down");
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      std::shared_ptr<Entry> e = it->second;
      queue_on(e);
      if (e->state == State::kLoading) {
        cv_.wait(lock, [&] { return shutdown_ || e->state != State::kLoading; });
        if (e->state == State::kFailed) return e->load_error;
        continue;
      }
      if (!e->runner->alive() && e->refs == 0) {
        spdlog::warn("the runner for {} is gone; loading it again", e->spec.name);
        close_one(key);
        continue;
      }
      if (!SameLoadOptions(e->spec.load, spec.load)) {
        if (e->refs == 0) {
          spdlog::info("reloading {}: load options changed", e->spec.name);
          close_one(key);
        } else {
          cv_.wait(lock);
        }
        continue;
      }
      if (e->refs >= options_.num_parallel) {
        cv_.wait(lock);
        continue;
      }
      ++e->refs;
      e->expires_at.reset();
      Duration d = ResolveKeepAlive(spec, keep_alive, /*fresh=*/false);
      if (d != Duration::min()) e->keep_alive = d;
      Lease lease;
      lease.sched_ = this;
      lease.key_ = key;
      lease.runner_ = e->runner.get();
      lease.load_duration_ = clock_.Now() - start;
      return lease;
    }

    // Not loaded. Predict its footprint once (file I/O: outside the lock).
    if (!predicted) {
      uint64_t bytes = 0;
      if (options_.predictor) {
        lock.unlock();
        auto p = options_.predictor(spec);
        lock.lock();
        if (!p.ok()) return p.status();
        bytes = *p;
      }
      predicted = bytes;
      if (options_.memory_budget && bytes > options_.memory_budget) {
        return Status::ResourceExhausted(
            "model \"" + spec.name + "\" needs about " + FormatBytes(bytes) + " but the memory budget is " +
            FormatBytes(options_.memory_budget) + " (RESIDENT_MEMORY_LIMIT): it can never be loaded");
      }
      continue;  // the world may have changed while unlocked
    }
    // One load at a time, and not while memory is still being returned.
    if (loading_ || unloading_ > 0) {
      cv_.wait(lock);
      continue;
    }
    bool never_fits = false;
    std::vector<std::shared_ptr<Entry>> victims = ChooseVictims(*predicted, &never_fits);
    if (never_fits) {
      return Status::ResourceExhausted("model \"" + spec.name + "\" needs about " + FormatBytes(*predicted) +
                                       " and does not fit next to the pinned models within the memory budget of " +
                                       FormatBytes(options_.memory_budget));
    }
    bool fits_now = victims.empty() && static_cast<int>(entries_.size()) < options_.max_loaded &&
                    (options_.memory_budget == 0 || MemoryInUseLocked() + *predicted <= options_.memory_budget);
    if (!fits_now && victims.empty()) {
      cv_.wait(lock);  // every model is busy, queued for or pinned: wait for one to go idle
      continue;
    }
    if (!victims.empty()) {
      std::vector<Detached> gone;
      const TimePoint now = clock_.Now();
      for (const auto& v : victims) {
        spdlog::info("unloaded {} ({}, idle {}) to make room for {} (needs {}; {} of {} in use, {} of {} models)",
                     v->spec.name, FormatBytes(v->Bytes()), Idle(now - v->last_used), spec.name,
                     FormatBytes(*predicted), FormatBytes(MemoryInUseLocked()),
                     options_.memory_budget ? FormatBytes(options_.memory_budget) : std::string("no budget"),
                     entries_.size(), options_.max_loaded);
        gone.push_back(Detach(v->spec.load.model_path));
      }
      close_now(std::move(gone));
      continue;
    }

    auto e = std::make_shared<Entry>();
    e->spec = spec;
    e->keep_alive = ResolveKeepAlive(spec, keep_alive, /*fresh=*/true);
    e->pinned = options_.policy && options_.policy->Pinned(spec.name);
    e->predicted_bytes = *predicted;
    entries_[key] = e;
    queue_on(e);
    loading_ = true;
    lock.unlock();
    spdlog::info("loading {} from {} (predicted {})", spec.name, key, FormatBytes(*predicted));
    const TimePoint load_start = clock_.Now();
    auto runner = factory_.Start(spec.load, nullptr);
    lock.lock();
    loading_ = false;
    if (!runner.ok()) {
      e->state = State::kFailed;
      e->load_error = runner.status();
      entries_.erase(key);
      cv_.notify_all();
      spdlog::warn("loading {} failed: {}", spec.name, runner.status().message());
      return e->load_error;
    }
    e->runner = std::move(runner).value();
    if (shutdown_) {
      e->state = State::kFailed;
      e->load_error = Status::Unavailable("the server is shutting down");
      entries_.erase(key);
      cv_.notify_all();
      lock.unlock();
      e->runner->Close();
      return e->load_error;
    }
    e->state = State::kReady;
    e->load_duration = clock_.Now() - load_start;
    e->last_used = clock_.Now();
    e->measured_bytes = e->runner->facts().rss_bytes;
    e->measured_at = clock_.Now();
    spdlog::info("loaded {} in {:.2f} s: predicted {}, measured {} (pid {})", spec.name,
                 std::chrono::duration<double>(e->load_duration).count(), FormatBytes(e->predicted_bytes),
                 FormatBytes(e->measured_bytes), e->runner->pid());
    cv_.notify_all();
    // Loop: take the lease through the common path.
  }
}

void Scheduler::Release(const std::string& key, runner::ModelRunner* runner) {
  // Measure the runner's memory now and then, while this lease still keeps it alive: after a
  // request every page it touched is resident, so this is the figure the budget should use.
  bool measure = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(key);
    measure = it != entries_.end() && !shutdown_ && clock_.Now() - it->second->measured_at >= kMeasureEvery;
    if (measure) it->second->measured_at = clock_.Now();
  }
  std::optional<uint64_t> measured;
  if (measure && runner != nullptr && runner->alive()) {
    auto m = runner->Memory();
    if (m.ok() && m->rss_bytes > 0) measured = m->rss_bytes;
  }
  std::vector<Detached> to_close;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    Entry& e = *it->second;
    if (measured) e.measured_bytes = *measured;
    --e.refs;
    e.last_used = clock_.Now();
    if (e.refs == 0 && !shutdown_) {
      if (e.keep_alive == Duration::zero() || !e.runner->alive()) {
        if (e.keep_alive == Duration::zero()) spdlog::info("unloading {}: keep_alive 0", e.spec.name);
        to_close.push_back(Detach(key));
      } else if (e.keep_alive != kForever) {
        e.expires_at = clock_.Now() + e.keep_alive;
        timer_cv_.notify_all();
      }
    }
    cv_.notify_all();
  }
  CloseDetached(std::move(to_close));
}

Scheduler::Detached Scheduler::Detach(const std::string& key) {
  auto it = entries_.find(key);
  Detached d{std::move(it->second->runner), it->second->Bytes()};
  entries_.erase(it);
  ++unloading_;
  unloading_bytes_ += d.bytes;
  return d;
}

void Scheduler::CloseDetached(std::vector<Detached> runners) {
  if (runners.empty()) return;
  for (auto& d : runners) {
    if (d.runner) {
      d.runner->Close();
      spdlog::info("runner pid {} exited: {} returned", d.runner->pid(), FormatBytes(d.bytes));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& d : runners) {
    --unloading_;
    unloading_bytes_ -= d.bytes;
  }
  cv_.notify_all();
}

void Scheduler::Unload(const std::string& model_path) {
  std::vector<Detached> to_close;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = entries_.find(model_path);
    if (it == entries_.end()) return;
    std::shared_ptr<Entry> e = it->second;
    e->keep_alive = Duration::zero();
    e->expires_at.reset();
    if (e->state == State::kReady && e->refs == 0) {
      spdlog::info("unloading {}: stopped by request", e->spec.name);
      to_close.push_back(Detach(model_path));
    } else {
      // In use or loading: the last lease's release unloads it.
      cv_.wait(lock, [&] { return shutdown_ || entries_.find(model_path) == entries_.end(); });
      cv_.wait(lock, [&] { return unloading_ == 0; });
      return;
    }
  }
  CloseDetached(std::move(to_close));
}

int Scheduler::QueuedRequests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

std::vector<LoadedModel> Scheduler::Snapshot() const {
  std::vector<LoadedModel> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, e] : entries_) {
    if (e->state != State::kReady) continue;
    LoadedModel m;
    m.name = e->spec.name;
    m.path = key;
    m.facts = e->runner->facts();
    m.pid = e->runner->pid();
    m.active_requests = e->refs;
    m.keep_alive = e->keep_alive;
    m.forever = e->keep_alive == kForever;
    m.pinned = e->pinned;
    m.predicted_bytes = e->predicted_bytes;
    m.measured_bytes = e->measured_bytes;
    m.load_duration = e->load_duration;
    if (e->expires_at) m.expires_at = clock_.ToWall(*e->expires_at);
    out.push_back(std::move(m));
  }
  auto rank = [](const LoadedModel& m) {
    // In use or forever sorts as latest expiry.
    return m.expires_at ? m.expires_at->time_since_epoch().count() : std::numeric_limits<int64_t>::max();
  };
  std::stable_sort(out.begin(), out.end(), [&](const auto& a, const auto& b) { return rank(a) > rank(b); });
  return out;
}

void Scheduler::Tick() {
  std::vector<Detached> to_close;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TimePoint now = clock_.Now();
    std::vector<std::string> expired;
    for (auto& [key, e] : entries_) {
      if (e->state == State::kReady && e->refs == 0 && e->queued == 0 && e->expires_at && *e->expires_at <= now) {
        expired.push_back(key);
      }
    }
    for (const auto& key : expired) {
      spdlog::info("unloading {}: idle for its keep_alive of {}", entries_[key]->spec.name,
                   ToKeepAlive(entries_[key]->keep_alive).ToString());
      to_close.push_back(Detach(key));
    }
  }
  CloseDetached(std::move(to_close));
}

void Scheduler::TimerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutdown_) {
    std::optional<TimePoint> next;
    for (auto& [key, e] : entries_) {
      if (e->refs == 0 && e->expires_at && (!next || *e->expires_at < *next)) next = e->expires_at;
    }
    if (!next) {
      timer_cv_.wait(lock);
      continue;
    }
    Duration wait = *next - clock_.Now();
    if (wait > Duration::zero()) {
      timer_cv_.wait_for(lock, wait);
      continue;
    }
    lock.unlock();
    Tick();
    lock.lock();
  }
}

void Scheduler::Shutdown() {
  std::vector<runner::ModelRunner*> running;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;
    shutdown_ = true;
    for (auto& [key, e] : entries_) {
      if (e->runner) running.push_back(e->runner.get());
    }
    cv_.notify_all();
    timer_cv_.notify_all();
  }
  if (timer_.joinable()) timer_.join();
  // Requests in flight fail with kUnavailable; their leases still point at the runners, which
  // are destroyed only after the last lease is gone.
  for (runner::ModelRunner* r : running) r->Close();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] {
    if (loading_ || unloading_ > 0) return false;
    for (auto& [key, e] : entries_) {
      if (e->refs > 0) return false;
    }
    return true;
  });
  entries_.clear();
}

}  // namespace resident::sched
