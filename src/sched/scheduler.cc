#include "sched/scheduler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/bytes.h"

namespace resident::sched {
namespace {

constexpr Duration kMeasureEvery = std::chrono::seconds(2);
// An idle model's runner can die (a crash, its health check) with nobody asking: the timer looks
// at least this often so that it leaves /api/ps and the budget.
constexpr Duration kReapEvery = std::chrono::seconds(1);
// A background load that found another load running tries again after this.
constexpr Duration kRetryBackgroundLoad = std::chrono::milliseconds(250);
// A sleeping runner keeps its weights and the process itself: footprint.h's 24 MiB.
constexpr uint64_t kSleepingProcessBytes = 24ull << 20;


Duration FromSeconds(double s) {
  if (!(s < 1e9 * 365 * 24 * 3600)) return Duration::max();
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(std::max(0.0, s)));
}

bool IsZero(const KeepAlive& k) { return !k.forever && !k.automatic && k.duration == Duration::zero(); }

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

Limits Scheduler::limits() const {
  return Limits{options_.max_loaded, options_.num_parallel, options_.max_queue, options_.memory_budget};
}

double Scheduler::WallSeconds() const { return std::chrono::duration<double>(clock_.WallNow().time_since_epoch()).count(); }

std::optional<KeepAlive> Scheduler::ResolveKeepAlive(const ModelSpec& spec, std::optional<KeepAlive> requested,
                                                     bool fresh, std::string* why) const {
  const Policy* policy = options_.policy ? &*options_.policy : nullptr;
  KeepAlive k;
  std::string reason;
  if (requested) {
    k = policy ? policy->Clamp(*requested) : *requested;
    reason = k == *requested ? "a request's keep_alive"
                             : "a request's keep_alive (" + requested->ToString() + "), clamped by the policy file";
  } else if (fresh) {
    k = policy ? policy->DefaultFor(spec.name) : options_.default_keep_alive;
    const ModelPolicy* entry = policy ? policy->Find(spec.name) : nullptr;
    reason = entry && entry->keep_alive ? "the policy file's entry for " + spec.name : "the default keep_alive";
  } else {
    return std::nullopt;  // keep the model's current one
  }
  // A pinned model never expires; only an explicit keep_alive 0 (or a stop) unloads it.
  if (policy && policy->Pinned(spec.name) && !IsZero(k)) {
    k = KeepAlive::Forever();
    reason = "pinned in the policy file";
  }
  if (why != nullptr) *why = k.automatic ? "" : reason;
  return k;
}

std::optional<KeepAlive> Scheduler::SleepAfterFor(const std::string& name) const {
  if (!options_.policy) return options_.default_sleep_after;
  return options_.policy->SleepAfterFor(name);
}

uint64_t Scheduler::ExpectedSleepingBytes(const Entry& e) {
  if (e.sleeping_bytes) return e.sleeping_bytes;
  const uint64_t weights = e.runner ? e.runner->facts().size_bytes : 0;
  return std::min(e.measured_bytes ? e.measured_bytes : e.predicted_bytes, weights + kSleepingProcessBytes);
}

double Scheduler::ReloadSecondsLocked(const Entry& e) const {
  const double load_s = ToSeconds(e.load_duration);
  if (!options_.page_cache_fraction || !e.cached_at_load || !e.runner || options_.disk_read_bytes_per_s <= 0) {
    return load_s;
  }
  const std::optional<double> now = options_.page_cache_fraction(e.spec.load.model_path);
  if (!now) return load_s;
  // The bytes of its file that the load found in the page cache and a reload would not (or the
  // other way round) are read from disk, or not, on top of what the load measured.
  const double file_bytes = static_cast<double>(e.runner->facts().size_bytes);
  const double more_from_disk = (*e.cached_at_load - *now) * file_bytes;
  return std::max(0.1 * load_s, load_s + more_from_disk / options_.disk_read_bytes_per_s);
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

CostModel Scheduler::CostFor(const std::string& name, uint64_t bytes, double load_s) const {
  const Policy* policy = options_.policy ? &*options_.policy : nullptr;
  ColdStartCost cc = policy ? policy->ColdStartCostFor(name) : options_.cold_start_cost;
  CostModel c;
  c.load_s = load_s;
  c.cold_start_s = cc.SecondsFor(load_s, bytes);
  if (policy && policy->min_keep_alive && !policy->min_keep_alive->forever) {
    c.min_keep_s = ToSeconds(policy->min_keep_alive->duration);
  }
  if (policy && policy->max_keep_alive && !policy->max_keep_alive->forever) {
    c.max_keep_s = ToSeconds(policy->max_keep_alive->duration);
  }
  return c;
}

const ResidencyPlan& Scheduler::PlanLocked(const std::string& name, const Entry& e) {
  Learning& l = learning_[name];
  const double now = WallSeconds();
  l.history.bytes = e.Bytes();
  l.history.load_s = ToSeconds(e.load_duration);
  // Plans change slowly: made again after a sixteenth of the kept gaps are new, or a minute.
  const size_t n = l.history.gaps.size();
  auto [it, made] = l.plans.try_emplace(ContextBucket(l.history));
  Learning::Cached& c = it->second;
  if (made || l.history.requests - c.requests_at >= std::max<size_t>(1, n / 16) || now - c.at >= 60) {
    // What is typical of every model, rebuilt each minute, for a model with few gaps of its own.
    if (prior_at_ < 0 || now - prior_at_ >= 60) {
      prior_ = PriorGaps{};
      for (const auto& [other, ol] : learning_) prior_.Add(ol.history);
      prior_at_ = now;
    }
    c.plan = Plan(l.history, now, options_.learner, CostFor(name, e.Bytes(), l.history.load_s), &prior_);
    c.requests_at = l.history.requests;
    c.at = now;
  }
  l.latest = &c.plan;
  return c.plan;
}

void Scheduler::RefreshMeasuredLocked() {
  const TimePoint now = clock_.Now();
  for (auto& [key, e] : entries_) {
    // Asleep it holds what it measured once asleep; the latest sample may predate the sleep.
    if (e->state != State::kReady || !e->runner || e->sleeping || e->changing_tier) continue;
    const uint64_t sampled = e->runner->SampledRssBytes();
    if (sampled <= e->measured_bytes) continue;
    Accrue(*e, now);
    e->measured_bytes = sampled;
  }
}

SchedulerView Scheduler::ViewLocked() const {
  SchedulerView view;
  view.models.reserve(entries_.size());
  for (const auto& [key, e] : entries_) {
    ModelView m;
    m.key = key;
    m.loading = e->state == State::kLoading;
    m.alive = m.loading || (e->runner && e->runner->alive());
    m.refs = e->refs;
    m.queued = e->queued;
    m.pinned = e->pinned;
    m.bytes = e->Bytes();
    m.last_used = e->last_used;
    if (e->refs == 0) m.expires_at = e->expires_at;
    m.sleeping = e->sleeping;
    m.changing_tier = e->changing_tier;
    m.may_sleep = e->sleep_after.has_value() && e->state == State::kReady;
    if (e->refs == 0 && !e->sleeping) m.sleep_at = e->sleep_at;
    m.awake_bytes = e->measured_bytes ? e->measured_bytes : e->predicted_bytes;
    m.asleep_bytes = e->state == State::kReady ? ExpectedSleepingBytes(*e) : m.bytes;
    m.gpu = e->placement.gpu;
    m.vram_bytes = e->Vram();
    view.models.push_back(m);
  }
  view.gpus = GpuBudgetsLocked();
  view.unloading_bytes = unloading_bytes_;
  view.unloading = unloading_;
  view.loading = loading_;
  view.shutdown = shutdown_;
  view.waiting = waiting_;
  view.eviction_cost = [this](const ModelView& m) {
    const Entry& e = *entries_.at(std::string(m.key));
    const TimePoint now = clock_.Now();
    double reuse = DefaultReuseProbability(now - e.last_used);
    if (e.keep_alive.automatic) {
      auto l = learning_.find(e.spec.name);
      if (l != learning_.end() && l->second.history.gaps.size() >= options_.learner.min_gaps) {
        const double load_s = ToSeconds(e.load_duration);
        const double horizon = CostFor(e.spec.name, e.Bytes(), load_s).cold_start_s;
        if (auto p = ReuseProbability(l->second.history, WallSeconds(), ToSeconds(now - e.last_used), horizon,
                                      options_.learner)) {
          reuse = *p;
        }
      }
    }
    return EvictionCost(ReloadSecondsLocked(e), reuse, e.Bytes());
  };
  return view;
}

Status Scheduler::LoadLocked(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Entry>& e) {
  const std::string key = e->spec.load.model_path;
  const ModelSpec spec = e->spec;
  // The runner is capped at its prediction plus a margin (runner_limits.h) and names the model
  // in its messages.
  runner::LoadRequest load = spec.load;
  load.model_name = spec.name;
  load.predicted_bytes = e->predicted_bytes;
  const GpuPlacement placement = e->placement;
  if (placement.placed) {  // on one device, or on none: the runner sees that one, or none
    load.n_gpu_layers = placement.gpu >= 0 ? placement.layers : 0;
    load.main_gpu = placement.gpu;
    load.gpu_id = placement.gpu >= 0 ? placement.gpu_id : "-1";
    // Its memory cap covers a load on the CPU (a runner whose GPU backend does not start).
    if (placement.gpu >= 0) load.predicted_bytes += placement.vram_bytes;
  }
  loading_ = true;
  lock.unlock();
  spdlog::info("loading {} from {} (predicted {}{})", spec.name, key, FormatBytes(load.predicted_bytes),
               placement.gpu >= 0 ? "; " + DescribePlacement(placement) : std::string());
  std::optional<double> cached_at_load;
  if (options_.page_cache_fraction) cached_at_load = options_.page_cache_fraction(key);
  const TimePoint load_start = clock_.Now();
  auto runner = factory_.Start(load, nullptr);
  // The devices after the load: the budgets' new base. What it holds on its device: the driver's
  // count for its process, else the runner's own.
  uint64_t measured_vram = 0;
  bool on_cpu_after_all = false;
  std::optional<std::vector<GpuDevice>> devices_after;
  if (placement.placed && options_.gpus != nullptr) devices_after = options_.gpus->Devices();
  if (runner.ok() && placement.gpu >= 0 && options_.gpus != nullptr) {
    const runner::ModelFacts& facts = (*runner)->facts();
    on_cpu_after_all = facts.gpu_layers == 0 && facts.vram_bytes == 0;
    const auto held = options_.gpus->ProcessMemory((*runner)->pid());
    if (auto it = held.find(placement.gpu); it != held.end()) measured_vram = it->second;
    if (measured_vram == 0) measured_vram = facts.vram_bytes;
    if (on_cpu_after_all && measured_vram == 0) {
      spdlog::warn("{} was placed on GPU {}, but its runner has no GPU backend (llama.cpp's CUDA build or the CUDA "
                   "runtime is missing: docs/gpu.md); it runs on the CPU", spec.name, placement.gpu);
    } else {
      on_cpu_after_all = false;
    }
  }
  lock.lock();
  loading_ = false;
  ++gpu_epoch_;
  if (devices_after) gpu_devices_ = std::move(*devices_after);
  auto fail = [&](Status error) {
    Accrue(*e, clock_.Now());
    e->state = State::kFailed;
    e->load_error = std::move(error);
    if (auto it = entries_.find(key); it != entries_.end() && it->second == e) entries_.erase(it);
    cv_.notify_all();
    return e->load_error;
  };
  if (!runner.ok()) {
    ++stats_[spec.name].load_failures;
    ResidencyEvent ev;
    ev.type = ResidencyEvent::Type::kLoadFailed;
    ev.model = spec.name;
    ev.error = runner.status().message();
    ev.duration = clock_.Now() - load_start;
    ev.predicted_bytes = e->predicted_bytes;
    Emit(std::move(ev));
    return fail(runner.status());
  }
  e->runner = std::move(runner).value();
  if (shutdown_) {
    Status st = fail(Status::Unavailable("the server is shutting down"));
    lock.unlock();
    e->runner->Close();
    lock.lock();
    return st;
  }
  const TimePoint loaded_at = clock_.Now();
  Accrue(*e, loaded_at);
  e->state = State::kReady;
  e->load_duration = loaded_at - load_start;
  e->last_used = loaded_at;
  e->measured_bytes = e->runner->facts().rss_bytes;
  e->measured_vram = measured_vram;
  if (on_cpu_after_all) {
    e->placement.gpu = -1;
    e->placement.layers = 0;
    e->placement.vram_bytes = 0;
    e->placement.gpu_id.clear();
  }
  e->measured_at = loaded_at;
  e->cached_at_load = cached_at_load;
  ModelStats& stats = stats_[spec.name];
  ++stats.loads;
  stats.load_seconds.Observe(ToSeconds(e->load_duration));
  ResidencyEvent ev;
  ev.type = ResidencyEvent::Type::kLoad;
  ev.model = spec.name;
  ev.duration = e->load_duration;
  ev.bytes = e->measured_bytes;
  ev.predicted_bytes = e->predicted_bytes;
  ev.pid = e->runner->pid();
  if (e->origin == Origin::kPrewarm) {
    ++stats.prewarms;
    ev.origin = "prewarm";
    ev.explanation = e->keep_alive_reason;
  } else if (e->origin == Origin::kPreload) {
    ev.origin = "preload";
  }
  Emit(std::move(ev));
  cv_.notify_all();
  return Status::Ok();
}

Result<Lease> Scheduler::Acquire(const ModelSpec& requested, std::optional<KeepAlive> keep_alive,
                                 std::stop_token stop) {
  // The runner serves num_parallel requests at once: its context holds that many sequences.
  ModelSpec spec = requested;
  spec.load.n_parallel = std::max(1, options_.num_parallel);
  // A stop wakes the waits below (they check it). Made before the lock is taken, and destroyed
  // after it is released: a stop already requested runs the callback here, at once.
  std::stop_callback wake(stop, [this] {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  });
  std::unique_lock<std::mutex> lock(mu_);
  return AcquireLocked(lock, spec, keep_alive, stop);
}

Result<Lease> Scheduler::AcquireLocked(std::unique_lock<std::mutex>& lock, const ModelSpec& spec,
                                       std::optional<KeepAlive> keep_alive, const std::stop_token& stop) {
  const std::string& key = spec.load.model_path;
  const TimePoint start = clock_.Now();
  AcquireAsk ask;
  ask.key = key;
  ask.name = spec.name;
  ask.arriving = true;
  bool counted = false;              // inside waiting_
  std::shared_ptr<Entry> queued_on;  // the entry this request counts as queued for
  struct Unwait {
    Scheduler* s;
    bool* counted;
    std::shared_ptr<Entry>* q;
    ~Unwait() {
      if (*counted) --s->waiting_;
      if (*q) --(*q)->queued;
    }
  } unwait{this, &counted, &queued_on};
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
  bool cold = false;  // this request waited for a load (its own or another's)
  GpuPlacement placement;  // where a load of it goes (kPredict)
  uint64_t placed_epoch = 0;
  bool loaded_here = false;  // it performed that load: it takes the lease even if stopped

  while (true) {
    if (stop.stop_requested() && !loaded_here) {
      return Status::Cancelled("the client went away while the request waited for " + spec.name);
    }
    auto it = entries_.find(key);
    std::shared_ptr<Entry> e = it != entries_.end() ? it->second : nullptr;
    ask.matches_loaded = e == nullptr || (SameLoadOptions(e->spec.load, spec.load) &&
                                          e->spec.file_identity == spec.file_identity);
    // A placement on a device reading from before another load or unload ended is made again.
    if (ask.predicted && placement.placed && placed_epoch != gpu_epoch_) ask.predicted.reset();
    RefreshMeasuredLocked();
    const Decision d = DecideAcquire(ViewLocked(), limits(), ask);
    if (ask.arriving) {
      ask.arriving = false;
      if (d.kind == Decision::Kind::kFail) return d.error;
      ++waiting_;
      counted = true;
      // The request arrived: its model's idle gap ends, and a prewarm it would beat is off.
      learning_[spec.name].history.Arrive(WallSeconds());
      ++history_version_;
      if (prewarms_.erase(key) > 0) PrewarmOutcome(spec.name, false, "the request came before the prewarm started");
    }
    if (e) queue_on(e);
    switch (d.kind) {
      case Decision::Kind::kFail:
        return d.error;
      case Decision::Kind::kWait:
        if (d.waiting_for == Decision::Wait::kLoad) {
          cold = true;
          if (e->origin == Origin::kPrewarm && !e->prewarm_late) {
            e->prewarm_late = true;
            PrewarmOutcome(spec.name, false, "the request came while it was still loading");
          }
          cv_.wait(lock, [&] { return shutdown_ || e->state != State::kLoading || stop.stop_requested(); });
          if (e->state == State::kFailed) return e->load_error;
        } else if (!stop.stop_requested()) {
          cv_.wait(lock);
        }
        continue;
      case Decision::Kind::kPredict: {
        if (auto placed = PlaceLocked(lock, spec, &placed_epoch)) {
          if (!placed->ok()) return placed->status();
          placement = **placed;
          ask.predicted = placement.host_bytes;
          ask.gpu = placement.gpu;
          ask.predicted_vram = placement.vram_bytes;
          continue;
        }
        uint64_t bytes = 0;
        if (options_.predictor) {
          lock.unlock();
          auto p = options_.predictor(spec);
          lock.lock();
          if (!p.ok()) return p.status();
          bytes = *p;
        }
        ask.predicted = bytes;
        continue;  // the world may have changed while unlocked
      }
      case Decision::Kind::kUnload: {
        std::vector<Detached> gone;
        uint64_t used = MemoryInUseLocked();
        for (const Eviction& v : d.unload) {
          std::string detail, for_model;
          if (v.reason == UnloadReason::kMemory || v.reason == UnloadReason::kCount) {
            for_model = spec.name;
            detail = fmt::format(" (needs {}; {} of {} in use, {} of {} models)", FormatBytes(ask.predicted.value_or(0)),
                                 FormatBytes(used),
                                 options_.memory_budget ? FormatBytes(options_.memory_budget) : std::string("no budget"),
                                 entries_.size(), options_.max_loaded);
          } else if (v.reason == UnloadReason::kExited) {
            spdlog::warn("the runner for {} is gone; loading it again", spec.name);
          }
          auto victim = entries_.find(v.key);
          if (victim == entries_.end()) continue;
          used -= victim->second->Bytes();
          gone.push_back(Detach(v.key, v.reason, for_model, detail));
        }
        close_now(std::move(gone));
        continue;
      }
      case Decision::Kind::kLoad: {
        auto fresh = std::make_shared<Entry>();
        fresh->spec = spec;
        fresh->keep_alive = *ResolveKeepAlive(spec, keep_alive, /*fresh=*/true, &fresh->keep_alive_reason);
        fresh->pinned = options_.policy && options_.policy->Pinned(spec.name);
        fresh->sleep_after = SleepAfterFor(spec.name);
        fresh->predicted_bytes = ask.predicted.value_or(0);
        fresh->placement = placement;
        fresh->accrued_at = clock_.Now();  // it counts against the budget from now on
        entries_[key] = fresh;
        queue_on(fresh);
        cold = true;
        loaded_here = true;
        Status st = LoadLocked(lock, fresh);
        if (!st.ok()) return st;
        continue;  // take the lease through the common path
      }
      case Decision::Kind::kLease: {
        const TimePoint now = clock_.Now();
        Accrue(*e, now);
        ++e->refs;
        if (e->prewarmed) {
          e->prewarmed = false;
          ResidencyEvent ev;
          ev.type = ResidencyEvent::Type::kPrewarmHit;
          ev.model = spec.name;
          ev.idle = now - e->last_used;
          ++stats_[spec.name].prewarm_hits;
          Emit(std::move(ev));
        }
        e->expires_at.reset();
        e->sleep_at.reset();
        std::string why;
        std::optional<KeepAlive> k = ResolveKeepAlive(spec, keep_alive, /*fresh=*/false, &why);
        if (k && !e->unload_requested) {  // a stop wins
          e->keep_alive = *k;
          e->keep_alive_reason = why;
        }
        ModelStats& stats = stats_[spec.name];
        ++stats.requests;
        if (cold) ++stats.cold_starts;
        Lease lease;
        lease.sched_ = this;
        lease.key_ = key;
        lease.runner_ = e->runner.get();
        lease.load_duration_ = now - start;
        return lease;
      }
      case Decision::Kind::kSleep:
        SleepLocked(lock, d.sleep, spec.name);
        continue;
      case Decision::Kind::kWake: {
        Status st = WakeLocked(lock, e);
        if (!st.ok()) {
          spdlog::warn("{} could not wake ({}); loading it again", spec.name, st.message());
          continue;  // a fresh load
        }
        // As for a load it performed: it takes the lease even if its client left meanwhile, so
        // that the release starts the model's timers (or performs a stop that came meanwhile).
        loaded_here = true;
        continue;  // the lease through the common path
      }
    }
  }
}

Decision Scheduler::Probe(const ModelSpec& requested) {
  ModelSpec spec = requested;
  spec.load.n_parallel = std::max(1, options_.num_parallel);
  uint64_t predicted = 0;
  if (options_.predictor) {
    auto p = options_.predictor(spec);
    if (!p.ok()) {
      Decision d;
      d.kind = Decision::Kind::kFail;
      d.error = p.status();
      return d;
    }
    predicted = *p;
  }
  std::lock_guard<std::mutex> lock(mu_);
  const std::string& key = spec.load.model_path;
  AcquireAsk ask;
  ask.key = key;
  ask.name = spec.name;
  ask.predicted = predicted;
  auto it = entries_.find(key);
  ask.matches_loaded = it == entries_.end() || (SameLoadOptions(it->second->spec.load, spec.load) &&
                                                it->second->spec.file_identity == spec.file_identity);
  RefreshMeasuredLocked();
  return DecideAcquire(ViewLocked(), limits(), ask);
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
      UsageHistory& history = learning_[e.spec.name].history;
      history.Idle(WallSeconds());
      // Every model's last measured size and load time, whatever its keep_alive: saved with the
      // history, they price the model in `bench simulate --own` and the dashboard's what-if.
      history.bytes = e.Bytes();
      history.load_s = ToSeconds(e.load_duration);
      ++history_version_;
      StartTimerLocked(key, e, to_close);
    }
    cv_.notify_all();
  }
  CloseDetached(std::move(to_close));
}

