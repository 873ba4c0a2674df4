#include "sim/simulator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <limits>
#include <queue>

#include "core/bytes.h"
#include "core/keep_alive.h"
#include "runner/model_runner.h"
#include "sched/scheduler.h"

namespace resident::sim {
namespace {

using namespace std::chrono_literals;

Duration Seconds(double s) { return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s)); }

// Memory bookkeeping for one simulation, in virtual seconds.
struct Books {
  struct Model {
    bool loaded = false;
    double load_start = 0;
    double resident_since = 0;  // resident GB·s counted up to here (its size changes as it sleeps)
    double ready_at = 0;     // when the latest load finished
    int active = 0;
    double idle_since = 0;   // meaningful when loaded && active == 0
    double gb = 0;           // what it holds now (less while asleep)
    uint64_t bytes = 0;
    int loads = 0;
    double idle_gbs = 0;
  };
  std::map<std::string, Model> models;
  double resident_gbs = 0, idle_gbs = 0;
  uint64_t in_use = 0, peak = 0;
  int loads = 0;
  int sleeps = 0, wakes = 0;

  void AddIdle(Model& m, double gbs) {
    idle_gbs += gbs;
    m.idle_gbs += gbs;
  }
  // Counts the model's memory × time up to `now` at its current size (before that size changes).
  void Accrue(Model& m, double now) {
    if (!m.loaded) return;
    resident_gbs += (now - m.resident_since) * m.gb;
    m.resident_since = now;
    if (m.active == 0) {
      AddIdle(m, (now - m.idle_since) * m.gb);
      m.idle_since = now;
    }
  }
  void Unloaded(const std::string& name, double now, uint64_t bytes) {
    Model& m = models[name];
    if (!m.loaded) return;
    Accrue(m, now);
    m.loaded = false;
    in_use -= bytes;
  }
};

class SimRunner final : public runner::ModelRunner {
 public:
  SimRunner(std::string name, const ModelParams& params, Books* books, FakeClock* clock, TimePoint t0)
      : name_(std::move(name)), params_(params), books_(books), clock_(clock), t0_(t0) {
    facts_.rss_bytes = params.bytes;
    // What it holds asleep is its weights (plus the process): the scheduler's guess before a first
    // sleep measures it.
    facts_.size_bytes = params.sleep_bytes;
    facts_.architecture = "simulated";
  }
  // Asleep it holds sleep_bytes; a wake takes wake_s.
  Result<runner::SleepResult> Sleep() override {
    if (!asleep_) {
      Books::Model& m = books_->models[name_];
      books_->Accrue(m, Now());
      m.gb = static_cast<double>(params_.sleep_bytes) / 1e9;
      books_->in_use -= params_.bytes - params_.sleep_bytes;
      ++books_->sleeps;
      asleep_ = true;
    }
    return runner::SleepResult{0, params_.sleep_bytes, 0, 0};
  }
  Result<runner::WakeResult> Wake() override {
    if (asleep_) {
      Books::Model& m = books_->models[name_];
      books_->Accrue(m, Now());
      m.gb = static_cast<double>(params_.bytes) / 1e9;
      books_->in_use += params_.bytes - params_.sleep_bytes;
      books_->peak = std::max(books_->peak, books_->in_use);
      ++books_->wakes;
      asleep_ = false;
      clock_->Advance(Seconds(params_.wake_s));
    }
    return runner::WakeResult{0, 0, params_.bytes};
  }
  Result<runner::DoneEvent> Generate(const runner::GenerateRequest&,
                                     const std::function<bool(std::string_view)>&, std::stop_token) override {
    return runner::DoneEvent{};
  }
  Result<runner::EmbedResult> Embed(const runner::EmbedRequest&, std::stop_token) override {
    return runner::EmbedResult{};
  }
  Result<std::vector<int32_t>> Tokenize(std::string_view, bool) override { return std::vector<int32_t>{}; }
  Result<runner::MemoryResult> Memory() override { return runner::MemoryResult{0, facts_.rss_bytes, 0}; }
  Status Health(std::chrono::milliseconds) override { return Status::Ok(); }
  const runner::ModelFacts& facts() const override { return facts_; }
  pid_t pid() const override { return 0; }
  bool alive() const override { return !closed_; }
  void Close() override {
    if (closed_) return;
    closed_ = true;
    books_->Unloaded(name_, Now(), asleep_ ? params_.sleep_bytes : params_.bytes);
  }

 private:
  double Now() const { return std::chrono::duration<double>(clock_->Now() - t0_).count(); }
  std::string name_;
  ModelParams params_;
  Books* books_;
  FakeClock* clock_;
  TimePoint t0_;
  bool closed_ = false;
  bool asleep_ = false;
  runner::ModelFacts facts_;
};

