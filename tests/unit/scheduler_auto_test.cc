// keep_alive "auto" in the scheduler: the learner's plans performed (keeps, unloads, prewarms and
// their hits and misses), preloads, the histories, and fixed keep_alive values left as they were.
// A fake clock and fake runners (tests/support/fake_runners.h), no timer thread: the test calls
// Tick() at the times it chooses. No sleeping.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <future>
#include <set>
#include <thread>

#include "sched/learner.h"
#include "sched/scheduler.h"
#include "support/fake_runners.h"

namespace resident::sched {
namespace {

using namespace std::chrono_literals;
using resident::testing::FakeFactory;
using Type = ResidencyEvent::Type;

ModelSpec Spec(const std::string& path) {
  ModelSpec s;
  s.name = path;
  s.load.model_path = path;
  return s;
}

// A period of about ten minutes, a little jitter.
const std::vector<Duration> kPeriodic = {600s, 597s, 604s, 599s, 602s, 598s, 601s, 603s, 596s,
                                         600s, 602s, 599s, 601s, 598s, 600s, 603s};

class AutoTest : public ::testing::Test {
 protected:
  AutoTest() : saved_level_(spdlog::get_level()) {
    spdlog::set_level(spdlog::level::warn);  // a line per load and unload otherwise
    factory_.clock = &clock_;
    factory_.load_time = {{"p", 2s}, {"a", 1s}, {"b", 1s}, {"c", 1s}};
  }
  Scheduler::Options Opts(int max_loaded = 3) {
    Scheduler::Options o;
    o.max_loaded = max_loaded;
    o.timer_thread = false;
    o.default_keep_alive = KeepAlive::Auto();
    return o;
  }
  // One request of `busy`; returns how long it waited for a load (0: warm).
  Duration Use(Scheduler& s, const std::string& model, std::optional<KeepAlive> keep_alive = std::nullopt,
               Duration busy = 1s) {
    auto lease = s.Acquire(Spec(model), keep_alive);
    EXPECT_TRUE(lease.ok()) << lease.status().message();
    if (!lease.ok()) return Duration::zero();
    Duration waited = lease->load_duration();
    clock_.Advance(busy);
    return waited;
  }
  // Runs the scheduler's timers up to now + d, each at its own time (as the timer thread would).
  void AdvanceWithTicks(Scheduler& s, Duration d) {
    const TimePoint until = clock_.Now() + d;
    while (true) {
      TimePoint next = s.NextTimer();
      if (next > until) break;
      if (next > clock_.Now()) clock_.Advance(next - clock_.Now());
      const TimePoint before = clock_.Now();
      s.Tick();
      if (s.NextTimer() <= before && clock_.Now() == before) break;  // nothing more to do now
    }
    if (until > clock_.Now()) clock_.Advance(until - clock_.Now());
  }
  // Requests for p about every ten minutes (the timers running in between) until "auto" unloads it
  // for a prewarm; returns how many requests that took (0: never).
  int TrainPeriodic(Scheduler& s, const std::string& model = "p") {
    Use(s, model);
    for (size_t i = 0; i < kPeriodic.size(); ++i) {
      AdvanceWithTicks(s, kPeriodic[i] - 1s);
      Use(s, model);
      if (!s.Prewarms().empty()) return static_cast<int>(i) + 2;
    }
    return 0;
  }
  std::vector<ResidencyEvent> EventsOf(const Scheduler& s, Type type) {
    std::vector<ResidencyEvent> out;
    for (auto& e : s.events().Since(0)) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }
  std::set<std::string> Loaded(const Scheduler& s) {
    std::set<std::string> out;
    for (auto& m : s.Snapshot()) out.insert(m.path);
    return out;
  }

