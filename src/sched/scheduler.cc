#include "sched/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/bytes.h"

namespace resident::sched {

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
    std::exchange(sched_, nullptr)->Release(key_);
    runner_ = nullptr;
  }
}

Scheduler::Scheduler(Options options, runner::RunnerFactory& factory, const Clock& clock)
    : options_(options), factory_(factory), clock_(clock) {
  if (options_.timer_thread) timer_ = std::thread([this] { TimerLoop(); });
}

Scheduler::~Scheduler() { Shutdown(); }

bool Scheduler::SameLoadOptions(const runner::LoadRequest& a, const runner::LoadRequest& b) const {
  return a.n_ctx == b.n_ctx && a.n_batch == b.n_batch && a.n_threads == b.n_threads &&
         a.n_gpu_layers == b.n_gpu_layers && a.use_mmap == b.use_mmap && a.n_parallel == b.n_parallel;
}

Result<Lease> Scheduler::Acquire(const ModelSpec& spec, std::optional<Duration> keep_alive) {
  const std::string& key = spec.load.model_path;
  const TimePoint start = clock_.Now();
  std::vector<std::unique_ptr<runner::ModelRunner>> to_close;
  std::unique_lock<std::mutex> lock(mu_);
  if (shutdown_) return Status::Unavailable("the server is shutting down");
  if (waiting_ >= options_.max_queue) {
    return Status::ResourceExhausted("server busy, please try again.  maximum pending requests exceeded");
  }
  ++waiting_;
  struct Unwait {
    int& n;
    ~Unwait() { --n; }
  } unwait{waiting_};

  while (true) {
    if (shutdown_) return Status::Unavailable("the server is shutting down");
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      std::shared_ptr<Entry> e = it->second;
      if (e->state == State::kLoading) {
        cv_.wait(lock, [&] { return shutdown_ || e->state != State::kLoading; });
        if (e->state == State::kFailed) return e->load_error;
        continue;
      }
      if (e->state == State::kReady && !e->runner->alive()) {
        spdlog::warn("runner for {} is gone; it will be loaded again", e->spec.name);
        if (e->refs == 0) {
          to_close.push_back(Detach(key));
          lock.unlock();
          CloseDetached(std::move(to_close));
          to_close.clear();
          lock.lock();
          continue;
        }
      }
      if (!SameLoadOptions(e->spec.load, spec.load)) {
        if (e->refs == 0) {
          spdlog::info("reloading {}: load options changed", e->spec.name);
          to_close.push_back(Detach(key));
          lock.unlock();
          CloseDetached(std::move(to_close));
          to_close.clear();
          lock.lock();
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
      if (keep_alive) e->keep_alive = *keep_alive;
      Lease lease;
      lease.sched_ = this;
      lease.key_ = key;
      lease.runner_ = e->runner.get();
      lease.load_duration_ = clock_.Now() - start;
      return lease;
    }

    // Not loaded: one load at a time, and room for it.
    if (loading_ || unloading_ > 0) {
      cv_.wait(lock);
      continue;
    }
    if (static_cast<int>(entries_.size()) >= options_.max_loaded) {
      std::shared_ptr<Entry> victim;
      for (auto& [k, e] : entries_) {
        if (e->state == State::kReady && e->refs == 0 && (!victim || e->last_used < victim->last_used)) victim = e;
      }
      if (!victim) {
        cv_.wait(lock);
        continue;
      }
      spdlog::info("unloading {} ({}) to make room for {}: {} models loaded, the most allowed",
                   victim->spec.name, FormatBytes(victim->runner->facts().rss_bytes), spec.name,
                   entries_.size());
      to_close.push_back(Detach(victim->spec.load.model_path));
      lock.unlock();
      CloseDetached(std::move(to_close));
      to_close.clear();
      lock.lock();
      continue;
    }

    auto e = std::make_shared<Entry>();
    e->spec = spec;
    e->keep_alive = keep_alive.value_or(options_.default_keep_alive);
    entries_[key] = e;
    loading_ = true;
    lock.unlock();
    spdlog::info("loading {} from {}", spec.name, key);
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
    e->last_used = clock_.Now();
    spdlog::info("loaded {} in {:.2f} s ({} resident, pid {})", spec.name,
                 std::chrono::duration<double>(clock_.Now() - start).count(),
                 FormatBytes(e->runner->facts().rss_bytes), e->runner->pid());
    cv_.notify_all();
    // Loop: take the lease through the common path.
  }
}

void Scheduler::Release(const std::string& key) {
  std::vector<std::unique_ptr<runner::ModelRunner>> to_close;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return;
    Entry& e = *it->second;
    --e.refs;
    e.last_used = clock_.Now();
    if (e.refs == 0 && !shutdown_) {
      if (e.keep_alive == Duration::zero() || !e.runner->alive()) {
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

std::unique_ptr<runner::ModelRunner> Scheduler::Detach(const std::string& key) {
  auto it = entries_.find(key);
  std::unique_ptr<runner::ModelRunner> r = std::move(it->second->runner);
  entries_.erase(it);
  ++unloading_;
  return r;
}

void Scheduler::CloseDetached(std::vector<std::unique_ptr<runner::ModelRunner>> runners) {
  for (auto& r : runners) {
    if (r) {
      r->Close();
      spdlog::info("unloaded runner pid {}", r->pid());
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  unloading_ -= static_cast<int>(runners.size());
  cv_.notify_all();
}

void Scheduler::Unload(const std::string& model_path) {
  std::vector<std::unique_ptr<runner::ModelRunner>> to_close;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto it = entries_.find(model_path);
    if (it == entries_.end()) return;
    std::shared_ptr<Entry> e = it->second;
    e->keep_alive = Duration::zero();
    e->expires_at.reset();
    if (e->state == State::kReady && e->refs == 0) {
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
  std::vector<std::unique_ptr<runner::ModelRunner>> to_close;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TimePoint now = clock_.Now();
    std::vector<std::string> expired;
    for (auto& [key, e] : entries_) {
      if (e->state == State::kReady && e->refs == 0 && e->expires_at && *e->expires_at <= now) {
        expired.push_back(key);
      }
    }
    for (const auto& key : expired) {
      spdlog::info("unloading {}: keep_alive of {:.0f} s expired", entries_[key]->spec.name,
                   std::chrono::duration<double>(entries_[key]->keep_alive).count());
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