// Loads take the model's load time on the fake clock.
class SimFactory final : public runner::RunnerFactory {
 public:
  SimFactory(const SimSetup& setup, Books* books, FakeClock* clock, TimePoint t0)
      : setup_(setup), books_(books), clock_(clock), t0_(t0) {}
  Result<std::unique_ptr<runner::ModelRunner>> Start(const runner::LoadRequest& request,
                                                     const std::function<void(float)>&) override {
    auto it = setup_.models.find(request.model_path);
    if (it == setup_.models.end()) return Status::NotFound("no parameters for model " + request.model_path);
    Books::Model& m = books_->models[request.model_path];
    m.loaded = true;
    m.gb = static_cast<double>(it->second.bytes) / 1e9;
    m.bytes = it->second.bytes;
    m.load_start = Now();
    m.resident_since = m.load_start;
    m.active = 0;
    books_->in_use += it->second.bytes;
    books_->peak = std::max(books_->peak, books_->in_use);
    ++books_->loads;
    ++m.loads;
    clock_->Advance(Seconds(it->second.load_s));
    m.ready_at = Now();
    m.idle_since = Now();
    return std::unique_ptr<runner::ModelRunner>(
        std::make_unique<SimRunner>(request.model_path, it->second, books_, clock_, t0_));
  }
  double Now() const { return std::chrono::duration<double>(clock_->Now() - t0_).count(); }

 private:
  const SimSetup& setup_;
  Books* books_;
  FakeClock* clock_;
  TimePoint t0_;
};

}  // namespace

SimSetup MakeSetup(const Trace& trace, const SetupDefaults& d) {
  SimSetup s;
  s.max_loaded = d.max_loaded;
  s.memory_budget = d.memory_budget;
  for (const auto& name : trace.models) {
    ModelParams p;
    auto h = trace.hints.find(name);
    p.bytes = h != trace.hints.end() && h->second.bytes ? h->second.bytes : d.default_bytes;
    p.load_s = d.load_s > 0 ? d.load_s : std::max(0.05, d.load_s_per_gb * static_cast<double>(p.bytes) / 1e9);
    p.sleep_bytes = static_cast<uint64_t>(static_cast<double>(p.bytes) * std::clamp(d.sleep_fraction, 0.0, 1.0));
    p.wake_s = p.load_s * std::max(0.0, d.wake_fraction);
    s.models[name] = p;
  }
  s.service_s.reserve(trace.requests.size());
  for (const auto& r : trace.requests) {
    auto h = trace.hints.find(r.model);
    if (h != trace.hints.end() && h->second.service_s > 0) {
      s.service_s.push_back(h->second.service_s);
    } else {
      s.service_s.push_back(r.prompt_tokens / d.prompt_tps + r.output_tokens / d.gen_tps);
    }
  }
  return s;
}

std::vector<SimPolicy> StandardPolicies() {
  return {{"keep_alive 0", KeepAlive::Of(Duration::zero()), std::nullopt},
          {"keep_alive 1m", KeepAlive::Of(1min), std::nullopt},
          {"keep_alive 5m", KeepAlive::Of(5min), std::nullopt},
          {"keep_alive 10m", KeepAlive::Of(10min), std::nullopt},
          {"keep_alive 30m", KeepAlive::Of(30min), std::nullopt},
          {"keep_alive forever", KeepAlive::Forever(), std::nullopt},
          {"keep_alive auto", KeepAlive::Auto(), std::nullopt}};
}