void Scheduler::StartTimerLocked(const std::string& key, Entry& e, std::vector<Detached>& to_close) {
  const TimePoint now = clock_.Now();
  if (IsZero(e.keep_alive) || e.unload_requested || !e.runner->alive()) {
    to_close.push_back(Detach(key, e.runner->alive() ? UnloadReason::kManual : UnloadReason::kExited));
    return;
  }
  // Its sleep timer runs beside its keep_alive (which still unloads it, asleep or not).
  if (e.sleep_after && !e.sleep_after->forever && !e.sleep_after->automatic) {
    e.sleep_at = SaturatingAdd(now, e.sleep_after->duration);
    timer_cv_.notify_all();
  }
  if (e.keep_alive.forever) return;
  if (!e.keep_alive.automatic) {
    e.expires_at = SaturatingAdd(now, e.keep_alive.duration);  // ~292 years at most: no overflow
    timer_cv_.notify_all();
    return;
  }
  const ResidencyPlan& plan = PlanLocked(e.spec.name, e);
  e.keep_alive_reason = plan.reason;
  if (plan.kind == ResidencyPlan::Kind::kKeep) {
    if (std::isfinite(plan.keep_s)) {
      if (plan.keep_s <= 0) {
        to_close.push_back(Detach(key, UnloadReason::kExpired, "", "", plan.reason));
        return;
      }
      e.expires_at = SaturatingAdd(now, FromSeconds(plan.keep_s));
      timer_cv_.notify_all();
    }
    return;
  }
  // Unload now; load again shortly before the predicted request.
  const double load_s = ToSeconds(e.load_duration);
  Prewarm p;
  p.spec = e.spec;
  p.ready_at = SaturatingAdd(now, FromSeconds(plan.prewarm_ready_s));
  p.load_at = SaturatingAdd(now, FromSeconds(std::max(0.0, plan.prewarm_ready_s - options_.learner.prewarm_lead * load_s)));
  p.keep_until = SaturatingAdd(p.ready_at, FromSeconds(plan.prewarm_keep_s));
  p.reason = plan.reason;
  to_close.push_back(Detach(key, UnloadReason::kExpired, "", "", plan.reason));
  prewarms_[key] = std::move(p);
  timer_cv_.notify_all();
}

