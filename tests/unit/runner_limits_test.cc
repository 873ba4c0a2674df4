// The memory cap and the watchdog's verdicts of runner/runner_limits.h, number by number.
#include "runner/runner_limits.h"

#include <gtest/gtest.h>

namespace resident::runner {
namespace {

using std::chrono::milliseconds;
constexpr uint64_t kMiB = 1ull << 20;

TEST(MemoryCap, NoPredictionNoCap) {
  EXPECT_FALSE(CapWhileLoading(0, 512 * kMiB).enabled());
  EXPECT_EQ(CapWhileLoading(0, 512 * kMiB).bytes(), 0u);
  EXPECT_FALSE(CapOnceLoaded(0, 70 * kMiB, 512, 32000, 512 * kMiB).enabled());
  EXPECT_EQ(AddressSpaceLimit(1000 * kMiB, 100 * kMiB, MemoryCap{}), 0u);
}

TEST(MemoryCap, WhileLoadingThePredictionAndTheMargin) {
  // A small model: the least margin.
  MemoryCap small = CapWhileLoading(75 * kMiB, 512 * kMiB);
  EXPECT_EQ(small.bytes(), 587 * kMiB);
  EXPECT_EQ(small.outputs, 0u);
  // A big one: a quarter of its prediction.
  MemoryCap big = CapWhileLoading(16000 * kMiB, 512 * kMiB);
  EXPECT_EQ(big.margin, 4000 * kMiB);
  EXPECT_EQ(big.bytes(), 20000 * kMiB);
}

TEST(MemoryCap, OnceLoadedABatchOfOutputsAndTheLargerOfPredictedAndMeasured) {
  // The 20M synthetic model as measured: predicted 75.7 MB, 70 MB after the load; an embedding
  // of a long input took it to 200 MB (512 outputs of 32000 logits, twice).
  MemoryCap cap = CapOnceLoaded(75'700'000, 70'000'000, 512, 32000, 0);
  EXPECT_FALSE(cap.measured);
  EXPECT_EQ(cap.base, 75'700'000u);
  EXPECT_EQ(cap.outputs, 2ull * 512 * 32000 * 4);
  EXPECT_EQ(cap.margin, 75'700'000u / 4);
  EXPECT_GT(cap.bytes(), 200'000'000u);
  // A load that took more than predicted: the cap starts from what it took.
  MemoryCap more = CapOnceLoaded(100 * kMiB, 300 * kMiB, 512, 32000, 512 * kMiB);
  EXPECT_TRUE(more.measured);
  EXPECT_EQ(more.base, 300 * kMiB);
  EXPECT_EQ(more.margin, 512 * kMiB);  // the margin is the prediction's
  EXPECT_NE(more.Describe().find("measured at load"), std::string::npos) << more.Describe();
}

TEST(MemoryCap, DescribeNamesEveryPart) {
  MemoryCap cap = CapOnceLoaded(75'000'000, 70'000'000, 512, 32000, 512'000'000);
  EXPECT_EQ(cap.Describe(), "718 MB (predicted 75.0 MB + 131 MB for a batch's outputs + margin 512 MB)");
}

TEST(MemoryCap, TheAddressSpaceLimitAddsWhatTheCapStillAllowsAndSlack) {
  MemoryCap cap = CapWhileLoading(100 * kMiB, 400 * kMiB);  // 500 MiB
  EXPECT_EQ(AddressSpaceLimit(900 * kMiB, 200 * kMiB, cap), 900 * kMiB + 300 * kMiB + kAddressSpaceSlack);
  // Above its cap already (the watchdog kills it): no more than it has, and the slack.
  EXPECT_EQ(AddressSpaceLimit(900 * kMiB, 600 * kMiB, cap), 900 * kMiB + kAddressSpaceSlack);
}

TEST(JudgeRunner, EachVerdict) {
  const MemoryCap cap = CapWhileLoading(100 * kMiB, 100 * kMiB);  // 200 MiB
  const milliseconds timeout(2000);
  RunnerReading r;
  r.rss = 150 * kMiB;
  EXPECT_EQ(JudgeRunner(r, cap, timeout), RunnerVerdict::kFine);
  r.rss = 201 * kMiB;
  EXPECT_EQ(JudgeRunner(r, cap, timeout), RunnerVerdict::kOverCap);
  EXPECT_EQ(JudgeRunner(r, MemoryCap{}, timeout), RunnerVerdict::kFine);  // no cap
  r.rss = 0;
  r.unanswered = milliseconds(1999);
  EXPECT_EQ(JudgeRunner(r, cap, timeout), RunnerVerdict::kFine);
  r.unanswered = milliseconds(2000);
  EXPECT_EQ(JudgeRunner(r, cap, timeout), RunnerVerdict::kNotAnswering);
  r.unanswered.reset();
  r.stalled = milliseconds(2500);
  EXPECT_EQ(JudgeRunner(r, cap, timeout), RunnerVerdict::kNoProgress);
  // Health checks off: only the cap.
  EXPECT_EQ(JudgeRunner(r, cap, milliseconds(0)), RunnerVerdict::kFine);
  r.rss = 300 * kMiB;
  EXPECT_EQ(JudgeRunner(r, cap, milliseconds(0)), RunnerVerdict::kOverCap);
}

}  // namespace
}  // namespace resident::runner