Result<SimResult> Simulate(const Trace& trace, const SimSetup& setup, const SimPolicy& policy) {
  const auto wall_start = std::chrono::steady_clock::now();
  // The scheduler logs every load and unload at info level: a day of traffic is millions of lines.
  const auto saved_level = spdlog::get_level();
  spdlog::set_level(spdlog::level::warn);
  struct RestoreLevel {
    spdlog::level::level_enum l;
    ~RestoreLevel() { spdlog::set_level(l); }
  } restore{saved_level};

  FakeClock clock;
  const TimePoint t0 = clock.Now();
  Books books;
  SimFactory factory(setup, &books, &clock, t0);
  sched::Scheduler::Options o;
  o.max_loaded = setup.max_loaded;
  o.num_parallel = std::numeric_limits<int>::max() / 2;
  o.max_queue = std::numeric_limits<int>::max() / 2;
  o.default_keep_alive = policy.default_keep_alive;
  o.policy = policy.policy;
  o.cold_start_cost = policy.cold_start_cost;
  o.learner = policy.learner;
  o.memory_budget = setup.memory_budget;
  if (policy.policy && policy.policy->memory_limit && setup.memory_budget == 0) o.memory_budget = *policy.policy->memory_limit;
  o.predictor = [&setup](const sched::ModelSpec& spec) -> Result<uint64_t> {
    auto it = setup.models.find(spec.load.model_path);
    return it == setup.models.end() ? 0 : it->second.bytes;
  };
  o.timer_thread = false;
  sched::Scheduler sched(std::move(o), factory, clock);

  auto now_s = [&] { return std::chrono::duration<double>(clock.Now() - t0).count(); };
  auto advance_tp = [&](TimePoint tp) {
    TimePoint n = clock.Now();
    if (tp > n) clock.Advance(tp - n);
  };
  auto advance_to = [&](double t) { advance_tp(t0 + Seconds(t)); };
  std::map<std::string, sched::ModelSpec> specs;
  for (const auto& name : trace.models) {
    sched::ModelSpec s;
    s.name = name;
    s.load.model_path = name;
    specs[name] = s;
  }

  SimResult result;
  result.label = policy.label;
  result.requests = static_cast<int>(trace.requests.size());

  struct InFlight {
    sched::Lease lease;
    std::string model;
  };
  std::map<size_t, InFlight> in_flight;
  using Completion = std::pair<double, size_t>;  // (time, request index)
  std::priority_queue<Completion, std::vector<Completion>, std::greater<Completion>> completions;
  // Requests that would wait in Acquire for room, by model, oldest first.
  std::map<std::string, std::deque<size_t>> held;
  size_t held_count = 0;

  // Would Acquire of this model wait for another request to finish (room)? Asked of the
  // scheduler's own decision (Scheduler::Probe), on the loaded models as they are now.
  auto can_start = [&](const std::string& model) {
    sched::Decision d = sched.Probe(specs[model]);
    return !(d.kind == sched::Decision::Kind::kWait && d.waiting_for == sched::Decision::Wait::kRoom);
  };
  auto start = [&](size_t i, bool was_held) -> Status {
    const auto& r = trace.requests[i];
    const int loads_before = books.loads;
    Books::Model& before = books.models[r.model];
    // Arriving while a prewarm (or any load) of its model is still running is cold too.
    const bool loading = before.loaded && r.t < before.ready_at;
    auto lease = sched.Acquire(specs[r.model], std::nullopt);
    if (!lease.ok()) {
      if (lease.status().code() == StatusCode::kInternal) return lease.status();
      ++result.failed;
      return Status::Ok();
    }
    Books::Model& m = books.models[r.model];
    bool cold = books.loads != loads_before || loading || r.t < m.ready_at || was_held;
    if (cold) {
      ++result.cold;
      ++result.cold_by_model[r.model];
    }
    if (was_held) ++result.waited_for_room;
    if (m.active == 0) books.AddIdle(m, (now_s() - m.idle_since) * m.gb);
    ++m.active;
    completions.push({now_s() + setup.service_s[i], i});
    in_flight.emplace(i, InFlight{std::move(lease).value(), r.model});
    return Status::Ok();
  };
  // Runs the scheduler's timers (keep_alive expiries, prewarms), each at its own time, up to
  // `until`. A prewarm's load advances the clock by its load time inside Tick.
  auto timers_until = [&](TimePoint until) {
    while (true) {
      TimePoint e = sched.NextTimer();
      if (e > until) return;
      advance_tp(e);
      const TimePoint before = clock.Now();
      sched.Tick();
      // A timer that did nothing (it can happen only if its model changed meanwhile): move on.
      if (sched.NextTimer() <= before && clock.Now() == before) clock.Advance(std::chrono::microseconds(1));
    }
  };

  size_t next = 0;
  const auto& reqs = trace.requests;
  while (next < reqs.size() || !completions.empty()) {
    double t_arrival = next < reqs.size() ? reqs[next].t : std::numeric_limits<double>::infinity();
    double t_done = completions.empty() ? std::numeric_limits<double>::infinity() : completions.top().first;
    double t = std::min(t_arrival, t_done);
    timers_until(std::max(clock.Now(), t0 + Seconds(t)));
    advance_to(t);
    if (t_done <= t_arrival) {
      size_t i = completions.top().second;
      completions.pop();
      auto it = in_flight.find(i);
      Books::Model& m = books.models[it->second.model];
      if (--m.active == 0) m.idle_since = now_s();
      it->second.lease.Release();
      in_flight.erase(it);
      // Room may have been freed: the model with the oldest held request that fits now loads,
      // and all its held requests start (they waited for the same load); repeat.
      while (held_count > 0) {
        std::vector<std::pair<size_t, std::string>> order;
        for (const auto& [model, q] : held) order.push_back({q.front(), model});
        std::sort(order.begin(), order.end());
        const std::string* chosen = nullptr;
        for (const auto& [first, model] : order) {
          if (can_start(model)) {
            chosen = &model;
            break;
          }
        }
        if (chosen == nullptr) break;
        std::deque<size_t> q = std::move(held[*chosen]);
        held.erase(*chosen);
        held_count -= q.size();
        for (size_t k : q) RESIDENT_RETURN_IF_ERROR(start(k, true));
      }
    } else {
      size_t i = next++;
      // As in the scheduler, a request for a loaded model never queues behind held loads.
      if (held.count(reqs[i].model) || !can_start(reqs[i].model)) {
        held[reqs[i].model].push_back(i);
        ++held_count;
      } else {
        RESIDENT_RETURN_IF_ERROR(start(i, false));
      }
    }
  }
  if (held_count > 0) return Status::Internal("simulation stuck with " + std::to_string(held_count) + " requests held");
  // Expiries up to the end of the trace, then whatever is still loaded counts until the end.
  const double end = std::max(trace.duration_s, now_s());
  timers_until(std::max(clock.Now(), t0 + Seconds(end)));
  advance_to(end);
  for (auto& [name, m] : books.models) {
    if (!m.loaded) continue;
    books.Accrue(m, end);
    m.loaded = false;  // the scheduler's shutdown below must not count it again
  }
  for (const auto& [name, m] : books.models) {
    result.loads_by_model[name] = m.loads;
    result.idle_gbs_by_model[name] = m.idle_gbs;
  }
  sched.Shutdown();
  result.loads = books.loads;
  result.resident_gbs = books.resident_gbs;
  result.idle_gbs = books.idle_gbs;
  result.peak_bytes = books.peak;
  result.sleeps = books.sleeps;
  result.wakes = books.wakes;
  result.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return result;
}