  // b is used once; a every 10 s from a minute later; two minutes after a's last request (b's
  // five), a third model needs a's or b's place (max_loaded 2; min_keep_alive 10m keeps both
  // loaded until then). With a fixed keep_alive the default formula (1 / (1 + idle minutes))
  // evicts b, the least recently used; with "auto", a's own gaps say it is done (idle longer
  // than any gap it ever had), so a goes. Returns "victim>for_model " per eviction.
  std::string EvictedFor(KeepAlive keep_alive) {
    Scheduler::Options o = Opts(2);
    Policy policy;
    policy.default_keep_alive = keep_alive;
    policy.min_keep_alive = KeepAlive::Of(10min);
    o.policy = policy;
    Scheduler s(o, factory_, clock_);
    Use(s, "b");
    AdvanceWithTicks(s, 60s);
    for (int i = 0; i < 11; ++i) {
      Use(s, "a");
      AdvanceWithTicks(s, 10s);
    }
    AdvanceWithTicks(s, 110s);
    EXPECT_EQ(Loaded(s), (std::set<std::string>{"a", "b"}));
    Use(s, "c");
    std::string out;
    for (auto& e : EventsOf(s, Type::kEvict)) out += e.model + ">" + e.for_model + " ";
    return out;
  }

  ~AutoTest() override { spdlog::set_level(saved_level_); }

  const spdlog::level::level_enum saved_level_;
  FakeClock clock_;
  FakeFactory factory_;
};

TEST_F(AutoTest, TheExpiryFollowsThePlanOfTheModelsOwnGaps) {
  Scheduler s(Opts(), factory_, clock_);
  EXPECT_GT(Use(s, "a"), Duration::zero());
  // No gap seen yet: kept for what a cold start is worth (15 minutes by default).
  auto snap = s.Snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_TRUE(snap[0].keep_alive.automatic);
  EXPECT_NE(snap[0].keep_alive_reason.find("0 of this model's gaps seen so far"), std::string::npos)
      << snap[0].keep_alive_reason;
  ASSERT_TRUE(snap[0].expires_at.has_value());
  EXPECT_EQ(*snap[0].expires_at, clock_.WallNow() + 15min);
  EXPECT_EQ(snap[0].planned_keep, Duration(15min));

  // Requests 30 s apart: kept just past 30 s (a quarter more and 2 s: 39.5 s).
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(30s);
    s.Tick();
    EXPECT_EQ(Use(s, "a"), Duration::zero()) << i;  // always warm
  }
  snap = s.Snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_TRUE(snap[0].keep_alive.automatic);
  ASSERT_TRUE(snap[0].expires_at.has_value());
  EXPECT_EQ(*snap[0].expires_at, clock_.WallNow() + 39500ms);
  EXPECT_EQ(snap[0].planned_keep, Duration(39500ms));
  // The reason is the plan's, as the learner makes it from the scheduler's own history.
  const double now = std::chrono::duration<double>(clock_.WallNow().time_since_epoch()).count();
  CostModel cost;
  cost.cold_start_s = 900;
  cost.load_s = 1;
  ResidencyPlan plan = Plan(s.Histories().at("a"), now, LearnerConfig{}, cost);
  EXPECT_EQ(snap[0].keep_alive_reason, plan.reason);
  EXPECT_EQ(plan.keep_s, 39.5);

