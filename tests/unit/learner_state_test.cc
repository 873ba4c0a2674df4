// The learner's state file: a round trip, and every corrupt form refused (never trusted).
#include "sched/learner_state.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "support/test_env.h"

namespace resident::sched {
namespace {

TEST(LearnerStateTest, HistoriesSurviveARoundTripExactly) {
  std::map<std::string, UsageHistory> in;
  UsageHistory& a = in["llama3.2:latest"];
  a.Idle(1000.25);
  a.Arrive(1010.5);
  a.Idle(1011);
  a.Arrive(1611.125);
  a.Idle(1612);
  a.bytes = 2'000'000'000;
  a.load_s = 1.75;
  in["other/model:q4"].requests = 1;
  auto out = ParseLearnerState(FormatLearnerState(in));
  ASSERT_TRUE(out.ok()) << out.status().message();
  ASSERT_EQ(out->size(), 2u);
  const UsageHistory& b = out->at("llama3.2:latest");
  EXPECT_EQ(b.requests, 2u);
  EXPECT_EQ(b.bytes, 2'000'000'000u);
  EXPECT_EQ(b.load_s, 1.75);
  ASSERT_TRUE(b.idle_since.has_value());
  EXPECT_EQ(*b.idle_since, 1612);
  ASSERT_EQ(b.gaps.size(), 2u);
  EXPECT_EQ(b.gaps[0].seconds, 10.25);
  EXPECT_EQ(b.gaps[0].prev_s, -1);
  EXPECT_EQ(b.gaps[1].seconds, 600.125);
  EXPECT_EQ(b.gaps[1].prev_s, 10.25);
  EXPECT_FALSE(out->at("other/model:q4").idle_since.has_value());
}

TEST(LearnerStateTest, EveryCorruptFormIsRefusedWithItsLine) {
  const std::string head = "resident-learner 1\n";
  struct Case {
    std::string text, message;
  } cases[] = {
      {"", "the file is empty"},
      {"something else\n", "line 1: not a resident learner file"},
      {"resident-learner 2\n", "line 1: version 2"},
      {head + "model a 1 2 3\n", "line 2: a model line"},
      {head + "model a 1 2 nan -\n", "line 2: a number"},
      {head + "model a -1 2 3 -\n", "line 2: a number"},
      {head + "model a 1 2 3 -\nmodel a 1 2 3 -\n", "line 3: model a twice"},
      {head + "gap 1 2 3\n", "line 2: a gap before any model line"},
      {head + "model a 1 2 3 -\ngap 1 inf -1\n", "line 3: a gap line"},
      {head + "model a 1 2 3 -\ngap 1 2 -5\n", "line 3: a gap line"},
      {head + "model a 1 2 3 -\n\n", "line 3: an empty line"},
      {head + "rm -rf /\n", "line 2: unknown record"},
  };
  for (const auto& c : cases) {
    auto r = ParseLearnerState(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.message), std::string::npos) << r.status().message();
  }
  std::string many = head + "model a 1 2 3 -\n";
  for (size_t i = 0; i <= UsageHistory::kMaxGaps; ++i) many += "gap 1 2 3\n";
  EXPECT_FALSE(ParseLearnerState(many).ok());
}

TEST(LearnerStateTest, SavingIsAtomicAndLoadingNamesTheFile) {
  const std::string dir = testing::TestCaseDir();
  const std::string path = dir + "/state";
  EXPECT_EQ(LoadLearnerState(path).status().code(), StatusCode::kNotFound);
  std::map<std::string, UsageHistory> in;
  in["m:latest"].requests = 3;
  ASSERT_TRUE(SaveLearnerState(path, in).ok());
  ASSERT_TRUE(SaveLearnerState(path, in).ok());  // over the old one
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 1u);  // no temporary file left
  auto loaded = LoadLearnerState(path);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->at("m:latest").requests, 3u);
  { std::ofstream(path) << "resident-learner 1\ngap\n"; }
  auto bad = LoadLearnerState(path);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(path), std::string::npos);
  EXPECT_EQ(WriteFileAtomically(dir + "/no/such/dir/file", "x").code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace resident::sched