std::string FormatTable(const std::vector<SimResult>& rows, const LowerBound& bound) {
  std::string out;
  char line[512];
  bool any_waited = false;
  std::snprintf(line, sizeof line, "%-24s %9s %7s %7s %7s %7s %12s %14s %12s %8s %11s\n", "policy", "requests",
                "cold", "cold%", "loads", "waited", "idle GB·s", "resident GB·s", "bound GB·s", "idle/bd",
                "bound cold");
  out += line;
  for (const auto& r : rows) {
    double b = bound.IdleAt(r.loads);
    std::string ratio = b >= 0.05 ? fmt::format("{:.2f}x", r.idle_gbs / b) : (r.idle_gbs >= 0.05 ? "inf" : "1.00x");
    if (r.waited_for_room > 0) {
      ratio += "*";
      any_waited = true;
    }
    std::snprintf(line, sizeof line, "%-24s %9d %7d %6.2f%% %7d %7d %12.1f %14.1f %12.1f %8s %11d\n",
                  r.label.c_str(), r.requests, r.cold, r.requests ? 100.0 * r.cold / r.requests : 0.0, r.loads,
                  r.waited_for_room, r.idle_gbs, r.resident_gbs, b, ratio.c_str(), bound.ColdFor(r.idle_gbs));
    out += line;
  }
  for (const auto& r : rows) {
    if (r.sleeps == 0 && r.wakes == 0) continue;
    out += fmt::format("{}: {} sleeps, {} wakes (each wake took the model's wake time, not a load; not cold)\n",
                       r.label, r.sleeps, r.wakes);
  }
  for (const auto& r : rows) {
    if (r.label.find("auto") == std::string::npos) continue;
    const double h = bound.HindsightAt(r.loads), b = bound.IdleAt(r.loads);
    if (!std::isfinite(h) || h < 0.05 || b < 0.05) continue;
    out += fmt::format("{}: {:.2f}x the best fixed keep_alive per model chosen with hindsight ({:.1f} GB·s at "
                       "its {} loads, itself {:.2f}x the bound)\n",
                       r.label, r.idle_gbs / h, h, r.loads, h / b);
  }
  if (any_waited) {
    out += "\n* requests waited for room (every loaded model busy at the model cap or budget): queueing\n"
           "  merges busy periods, which the bound (every request served on arrival) does not allow, so\n"
           "  there the comparison is only indicative; raise --max-loaded / --memory-limit to see\n"
           "  keep_alive alone.\n";
  }
  out += "\nbound GB·s: least idle GB·s any policy reaches with the same number of loads (offline,\n"
         "unloading each model in its longest idle gaps); bound cold: fewest loads that reach the\n"
         "row's idle GB·s. Offline lower bound curve (loads -> least idle GB·s):\n";
  const int lo = bound.models, hi = bound.busy_periods;
  std::vector<int> points;
  for (int k = 0; k <= 10; ++k) points.push_back(lo + static_cast<int>(std::llround((hi - lo) * (k / 10.0) * (k / 10.0))));
  points.erase(std::unique(points.begin(), points.end()), points.end());
  for (int c : points) {
    std::snprintf(line, sizeof line, "  %8d loads  %12.1f GB·s\n", c, bound.IdleAt(c));
    out += line;
  }
  return out;
}

}  // namespace resident::sim
