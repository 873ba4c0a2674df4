// The engine's text and cache helpers that need no model: ReusablePrefix, StopScan, CompleteUtf8Prefix,
// HasNonFinite.
#include <gtest/gtest.h>

#include <cmath>

#include <limits>
#include <vector>

#include "runner/engine.h"

namespace resident::runner {
namespace {

std::vector<int32_t> Range(int32_t n, int32_t from = 0) {
  std::vector<int32_t> v;
  for (int32_t i = 0; i < n; ++i) v.push_back(from + i);
  return v;
}

TEST(ReusablePrefixTest, AnUnseededRequestKeepsTheCommonPrefixButItsLastToken) {
  auto cached = Range(20);
  EXPECT_EQ(ReusablePrefix(cached, 0, Range(30), 8, false), 20u);
  EXPECT_EQ(ReusablePrefix(cached, 0, Range(20), 8, false), 19u);  // the same prompt: its last token again
  EXPECT_EQ(ReusablePrefix(cached, 0, Range(12), 8, false), 11u);
  auto other = Range(30);
  other[5] = 999;
  EXPECT_EQ(ReusablePrefix(cached, 0, other, 8, false), 5u);
  EXPECT_EQ(ReusablePrefix({}, 0, Range(3), 8, false), 0u);
  EXPECT_EQ(ReusablePrefix(cached, 0, {}, 8, false), 0u);
}

TEST(ReusablePrefixTest, ASeededRequestKeepsOnlyWholeCanonicalChunksBeforeItsLastChunk) {
  auto cached = Range(40);
  // Canonical: the first 32 tokens were decoded as 4 whole chunks of 8.
  EXPECT_EQ(ReusablePrefix(cached, 32, Range(50), 8, true), 32u);
  // The prompt's last chunk starts at 40 ((45 - 1) / 8 * 8): everything canonical before it.
  EXPECT_EQ(ReusablePrefix(cached, 32, Range(45), 8, true), 32u);
  // The same 40 tokens: the last chunk is [32, 40), decoded again as a fresh context does.
  EXPECT_EQ(ReusablePrefix(cached, 32, Range(40), 8, true), 32u);
  EXPECT_EQ(ReusablePrefix(cached, 40, Range(40), 8, true), 32u);
  // A prompt that ends inside the canonical prefix keeps the chunks before its last one.
  EXPECT_EQ(ReusablePrefix(cached, 32, Range(20), 8, true), 16u);
  EXPECT_EQ(ReusablePrefix(cached, 32, Range(16), 8, true), 8u);
  EXPECT_EQ(ReusablePrefix(cached, 32, Range(8), 8, true), 0u);
  // Tokens after the canonical prefix (a partial chunk, generated tokens) are never kept.
  EXPECT_EQ(ReusablePrefix(cached, 0, Range(40), 8, true), 0u);
  EXPECT_EQ(ReusablePrefix(cached, 7, Range(40), 8, true), 0u);
  // A difference inside a chunk drops that chunk and the ones after it.
  auto other = Range(50);
  other[19] = 999;
  EXPECT_EQ(ReusablePrefix(cached, 32, other, 8, true), 16u);
  // Short prompts (one chunk) are always decoded whole.
  EXPECT_EQ(ReusablePrefix(cached, 32, Range(5), 512, true), 0u);
}

TEST(StopScanTest, CutsAtAStopAndHoldsBackWhatCouldStartOne) {
  EXPECT_EQ(StopScan("hello world", {"wor"}), (std::pair<size_t, bool>{6, true}));
  EXPECT_EQ(StopScan("hello wo", {"wor"}), (std::pair<size_t, bool>{6, false}));
  EXPECT_EQ(StopScan("hello", {}), (std::pair<size_t, bool>{5, false}));
}

TEST(CompleteUtf8PrefixTest, NeverEndsInsideACharacter) {
  EXPECT_EQ(CompleteUtf8Prefix("ab\xC3"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xC3\xA9"), 4u);
  EXPECT_EQ(CompleteUtf8Prefix("\xE3\x82"), 0u);
}

// What decides that a model's outputs are broken (an error, never NaN in a 200): NaN anywhere,
// +infinity anywhere, -infinity only where it is not allowed (a logit of -inf rules a token out).
TEST(HasNonFiniteTest, NaNAndInfinitiesAnywhereInTheRow) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> row(1000, 0.5f);
  row[3] = -7.0f;
  row[4] = std::numeric_limits<float>::max();
  row[5] = std::numeric_limits<float>::lowest();
  EXPECT_FALSE(HasNonFinite(row.data(), row.size()));
  EXPECT_FALSE(HasNonFinite(row.data(), 0));
  for (size_t at : {size_t{0}, size_t{517}, size_t{999}}) {
    for (float bad : {nan, inf}) {
      std::vector<float> v = row;
      v[at] = bad;
      EXPECT_TRUE(HasNonFinite(v.data(), v.size())) << at << " " << bad;
      EXPECT_TRUE(HasNonFinite(v.data(), v.size(), /*allow_minus_infinity=*/true)) << at << " " << bad;
    }
    std::vector<float> v = row;
    v[at] = -inf;
    EXPECT_TRUE(HasNonFinite(v.data(), v.size())) << at;
    EXPECT_FALSE(HasNonFinite(v.data(), v.size(), /*allow_minus_infinity=*/true)) << at;
  }
}


TEST(LogSoftmaxAtTest, TheTokensLogProbabilityAndTheMostLikelyFirst) {
  const float logits[] = {1.0f, 3.0f, 2.0f, 3.0f};
  const double lse = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(2.0));
  TokenLogprobIds lp = LogSoftmaxAt(logits, 4, 2, 3);
  EXPECT_NEAR(lp.logprob, 2.0 - lse, 1e-6);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_EQ(lp.top[0].first, 1);  // ties: the lower id first
  EXPECT_EQ(lp.top[1].first, 3);
  EXPECT_EQ(lp.top[2].first, 2);
  EXPECT_NEAR(lp.top[0].second, 3.0 - lse, 1e-6);
  double sum = 0;
  for (int i = 0; i < 4; ++i) sum += std::exp(LogSoftmaxAt(logits, 4, i, 0).logprob);
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_TRUE(LogSoftmaxAt(logits, 4, 0, 0).top.empty());
  EXPECT_EQ(LogSoftmaxAt(logits, 4, 0, 20).top.size(), 4u);
}

}  // namespace
}  // namespace resident::runner