  clock_.Advance(39499ms);
  s.Tick();
  EXPECT_EQ(Loaded(s), std::set<std::string>{"a"});
  clock_.Advance(1ms);
  s.Tick();
  EXPECT_TRUE(Loaded(s).empty());
  auto unloads = EventsOf(s, Type::kUnload);
  ASSERT_EQ(unloads.size(), 1u);
  EXPECT_EQ(unloads[0].reason, UnloadReason::kExpired);
  EXPECT_EQ(unloads[0].explanation, plan.reason);
  EXPECT_EQ(s.Stats().models["a"].cold_starts, 1u);
  EXPECT_EQ(s.Stats().models["a"].requests, 6u);
}

TEST_F(AutoTest, APeriodicModelIsUnloadedThenPrewarmedAndTheRequestIsAHit) {
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_GT(TrainPeriodic(s), 0) << "no prewarm plan after " << kPeriodic.size() + 1 << " requests";
  EXPECT_TRUE(Loaded(s).empty());  // unloaded at once
  EXPECT_EQ(s.Stats().models["p"].cold_starts, 1u);  // every request so far was warm but the first

  auto pending = s.Prewarms();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].name, "p");
  const std::string reason = pending[0].reason;
  EXPECT_NE(reason.find("unloads at once and is loaded again"), std::string::npos) << reason;
  // The unload's explanation is the plan's reason.
  auto unloads = EventsOf(s, Type::kUnload);
  ASSERT_FALSE(unloads.empty());
  EXPECT_EQ(unloads.back().reason, UnloadReason::kExpired);
  EXPECT_EQ(unloads.back().explanation, reason);
  // Ready a bit before the period; the load starts its load time (×1.2) before that.
  const Duration ready_in = pending[0].ready_at - clock_.WallNow();
  EXPECT_GT(ready_in, 500s);
  EXPECT_LT(ready_in, 600s);
  EXPECT_EQ(pending[0].ready_at - pending[0].load_at, Duration(2400ms));
  // The timer is the prewarm's load time.
  EXPECT_EQ(s.NextTimer() - clock_.Now(), pending[0].load_at - clock_.WallNow());

  const int starts = factory_.Starts();
  clock_.Advance(s.NextTimer() - clock_.Now() - 1ms);
  s.Tick();
  EXPECT_EQ(factory_.Starts(), starts);  // not yet
  clock_.Advance(1ms);
  s.Tick();
  EXPECT_EQ(factory_.Starts(), starts + 1);
  EXPECT_EQ(Loaded(s), std::set<std::string>{"p"});
  EXPECT_TRUE(s.Prewarms().empty());
  auto loads = EventsOf(s, Type::kLoad);
  ASSERT_FALSE(loads.empty());
  EXPECT_EQ(loads.back().origin, "prewarm");
  EXPECT_EQ(loads.back().explanation, reason);
  auto snap = s.Snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_TRUE(snap[0].prewarmed);
  EXPECT_TRUE(snap[0].keep_alive.automatic);
  EXPECT_EQ(s.Stats().models["p"].prewarms, 1u);

  // The request comes at the period: the model is loaded.
  clock_.Advance(pending[0].ready_at - clock_.WallNow() + 5s);
  s.Tick();
  EXPECT_EQ(Use(s, "p"), Duration::zero());
  ModelStats st = s.Stats().models["p"];
  EXPECT_EQ(st.prewarm_hits, 1u);
  EXPECT_EQ(st.prewarm_misses, 0u);
  EXPECT_EQ(st.cold_starts, 1u);
  auto hits = EventsOf(s, Type::kPrewarmHit);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_EQ(hits[0].model, "p");
  EXPECT_TRUE(EventsOf(s, Type::kPrewarmMiss).empty());
}

TEST_F(AutoTest, APrewarmThatNoRequestUsesExpiresAsAMiss) {
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_GT(TrainPeriodic(s), 0);
  clock_.Advance(s.NextTimer() - clock_.Now());
  s.Tick();
  auto snap = s.Snapshot();
  ASSERT_EQ(snap.size(), 1u);
  ASSERT_TRUE(snap[0].expires_at.has_value());  // kept for the plan's window
  EXPECT_LT(*snap[0].expires_at - clock_.WallNow(), 10min);
  clock_.Advance(*snap[0].expires_at - clock_.WallNow());
  s.Tick();
  EXPECT_TRUE(Loaded(s).empty());
  ModelStats st = s.Stats().models["p"];
  EXPECT_EQ(st.prewarms, 1u);
  EXPECT_EQ(st.prewarm_hits, 0u);
  EXPECT_EQ(st.prewarm_misses, 1u);
  auto misses = EventsOf(s, Type::kPrewarmMiss);
  ASSERT_EQ(misses.size(), 1u);
  EXPECT_EQ(misses[0].explanation, "unloaded unused (expired)");
  EXPECT_TRUE(s.Prewarms().empty());
}

