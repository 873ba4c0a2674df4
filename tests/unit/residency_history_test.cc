// The dashboard's memory history: a ring buffer of an hour, and the sampler that fills it from
// the scheduler's own counters.
#include "sched/residency_history.h"

#include <gtest/gtest.h>

#include "support/fake_runners.h"

namespace resident::sched {
namespace {

using namespace std::chrono_literals;

WallTime At(int seconds) { return WallTime(std::chrono::seconds(1'800'000'000 + seconds)); }

ResidencyHistory::Sample S(int seconds, std::vector<std::pair<std::string, uint64_t>> models) {
  return {At(seconds), 200, 0, std::move(models)};
}

TEST(ResidencyHistoryTest, KeepsTheLastSpanOfSamplesOldestFirst) {
  ResidencyHistory h(1h);
  for (int t = 0; t <= 2 * 3600; t += 2) h.Add(S(t, {{"a:latest", 10}}));
  auto all = h.Since(WallTime::min());
  ASSERT_EQ(all.size(), 1801u);  // an hour at 2 s, both ends included
  EXPECT_EQ(all.front().time, At(3600));
  EXPECT_EQ(all.back().time, At(7200));
  EXPECT_EQ(all.back().models, (std::vector<std::pair<std::string, uint64_t>>{{"a:latest", 10}}));
}

TEST(ResidencyHistoryTest, BoundedByCountAndNeverGoesBackInTime) {
  ResidencyHistory h(1h, 3);
  for (int t = 0; t < 5; ++t) h.Add(S(t, {}));
  EXPECT_EQ(h.size(), 3u);
  h.Add(S(1, {{"late", 1}}));  // older than the newest: dropped
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.Since(WallTime::min()).back().time, At(4));
}

TEST(ResidencyHistoryTest, SinceReturnsOnlyNewerSamplesWithTheirModels) {
  ResidencyHistory h;
  h.Add(S(0, {{"a:latest", 10}}));
  h.Add(S(2, {{"a:latest", 10}, {"b:latest", 20}}));
  h.Add(S(4, {{"b:latest", 30}}));
  auto newer = h.Since(At(0));
  ASSERT_EQ(newer.size(), 2u);
  EXPECT_EQ(newer[0].models, (std::vector<std::pair<std::string, uint64_t>>{{"a:latest", 10}, {"b:latest", 20}}));
  EXPECT_EQ(newer[1].models, (std::vector<std::pair<std::string, uint64_t>>{{"b:latest", 30}}));
  EXPECT_TRUE(h.Since(At(4)).empty());
}

TEST(HistorySamplerTest, SamplesEachLoadedModelsBytesTheBudgetAndTheUse) {
  FakeClock clock;
  testing::FakeFactory factory;
  factory.sizes["a"] = 700;
  Scheduler::Options o;
  o.timer_thread = false;
  o.memory_budget = 5000;
  Scheduler s(o, factory, clock);
  ModelSpec spec;
  spec.name = "a:latest";
  spec.load.model_path = "a";
  auto lease = s.Acquire(spec, std::nullopt);
  ASSERT_TRUE(lease.ok());
  ResidencyHistory h;
  {
    HistorySampler sampler(s, clock, h, 1h);  // its thread samples once at start
    sampler.SampleNow();
  }
  auto samples = h.Since(WallTime::min());
  ASSERT_GE(samples.size(), 1u);
  EXPECT_EQ(samples.back().budget, 5000u);
  EXPECT_EQ(samples.back().in_use, 700u);
  EXPECT_EQ(samples.back().models, (std::vector<std::pair<std::string, uint64_t>>{{"a:latest", 700}}));
}

}  // namespace
}  // namespace resident::sched