void Scheduler::Accrue(Entry& e, TimePoint now) {
  if (now <= e.accrued_at) return;
  double byte_seconds = static_cast<double>(e.Bytes()) * ToSeconds(now - e.accrued_at);
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

void Scheduler::PrewarmOutcome(const std::string& name, bool hit, const std::string& why) {
  ModelStats& stats = stats_[name];
  ++(hit ? stats.prewarm_hits : stats.prewarm_misses);
  ResidencyEvent ev;
  ev.type = hit ? ResidencyEvent::Type::kPrewarmHit : ResidencyEvent::Type::kPrewarmMiss;
  ev.model = name;
  ev.explanation = why;
  Emit(std::move(ev));
}

Scheduler::Detached Scheduler::Detach(const std::string& key, UnloadReason reason, const std::string& for_model,
                                      const std::string& log_detail, const std::string& explanation) {
  auto it = entries_.find(key);
  Entry& e = *it->second;
  const TimePoint now = clock_.Now();
  Accrue(e, now);
  ++stats_[e.spec.name].unloads[static_cast<size_t>(reason)];
  if (e.prewarmed) {
    e.prewarmed = false;
    PrewarmOutcome(e.spec.name, false, "unloaded unused (" + std::string(ReasonName(reason)) + ")");
  }
  if (auto p = preloads_.find(key); p != preloads_.end()) p->second.wanted = reason == UnloadReason::kExited;
  ResidencyEvent ev;
  ev.type = reason == UnloadReason::kMemory || reason == UnloadReason::kCount ? ResidencyEvent::Type::kEvict
                                                                               : ResidencyEvent::Type::kUnload;
  ev.model = e.spec.name;
  ev.reason = reason;
  ev.bytes = e.Bytes();
  ev.idle = now - e.last_used;
  if (reason == UnloadReason::kExpired) {
    ev.keep_alive = e.keep_alive;
    ev.explanation = explanation.empty() && e.keep_alive.automatic ? e.keep_alive_reason : explanation;
  } else if (reason == UnloadReason::kExited && e.runner) {
    ev.explanation = e.runner->exit_reason();  // killed by its watchdog (and why), or crashed
  }
  ev.for_model = for_model;
  Emit(std::move(ev), log_detail);
  Detached d{std::move(e.runner), e.Bytes(), e.placement.gpu, e.Vram()};
  entries_.erase(it);
  ++unloading_;
  unloading_bytes_ += d.bytes;
  return d;
}

std::vector<GpuBudget> Scheduler::GpuBudgetsLocked() const {
  std::vector<GpuBudget> out;
  for (const GpuDevice& d : gpu_devices_) {
    uint64_t ours = 0;
    for (const auto& [key, e] : entries_) ours += e->placement.gpu == d.index ? e->Vram() : 0;
    // What other processes hold: the device's use less ours (a load not yet allocated counts as
    // ours already, so this errs towards room, which the next reading corrects).
    const uint64_t used = d.total_bytes > d.free_bytes ? d.total_bytes - d.free_bytes : 0;
    const uint64_t others = used > ours ? used - ours : 0;
    const uint64_t reserved = others + options_.gpu_margin_bytes;
    out.push_back({d.index, d.total_bytes > reserved ? d.total_bytes - reserved : 0});
  }
  return out;
}

std::optional<Result<GpuPlacement>> Scheduler::PlaceLocked(std::unique_lock<std::mutex>& lock, const ModelSpec& spec,
                                                           uint64_t* epoch) {
  if (options_.gpus == nullptr || !options_.gpu_planner) return std::nullopt;
  if (epoch != nullptr) *epoch = gpu_epoch_;
  lock.unlock();
  std::vector<GpuDevice> read = options_.gpus->Devices();
  lock.lock();
  gpu_devices_ = std::move(read);
  // (A reading without devices places it on the CPU: its runner then sees no GPU at all.)
  // The room on each device: its budget less what models that cannot go now hold there (in use,
  // waited for, pinned, loading); idle ones can be evicted for it (decision.h).
  std::vector<GpuRoom> rooms;
  for (const GpuBudget& b : GpuBudgetsLocked()) {
    uint64_t staying = 0;
    for (const auto& [key, e] : entries_) {
      if (e->placement.gpu != b.index || key == spec.load.model_path) continue;
      const bool can_go = e->state == State::kReady && e->refs == 0 && e->queued == 0 && !e->pinned && !e->changing_tier;
      staying += can_go ? 0 : e->Vram();
    }
    rooms.push_back({b.index, b.capacity > staying ? b.capacity - staying : 0});
  }
  const std::vector<GpuDevice> devices = gpu_devices_;
  lock.unlock();
  Result<GpuPlacement> placed = options_.gpu_planner(spec, rooms);
  lock.lock();
  if (placed.ok()) {
    placed->placed = true;
    for (const GpuDevice& d : devices) {
      if (d.index == placed->gpu) placed->gpu_id = d.id;
    }
    if (placed->gpu >= 0 && placed->gpu_id.empty()) return Status::Internal("placed on an unknown GPU");
  }
  return placed;
}

std::vector<GpuDevice> Scheduler::AwaitVramBack(const Detached& d, uint64_t free_before) const {
  // Ollama's rule: the driver may take a moment to return a dead process's memory; the next load
  // waits for it (the unload counts as in progress until then), at most gpu_release_wait.
  const uint64_t want = free_before + d.vram - d.vram / 50;  // within 2 %
  const auto deadline = std::chrono::steady_clock::now() + options_.gpu_release_wait;
  uint64_t free_now = 0;
  std::vector<GpuDevice> devices;
  while (true) {
    devices = options_.gpus->Devices();
    for (const GpuDevice& g : devices) free_now = g.index == d.gpu ? g.free_bytes : free_now;
    if (free_now >= want) {
      spdlog::info("GPU {}: {} of VRAM back ({} free)", d.gpu, FormatBytes(d.vram), FormatBytes(free_now));
      return devices;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  spdlog::warn("GPU {}: {} of VRAM not back after {} s ({} free, {} expected); what stays held counts as another "
               "process's", d.gpu, FormatBytes(d.vram), ToSeconds(options_.gpu_release_wait), FormatBytes(free_now),
               FormatBytes(want));
  return devices;
}

void Scheduler::CloseDetached(std::vector<Detached> runners) {
  if (runners.empty()) return;
  std::optional<std::vector<GpuDevice>> devices;  // read once the VRAM is back: the budgets' new base
  for (auto& d : runners) {
    if (d.runner) {
      // A runner that is gone already (a crash) has given its VRAM back before this reading.
      const bool on_gpu = d.gpu >= 0 && d.vram > 0 && options_.gpus != nullptr;
      const bool await = on_gpu && d.runner->alive();
      uint64_t free_before = 0;
      if (await) {
        for (const GpuDevice& g : options_.gpus->Devices()) free_before = g.index == d.gpu ? g.free_bytes : free_before;
      }
      d.runner->Close();
      spdlog::info("runner pid {} exited: {} returned", d.runner->pid(), FormatBytes(d.bytes));
      if (await) devices = AwaitVramBack(d, free_before);
      else if (on_gpu) devices = options_.gpus->Devices();
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++gpu_epoch_;
  if (devices) gpu_devices_ = std::move(*devices);
  for (auto& d : runners) {
    --unloading_;
    unloading_bytes_ -= d.bytes;
  }
  cv_.notify_all();
  timer_cv_.notify_all();  // a background load may have waited for the memory
}

void Scheduler::Unload(const std::string& model_path) {
  std::vector<Detached> to_close;
  {
    std::unique_lock<std::mutex> lock(mu_);
    prewarms_.erase(model_path);
    if (auto p = preloads_.find(model_path); p != preloads_.end()) p->second.wanted = false;
    auto it = entries_.find(model_path);
    if (it == entries_.end()) return;
    std::shared_ptr<Entry> e = it->second;
    e->keep_alive = KeepAlive::Of(Duration::zero());
    e->unload_requested = true;  // sticky: later keep_alive values of requests do not undo it
    e->expires_at.reset();
    if (e->state == State::kReady && e->refs == 0 && !e->changing_tier) {
      to_close.push_back(Detach(model_path, UnloadReason::kManual));
    } else {
      // In use, loading, falling asleep or waking: the last lease's release (or a failed load, or
      // the end of its fall asleep) removes it. Wait for this
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

void Scheduler::Preload(const ModelSpec& requested) {
  ModelSpec spec = requested;
  spec.load.n_parallel = std::max(1, options_.num_parallel);
  {
    std::lock_guard<std::mutex> lock(mu_);
    preloads_[spec.load.model_path] = PreloadWant{spec, true};
  }
  timer_cv_.notify_all();
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
    m.keep_alive_reason = e->keep_alive_reason;
    if (e->keep_alive.automatic) {
      auto l = learning_.find(e->spec.name);
      if (l != learning_.end() && l->second.latest != nullptr) {
        const ResidencyPlan& p = *l->second.latest;
        m.planned_keep = p.kind == ResidencyPlan::Kind::kKeep ? FromSeconds(p.keep_s) : Duration::zero();
      }
    }
    m.pinned = e->pinned;
    m.prewarmed = e->prewarmed;
    m.predicted_bytes = e->predicted_bytes;
    m.measured_bytes = e->measured_bytes;
    m.gpu = e->placement.gpu;
    m.gpu_layers = e->placement.layers;
    m.total_layers = e->placement.total_layers;
    m.vram_bytes = e->Vram();
    m.vram_predicted = e->placement.vram_bytes;
    m.facts.vram_bytes = m.vram_bytes;
    m.load_duration = e->load_duration;
    if (e->expires_at) m.expires_at = clock_.ToWall(*e->expires_at);
    m.sleeping = e->sleeping;
    m.sleeping_bytes = e->sleeping ? e->sleeping_bytes : 0;
    m.sleep_after = e->sleep_after;
    if (e->sleep_at && e->refs == 0 && !e->sleeping) m.sleeps_at = clock_.ToWall(*e->sleep_at);
    out.push_back(std::move(m));
  }
  auto rank = [](const LoadedModel& m) {
    // In use or forever sorts as latest expiry.
    return m.expires_at ? m.expires_at->time_since_epoch().count() : std::numeric_limits<int64_t>::max();
  };
  std::stable_sort(out.begin(), out.end(), [&](const auto& a, const auto& b) { return rank(a) > rank(b); });
  return out;
}

std::vector<PendingPrewarm> Scheduler::Prewarms() const {
  std::vector<PendingPrewarm> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, p] : prewarms_) {
    out.push_back({p.spec.name, clock_.ToWall(p.load_at), clock_.ToWall(p.ready_at), p.reason});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.load_at < b.load_at; });
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
      double byte_seconds = static_cast<double>(e->Bytes()) * ToSeconds(now - e->accrued_at);
      m.resident_byte_seconds += byte_seconds;
      if (e->state == State::kReady && e->refs == 0) m.idle_byte_seconds += byte_seconds;
    }
    if (e->state == State::kReady) {
      m.loaded = true;
      ++out.loaded_models;
    }
    m.predicted_bytes += e->predicted_bytes;
    m.measured_bytes += e->sleeping ? e->sleeping_bytes : e->measured_bytes;
    m.queued_requests += e->queued;
    m.sleeping = m.sleeping || e->sleeping;
  }
  out.memory_budget = options_.memory_budget;
  out.memory_in_use = MemoryInUseLocked();
  out.max_loaded = options_.max_loaded;
  out.queued_requests = waiting_;
  return out;
}

std::map<std::string, UsageHistory> Scheduler::Histories() const {
  std::map<std::string, UsageHistory> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, l] : learning_) out[name] = l.history;
  return out;
}