TEST_F(AutoTest, ARequestBeforeThePrewarmIsAMissAndACold) {
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_GT(TrainPeriodic(s), 0);
  clock_.Advance(100s);
  s.Tick();
  EXPECT_GT(Use(s, "p"), Duration::zero());  // loaded for this request
  ModelStats st = s.Stats().models["p"];
  EXPECT_EQ(st.prewarms, 0u);
  EXPECT_EQ(st.prewarm_misses, 1u);
  EXPECT_EQ(st.cold_starts, 2u);
  auto misses = EventsOf(s, Type::kPrewarmMiss);
  ASSERT_EQ(misses.size(), 1u);
  EXPECT_EQ(misses[0].explanation, "the request came before the prewarm started");
}

TEST_F(AutoTest, ARequestDuringThePrewarmsLoadIsAMissAndWaitsForThatLoad) {
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_GT(TrainPeriodic(s), 0);
  clock_.Advance(s.NextTimer() - clock_.Now());
  const int starts = factory_.Starts();
  factory_.gated = true;
  auto tick = std::async(std::launch::async, [&] { s.Tick(); });
  factory_.WaitForStarts(starts + 1);
  auto request = std::async(std::launch::async, [&] {
    auto lease = s.Acquire(Spec("p"), std::nullopt);
    return lease.ok() ? lease->load_duration() : Duration(-1s);
  });
  while (s.QueuedRequests() < 1) std::this_thread::yield();
  factory_.Open();
  tick.get();
  EXPECT_GT(request.get(), Duration::zero());  // it waited for the prewarm's load
  EXPECT_EQ(factory_.Starts(), starts + 1);    // and shared it
  ModelStats st = s.Stats().models["p"];
  EXPECT_EQ(st.prewarms, 1u);
  EXPECT_EQ(st.prewarm_misses, 1u);
  EXPECT_EQ(st.prewarm_hits, 0u);
  auto misses = EventsOf(s, Type::kPrewarmMiss);
  ASSERT_EQ(misses.size(), 1u);
  EXPECT_EQ(misses[0].explanation, "the request came while it was still loading");
}

TEST_F(AutoTest, AStopCancelsAPendingPrewarmAndUnloadsAnUnusedOne) {
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_GT(TrainPeriodic(s), 0);
  s.Unload("p");
  EXPECT_TRUE(s.Prewarms().empty());
  EXPECT_EQ(s.NextTimer(), TimePoint::max());
  const int starts = factory_.Starts();
  AdvanceWithTicks(s, 1h);
  EXPECT_EQ(factory_.Starts(), starts);

  // Prewarmed and then stopped before any request: a miss.
  Use(s, "p");
  ASSERT_EQ(s.Prewarms().size(), 1u);
  clock_.Advance(s.NextTimer() - clock_.Now());
  s.Tick();
  ASSERT_EQ(Loaded(s), std::set<std::string>{"p"});
  s.Unload("p");
  EXPECT_TRUE(Loaded(s).empty());
  auto misses = EventsOf(s, Type::kPrewarmMiss);
  ASSERT_FALSE(misses.empty());
  EXPECT_EQ(misses.back().explanation, "unloaded unused (manual)");
}

