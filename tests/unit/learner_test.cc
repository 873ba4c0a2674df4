// The residency learner behind keep_alive "auto" (sched/learner.h) on synthetic histories: what
// Plan() decides for periodic, bursty, steady, rare and changing traffic, for a new model, with
// the cold start cost and the clamps; ReuseProbability; UsageHistory's bookkeeping.
#include "sched/learner.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <algorithm>
#include <vector>

namespace resident::sched {
namespace {

constexpr double kStart = 1'700'000'000;  // wall seconds
constexpr double kBusy = 1;               // each request keeps the model busy this long
// Gaps are recorded as differences of wall seconds near 1.7e9: exact to about a microsecond.
constexpr double kEps = 1e-3;

// A history built by the scheduler's own calls: a request, then each gap, then a request...
// `now` is when the last request ended (when the scheduler asks for a plan).
struct Built {
  UsageHistory h;
  double now = kStart;
  // More requests after the given idle gaps.
  void Gaps(const std::vector<double>& gaps) {
    if (h.requests == 0) {
      h.Arrive(now);
      now += kBusy;
      h.Idle(now);
    }
    for (double g : gaps) {
      now += g;
      h.Arrive(now);
      now += kBusy;
      h.Idle(now);
    }
  }
};

Built From(const std::vector<double>& gaps) {
  Built b;
  b.Gaps(gaps);
  return b;
}

// n gaps of `mean` seconds, each up to ±jitter, from a fixed seed.
std::vector<double> Jittered(int n, double mean, double jitter, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-jitter, jitter);
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(mean + u(rng));
  return out;
}

std::vector<double> Uniform(int n, double lo, double hi, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(u(rng));
  return out;
}

// `bursts` bursts of `per_burst` requests `lo`-`hi` seconds apart, `between` seconds between bursts.
std::vector<double> Bursts(int bursts, int per_burst, double lo, double hi, double between, uint64_t seed = 1) {
  std::vector<double> out;
  std::vector<double> inside = Uniform(bursts * per_burst, lo, hi, seed);
  size_t k = 0;
  for (int b = 0; b < bursts; ++b) {
    if (b > 0) out.push_back(between);
    for (int i = 1; i < per_burst; ++i) out.push_back(inside[k++]);
  }
  return out;
}

double Max(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }
double Min(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

CostModel Cost(double cold_start_s, double load_s = 2) {
  CostModel c;
  c.cold_start_s = cold_start_s;
  c.load_s = load_s;
  return c;
}

LearnerConfig NoPrewarm() {
  LearnerConfig c;
  c.prewarm = false;
  return c;
}

std::string Show(const ResidencyPlan& p) {
  return std::string(p.kind == ResidencyPlan::Kind::kKeep ? "keep " : "prewarm ") + std::to_string(p.keep_s) +
         " ready " + std::to_string(p.prewarm_ready_s) + " window " + std::to_string(p.prewarm_keep_s) + " (" +
         p.reason + ")";
}

// ---- shapes of traffic --------------------------------------------------------------------------

TEST(Plan, APeriodicJobIsPrewarmedABitBeforeItsPeriod) {
  std::vector<double> gaps = Jittered(40, 600, 10);
  Built b = From(gaps);
  ResidencyPlan p = Plan(b.h, b.now, LearnerConfig{}, Cost(900));
  ASSERT_EQ(p.kind, ResidencyPlan::Kind::kPrewarm) << Show(p);
  EXPECT_EQ(p.keep_s, 0);
  // Ready a bit before the period (at most the jitter and a tenth of it before the earliest run,
  // never after the latest)...
  EXPECT_GE(p.prewarm_ready_s, Min(gaps) - 0.1 * Min(gaps) - 2) << Show(p);
  EXPECT_LT(p.prewarm_ready_s, 600) << Show(p);
  // ...and kept until just past the latest run (a quarter more at most: a run a little later
  // than any seen is still likely).
  EXPECT_GE(p.prewarm_ready_s + p.prewarm_keep_s, Max(gaps) - kEps) << Show(p);
  EXPECT_LE(p.prewarm_ready_s + p.prewarm_keep_s, Max(gaps) * 1.25 + 2 + kEps) << Show(p);
  EXPECT_EQ(p.gaps, 40u);
  EXPECT_NE(p.reason.find("unloads at once and is loaded again"), std::string::npos) << p.reason;
  // Cheaper than keeping it through every gap (about 600 s of idle each).
  EXPECT_LT(p.expected_cost_s, 600);
}

TEST(Plan, APeriodicJobWithoutPrewarmIsKeptJustPastItsPeriodWhenAColdStartIsWorthIt) {
  std::vector<double> gaps = Jittered(40, 600, 10);
  Built b = From(gaps);
  ResidencyPlan p = Plan(b.h, b.now, NoPrewarm(), Cost(900));
  ASSERT_EQ(p.kind, ResidencyPlan::Kind::kKeep) << Show(p);
  EXPECT_GE(p.keep_s, Max(gaps) - kEps) << Show(p);
  EXPECT_LE(p.keep_s, Max(gaps) * 1.25 + 2 + kEps) << Show(p);
  // A cold start worth less than a period's idle: unload at once.
  ResidencyPlan cheap = Plan(b.h, b.now, NoPrewarm(), Cost(300));
  EXPECT_EQ(cheap.kind, ResidencyPlan::Kind::kKeep);
  EXPECT_EQ(cheap.keep_s, 0) << Show(cheap);
  EXPECT_NE(cheap.reason.find("unloads at once"), std::string::npos) << cheap.reason;
}

TEST(Plan, BurstsAreKeptJustPastTheirGapsThenUnloaded) {
  // Bursts of 10 requests 5-20 s apart, 3 hours between bursts.
  Built b = From(Bursts(12, 10, 5, 20, 3 * 3600));
  ResidencyPlan p = Plan(b.h, b.now, LearnerConfig{}, Cost(900));
  ASSERT_EQ(p.kind, ResidencyPlan::Kind::kKeep) << Show(p);
  EXPECT_GE(p.keep_s, 19) << Show(p);   // past (nearly) every gap inside a burst
  EXPECT_LE(p.keep_s, 40) << Show(p);   // but not into the hours between bursts
  // Mid-burst or after the burst's first request: the same.
  Built first = From(Bursts(12, 10, 5, 20, 3 * 3600));
  first.Gaps({3 * 3600});
  ResidencyPlan q = Plan(first.h, first.now, LearnerConfig{}, Cost(900));
  EXPECT_EQ(q.kind, ResidencyPlan::Kind::kKeep) << Show(q);
  EXPECT_GE(q.keep_s, 19) << Show(q);
  EXPECT_LE(q.keep_s, 40) << Show(q);
}

TEST(Plan, SteadyUseIsKeptThroughItsGaps) {
  std::vector<double> gaps = Uniform(60, 20, 90);
  Built b = From(gaps);
  ResidencyPlan p = Plan(b.h, b.now, LearnerConfig{}, Cost(900));
  ASSERT_EQ(p.kind, ResidencyPlan::Kind::kKeep) << Show(p);
  EXPECT_GE(p.keep_s, Max(gaps) - kEps) << Show(p);
  EXPECT_LE(p.keep_s, Max(gaps) * 1.25 + 2 + kEps) << Show(p);
  EXPECT_NE(p.reason.find("100% of this model's recent gaps are under"), std::string::npos) << p.reason;
}

TEST(Plan, ARareModelIsUnloadedAtOnce) {
  for (int n : {6, 40}) {
    SCOPED_TRACE(n);
    std::vector<double> gaps = Uniform(n, 2 * 3600, 8 * 3600);
    Built b = From(gaps);
    ResidencyPlan p = Plan(b.h, b.now, LearnerConfig{}, Cost(900));
    EXPECT_EQ(p.keep_s, 0) << Show(p);
    if (n < 8) {
      EXPECT_EQ(p.kind, ResidencyPlan::Kind::kKeep) << Show(p);  // too few gaps to prewarm
      EXPECT_NE(p.reason.find("unloads at once"), std::string::npos) << p.reason;
    } else if (p.kind == ResidencyPlan::Kind::kPrewarm) {
      // Plan may still pick a prewarm that bets on the longest recent gap (one of little
      // weight: its reason reads "0% of ... gaps fall between"); it must never load the model
      // back into a typical gap.
      std::vector<double> sorted = gaps;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_GE(p.prewarm_ready_s, sorted[sorted.size() / 2]) << Show(p);
    }
  }
}

TEST(Plan, APatternThatChangesIsFollowedOnceTheNewGapsOutweighTheOld) {
  // Steady (a minute apart) for a few hours, then rare (hours apart) for four days: the steady
  // hours of the past days still count a little at their own time of day, so the rare pattern
  // needs days, not hours, to decide alone.
  Built b = From(Uniform(200, 30, 60));
  ResidencyPlan before = Plan(b.h, b.now, LearnerConfig{}, Cost(900));
  ASSERT_EQ(before.kind, ResidencyPlan::Kind::kKeep);
  EXPECT_GE(before.keep_s, 60) << Show(before);
  b.Gaps(Uniform(28, 2 * 3600, 5 * 3600, 2));
  ResidencyPlan after = Plan(b.h, b.now, LearnerConfig{}, Cost(900));
  EXPECT_EQ(after.keep_s, 0) << Show(after);

  // Rare, then steady again: a handful of short gaps is enough.
  Built c = From(Uniform(40, 2 * 3600, 5 * 3600));
  ResidencyPlan rare = Plan(c.h, c.now, LearnerConfig{}, Cost(900));
  EXPECT_EQ(rare.keep_s, 0) << Show(rare);
  c.Gaps(Uniform(10, 30, 60, 3));
  ResidencyPlan steady = Plan(c.h, c.now, LearnerConfig{}, Cost(900));
  EXPECT_EQ(steady.kind, ResidencyPlan::Kind::kKeep) << Show(steady);
  EXPECT_GE(steady.keep_s, 60) << Show(steady);
  EXPECT_LE(steady.keep_s, 120) << Show(steady);
}

// Office hours (09:00-17:00 UTC: a request every 1-3 minutes) and nights (one every 2-4 hours),
// `days` days from kStart (22:13 UTC), then on to `until_hour` of the next day.
Built OfficeDays(int days, double until_hour) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> busy(60, 180), quiet(2 * 3600, 4 * 3600);
  auto hour = [](double t) { return std::fmod(t / 3600.0, 24.0); };
  Built b = From({});
  const double end = std::floor(kStart / 86400 + days) * 86400 + until_hour * 3600;
  for (;;) {
    const double h = hour(b.now);
    double g = h >= 9 && h < 17 ? busy(rng) : quiet(rng);
    if (h < 9 || h >= 17) {  // a night gap ends when the office opens
      const double to_nine = std::fmod(9 - h + 24, 24) * 3600;
      g = std::min(g, std::max(1.0, to_nine));
    }
    if (b.now + g + kBusy > end) break;
    b.Gaps({g});
  }
  return b;
}

TEST(Plan, GapsThatBeganAtThisHourOfPastDaysWeighMore) {
  // Four days of office hours, planned by the time of day alone (no floor): at 10:00 the model is
  // kept past the minutes between requests; at 02:00 the day's short gaps weigh next to nothing
  // and it goes (or is prewarmed), though they are most of its history.
  LearnerConfig by_hour;
  by_hour.time_of_day_floor = 0;
  Built day = OfficeDays(4, 10);
  ResidencyPlan at_ten = Plan(day.h, day.now, by_hour, Cost(900));
  ASSERT_EQ(at_ten.kind, ResidencyPlan::Kind::kKeep) << Show(at_ten);
  EXPECT_GE(at_ten.keep_s, 120) << Show(at_ten);
  Built night = OfficeDays(4, 2);
  ResidencyPlan at_two = Plan(night.h, night.now, by_hour, Cost(900));
  EXPECT_LT(at_two.keep_s, 60) << Show(at_two);

  // Without the time of day the same night is planned like the day: kept.
  LearnerConfig flat;
  flat.time_of_day_width_h = 0;
  ResidencyPlan flat_two = Plan(night.h, night.now, flat, Cost(900));
  EXPECT_GE(flat_two.keep_s, 120) << Show(flat_two);
  // The default mixes both (a quarter of the weight ignores the hour: one odd day does not make a
  // habit): at night it keeps no longer than the flat plan, by day it keeps as the flat plan does.
  ResidencyPlan mixed_two = Plan(night.h, night.now, LearnerConfig{}, Cost(900));
  EXPECT_LE(mixed_two.keep_s, flat_two.keep_s + kEps) << Show(mixed_two);
  ResidencyPlan mixed_ten = Plan(day.h, day.now, LearnerConfig{}, Cost(900));
  EXPECT_GE(mixed_ten.keep_s, 120) << Show(mixed_ten);
}

TEST(Plan, TheHalfLifeAloneLetsANewPatternWin) {
  // Without the context of the latest gap, only age fades the old gaps.
  LearnerConfig config;
  config.context_width = 0;
  config.half_life_s = 3600;
  Built b = From(Uniform(100, 30, 60));
  b.Gaps(Uniform(12, 2 * 3600, 3 * 3600, 2));
  EXPECT_EQ(Plan(b.h, b.now, config, Cost(900)).keep_s, 0);
  // With no fading at all, the 100 short gaps still win over 12 long ones.
  config.half_life_s = 0;
  ResidencyPlan p = Plan(b.h, b.now, config, Cost(900));
  EXPECT_GT(p.keep_s, 0) << Show(p);
}

// ---- a new model ---------------------------------------------------------------------------------

TEST(Plan, ANewModelWithoutAPriorIsKeptForWhatAColdStartIsWorth) {
  Built none;
  for (double w : {60.0, 900.0, 3600.0}) {
    ResidencyPlan p = Plan(none.h, none.now, LearnerConfig{}, Cost(w));
    EXPECT_EQ(p.kind, ResidencyPlan::Kind::kKeep);
    EXPECT_EQ(p.keep_s, w);
    EXPECT_EQ(p.gaps, 0u);
    EXPECT_NE(p.reason.find("0 of this model's gaps seen so far"), std::string::npos) << p.reason;
  }
  // Fewer than min_gaps of its own: still W.
  Built few = From({5, 5, 5});
  EXPECT_EQ(Plan(few.h, few.now, LearnerConfig{}, Cost(900)).keep_s, 900);
  // A prior of one model only is no prior.
  PriorGaps one;
  one.Add(From(Uniform(20, 5, 10)).h);
  EXPECT_EQ(Plan(none.h, none.now, LearnerConfig{}, Cost(900), &one).keep_s, 900);
}

TEST(Plan, ANewModelFollowsWhatIsTypicalOfTheOthers) {
  PriorGaps steady;
  steady.Add(From(Uniform(50, 10, 30, 1)).h);
  steady.Add(From(Uniform(50, 10, 30, 2)).h);
  EXPECT_EQ(steady.total_weight, 2);
  EXPECT_EQ(steady.gaps.size(), 2 * PriorGaps::kPerModel);
  Built none;
  ResidencyPlan p = Plan(none.h, none.now, LearnerConfig{}, Cost(900), &steady);
  EXPECT_EQ(p.kind, ResidencyPlan::Kind::kKeep) << Show(p);
  EXPECT_GE(p.keep_s, 29) << Show(p);
  EXPECT_LE(p.keep_s, 45) << Show(p);
  EXPECT_NE(p.reason.find("this and other models'"), std::string::npos) << p.reason;

  PriorGaps rare;
  rare.Add(From(Uniform(10, 3 * 3600, 9 * 3600, 1)).h);
  rare.Add(From(Uniform(10, 3 * 3600, 9 * 3600, 2)).h);
  EXPECT_EQ(Plan(none.h, none.now, LearnerConfig{}, Cost(900), &rare).keep_s, 0);

  // Its own gaps soon outweigh the prior.
  Built own = From(Uniform(40, 3 * 3600, 9 * 3600, 3));
  EXPECT_EQ(Plan(own.h, own.now, LearnerConfig{}, Cost(900), &steady).keep_s, 0);
}

TEST(PriorGaps, EveryModelCountsAlike) {
  PriorGaps prior;
  prior.Add(UsageHistory{});  // no gaps: not counted
  EXPECT_EQ(prior.total_weight, 0);
  prior.Add(From(Uniform(100, 1, 2)).h);
  prior.Add(From({7, 7}).h);
  EXPECT_EQ(prior.total_weight, 2);
  ASSERT_EQ(prior.gaps.size(), PriorGaps::kPerModel + 2);
  double w_many = 0, w_few = 0;
  for (const auto& [g, w] : prior.gaps) (g == 7 ? w_few : w_many) += w;
  EXPECT_DOUBLE_EQ(w_many, 1);
  EXPECT_DOUBLE_EQ(w_few, 1);
}

// ---- the cold start cost and the clamps ----------------------------------------------------------

TEST(Plan, ALargerColdStartCostKeepsLongerAndColdStartsLess) {
  // Gaps from seconds to hours.
  std::vector<double> gaps;
  for (double lo : {5.0, 60.0, 600.0, 3600.0}) {
    for (double g : Uniform(15, lo, lo * 4, static_cast<uint64_t>(lo))) gaps.push_back(g);
  }
  std::shuffle(gaps.begin(), gaps.end(), std::mt19937_64(7));
  Built b = From(gaps);
  LearnerConfig config = NoPrewarm();
  config.context_width = 0;  // the plan of the whole history, whatever the latest gap
  double last_keep = -1;
  int last_cold = std::numeric_limits<int>::max();
  std::vector<double> keeps;
  for (double w : {1.0, 30.0, 120.0, 600.0, 1800.0, 7200.0, 86400.0}) {
    ResidencyPlan p = Plan(b.h, b.now, config, Cost(w));
    int cold = 0;
    for (double g : gaps) cold += g > p.keep_s;
    SCOPED_TRACE(w);
    EXPECT_GE(p.keep_s, last_keep) << Show(p);
    EXPECT_LE(cold, last_cold);
    last_keep = p.keep_s;
    last_cold = cold;
    keeps.push_back(p.keep_s);
  }
  EXPECT_EQ(keeps.front(), 0);           // a cold start worth a second: never wait
  EXPECT_GE(keeps.back(), Max(gaps) - kEps);  // worth a day: keep through everything
  EXPECT_GT(std::set<double>(keeps.begin(), keeps.end()).size(), 3u);
}

TEST(Plan, MaxKeepCapsTheKeepAndTheWindow) {
  Built steady = From(Uniform(40, 100, 200));
  CostModel c = Cost(900);
  c.max_keep_s = 60;
  ResidencyPlan p = Plan(steady.h, steady.now, LearnerConfig{}, c);
  EXPECT_EQ(p.kind, ResidencyPlan::Kind::kKeep) << Show(p);
  EXPECT_EQ(p.keep_s, 60);
  // A new model too: W capped.
  Built none;
  EXPECT_EQ(Plan(none.h, none.now, LearnerConfig{}, c).keep_s, 60);
  // A prewarm window never exceeds max_keep either.
  Built periodic = From(Uniform(40, 550, 650));
  c.max_keep_s = 30;
  ResidencyPlan w = Plan(periodic.h, periodic.now, LearnerConfig{}, c);
  if (w.kind == ResidencyPlan::Kind::kPrewarm) {
    EXPECT_LE(w.prewarm_keep_s, 30) << Show(w);
  } else {
    EXPECT_LE(w.keep_s, 30) << Show(w);
  }
}

TEST(Plan, MinKeepRaisesTheKeepAndRulesOutPrewarm) {
  Built rare = From(Uniform(40, 2 * 3600, 8 * 3600));
  CostModel c = Cost(900);
  c.min_keep_s = 120;
  EXPECT_EQ(Plan(rare.h, rare.now, LearnerConfig{}, c).keep_s, 120);
  Built periodic = From(Jittered(40, 600, 10));
  ASSERT_EQ(Plan(periodic.h, periodic.now, LearnerConfig{}, Cost(900)).kind, ResidencyPlan::Kind::kPrewarm);
  ResidencyPlan p = Plan(periodic.h, periodic.now, LearnerConfig{}, c);
  EXPECT_EQ(p.kind, ResidencyPlan::Kind::kKeep) << Show(p);
  EXPECT_GE(p.keep_s, 610) << Show(p);
}

TEST(Plan, PrewarmNeedsEnoughGapsAndGapsLongerThanTheLoad) {
  // Fewer than 2 × min_gaps: a keep plan.
  Built few = From(Jittered(7, 600, 10));
  EXPECT_EQ(Plan(few.h, few.now, LearnerConfig{}, Cost(900)).kind, ResidencyPlan::Kind::kKeep);
  // A period shorter than min_prewarm_s: kept.
  Built fast = From(Jittered(40, 20, 1));
  ResidencyPlan f = Plan(fast.h, fast.now, LearnerConfig{}, Cost(900));
  EXPECT_EQ(f.kind, ResidencyPlan::Kind::kKeep) << Show(f);
  // A load slower than a third of the period: kept.
  Built slow = From(Jittered(40, 600, 10));
  ResidencyPlan s = Plan(slow.h, slow.now, LearnerConfig{}, Cost(900, /*load_s=*/250));
  EXPECT_EQ(s.kind, ResidencyPlan::Kind::kKeep) << Show(s);
}

// ---- ReuseProbability ----------------------------------------------------------------------------

TEST(ReuseProbability, SmallPastEveryGapHighMidBurst) {
  Built b = From(Uniform(30, 5, 20));
  LearnerConfig config;
  auto long_idle = ReuseProbability(b.h, b.now, 3600, 600, config);
  ASSERT_TRUE(long_idle.has_value());
  EXPECT_DOUBLE_EQ(*long_idle, 1.0 / 31);  // as unlikely as one more gap out of all
  auto mid = ReuseProbability(b.h, b.now, 3, 30, config);
  ASSERT_TRUE(mid.has_value());
  EXPECT_DOUBLE_EQ(*mid, 1.0);
  // Between: the share of the longer gaps that end within the horizon.
  Built two = From({10, 10, 10, 100, 100, 100});
  config.context_width = 0;
  config.half_life_s = 0;
  config.time_of_day_width_h = 0;  // every gap counts alike
  EXPECT_DOUBLE_EQ(*ReuseProbability(two.h, two.now, 5, 10, config), 0.5);
  EXPECT_DOUBLE_EQ(*ReuseProbability(two.h, two.now, 50, 10, config), 0.0);
  EXPECT_DOUBLE_EQ(*ReuseProbability(two.h, two.now, 50, 60, config), 1.0);
  EXPECT_FALSE(ReuseProbability(UsageHistory{}, kStart, 10, 10, config).has_value());
}

// ---- UsageHistory --------------------------------------------------------------------------------

TEST(UsageHistory, AGapOnlyWhenIdle) {
  UsageHistory h;
  h.Arrive(100);  // never idle before: no gap
  EXPECT_EQ(h.requests, 1u);
  EXPECT_TRUE(h.gaps.empty());
  h.Arrive(101);  // a second request while the first is in flight
  EXPECT_TRUE(h.gaps.empty());
  h.Idle(110);
  ASSERT_EQ(h.idle_since, 110);
  h.Arrive(150);
  EXPECT_FALSE(h.idle_since.has_value());
  ASSERT_EQ(h.gaps.size(), 1u);
  EXPECT_EQ(h.gaps[0].end_s, 150);
  EXPECT_EQ(h.gaps[0].seconds, 40);
  EXPECT_EQ(h.gaps[0].prev_s, -1);
  h.Idle(160);
  h.Arrive(170);
  ASSERT_EQ(h.gaps.size(), 2u);
  EXPECT_EQ(h.gaps[1].seconds, 10);
  EXPECT_EQ(h.gaps[1].prev_s, 40);
  h.Idle(200);
  h.Arrive(190);  // a clock that went back: a gap of 0, never negative
  EXPECT_EQ(h.gaps.back().seconds, 0);
  EXPECT_EQ(h.requests, 5u);
}

TEST(UsageHistory, KeepsAtMostMaxGapsTheNewest) {
  UsageHistory h;
  double t = 0;
  h.Arrive(t);
  for (size_t i = 1; i <= UsageHistory::kMaxGaps + 100; ++i) {
    h.Idle(t);
    t += static_cast<double>(i);
    h.Arrive(t);
  }
  ASSERT_EQ(h.gaps.size(), UsageHistory::kMaxGaps);
  EXPECT_EQ(h.gaps.front().seconds, 101);
  EXPECT_EQ(h.gaps.back().seconds, static_cast<double>(UsageHistory::kMaxGaps + 100));
  EXPECT_EQ(h.requests, UsageHistory::kMaxGaps + 101);
}

TEST(ContextBucket, TheLatestGapsLog2) {
  UsageHistory h;
  EXPECT_EQ(ContextBucket(h), -1);
  h.gaps.push_back({0, 0, -1});
  EXPECT_EQ(ContextBucket(h), 0);
  h.gaps.push_back({0, 1023, 0});
  EXPECT_EQ(ContextBucket(h), 10);
}

TEST(FormatSeconds, AsTheReasonsWriteThem) {
  EXPECT_EQ(FormatSeconds(0), "0.0s");
  EXPECT_EQ(FormatSeconds(-3), "0.0s");
  EXPECT_EQ(FormatSeconds(2.5), "2.5s");
  EXPECT_EQ(FormatSeconds(45), "45s");
  EXPECT_EQ(FormatSeconds(60), "1m");
  EXPECT_EQ(FormatSeconds(190), "3m10s");
  EXPECT_EQ(FormatSeconds(3600), "1h");
  EXPECT_EQ(FormatSeconds(7500), "2h5m");
  EXPECT_EQ(FormatSeconds(86400 * 2), "48h");
  EXPECT_EQ(FormatSeconds(std::numeric_limits<double>::infinity()), "forever");
}

}  // namespace
}  // namespace resident::sched
