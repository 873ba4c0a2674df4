#include "sched/scheduler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>

#include "core/bytes.h"

namespace resident::sched {
namespace {

constexpr Duration kMeasureEvery = std::chrono::seconds(2);

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

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
    : options_(std::move(options)), factory_(factory), clock_(clock), events_(options_.event_log_capacity) {
  if (options_.timer_thread) timer_ = std::thread([this] { TimerLoop(); });
}

Scheduler::~Scheduler() { Shutdown(); }

bool Scheduler::SameLoadOptions(const runner::LoadRequest& a, const runner::LoadRequest& b) const {
  return a.n_ctx == b.n_ctx && a.n_batch == b.n_batch && a.n_threads == b.n_threads &&
         a.n_gpu_layers == b.n_gpu_layers && a.use_mmap == b.use_mmap && a.n_parallel == b.n_parallel &&
         a.chat_template == b.chat_template;
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

Result<Lease> Scheduler::Acquire(const ModelSpec& requested, std::optional<Duration> keep_alive) {
  // The runner serves num_parallel requests at once: its context holds that many sequences.
  ModelSpec spec = requested;
  spec.load.n_parallel = std::max(1, options_.num_parallel);
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
  auto close_one = [&](const std::string& k, UnloadReason reason) {
    std::vector<Detached> d;
    d.push_back(Detach(k, reason));
    close_now(std::move(d));
  };
  std::optional<uint64_t> predicted;
  bool cold = false;  // this request waited for a load (its own or another's)

  while (true) {
    if (shutdown_) return Status::Unavailable("the server is shutting down");
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      std::shared_ptr<Entry> e = it->second;
      queue_on(e);
      if (e->state == State::kLoading) {
        cold = true;
        cv_.wait(lock, [&] { return shutdown_ || e->state != State::kLoading; });
        if (e->state == State::kFailed) return e->load_error;
        continue;
      }
      if (!e->runner->alive() && e->refs == 0) {
        spdlog::warn("the runner for {} is gone; loading it again", e->spec.name);
        close_one(key, UnloadReason::kExited);
        continue;
      }
      // Other options, or the file was replaced under the same path (other weights): reload.
      if (!SameLoadOptions(e->spec.load, spec.load) || e->spec.file_identity != spec.file_identity) {
        if (e->refs == 0) {
          close_one(key, UnloadReason::kReload);
        } else {
          cv_.wait(lock);
        }
        continue;
      }
      if (e->refs >= options_.num_parallel) {
        cv_.wait(lock);
        continue;
      }
      Accrue(*e, clock_.Now());
      ++e->refs;
      e->expires_at.reset();
      Duration d = ResolveKeepAlive(spec, keep_alive, /*fresh=*/false);
      if (d != Duration::min() && !e->unload_requested) e->keep_alive = d;  // a stop wins
      ModelStats& stats = stats_[spec.name];
      ++stats.requests;
      if (cold) ++stats.cold_starts;
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
        return Status::FailedPrecondition(
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
      return Status::FailedPrecondition("model \"" + spec.name + "\" needs about " + FormatBytes(*predicted) +
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
      // Each victim goes for the limit still exceeded when it is chosen: memory first, then count.
      uint64_t used = MemoryInUseLocked();
      for (const auto& v : victims) {
        bool over_memory = options_.memory_budget != 0 && used + *predicted > options_.memory_budget;
        std::string detail = fmt::format(
            " (needs {}; {} of {} in use, {} of {} models)", FormatBytes(*predicted), FormatBytes(MemoryInUseLocked()),
            options_.memory_budget ? FormatBytes(options_.memory_budget) : std::string("no budget"), entries_.size(),
            options_.max_loaded);
        used -= v->Bytes();
        gone.push_back(Detach(v->spec.load.model_path, over_memory ? UnloadReason::kMemory : UnloadReason::kCount,
                              spec.name, detail));
      }
      close_now(std::move(gone));
      continue;
    }

    auto e = std::make_shared<Entry>();
    e->spec = spec;
    e->keep_alive = ResolveKeepAlive(spec, keep_alive, /*fresh=*/true);
    e->pinned = options_.policy && options_.policy->Pinned(spec.name);
    e->predicted_bytes = *predicted;
    e->accrued_at = clock_.Now();  // it counts against the budget from now on
    entries_[key] = e;
    queue_on(e);
    loading_ = true;
    cold = true;
    lock.unlock();
    spdlog::info("loading {} from {} (predicted {})", spec.name, key, FormatBytes(*predicted));
    const TimePoint load_start = clock_.Now();
    auto runner = factory_.Start(spec.load, nullptr);
    lock.lock();
    loading_ = false;
    if (!runner.ok()) {
      const TimePoint now = clock_.Now();
      Accrue(*e, now);
      e->state = State::kFailed;
      e->load_error = runner.status();
      entries_.erase(key);
      cv_.notify_all();
      ++stats_[spec.name].load_failures;
      ResidencyEvent ev;
      ev.type = ResidencyEvent::Type::kLoadFailed;
      ev.model = spec.name;
      ev.error = runner.status().message();
      ev.duration = now - load_start;
      ev.predicted_bytes = e->predicted_bytes;
      Emit(std::move(ev));
      return e->load_error;
    }
    e->runner = std::move(runner).value();
    if (shutdown_) {
      Accrue(*e, clock_.Now());
      e->state = State::kFailed;
      e->load_error = Status::Unavailable("the server is shutting down");
      entries_.erase(key);
      cv_.notify_all();
      lock.unlock();
      e->runner->Close();
      return e->load_error;
    }
    const TimePoint loaded_at = clock_.Now();
    Accrue(*e, loaded_at);
    e->state = State::kReady;
    e->load_duration = loaded_at - load_start;
    e->last_used = loaded_at;
    e->measured_bytes = e->runner->facts().rss_bytes;
    e->measured_at = loaded_at;
    ModelStats& stats = stats_[spec.name];
    ++stats.loads;
    stats.load_seconds.Observe(Seconds(e->load_duration));
    ResidencyEvent ev;
    ev.type = ResidencyEvent::Type::kLoad;
    ev.model = spec.name;
    ev.duration = e->load_duration;
    ev.bytes = e->measured_bytes;
    ev.predicted_bytes = e->predicted_bytes;
    ev.pid = e->runner->pid();
    Emit(std::move(ev));
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
    Accrue(e, clock_.Now());
    if (measured) e.measured_bytes = *measured;
    --e.refs;
    e.last_used = clock_.Now();
    if (e.refs == 0 && !shutdown_) {
      if (e.keep_alive == Duration::zero() || e.unload_requested || !e.runner->alive()) {
        to_close.push_back(Detach(key, e.runner->alive() ? UnloadReason::kManual : UnloadReason::kExited));
      } else if (e.keep_alive != kForever) {
        e.expires_at = SaturatingAdd(clock_.Now(), e.keep_alive);  // ~292 years at most: no overflow
        timer_cv_.notify_all();
      }
    }
    cv_.notify_all();
  }
  CloseDetached(std::move(to_close));
}

void Scheduler::Accrue(Entry& e, TimePoint now) {
  if (now <= e.accrued_at) return;
  double byte_seconds = static_cast<double>(e.Bytes()) * Seconds(now - e.accrued_at);
  ModelStats& stats = stats_[e.spec.name];
  stats.resident_byte_seconds += byte_seconds;
  if (e.state == State::kReady && e.refs == 0) stats.idle_byte_seconds += byte_seconds;
  e.accrued_at = now;
}

void Scheduler::Emit(ResidencyEvent event, const std::string& log_detail) {
  event.time = clock_.WallNow();
  auto level = event.type == ResidencyEvent::Type::kLoadFailed ? spdlog::level::warn : spdlog::level::info;
  if (spdlog::should_log(level)) spdlog::log(level, "{}{}", Describe(event), log_detail);
  events_.Append(std::move(event));
}

Scheduler::Detached Scheduler::Detach(const std::string& key, UnloadReason reason, const std::string& for_model,
                                      const std::string& log_detail) {
  auto it = entries_.find(key);
  Entry& e = *it->second;
  const TimePoint now = clock_.Now();
  Accrue(e, now);
  ++stats_[e.spec.name].unloads[static_cast<size_t>(reason)];
  ResidencyEvent ev;
  ev.type = reason == UnloadReason::kMemory || reason == UnloadReason::kCount ? ResidencyEvent::Type::kEvict
                                                                               : ResidencyEvent::Type::kUnload;
  ev.model = e.spec.name;
  ev.reason = reason;
  ev.bytes = e.Bytes();
  ev.idle = now - e.last_used;
  if (reason == UnloadReason::kExpired) ev.keep_alive = e.keep_alive;
  ev.for_model = for_model;
  Emit(std::move(ev), log_detail);
  Detached d{std::move(e.runner), e.Bytes()};
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
    e->unload_requested = true;  // sticky: later keep_alive values of requests do not undo it
    e->expires_at.reset();
    if (e->state == State::kReady && e->refs == 0) {
      to_close.push_back(Detach(model_path, UnloadReason::kManual));
    } else {
      // In use or loading: the last lease's release (or a failed load) removes it. Wait for this
      // entry only: a request that arrives after it is gone loads the model anew, and that new
      // entry under the same path is not ours to wait for.
      cv_.wait(lock, [&] {
        auto now_there = entries_.find(model_path);
        return shutdown_ || now_there == entries_.end() || now_there->second != e;
      });
      cv_.wait(lock, [&] { return shutdown_ || unloading_ == 0; });
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

ResidencyStats Scheduler::Stats() const {
  ResidencyStats out;
  std::lock_guard<std::mutex> lock(mu_);
  out.models = stats_;
  const TimePoint now = clock_.Now();
  for (const auto& [key, e] : entries_) {
    ModelStats& m = out.models[e->spec.name];
    if (now > e->accrued_at) {  // the open interval since the last state change
      double byte_seconds = static_cast<double>(e->Bytes()) * Seconds(now - e->accrued_at);
      m.resident_byte_seconds += byte_seconds;
      if (e->state == State::kReady && e->refs == 0) m.idle_byte_seconds += byte_seconds;
    }
    if (e->state == State::kReady) {
      m.loaded = true;
      ++out.loaded_models;
    }
    m.predicted_bytes += e->predicted_bytes;
    m.measured_bytes += e->measured_bytes;
  }
  out.memory_budget = options_.memory_budget;
  out.memory_in_use = MemoryInUseLocked();
  out.max_loaded = options_.max_loaded;
  out.queued_requests = waiting_;
  return out;
}

void Scheduler::Tick() {
  std::vector<Detached> to_close;
  {
    std::lock_guard<std::mutex> lock(mu_);
    TimePoint now = clock_.Now();
    std::vector<std::string> expired, exited;
    for (auto& [key, e] : entries_) {
      if (e->state != State::kReady || e->refs != 0 || e->queued != 0) continue;
      if (!e->runner->alive()) {
        exited.push_back(key);  // killed by its health check, or crashed while idle
      } else if (e->expires_at && *e->expires_at <= now) {
        expired.push_back(key);
      }
    }
    for (const auto& key : expired) to_close.push_back(Detach(key, UnloadReason::kExpired));
    for (const auto& key : exited) to_close.push_back(Detach(key, UnloadReason::kExited));
  }
  CloseDetached(std::move(to_close));
}

namespace {
constexpr Duration kReapEvery = std::chrono::seconds(1);
}  // namespace

void Scheduler::TimerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutdown_) {
    std::optional<TimePoint> next;
    bool idle = false;
    for (auto& [key, e] : entries_) {
      if (e->refs == 0 && e->expires_at && (!next || *e->expires_at < *next)) next = e->expires_at;
      idle |= e->state == State::kReady && e->refs == 0;
    }
    if (!next && !idle) {
      clock_.WaitUntil(timer_cv_, lock, TimePoint::max());  // until a timer is armed
      continue;
    }
    // An idle model's runner can die (a crash, its health check) with nobody asking: look at
    // least once a second so that it leaves /api/ps and the budget.
    // Waits on the injected clock (a fake clock in tests wakes it when advanced); a deadline is
    // TimePoint::max() at most (SaturatingAdd), never an overflowing now + duration.
    const TimePoint now = clock_.Now();
    TimePoint deadline = next ? *next : SaturatingAdd(now, kReapEvery);
    if (idle) deadline = std::min(deadline, SaturatingAdd(now, kReapEvery));
    if (deadline > now && clock_.WaitUntil(timer_cv_, lock, deadline)) continue;
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
    events_.Close();
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