void Scheduler::RestoreHistories(const std::map<std::string, UsageHistory>& histories) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, h] : histories) {
    Learning& l = learning_[name];
    l.history = h;
    l.plans.clear();
    l.latest = nullptr;
  }
}

uint64_t Scheduler::history_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return history_version_;
}

void Scheduler::Tick() {
  std::vector<Detached> to_close;
  std::vector<SleepOrder> sleeps;
  {
    std::lock_guard<std::mutex> lock(mu_);
    RefreshMeasuredLocked();
    const SchedulerView view = ViewLocked();
    const TimePoint now = clock_.Now();
    sleeps = DecideSleep(view, now);
    for (const Eviction& v : DecideTick(view, now)) {
      to_close.push_back(Detach(v.key, v.reason));
    }
  }
  CloseDetached(std::move(to_close));
  std::unique_lock<std::mutex> lock(mu_);
  if (!sleeps.empty()) SleepLocked(lock, sleeps);
  StartBackgroundLoadLocked(lock);
}

void Scheduler::SleepLocked(std::unique_lock<std::mutex>& lock, const std::vector<SleepOrder>& orders,
                            const std::string& for_model) {
  struct Going {
    std::shared_ptr<Entry> e;
    SleepReason reason;
    uint64_t awake_bytes;
    Result<runner::SleepResult> result = Status::Internal("not asked");
  };
  std::vector<Going> going;
  for (const SleepOrder& o : orders) {
    auto it = entries_.find(o.key);
    if (it == entries_.end()) continue;
    const std::shared_ptr<Entry>& e = it->second;
    // Decided on the same view under the same lock: this only guards against a stale order.
    if (e->state != State::kReady || e->sleeping || e->changing_tier || e->refs > 0 || !e->runner) continue;
    e->changing_tier = true;
    ++changing_tier_;
    e->sleep_at.reset();
    going.push_back({e, o.reason, e->Bytes()});
  }
  if (going.empty()) return;
  lock.unlock();
  for (Going& g : going) g.result = g.e->runner->Sleep();
  lock.lock();
  const TimePoint now = clock_.Now();
  std::vector<Detached> to_close;
  for (Going& g : going) {
    Entry& e = *g.e;
    e.changing_tier = false;
    --changing_tier_;
    if (!g.result.ok()) {
      // It stays awake and is not asked again (a dead runner is reaped by the next decision).
      spdlog::warn("could not put {} to sleep: {}", e.spec.name, g.result.status().message());
      e.sleep_after.reset();
      continue;
    }
    Accrue(e, now);
    e.sleeping = true;
    e.sleeping_bytes = g.result->rss_bytes ? g.result->rss_bytes : ExpectedSleepingBytes(e);
    ModelStats& stats = stats_[e.spec.name];
    ++stats.sleeps[static_cast<size_t>(g.reason)];
    ResidencyEvent ev;
    ev.type = ResidencyEvent::Type::kSleep;
    ev.model = e.spec.name;
    ev.sleep_reason = g.reason;
    ev.bytes = e.sleeping_bytes;
    ev.awake_bytes = g.awake_bytes;
    ev.idle = now - e.last_used;
    if (g.reason == SleepReason::kIdle && e.sleep_after) ev.keep_alive = e.sleep_after;
    ev.for_model = g.reason == SleepReason::kMemory ? for_model : "";
    ev.pid = e.runner->pid();
    Emit(std::move(ev));
    // A stop that came while it fell asleep.
    auto it = entries_.find(e.spec.load.model_path);
    if (e.unload_requested && it != entries_.end() && it->second == g.e) {
      to_close.push_back(Detach(e.spec.load.model_path, UnloadReason::kManual));
    }
  }
  cv_.notify_all();
  timer_cv_.notify_all();
  if (!to_close.empty()) {
    lock.unlock();
    CloseDetached(std::move(to_close));
    lock.lock();
  }
}

