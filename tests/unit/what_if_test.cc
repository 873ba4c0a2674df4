// What-if on one's own traffic: the cheapest setting, priced with the cold start cost, and the
// sentence that says what to change.
#include "sim/what_if.h"

#include <gtest/gtest.h>

namespace resident::sim {
namespace {

WhatIfRow Row(const std::string& label, const std::string& setting, int cold, double idle_gbs, double cost) {
  WhatIfRow r;
  r.label = label;
  r.setting = setting;
  r.result.label = label;
  r.result.requests = 1234;
  r.result.cold = cold;
  r.result.idle_gbs = idle_gbs;
  r.cost_gbs = cost;
  return r;
}

TEST(WhatIfTest, CostIsIdleMemoryPlusColdStartsPricedPerModel) {
  SimSetup setup;
  setup.models["a"] = {2'000'000'000, 1.0};
  setup.models["b"] = {500'000'000, 1.0};
  SimResult r;
  r.idle_gbs = 10;
  r.cold_by_model = {{"a", 2}, {"b", 1}};
  // a: 2 cold starts x 2 GB x 300 s; b: 1 x 0.5 GB x 900 s (no price given: 15 minutes).
  EXPECT_DOUBLE_EQ(CostGbs(r, setup, {{"a", 300}}), 10 + 1200 + 450);
}

TEST(WhatIfTest, AdvisesTheCheapestSettingAndSaysWhatItTrades) {
  WhatIf w;
  w.rows = {Row("keep_alive 5m", "5m", 12, 20.8, 500), Row("keep_alive auto", "auto", 15, 12.3, 400)};
  w.current = Row("yours (keep_alive 5m)", "5m", 12, 20.8, 500);
  Advise(w, "15m0s,300x");
  EXPECT_EQ(w.best, 1);
  EXPECT_EQ(w.advice,
            "keep_alive auto would have cost least on these 1,234 requests: 41% less idle memory than yours "
            "(12.3 vs 20.8 GB·s), 3 more cold starts (15 vs 12), where yours is keep_alive 5m (a cold start "
            "counted as cold_start_cost 15m0s,300x of the model's idle time). Set RESIDENT_KEEP_ALIVE=auto.");
}

TEST(WhatIfTest, SaysSoWhenTheCurrentSettingIsAlreadyTheCheapest) {
  WhatIf w;
  w.rows = {Row("keep_alive 5m", "5m", 12, 20.8, 500), Row("keep_alive 10m", "10m", 10, 30, 501)};
  w.current = Row("yours (keep_alive 5m)", "5m", 12, 20.8, 500);
  Advise(w, "15m0s,300x");
  EXPECT_EQ(w.best, -1);
  EXPECT_EQ(w.advice.rfind("Your setting, keep_alive 5m, would have cost least on these 1,234 requests", 0), 0u)
      << w.advice;
  EXPECT_NE(w.advice.find("The nearest, keep_alive 10m: 44% more idle memory than yours (30 vs 20.8 GB·s), 2 fewer "
                          "cold starts (10 vs 12)."),
            std::string::npos)
      << w.advice;
}

TEST(WhatIfTest, NoRequestsNoAdvice) {
  WhatIf w;
  w.current = Row("yours (keep_alive 5m)", "5m", 0, 0, 0);
  w.current.result.requests = 0;
  Advise(w, "15m0s,300x");
  EXPECT_EQ(w.advice.rfind("No requests recorded yet", 0), 0u);
}

TEST(WhatIfTest, RunsEveryStandardSettingAndTheCurrentOneOnATrace) {
  Trace t;
  t.format = "csv";
  t.models = {"a"};
  for (int i = 0; i < 10; ++i) t.requests.push_back({i * 600.0, "a", 10, 10});
  t.duration_s = 6000;
  SetupDefaults d;
  d.default_bytes = 1'000'000'000;
  SimSetup setup = MakeSetup(t, d);
  SimPolicy current{"yours (keep_alive 1m)", KeepAlive::Of(std::chrono::minutes(1)), std::nullopt};
  auto w = RunWhatIf(t, setup, current, {{"a", 900}});
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->rows.size(), 7u);
  EXPECT_EQ(w->current.result.cold, 10);  // a request every 10 minutes, kept for 1: always cold
  EXPECT_EQ(w->rows[4].label, "keep_alive 30m");
  EXPECT_EQ(w->rows[4].result.cold, 1);
  w->current.setting = "1m";
  Advise(*w, "15m0s");
  // 10 minutes idle (600 GB·s) costs less than a cold start (900 GB·s): keep it longer.
  ASSERT_GE(w->best, 0);
  EXPECT_EQ(w->advice.find("Set RESIDENT_KEEP_ALIVE=1m"), std::string::npos) << w->advice;
}

}  // namespace
}  // namespace resident::sim
