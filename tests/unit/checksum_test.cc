// Checksum64: XXH64 as its specification gives it, one-shot and streamed.
#include "core/checksum.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace resident {
namespace {

TEST(ChecksumTest, IsXxh64) {
  // XXH64 with seed 0: the reference values of the specification's test vectors.
  EXPECT_EQ(Checksum64(""), 0xEF46DB3751D8E999ull);
  EXPECT_EQ(Checksum64("a"), 0xD24EC4F1A98C6E5Bull);
  EXPECT_EQ(Checksum64("abc"), 0x44BC2CF5AD770999ull);
  EXPECT_EQ(Checksum64("Nobody inspects the spammish repetition"), 0xFBCEA83C8A378BF1ull);
  EXPECT_EQ(Hex64(0xEF46DB3751D8E999ull), "ef46db3751d8e999");
  EXPECT_EQ(Hex64(1), "0000000000000001");
  // Fed in pieces of every size, the same sum.
  std::string text(1000, '\0');
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>(i * 7 + 3);
  for (size_t piece : {size_t{1}, size_t{3}, size_t{31}, size_t{32}, size_t{33}, size_t{100}, size_t{1000}}) {
    Checksum64Stream stream;
    for (size_t at = 0; at < text.size(); at += piece) stream.Update(text.data() + at, std::min(piece, text.size() - at));
    EXPECT_EQ(stream.Digest(), Checksum64(text)) << piece;
  }
  EXPECT_EQ(Checksum64Stream().Digest(), Checksum64(""));
  // Every length up to two stripes goes through another tail: one changed byte changes the sum.
  std::string s(80, 'x');
  for (size_t n = 0; n <= s.size(); ++n) {
    std::string t = s.substr(0, n);
    if (n == 0) continue;
    const uint64_t before = Checksum64(t);
    t[n / 2] ^= 1;
    EXPECT_NE(Checksum64(t), before) << n;
  }
}

}  // namespace
}  // namespace resident