Status Scheduler::WakeLocked(std::unique_lock<std::mutex>& lock, const std::shared_ptr<Entry>& e) {
  const std::string key = e->spec.load.model_path;
  const TimePoint start = clock_.Now();
  Accrue(*e, start);
  const uint64_t asleep = e->sleeping_bytes;
  e->sleeping = false;  // it counts awake from now on
  e->changing_tier = true;
  ++changing_tier_;
  lock.unlock();
  Result<runner::WakeResult> woke = e->runner->Wake();
  lock.lock();
  e->changing_tier = false;
  --changing_tier_;
  const TimePoint now = clock_.Now();
  cv_.notify_all();
  if (!woke.ok()) {
    Accrue(*e, now);
    const bool alive = e->runner->alive();
    std::vector<Detached> gone;
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second == e) {
      gone.push_back(Detach(key, alive ? UnloadReason::kReload : UnloadReason::kExited, "", "",
                            "it could not wake: " + woke.status().message()));
    }
    lock.unlock();
    CloseDetached(std::move(gone));
    lock.lock();
    return woke.status();
  }
  Accrue(*e, now);
  ModelStats& stats = stats_[e->spec.name];
  ++stats.wakes;
  stats.wake_seconds.Observe(ToSeconds(now - start));
  ResidencyEvent ev;
  ev.type = ResidencyEvent::Type::kWake;
  ev.model = e->spec.name;
  ev.duration = now - start;
  ev.bytes = e->Bytes();
  ev.asleep_bytes = asleep;
  ev.idle = start - e->last_used;
  ev.pid = e->runner->pid();
  Emit(std::move(ev));
  return Status::Ok();
}

