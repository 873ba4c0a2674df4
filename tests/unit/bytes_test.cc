#include "core/bytes.h"

#include <gtest/gtest.h>

namespace resident {
namespace {

TEST(Bytes, ParsesCountsWithSiSuffixes) {
  EXPECT_EQ(*ParseCount("20M"), 20'000'000u);
  EXPECT_EQ(*ParseCount("800m"), 800'000'000u);
  EXPECT_EQ(*ParseCount("1.5G"), 1'500'000'000u);
  EXPECT_EQ(*ParseCount("7B"), 7'000'000'000u);
  EXPECT_EQ(*ParseCount("512K"), 512'000u);
  EXPECT_EQ(*ParseCount("42"), 42u);
  EXPECT_FALSE(ParseCount("").ok());
  EXPECT_FALSE(ParseCount("-5M").ok());
  EXPECT_FALSE(ParseCount("20X").ok());
  EXPECT_FALSE(ParseCount("1e30T").ok());
}

TEST(Bytes, ParsesSizesInDecimalAndBinaryUnits) {
  EXPECT_EQ(*ParseBytes("12GiB"), 12ull << 30);
  EXPECT_EQ(*ParseBytes("12GB"), 12'000'000'000ull);
  EXPECT_EQ(*ParseBytes("512MiB"), 512ull << 20);
  EXPECT_EQ(*ParseBytes("1.5 GiB"), 3ull << 29);
  EXPECT_EQ(*ParseBytes("4096"), 4096u);
  EXPECT_EQ(*ParseBytes("64k"), 64'000u);
  EXPECT_FALSE(ParseBytes("12 parsecs").ok());
  EXPECT_FALSE(ParseBytes("GiB").ok());
}

TEST(Bytes, FormatsLikeOllama) {
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(39'793'024), "39.8 MB");
  EXPECT_EQ(FormatBytes(1'605'223'424), "1.6 GB");
  EXPECT_EQ(FormatBytes(123'000'000'000), "123 GB");
  EXPECT_EQ(FormatCount(19'500'000), "20M");
  EXPECT_EQ(FormatCount(802'200'000), "802M");
  EXPECT_EQ(FormatCount(8'030'000'000), "8.0B");
}

}  // namespace
}  // namespace resident
