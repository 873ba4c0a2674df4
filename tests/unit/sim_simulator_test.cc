// `resident bench simulate`: the real scheduler in virtual time, and the offline lower bound.
#include "sim/simulator.h"

#include <gtest/gtest.h>

#include <cmath>

#include "sched/policy.h"
#include "sched/scheduler.h"
#include "sim/lower_bound.h"
#include "sim/trace_synth.h"

namespace resident::sim {
namespace {

using namespace std::chrono_literals;

Trace Csv(const std::string& text) {
  auto t = ParseTrace(text, "test.csv");
  EXPECT_TRUE(t.ok()) << t.status().message();
  return *t;
}

// Every model 1 GB, loads in 1 s, every request takes 1 s.
SimSetup MakeSim(const Trace& t, int max_loaded = 3) {
  SetupDefaults d;
  d.default_bytes = 1'000'000'000;
  d.load_s = 1;
  d.max_loaded = max_loaded;
  SimSetup s = MakeSetup(t, d);
  for (auto& x : s.service_s) x = 1;
  return s;
}

SimResult RunSim(const Trace& t, const SimSetup& s, KeepAlive keep_alive) {
  auto r = Simulate(t, s, SimPolicy{"p", keep_alive, std::nullopt});
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : SimResult{};
}

TEST(SimSimulatorTest, KeepAliveDecidesColdStartsAndIdleMemory) {
  Trace t = Csv("0,a,1,1\n100,a,1,1\n");
  SimSetup s = MakeSim(t);
  // 5m: loaded 0..1, busy 1..2, idle 2..100, busy 100..101; the trace ends at 101.
  SimResult five = RunSim(t, s, KeepAlive::Of(5min));
  EXPECT_EQ(five.cold, 1);
  EXPECT_EQ(five.loads, 1);
  EXPECT_NEAR(five.idle_gbs, 98, 1e-6);
  EXPECT_NEAR(five.resident_gbs, 101, 1e-6);
  // 1m: expires at 62, loads again at 100 (100..101), busy 101..102.
  SimResult one = RunSim(t, s, KeepAlive::Of(1min));
  EXPECT_EQ(one.cold, 2);
  EXPECT_NEAR(one.idle_gbs, 60, 1e-6);
  EXPECT_NEAR(one.resident_gbs, 62 + 2, 1e-6);
  // 0: unloaded after each request, nothing idle.
  SimResult zero = RunSim(t, s, KeepAlive::Of(0s));
  EXPECT_EQ(zero.cold, 2);
  EXPECT_NEAR(zero.idle_gbs, 0, 1e-6);
  EXPECT_NEAR(zero.resident_gbs, 4, 1e-6);
}

TEST(SimSimulatorTest, APolicyFilesSleepAfterSleepsAndWakesThroughTheScheduler) {
  Trace t = Csv("0,a,1,1\n100,a,1,1\n");
  SetupDefaults d;
  d.default_bytes = 1'000'000'000;
  d.load_s = 1;
  d.sleep_fraction = 0.5;
  d.wake_fraction = 0.3;
  SimSetup s = MakeSetup(t, d);
  for (auto& x : s.service_s) x = 1;
  auto policy = sched::ParsePolicy("keep_alive = \"5m\"\nsleep_after = \"10s\"\n", "p.toml", KeepAlive::Of(5min));
  ASSERT_TRUE(policy.ok()) << policy.status().message();
  auto r = Simulate(t, s, SimPolicy{"sleep", KeepAlive::Of(5min), *policy});
  ASSERT_TRUE(r.ok()) << r.status().message();
  // Loaded 0..1, busy 1..2, idle awake 2..12 (1 GB), asleep 12..100 (0.5 GB), a wake of 0.3 s
  // (awake again), busy 100.3..101.3.
  EXPECT_EQ(r->cold, 1);  // the wake is no cold start
  EXPECT_EQ(r->loads, 1);
  EXPECT_EQ(r->sleeps, 1);
  EXPECT_EQ(r->wakes, 1);
  EXPECT_NEAR(r->idle_gbs, 10 + 44 + 0.3, 1e-6);
  EXPECT_NEAR(r->resident_gbs, 12 + 44 + 1.3, 1e-6);
  // Without sleep_after: idle 2..100 at 1 GB.
  SimResult plain = RunSim(t, s, KeepAlive::Of(5min));
  EXPECT_EQ(plain.sleeps, 0);
  EXPECT_NEAR(plain.idle_gbs, 98, 1e-6);
  EXPECT_NE(FormatTable({*r}, ComputeLowerBound(t, {{"a", 1'000'000'000}}, s.service_s)).find("1 sleeps, 1 wakes"),
            std::string::npos);
}

TEST(SimSimulatorTest, ARequestArrivingDuringALoadIsColdToo) {
  Trace t = Csv("0,a,1,1\n0.5,a,1,1\n5,a,1,1\n");
  SimResult r = RunSim(t, MakeSim(t), KeepAlive::Of(5min));
  EXPECT_EQ(r.loads, 1);
  EXPECT_EQ(r.cold, 2);
}

TEST(SimSimulatorTest, TheModelCapEvictsThroughTheSchedulersCostOrder) {
  // max 2 loaded, forever: c evicts a (idle longest, same reload time and size), a evicts b.
  Trace t = Csv("0,a,1,1\n10,b,1,1\n20,c,1,1\n30,a,1,1\n");
  SimResult r = RunSim(t, MakeSim(t, 2), KeepAlive::Forever());
  EXPECT_EQ(r.loads, 4);
  EXPECT_EQ(r.cold, 4);
  EXPECT_EQ(r.cold_by_model["a"], 2);
  EXPECT_EQ(r.peak_bytes, 2'000'000'000u);
}

TEST(SimSimulatorTest, ARequestThatNeedsRoomWaitsForABusyModelToFinish) {
  Trace t = Csv("0,a,1,1\n1,b,1,1\n");
  SimSetup s = MakeSim(t, 1);
  s.service_s = {10, 1};
  SimResult r = RunSim(t, s, KeepAlive::Of(5min));
  EXPECT_EQ(r.cold, 2);
  EXPECT_EQ(r.waited_for_room, 1);
  // a: loaded 0..1, busy 1..11, then evicted for b at 11; b loads 11..12, busy 12..13.
  EXPECT_NEAR(r.resident_gbs, 11 + 2, 1e-6);
}

TEST(SimSimulatorTest, APinFromAPolicyFileKeepsTheModel) {
  Trace t = Csv("0,a,1,1\n1000,a,1,1\n2000,a,1,1\n");
  auto policy = sched::ParsePolicy("[models.a]\npin = true\n", "p.toml", KeepAlive::Of(5min));
  ASSERT_TRUE(policy.ok()) << policy.status().message();
  auto r = Simulate(t, MakeSim(t), SimPolicy{"pinned", KeepAlive::Of(5min), *policy});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->cold, 1);
  EXPECT_EQ(RunSim(t, MakeSim(t), KeepAlive::Of(5min)).cold, 3);
}

TEST(SimLowerBoundTest, UnloadsInTheLongestGapsFirst) {
  Trace t = Csv("0,a,1,1\n10,a,1,1\n100,a,1,1\n0,b,1,1\n");
  std::map<std::string, uint64_t> bytes{{"a", 1'000'000'000}, {"b", 2'000'000'000}};
  std::vector<double> service(t.requests.size(), 1.0);
  LowerBound lb = ComputeLowerBound(t, bytes, service);
  EXPECT_EQ(lb.models, 2);
  EXPECT_EQ(lb.busy_periods, 4);
  // Gaps of a: 9 s and 89 s (1 GB); b has none.
  ASSERT_EQ(lb.idle_gbs.size(), 3u);
  EXPECT_NEAR(lb.IdleAt(2), 98, 1e-9);
  EXPECT_NEAR(lb.IdleAt(3), 9, 1e-9);
  EXPECT_NEAR(lb.IdleAt(4), 0, 1e-9);
  EXPECT_NEAR(lb.IdleAt(100), 0, 1e-9);
  EXPECT_EQ(lb.ColdFor(50), 3);
  EXPECT_EQ(lb.ColdFor(98), 2);
  EXPECT_EQ(lb.ColdFor(0), 4);
}

// The best fixed keep_alive per model with hindsight: a keeps for 9 s (one load more, the 89 s gap
// unloaded) or for nothing; between two choices the curve is their straight line.
TEST(SimLowerBoundTest, HindsightCurveIsTheHullOfEachModelsFixedKeepTimes) {
  Trace t = Csv("0,a,1,1\n10,a,1,1\n20,a,1,1\n120,a,1,1\n0,b,1,1\n50,b,1,1\n");
  std::map<std::string, uint64_t> bytes{{"a", 1'000'000'000}, {"b", 2'000'000'000}};
  std::vector<double> service(t.requests.size(), 1.0);
  LowerBound lb = ComputeLowerBound(t, bytes, service);
  // a's gaps: 9, 9, 99 (1 GB); b's: 49 (2 GB). Keeping everything: 117 + 98 GB·s at 2 loads.
  // Steps, the most saved per load first: b unloaded in its gap (98 for one load); a kept 9 s
  // instead of forever (117 - 27 = 90 for one load); a kept for nothing (27 for two loads).
  EXPECT_TRUE(std::isinf(lb.HindsightAt(1)));
  EXPECT_NEAR(lb.HindsightAt(2), 215, 1e-9);
  EXPECT_NEAR(lb.HindsightAt(3), 117, 1e-9);  // b unloaded in its gap: 98 saved
  EXPECT_NEAR(lb.HindsightAt(4), 27, 1e-9);   // a kept 9 s: its long gap costs only 9
  EXPECT_NEAR(lb.HindsightAt(5), 13.5, 1e-9); // half-way to unloading a in every gap
  EXPECT_NEAR(lb.HindsightAt(6), 0, 1e-9);
  EXPECT_NEAR(lb.HindsightAt(60), 0, 1e-9);
  // Never below the bound, which also knows which gap is long.
  for (int loads = 2; loads <= 6; ++loads) EXPECT_GE(lb.HindsightAt(loads) + 1e-9, lb.IdleAt(loads)) << loads;
  EXPECT_NEAR(lb.IdleAt(4), 18, 1e-9);
}

// A fixed keep_alive for every model is one choice of a keep time per model: with loads that take
// no time (the curve's own assumption), every fixed row lies on or above the hindsight curve, and
// auto stays above the bound.
TEST(SimLowerBoundTest, FixedRowsLieOnOrAboveTheHindsightCurve) {
  for (const char* shape : {"bursty", "mixed"}) {
    SCOPED_TRACE(shape);
    auto t = SynthesizeTrace({shape, 3, 24});
    ASSERT_TRUE(t.ok());
    SetupDefaults d;
    d.max_loaded = 1000;
    d.load_s_per_gb = 0;
    SimSetup s = MakeSetup(*t, d);
    std::map<std::string, uint64_t> bytes;
    for (const auto& [n, p] : s.models) bytes[n] = p.bytes;
    LowerBound lb = ComputeLowerBound(*t, bytes, s.service_s);
    for (const auto& p : StandardPolicies()) {
      SCOPED_TRACE(p.label);
      auto r = Simulate(*t, s, p);
      ASSERT_TRUE(r.ok()) << r.status().message();
      EXPECT_GE(lb.HindsightAt(r->loads) + 1e-6, lb.IdleAt(r->loads));
      // (keep_alive 0 is left out: it can end with fewer loads than the curve's last point, when
      // the simulated runner's busy periods join two the curve counts apart.)
      if (p.default_keep_alive != KeepAlive::Auto() && p.label != "keep_alive 0") {
        EXPECT_GE(r->idle_gbs * (1 + 1e-9) + 1e-6, lb.HindsightAt(r->loads)) << r->loads << " loads";
      }
    }
  }
}

TEST(SimLowerBoundTest, EverySimulatedPolicyIsAboveTheBound) {
  Trace t = Csv("0,a,1,1\n30,b,1,1\n50,a,1,1\n200,a,1,1\n260,b,1,1\n900,c,1,1\n910,a,1,1\n3000,b,1,1\n");
  SimSetup s = MakeSim(t, 2);
  std::map<std::string, uint64_t> bytes;
  std::map<std::string, double> load;
  for (const auto& [n, p] : s.models) {
    bytes[n] = p.bytes;
    load[n] = p.load_s;
  }
  LowerBound lb = ComputeLowerBound(t, bytes, s.service_s, load);
  for (const auto& p : StandardPolicies()) {
    auto r = Simulate(t, s, p);
    ASSERT_TRUE(r.ok());
    EXPECT_GE(r->idle_gbs + 1e-6, lb.IdleAt(r->loads)) << p.label;
    EXPECT_GE(r->loads, lb.models);
  }
}

// ---- keep_alive "auto" on synthetic traffic -------------------------------------------------------

SimResult Row(const Trace& t, const SimSetup& s, const std::string& label) {
  for (const auto& p : StandardPolicies()) {
    if (p.label == label) {
      auto r = Simulate(t, s, p);
      EXPECT_TRUE(r.ok()) << r.status().message();
      return r.ok() ? *r : SimResult{};
    }
  }
  ADD_FAILURE() << "no row " << label;
  return {};
}

TEST(SimSimulatorTest, StandardPoliciesEndWithAnAutoRow) {
  std::vector<std::string> labels;
  for (const auto& p : StandardPolicies()) labels.push_back(p.label);
  EXPECT_EQ(labels, (std::vector<std::string>{"keep_alive 0", "keep_alive 1m", "keep_alive 5m", "keep_alive 10m",
                                              "keep_alive 30m", "keep_alive forever", "keep_alive auto"}));
  EXPECT_EQ(StandardPolicies().back().default_keep_alive, KeepAlive::Auto());
  EXPECT_FALSE(StandardPolicies().back().policy.has_value());
}

TEST(SimSimulatorTest, OnPeriodicTrafficAutoHasFewerColdStartsAndLessIdleMemoryThanFiveMinutes) {
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE(seed);
    auto t = SynthesizeTrace({"periodic", seed, 24});
    ASSERT_TRUE(t.ok()) << t.status().message();
    // The defaults of `resident bench simulate`: 1 GB models, 3 loaded at most.
    SimSetup s = MakeSetup(*t, SetupDefaults{});
    SimResult five = Row(*t, s, "keep_alive 5m");
    SimResult automatic = Row(*t, s, "keep_alive auto");
    EXPECT_LE(automatic.cold, five.cold);
    EXPECT_LT(automatic.idle_gbs, five.idle_gbs);
    EXPECT_EQ(automatic.requests, five.requests);
    EXPECT_EQ(automatic.failed, 0);

    // Every model fits at once: keep_alive alone decides. "auto" still starts cold less often than
    // 5m, and beats 10m on both counts.
    SetupDefaults roomy;
    roomy.max_loaded = 12;
    SimSetup r = MakeSetup(*t, roomy);
    SimResult auto_roomy = Row(*t, r, "keep_alive auto");
    SimResult ten = Row(*t, r, "keep_alive 10m");
    EXPECT_LE(auto_roomy.cold, Row(*t, r, "keep_alive 5m").cold);
    EXPECT_LE(auto_roomy.cold, ten.cold);
    EXPECT_LT(auto_roomy.idle_gbs, ten.idle_gbs);
  }
}

TEST(SimLowerBoundTest, EveryRowStaysAboveTheBoundOnPeriodicTraffic) {
  for (uint64_t seed : {1, 2}) {
    SCOPED_TRACE(seed);
    auto t = SynthesizeTrace({"periodic", seed, 24});
    ASSERT_TRUE(t.ok());
    SetupDefaults d;
    d.max_loaded = 12;  // no request waits for room: the bound's own assumption
    SimSetup s = MakeSetup(*t, d);
    std::map<std::string, uint64_t> bytes;
    std::map<std::string, double> load;
    for (const auto& [n, p] : s.models) {
      bytes[n] = p.bytes;
      load[n] = p.load_s;
    }
    LowerBound lb = ComputeLowerBound(*t, bytes, s.service_s, load);
    EXPECT_EQ(lb.models, 12);
    for (const auto& p : StandardPolicies()) {
      SCOPED_TRACE(p.label);
      auto r = Simulate(*t, s, p);
      ASSERT_TRUE(r.ok()) << r.status().message();
      EXPECT_EQ(r->waited_for_room, 0);
      EXPECT_GE(r->loads, lb.models);
      EXPECT_GE(r->idle_gbs + 1e-6, lb.IdleAt(r->loads)) << r->loads << " loads";
      EXPECT_LE(r->cold, r->requests);
    }
  }
}

}  // namespace
}  // namespace resident::sim