bool Scheduler::StartBackgroundLoadLocked(std::unique_lock<std::mutex>& lock) {
  if (shutdown_) return false;
  const TimePoint now = clock_.Now();
  // The earliest due prewarm, else a wanted preload.
  const Prewarm* due = nullptr;
  std::string due_key;
  for (const auto& [key, p] : prewarms_) {
    if (p.load_at <= now && (due == nullptr || p.load_at < due->load_at)) {
      due = &p;
      due_key = key;
    }
  }
  ModelSpec spec;
  Origin origin;
  uint64_t bytes = 0;
  std::string reason;
  TimePoint keep_until{};
  if (due != nullptr) {
    origin = Origin::kPrewarm;
    spec = due->spec;
    reason = due->reason;
    keep_until = due->keep_until;
    auto l = learning_.find(spec.name);
    bytes = l != learning_.end() ? l->second.history.bytes : 0;
  } else {
    auto want = std::find_if(preloads_.begin(), preloads_.end(), [&](const auto& kv) {
      return kv.second.wanted && kv.second.retry_at <= now && entries_.count(kv.first) == 0;
    });
    if (want == preloads_.end()) return false;
    origin = Origin::kPreload;
    spec = want->second.spec;
    if (options_.predictor) {
      lock.unlock();
      auto p = options_.predictor(spec);
      lock.lock();
      if (!p.ok()) {
        spdlog::warn("cannot preload {}: {}", spec.name, p.status().message());
        if (auto again = preloads_.find(spec.load.model_path); again != preloads_.end()) again->second.wanted = false;
        return true;
      }
      bytes = *p;
    }
  }
  const std::string key = spec.load.model_path;
  GpuPlacement placement;
  if (auto placed = PlaceLocked(lock, spec)) {
    if (!placed->ok()) {
      spdlog::warn("cannot place {} on a GPU: {}", spec.name, placed->status().message());
      if (origin == Origin::kPrewarm) prewarms_.erase(key);
      if (auto again = preloads_.find(key); again != preloads_.end()) again->second.wanted = false;
      return true;
    }
    placement = **placed;
    if (origin != Origin::kPrewarm || bytes == 0) bytes = placement.host_bytes;  // a prewarm: as last measured
  }
  // Unlocked above: a request or a stop may have cancelled it meanwhile.
  if (origin == Origin::kPrewarm && prewarms_.count(key) == 0) return true;
  if (origin == Origin::kPreload) {
    auto still = preloads_.find(key);
    if (still == preloads_.end() || !still->second.wanted) return true;
  }
  RefreshMeasuredLocked();
  const Decision d = DecidePrewarm(ViewLocked(), limits(), key, bytes, placement.gpu, placement.vram_bytes);
  if (d.kind == Decision::Kind::kLease) {  // loaded or loading already
    if (origin == Origin::kPrewarm) prewarms_.erase(key);
    if (origin == Origin::kPreload) preloads_[key].wanted = false;
    return true;
  }
  if (d.kind == Decision::Kind::kWait) {
    // Tried again shortly, not at once: the timer thread would spin until room is free.
    if (origin == Origin::kPreload) preloads_[key].retry_at = SaturatingAdd(now, kRetryBackgroundLoad);
    if (d.waiting_for == Decision::Wait::kOtherLoad) {
      if (origin == Origin::kPrewarm) prewarms_[key].load_at = SaturatingAdd(now, kRetryBackgroundLoad);
      return false;
    }
    if (origin == Origin::kPrewarm) {
      prewarms_.erase(key);
      PrewarmOutcome(spec.name, false, "no free room when it was due (prewarms never evict)");
      return true;
    }
    return false;  // a preload waits for room
  }
  if (origin == Origin::kPrewarm) prewarms_.erase(key);
  if (origin == Origin::kPreload) preloads_[key].wanted = false;
  auto e = std::make_shared<Entry>();
  e->spec = spec;
  e->origin = origin;
  std::string why;
  e->keep_alive = origin == Origin::kPrewarm ? KeepAlive::Auto() : *ResolveKeepAlive(spec, std::nullopt, true, &why);
  e->keep_alive_reason = origin == Origin::kPrewarm ? reason : why;
  e->pinned = options_.policy && options_.policy->Pinned(spec.name);
  e->sleep_after = SleepAfterFor(spec.name);
  e->predicted_bytes = bytes;
  e->placement = placement;
  e->accrued_at = now;
  entries_[key] = e;
  Status st = LoadLocked(lock, e);
  if (!st.ok()) {
    spdlog::warn("{} of {} failed: {}", origin == Origin::kPrewarm ? "prewarm" : "preload", spec.name, st.message());
    if (origin == Origin::kPrewarm) PrewarmOutcome(spec.name, false, "its load failed: " + st.message());
    return true;
  }
  if (e->refs > 0 || e->queued > 0) return true;  // a request came during the load and takes it now
  std::vector<Detached> to_close;
  if (origin == Origin::kPrewarm) {
    e->prewarmed = true;
    e->expires_at = std::max(keep_until, clock_.Now());
  } else {
    StartTimerLocked(key, *e, to_close);
  }
  timer_cv_.notify_all();
  if (!to_close.empty()) {
    lock.unlock();
    CloseDetached(std::move(to_close));
    lock.lock();
  }
  return true;
}

