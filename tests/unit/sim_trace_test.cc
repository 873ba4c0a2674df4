// Trace parsing for `resident bench`: the request CSV and the Azure per-minute format.
#include "sim/trace.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace resident::sim {
namespace {

TEST(SimTraceTest, ParsesTheRequestCsvWithAHeaderAndSortsByTime) {
  auto t = ParseTrace("timestamp_s,model,prompt_tokens,output_tokens\n2.5,b,10,20\n# comment\n0,a,1,2\n\n1,a,3,4\n",
                      "t.csv");
  ASSERT_TRUE(t.ok()) << t.status().message();
  ASSERT_EQ(t->requests.size(), 3u);
  EXPECT_EQ(t->format, "csv");
  EXPECT_EQ(t->requests[0].model, "a");
  EXPECT_EQ(t->requests[1].prompt_tokens, 3);
  EXPECT_EQ(t->requests[2].model, "b");
  EXPECT_EQ(t->requests[2].output_tokens, 20);
  EXPECT_DOUBLE_EQ(t->duration_s, 2.5);
  EXPECT_EQ(t->models, (std::vector<std::string>{"b", "a"}));
}

TEST(SimTraceTest, ReportsTheLineOfABadRow) {
  auto t = ParseTrace("0,a,1,2\n1,a,x,2\n", "t.csv");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().message(), "t.csv:2: bad prompt_tokens");
  EXPECT_EQ(ParseTrace("0,a,1\n", "t.csv").status().message(),
            "t.csv:1: expected timestamp_s,model,prompt_tokens,output_tokens");
}

TEST(SimTraceTest, SpreadsAzureInvocationsInsideTheirMinuteBySeed) {
  std::string text =
      "HashFunction,HashApp,HashOwner,minute_1,minute_2,minute_3\n"
      "0123456789abcdef,app1,o,2,0,3\n"
      "fedcba9876543210,app2,o,0,1,0\n";
  TraceOptions o;
  o.seed = 7;
  auto t = ParseTrace(text, "x_inv.csv", o);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->format, "azure");
  EXPECT_EQ(t->models, (std::vector<std::string>{"fn-01234567", "fn-fedcba98"}));
  ASSERT_EQ(t->requests.size(), 6u);
  EXPECT_DOUBLE_EQ(t->duration_s, 180);
  int per_minute[3] = {0, 0, 0};
  for (const auto& r : t->requests) {
    ASSERT_GE(r.t, 0);
    ASSERT_LT(r.t, 180);
    ++per_minute[static_cast<int>(r.t / 60)];
    EXPECT_EQ(r.prompt_tokens, o.azure_prompt_tokens);
  }
  EXPECT_EQ(per_minute[0], 2);
  EXPECT_EQ(per_minute[1], 1);
  EXPECT_EQ(per_minute[2], 3);
  auto again = ParseTrace(text, "x_inv.csv", o);
  o.seed = 8;
  auto other = ParseTrace(text, "x_inv.csv", o);
  bool same = true, differs = false;
  for (size_t i = 0; i < 6; ++i) {
    same = same && again->requests[i].t == t->requests[i].t;
    differs = differs || other->requests[i].t != t->requests[i].t;
  }
  EXPECT_TRUE(same);
  EXPECT_TRUE(differs);
}

TEST(SimTraceTest, SliceTakesAWindowAndShiftsIt) {
  auto t = ParseTrace("0,a,1,1\n70,a,1,1\n90,b,1,1\n130,a,1,1\n", "t.csv");
  ASSERT_TRUE(t.ok());
  Trace s = Slice(*t, 60, 1, 0);
  ASSERT_EQ(s.requests.size(), 2u);
  EXPECT_DOUBLE_EQ(s.requests[0].t, 10);
  EXPECT_DOUBLE_EQ(s.duration_s, 60);
  EXPECT_EQ(Slice(*t, 0, 0, 3).requests.size(), 3u);
}

TEST(SimTraceTest, ReadsTheSharedAzureTraceWithItsSidecars) {
  const std::string path = "/work/shared/traces/azure2019_10fn_inv.csv";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  auto t = LoadTrace(path);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->requests.size(), 28432u);
  EXPECT_EQ(t->models.size(), 10u);
  EXPECT_DOUBLE_EQ(t->duration_s, 86400);
  int with_size = 0, with_time = 0;
  for (const auto& m : t->models) {
    with_size += t->hints[m].bytes > 0;
    with_time += t->hints[m].service_s > 0;
  }
  EXPECT_EQ(with_size, 10);
  EXPECT_EQ(with_time, 10);
}

}  // namespace
}  // namespace resident::sim