// A prewarm never evicts: when max_loaded (or the budget) is reached when it is due, it is dropped.
class NoRoomTest : public AutoTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(NoRoomTest, APrewarmWithoutFreeRoomIsAMissAndEvictsNothing) {
  const std::string how = GetParam();
  Scheduler::Options o = how == "budget" ? Opts(10) : Opts(2);
  if (how == "budget") {
    factory_.sizes = {{"p", 600}, {"b", 500}, {"c", 100}};
    o.memory_budget = 1000;
    o.predictor = [this](const ModelSpec& spec) -> Result<uint64_t> { return factory_.sizes.at(spec.load.model_path); };
  }
  Scheduler s(o, factory_, clock_);
  ASSERT_GT(TrainPeriodic(s), 0);
  std::vector<Lease> held;
  if (how == "busy") {
    for (const char* m : {"b", "c"}) held.push_back(std::move(s.Acquire(Spec(m), std::nullopt)).value());
  } else if (how == "idle") {
    for (const char* m : {"b", "c"}) Use(s, m, KeepAlive::Forever());
  } else {
    Use(s, "b", KeepAlive::Forever());
  }
  const std::set<std::string> before = Loaded(s);
  const int starts = factory_.Starts();
  ASSERT_EQ(s.Prewarms().size(), 1u);
  clock_.Advance(s.Prewarms()[0].load_at - clock_.WallNow());
  s.Tick();
  EXPECT_EQ(Loaded(s), before);
  EXPECT_EQ(factory_.Starts(), starts);
  EXPECT_TRUE(EventsOf(s, Type::kEvict).empty());
  EXPECT_TRUE(s.Prewarms().empty());
  auto misses = EventsOf(s, Type::kPrewarmMiss);
  ASSERT_EQ(misses.size(), 1u);
  EXPECT_EQ(misses[0].explanation, "no free room when it was due (prewarms never evict)");
  EXPECT_EQ(s.Stats().models["p"].prewarm_misses, 1u);
}

INSTANTIATE_TEST_SUITE_P(MaxLoadedOrBudget, NoRoomTest, ::testing::Values("busy", "idle", "budget"));

TEST_F(AutoTest, ANumericKeepAliveOfARequestWinsOverAuto) {
  Scheduler s(Opts(), factory_, clock_);
  Use(s, "a", KeepAlive::Of(2min));
  auto snap = s.Snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].keep_alive, KeepAlive::Of(2min));
  EXPECT_EQ(snap[0].keep_alive_reason, "a request's keep_alive");
  EXPECT_EQ(*snap[0].expires_at, clock_.WallNow() + 2min);

  // A model "auto" would prewarm: a request with a keep_alive keeps it loaded instead.
  ASSERT_GT(TrainPeriodic(s), 0);
  clock_.Advance(100s);
  Use(s, "p", KeepAlive::Of(1min));
  EXPECT_TRUE(s.Prewarms().empty());
  snap = s.Snapshot();
  std::optional<LoadedModel> p;
  for (auto& m : snap) {
    if (m.path == "p") p = m;
  }
  ASSERT_TRUE(p.has_value());
  EXPECT_FALSE(p->keep_alive.automatic);
  EXPECT_EQ(*p->expires_at, clock_.WallNow() + 1min);
}

TEST_F(AutoTest, AFixedKeepAliveSaysWhereItCameFrom) {
  Scheduler::Options o = Opts();
  o.default_keep_alive = KeepAlive::Of(5min);
  o.policy = Policy{};
  o.policy->default_keep_alive = KeepAlive::Of(5min);
  o.policy->max_keep_alive = KeepAlive::Of(1h);
  o.policy->models[PolicyModelKey("b")].keep_alive = KeepAlive::Of(10min);
  o.policy->models[PolicyModelKey("c")].pin = true;
  Scheduler s(o, factory_, clock_);
  Use(s, "a");
  Use(s, "b");
  Use(s, "c");
  std::map<std::string, std::string> why;
  for (const auto& m : s.Snapshot()) why[m.path] = m.keep_alive_reason;
  EXPECT_EQ(why["a"], "the default keep_alive");
  EXPECT_EQ(why["b"], "the policy file's entry for b");
  EXPECT_EQ(why["c"], "pinned in the policy file");
  Use(s, "a", KeepAlive::Forever());
  for (const auto& m : s.Snapshot()) why[m.path] = m.keep_alive_reason;
  EXPECT_EQ(why["a"], "a request's keep_alive (forever), clamped by the policy file");
}