TimePoint Scheduler::NextTimer() const {
  std::lock_guard<std::mutex> lock(mu_);
  return NextTimerLocked();
}

TimePoint Scheduler::NextTimerLocked() const {
  TimePoint next = TimePoint::max();
  for (const auto& [key, e] : entries_) {
    if (e->state != State::kReady || e->refs != 0 || e->queued != 0) continue;
    if (e->expires_at) next = std::min(next, *e->expires_at);
    if (e->sleep_at && !e->sleeping && !e->changing_tier) next = std::min(next, *e->sleep_at);
  }
  for (const auto& [key, p] : prewarms_) next = std::min(next, p.load_at);
  for (const auto& [key, p] : preloads_) {
    if (p.wanted && entries_.count(key) == 0) next = std::min(next, std::max(p.retry_at, clock_.Now()));
  }
  return next;
}

void Scheduler::TimerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!shutdown_) {
    const TimePoint next = NextTimerLocked();
    bool idle = false;
    for (auto& [key, e] : entries_) idle |= e->state == State::kReady && e->refs == 0;
    // Waits on the injected clock (a fake clock in tests wakes it when advanced); a deadline is
    // TimePoint::max() at most (SaturatingAdd), never an overflowing now + duration.
    const TimePoint now = clock_.Now();
    TimePoint deadline = next;
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
    prewarms_.clear();
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
    if (loading_ || unloading_ > 0 || changing_tier_ > 0) return false;
    for (auto& [key, e] : entries_) {
      if (e->refs > 0) return false;
    }
    return true;
  });
  entries_.clear();
}

}  // namespace resident::sched