TEST_F(AutoTest, APreloadLoadsAtTheNextTickAndAgainWhenItsRunnerDiesButNotAfterAStop) {
  Scheduler::Options o = Opts();
  o.default_keep_alive = KeepAlive::Of(5min);
  Scheduler s(o, factory_, clock_);
  s.Preload(Spec("a"));
  EXPECT_EQ(factory_.Starts(), 0);
  EXPECT_EQ(s.NextTimer(), clock_.Now());  // due now
  s.Tick();
  EXPECT_EQ(factory_.Starts(), 1);
  EXPECT_EQ(Loaded(s), std::set<std::string>{"a"});
  auto loads = EventsOf(s, Type::kLoad);
  ASSERT_EQ(loads.size(), 1u);
  EXPECT_EQ(loads[0].origin, "preload");
  auto snap = s.Snapshot();
  ASSERT_TRUE(snap[0].expires_at.has_value());  // the default keep_alive, counted from the load
  EXPECT_EQ(*snap[0].expires_at, clock_.WallNow() + 5min);
  EXPECT_EQ(s.Stats().models["a"].requests, 0u);

  // Its runner dies: it leaves, and is loaded again.
  factory_.runners.at("a")->alive_ = false;
  s.Tick();
  s.Tick();
  EXPECT_EQ(factory_.Starts(), 2);
  EXPECT_EQ(Loaded(s), std::set<std::string>{"a"});
  EXPECT_TRUE(factory_.runners.at("a")->alive());
  ASSERT_EQ(EventsOf(s, Type::kUnload).size(), 1u);
  EXPECT_EQ(EventsOf(s, Type::kUnload)[0].reason, UnloadReason::kExited);
  EXPECT_EQ(EventsOf(s, Type::kLoad).back().origin, "preload");

  // A stop is final.
  s.Unload("a");
  s.Tick();
  s.Tick();
  EXPECT_TRUE(Loaded(s).empty());
  EXPECT_EQ(factory_.Starts(), 2);
  EXPECT_EQ(s.NextTimer(), TimePoint::max());
}

TEST_F(AutoTest, APreloadThatExpiresIsNotLoadedAgain) {
  Scheduler::Options o = Opts();
  o.default_keep_alive = KeepAlive::Of(5min);
  Scheduler s(o, factory_, clock_);
  s.Preload(Spec("a"));
  s.Tick();
  ASSERT_EQ(factory_.Starts(), 1);
  clock_.Advance(5min);
  s.Tick();
  s.Tick();
  EXPECT_TRUE(Loaded(s).empty());
  EXPECT_EQ(factory_.Starts(), 1);
}

TEST_F(AutoTest, APreloadWaitsForFreeRoomAndEvictsNothing) {
  Scheduler::Options o = Opts(1);
  o.default_keep_alive = KeepAlive::Of(5min);
  Scheduler s(o, factory_, clock_);
  auto busy = s.Acquire(Spec("b"), std::nullopt);
  ASSERT_TRUE(busy.ok());
  s.Preload(Spec("a"));
  EXPECT_EQ(s.NextTimer(), clock_.Now());
  s.Tick();
  EXPECT_EQ(Loaded(s), std::set<std::string>{"b"});
  // Still wanted, and tried again later, not at once: the timer thread sleeps until NextTimer(),
  // so a preload due "now" while there is no room kept it spinning (a core at 100%, and the lock
  // taken and dropped in a loop) until room was free.
  const TimePoint retry = s.NextTimer();
  EXPECT_GT(retry, clock_.Now());
  EXPECT_LT(retry, TimePoint::max());
  clock_.Advance(retry - clock_.Now());
  s.Tick();
  EXPECT_EQ(Loaded(s), std::set<std::string>{"b"});
  EXPECT_GT(s.NextTimer(), clock_.Now());
  busy->Release();
  s.Tick();
  EXPECT_EQ(Loaded(s), std::set<std::string>{"b"});  // idle b stays: a preload never evicts
  clock_.Advance(5min);
  s.Tick();  // b expires; then there is room
  s.Tick();
  EXPECT_EQ(Loaded(s), std::set<std::string>{"a"});
  EXPECT_TRUE(EventsOf(s, Type::kEvict).empty());
}

TEST_F(AutoTest, HistoriesRoundTripAndARestoredHistoryPlansAtOnce) {
  std::map<std::string, UsageHistory> saved;
  {
    Scheduler s(Opts(), factory_, clock_);
    const uint64_t v0 = s.history_version();
    ASSERT_GT(TrainPeriodic(s), 0);
    Use(s, "b");
    EXPECT_GT(s.history_version(), v0);
    saved = s.Histories();
  }
  ASSERT_EQ(saved.size(), 2u);
  EXPECT_GE(saved.at("p").gaps.size(), 8u);
  EXPECT_EQ(saved.at("p").bytes, 1000u);
  EXPECT_EQ(saved.at("p").load_s, 2);

  Scheduler s(Opts(), factory_, clock_);
  s.RestoreHistories(saved);
  auto restored = s.Histories();
  ASSERT_EQ(restored.size(), saved.size());
  for (const auto& [name, h] : saved) {
    SCOPED_TRACE(name);
    const UsageHistory& r = restored.at(name);
    EXPECT_EQ(r.requests, h.requests);
    EXPECT_EQ(r.idle_since, h.idle_since);
    EXPECT_EQ(r.bytes, h.bytes);
    EXPECT_EQ(r.load_s, h.load_s);
    ASSERT_EQ(r.gaps.size(), h.gaps.size());
    for (size_t i = 0; i < h.gaps.size(); ++i) {
      EXPECT_EQ(r.gaps[i].end_s, h.gaps[i].end_s);
      EXPECT_EQ(r.gaps[i].seconds, h.gaps[i].seconds);
      EXPECT_EQ(r.gaps[i].prev_s, h.gaps[i].prev_s);
    }
  }
  // The next request, a period later, is planned from what was learned: a prewarm at once
  // (a fresh scheduler without the history keeps the model for 15 minutes).
  clock_.Advance(600s);
  Use(s, "p");
  EXPECT_EQ(s.Prewarms().size(), 1u);
  EXPECT_TRUE(Loaded(s).empty());
  EXPECT_EQ(s.Histories().at("p").gaps.size(), saved.at("p").gaps.size() + 1);
}

// ---- fixed keep_alive values: as before ---------------------------------------------------------

TEST_F(AutoTest, AFixedKeepAliveIgnoresTheLearnerButStillRecordsTheHistory) {
  Scheduler::Options o = Opts();
  o.default_keep_alive = KeepAlive::Of(5min);
  Scheduler s(o, factory_, clock_);
  int cold = 0;
  for (int i = 0; i < 12; ++i) {
    cold += Use(s, "p") > Duration::zero();
    auto snap = s.Snapshot();
    ASSERT_EQ(snap.size(), 1u);
    EXPECT_EQ(snap[0].keep_alive, KeepAlive::Of(5min));
    EXPECT_EQ(snap[0].keep_alive_reason, "the default keep_alive");
    EXPECT_FALSE(snap[0].planned_keep.has_value());
    EXPECT_EQ(*snap[0].expires_at, clock_.WallNow() + 5min);
    EXPECT_TRUE(s.Prewarms().empty());
    AdvanceWithTicks(s, 599s);
  }
  EXPECT_EQ(cold, 12);  // ten minutes apart, five minutes kept: every request cold
  EXPECT_EQ(s.Histories().at("p").gaps.size(), 11u);
  EXPECT_EQ(s.Stats().models["p"].prewarms, 0u);
  EXPECT_EQ(s.Stats().models["p"].unloads_for(UnloadReason::kExpired), 12u);
}

TEST_F(AutoTest, WithAFixedKeepAliveEvictionUsesTheDefaultReuseFormula) {
  EXPECT_EQ(EvictedFor(KeepAlive::Of(1h)), "b>c ");
}

TEST_F(AutoTest, WithAutoEvictionUsesTheLearnedReuseProbability) {
  EXPECT_EQ(EvictedFor(KeepAlive::Auto()), "a>c ");
}

}  // namespace
}  // namespace resident::sched
