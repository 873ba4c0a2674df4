#include "sched/policy.h"

#include <gtest/gtest.h>

namespace resident::sched {
namespace {

using namespace std::chrono_literals;
const KeepAlive k5m = KeepAlive::Of(5min);

TEST(Policy, ParsesModelsPinsAndClamps) {
  auto p = ParsePolicy(R"(
min_keep_alive = "1m"
max_keep_alive = 7200        # seconds
memory_limit = "12GiB"

[models."Llama3.2"]
keep_alive = "24h"
pin = true

[models.big-coder]
keep_alive = 0
)", "resident.toml", k5m);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->min_keep_alive, KeepAlive::Of(1min));
  EXPECT_EQ(p->max_keep_alive, KeepAlive::Of(2h));
  EXPECT_EQ(p->memory_limit, 12ull << 30);
  EXPECT_TRUE(p->Pinned("llama3.2:latest"));
  EXPECT_TRUE(p->Pinned("LLAMA3.2"));
  EXPECT_FALSE(p->Pinned("big-coder"));
  EXPECT_EQ(p->DefaultFor("llama3.2"), KeepAlive::Of(2h));       // 24h clamped to the max
  EXPECT_EQ(p->DefaultFor("big-coder:latest"), KeepAlive::Of(1min));  // 0 raised to the min
  EXPECT_EQ(p->DefaultFor("anything"), k5m);
  EXPECT_EQ(p->Clamp(KeepAlive::Forever()), KeepAlive::Of(2h));
}

TEST(Policy, ForeverFormsAndNoClamps) {
  auto p = ParsePolicy("[models.a]\nkeep_alive = -1\n[models.b]\nkeep_alive = \"-1m\"\n", "f", k5m);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->DefaultFor("a"), KeepAlive::Forever());
  EXPECT_EQ(p->DefaultFor("b"), KeepAlive::Forever());
}

TEST(Policy, ErrorsNameTheFileLineAndReason) {
  auto syntax = ParsePolicy("min_keep_alive = \"1m\"\n[models.a\n", "conf.toml", k5m);
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.status().message().rfind("conf.toml:2:", 0), 0u) << syntax.status().message();

  auto unknown = ParsePolicy("[models.a]\nkeep_alive = \"5m\"\npinn = true\n", "conf.toml", k5m);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("conf.toml:3:"), std::string::npos) << unknown.status().message();
  EXPECT_NE(unknown.status().message().find("unknown key \"pinn\""), std::string::npos);

  auto bad_duration = ParsePolicy("[models.a]\nkeep_alive = \"300\"\n", "conf.toml", k5m);
  ASSERT_FALSE(bad_duration.ok());
  EXPECT_NE(bad_duration.status().message().find("conf.toml:2:"), std::string::npos);
  EXPECT_NE(bad_duration.status().message().find("missing unit"), std::string::npos);

  auto bad_pin = ParsePolicy("[models.a]\npin = \"yes\"\n", "conf.toml", k5m);
  ASSERT_FALSE(bad_pin.ok());
  EXPECT_NE(bad_pin.status().message().find("pin must be true or false"), std::string::npos);

  auto top = ParsePolicy("keep_alive_default = 3\n", "conf.toml", k5m);
  ASSERT_FALSE(top.ok());
  EXPECT_NE(top.status().message().find("conf.toml:1:1: unknown key"), std::string::npos) << top.status().message();

  auto inverted = ParsePolicy("min_keep_alive = \"1h\"\nmax_keep_alive = \"1m\"\n", "conf.toml", k5m);
  ASSERT_FALSE(inverted.ok());
  EXPECT_NE(inverted.status().message().find("below min_keep_alive"), std::string::npos);
  // Where, like every other error: the max_keep_alive line, and the line of min_keep_alive.
  EXPECT_EQ(inverted.status().message(),
            "conf.toml:2:1: max_keep_alive (1m0s) is below min_keep_alive (1h0m0s, line 1)");
  auto inverted_other_order =
      ParsePolicy("max_keep_alive = \"1m\"\n\n  min_keep_alive = \"2m\"\n", "conf.toml", k5m);
  ASSERT_FALSE(inverted_other_order.ok());
  EXPECT_EQ(inverted_other_order.status().message().rfind("conf.toml:1:1: max_keep_alive", 0), 0u)
      << inverted_other_order.status().message();
  EXPECT_NE(inverted_other_order.status().message().find("(2m0s, line 3)"), std::string::npos);

  auto limit = ParsePolicy("memory_limit = \"lots\"\n", "conf.toml", k5m);
  EXPECT_FALSE(limit.ok());

  EXPECT_EQ(LoadPolicyFile("/nonexistent/resident.toml", k5m).status().code(), StatusCode::kNotFound);
}

TEST(Policy, ModelKeysNormalizeLikeModelNames) {
  EXPECT_EQ(PolicyModelKey("Llama3.2"), "llama3.2:latest");
  EXPECT_EQ(PolicyModelKey("llama3.2:1b"), "llama3.2:1b");
  EXPECT_EQ(PolicyModelKey("host:5000/ns/m"), "host:5000/ns/m:latest");
  EXPECT_EQ(PolicyModelKey("library/llama3.2"), "llama3.2:latest");
  EXPECT_EQ(PolicyModelKey("registry.ollama.ai/library/llama3.2:latest"), "llama3.2:latest");
  EXPECT_EQ(PolicyModelKey("me/mine:v2"), "me/mine:v2");
}

// Found by a user: only [models."llama3.2"] applied; the long forms of the same name, which
// requests may use, matched nothing, since entries were keyed by their text plus ":latest".
TEST(Policy, AnEntryAppliesUnderEveryFormOfItsName) {
  for (const char* entry : {"llama3.2", "Llama3.2:latest", "library/llama3.2", "registry.ollama.ai/library/llama3.2:latest",
                            "REGISTRY.OLLAMA.AI/library/llama3.2"}) {
    auto p = ParsePolicy(std::string("[models.\"") + entry + "\"]\npin = true\n", "f", k5m);
    ASSERT_TRUE(p.ok()) << entry << ": " << p.status().message();
    // The scheduler's names are the catalog's ("llama3.2:latest"); requests may write any form.
    for (const char* name : {"llama3.2:latest", "llama3.2", "library/llama3.2:latest",
                             "registry.ollama.ai/library/llama3.2:latest"}) {
      EXPECT_TRUE(p->Pinned(name)) << "entry " << entry << ", model " << name;
    }
    EXPECT_FALSE(p->Pinned("llama3.2:1b")) << entry;
    EXPECT_FALSE(p->Pinned("other/llama3.2")) << entry;
  }
  auto tagged = ParsePolicy("[models.\"myhost:5000/team/coder:7b\"]\nkeep_alive = \"1h\"\n", "f", k5m);
  ASSERT_TRUE(tagged.ok()) << tagged.status().message();
  EXPECT_EQ(tagged->DefaultFor("myhost:5000/team/coder:7b"), KeepAlive::Of(1h));
  EXPECT_EQ(tagged->DefaultFor("team/coder:7b"), k5m);  // another host: another model
}

TEST(Policy, AnEntryThatIsNotAModelNameOrRepeatsOneIsAnErrorWithItsLine) {
  auto bad = ParsePolicy("min_keep_alive = \"1m\"\n\n[models.\"../etc/passwd\"]\npin = true\n", "conf.toml", k5m);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("conf.toml:3:", 0), 0u) << bad.status().message();
  EXPECT_NE(bad.status().message().find("invalid model name"), std::string::npos) << bad.status().message();
  auto many = ParsePolicy("[models.\"a/b/c/d\"]\npin = true\n", "conf.toml", k5m);
  ASSERT_FALSE(many.ok());
  EXPECT_EQ(many.status().message().rfind("conf.toml:1:", 0), 0u) << many.status().message();

  auto twice = ParsePolicy("[models.llama3]\npin = true\n[models.\"library/llama3:latest\"]\nkeep_alive = 0\n",
                           "conf.toml", k5m);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().message(),
            "conf.toml:3:9: [models.\"library/llama3:latest\"] names the same model as [models.\"llama3\"] (line 1)");
}

// ---- keep_alive "auto", cold_start_cost, preload --------------------------------------------------

TEST(Policy, KeepAliveAutoAtTheTopLevelAndPerModel) {
  auto p = ParsePolicy(R"(
keep_alive = "auto"
min_keep_alive = "1m"

[models.coder]
keep_alive = "auto"

[models.chat]
keep_alive = "10m"
)", "resident.toml", k5m);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->default_keep_alive, KeepAlive::Auto());
  EXPECT_EQ(p->file_keep_alive, KeepAlive::Auto());
  EXPECT_EQ(p->DefaultFor("coder"), KeepAlive::Auto());      // the clamps bound the learner's times instead
  EXPECT_EQ(p->DefaultFor("anything"), KeepAlive::Auto());
  EXPECT_EQ(p->DefaultFor("chat"), KeepAlive::Of(10min));
  EXPECT_EQ(p->Clamp(KeepAlive::Auto()), KeepAlive::Auto());

  // Per model under a fixed default.
  auto q = ParsePolicy("keep_alive = \"30m\"\n[models.coder]\nkeep_alive = \"auto\"\n", "f", k5m);
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->DefaultFor("coder:latest"), KeepAlive::Auto());
  EXPECT_EQ(q->DefaultFor("other"), KeepAlive::Of(30min));
}

TEST(Policy, TheFilesKeepAliveYieldsToTheEnvironmentWhenAsked) {
  auto p = ParsePolicy("keep_alive = \"auto\"\n", "f", KeepAlive::Of(2min), /*env_default_wins=*/true);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->default_keep_alive, KeepAlive::Of(2min));
  EXPECT_EQ(p->file_keep_alive, KeepAlive::Auto());  // kept for reports
  auto q = ParsePolicy("keep_alive = \"1h\"\n", "f", KeepAlive::Of(2min));
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->default_keep_alive, KeepAlive::Of(1h));
  auto none = ParsePolicy("", "f", KeepAlive::Of(2min));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->default_keep_alive, KeepAlive::Of(2min));
  EXPECT_FALSE(none->file_keep_alive.has_value());
}

TEST(Policy, AutoIsOnlyForKeepAliveAndSpelledExactly) {
  auto min = ParsePolicy("min_keep_alive = \"auto\"\n", "conf.toml", k5m);
  ASSERT_FALSE(min.ok());
  EXPECT_EQ(min.status().message(), "conf.toml:1:18: min_keep_alive: time: invalid duration \"auto\"");
  auto upper = ParsePolicy("\n[models.a]\nkeep_alive = \"Auto\"\n", "conf.toml", k5m);
  ASSERT_FALSE(upper.ok());
  EXPECT_EQ(upper.status().message(), "conf.toml:3:14: keep_alive: time: invalid duration \"Auto\"");
  auto wrong_type = ParsePolicy("keep_alive = true\n", "conf.toml", k5m);
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_EQ(wrong_type.status().message(),
            "conf.toml:1:14: keep_alive must be a duration such as \"5m\" or a number of seconds, or \"auto\"");
  auto max_type = ParsePolicy("max_keep_alive = [1]\n", "conf.toml", k5m);
  ASSERT_FALSE(max_type.ok());
  EXPECT_EQ(max_type.status().message(),
            "conf.toml:1:18: max_keep_alive must be a duration such as \"5m\" or a number of seconds");
}

TEST(ColdStartCost, EveryForm) {
  struct Case {
    const char* text;
    std::optional<double> multiple;
    std::optional<Duration> idle;
    std::optional<double> gb_seconds;
    const char* formatted;
  };
  const Case cases[] = {
      {"300x", 300, std::nullopt, std::nullopt, "300x"},
      {"2.5X", 2.5, std::nullopt, std::nullopt, "2.5x"},
      {"15m", std::nullopt, Duration(15min), std::nullopt, "15m0s"},
      {"1h30m", std::nullopt, Duration(90min), std::nullopt, "1h30m0s"},
      {"600", std::nullopt, Duration(600s), std::nullopt, "10m0s"},
      {"0", std::nullopt, Duration(0s), std::nullopt, "0s"},
      {"500GBs", std::nullopt, std::nullopt, 500, "500GBs"},
      {"15m,300x", 300, Duration(15min), std::nullopt, "15m0s,300x"},
      {" 10m , 2x , 100GBs ", 2, Duration(10min), 100, "10m0s,2x,100GBs"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto r = ParseColdStartCost(c.text);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->load_time_multiple, c.multiple);
    EXPECT_EQ(r->idle, c.idle);
    EXPECT_EQ(r->gb_seconds, c.gb_seconds);
    EXPECT_EQ(r->ToString(), c.formatted);
  }
  for (const char* bad : {"", "lots", "-5m", "-3x", "x", "GBs", "12GB", "300x,", ",15m", "15m 300x", "1e13x"}) {
    SCOPED_TRACE(bad);
    auto r = ParseColdStartCost(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(ColdStartCost, TheLargestPartCounts) {
  ColdStartCost def;  // "15m,300x"
  EXPECT_EQ(def.ToString(), "15m0s,300x");
  EXPECT_DOUBLE_EQ(def.SecondsFor(1, 1'000'000'000), 900);     // 300 s < 15 min
  EXPECT_DOUBLE_EQ(def.SecondsFor(10, 1'000'000'000), 3000);   // 300 × 10 s
  ColdStartCost gbs = *ParseColdStartCost("500GBs");
  EXPECT_DOUBLE_EQ(gbs.SecondsFor(1, 2'000'000'000), 250);     // 500 GB·s of a 2 GB model
  EXPECT_DOUBLE_EQ(gbs.SecondsFor(1, 500'000'000), 1000);
  ColdStartCost x = *ParseColdStartCost("300x");
  EXPECT_DOUBLE_EQ(x.SecondsFor(0, 1), 0);
  EXPECT_DOUBLE_EQ(x.SecondsFor(-1, 1), 0);
  EXPECT_DOUBLE_EQ(ParseColdStartCost("1m,500GBs")->SecondsFor(1, 20'000'000'000), 60);
}

TEST(Policy, ColdStartCostAtTheTopLevelAndPerModel) {
  auto p = ParsePolicy(R"(
cold_start_cost = "20m"
[models.big]
cold_start_cost = "50x, 1m"
[models.num]
cold_start_cost = 600
[models.frac]
cold_start_cost = 1.5
[models.plain]
pin = true
)", "resident.toml", k5m);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->cold_start_cost.ToString(), "20m0s");
  EXPECT_EQ(p->ColdStartCostFor("big").ToString(), "1m0s,50x");
  EXPECT_EQ(p->ColdStartCostFor("num").ToString(), "10m0s");
  EXPECT_EQ(p->ColdStartCostFor("frac").ToString(), "1.5s");
  EXPECT_EQ(p->ColdStartCostFor("plain").ToString(), "20m0s");
  EXPECT_EQ(p->ColdStartCostFor("unknown").ToString(), "20m0s");
  // Without one, the default.
  auto d = ParsePolicy("", "f", k5m);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->ColdStartCostFor("x").ToString(), "15m0s,300x");
}

TEST(Policy, ColdStartCostErrorsNameTheFileLineAndColumn) {
  struct Case {
    const char* text;
    const char* where;  // the message's beginning
  };
  const Case cases[] = {
      {"cold_start_cost = \"lots\"\n", "conf.toml:1:19: cold_start_cost must be"},
      {"\n\ncold_start_cost = \"-5m\"\n", "conf.toml:3:19: cold_start_cost must be"},
      {"cold_start_cost = true\n", "conf.toml:1:19: cold_start_cost must be"},
      {"cold_start_cost = \"300x,\"\n", "conf.toml:1:19: cold_start_cost must be"},
      {"[models.a]\ncold_start_cost = \"-3x\"\n", "conf.toml:2:19: cold_start_cost must be"},
      {"[models.a]\n  cold_start_cost = [\"1m\"]\n", "conf.toml:2:21: cold_start_cost must be"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto p = ParsePolicy(c.text, "conf.toml", k5m);
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(p.status().message().rfind(c.where, 0), 0u) << p.status().message();
    EXPECT_NE(p.status().message().find("such as \"300x\""), std::string::npos) << p.status().message();
  }
}

TEST(Policy, PreloadIsABooleanPerModel) {
  auto p = ParsePolicy("[models.a]\npreload = true\n[models.b]\npreload = false\npin = true\n[models.c]\n", "f", k5m);
  ASSERT_TRUE(p.ok()) << p.status().message();
  ASSERT_NE(p->Find("a"), nullptr);
  EXPECT_TRUE(p->Find("a")->preload);
  EXPECT_FALSE(p->Find("a")->pin);
  EXPECT_FALSE(p->Find("b")->preload);
  EXPECT_TRUE(p->Find("b")->pin);
  EXPECT_FALSE(p->Find("c")->preload);
  auto bad = ParsePolicy("[models.a]\npreload = \"yes\"\n", "conf.toml", k5m);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "conf.toml:2:11: preload must be true or false");
}

TEST(Policy, UnknownKeysListTheKnownOnes) {
  auto top = ParsePolicy("keep_alive = \"5m\"\ncold_start = \"5m\"\n", "conf.toml", k5m);
  ASSERT_FALSE(top.ok());
  EXPECT_EQ(top.status().message(),
            "conf.toml:2:1: unknown key \"cold_start\" in the top level (known: keep_alive, min_keep_alive, "
            "max_keep_alive, memory_limit, cold_start_cost, sleep_after, models)");
  auto model = ParsePolicy("[models.\"Llama3.2\"]\n  preloaded = true\n", "conf.toml", k5m);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().message(),
            "conf.toml:2:3: unknown key \"preloaded\" in [models.\"Llama3.2\"] (known: keep_alive, pin, preload, "
            "cold_start_cost, sleep_after)");
  // A top-level key that belongs in a model entry is unknown there too.
  auto misplaced = ParsePolicy("pin = true\n", "conf.toml", k5m);
  ASSERT_FALSE(misplaced.ok());
  EXPECT_NE(misplaced.status().message().find("unknown key \"pin\" in the top level"), std::string::npos);
}

TEST(Policy, SleepAfterAtTheTopLevelAndPerModel) {
  auto p = ParsePolicy("sleep_after = \"10m\"\n[models.a]\nsleep_after = 30\n[models.b]\nsleep_after = \"-1m\"\n"
                       "[models.c]\nkeep_alive = \"1h\"\n",
                       "conf.toml", k5m);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->sleep_after, KeepAlive::Of(std::chrono::minutes(10)));
  EXPECT_EQ(p->SleepAfterFor("a"), KeepAlive::Of(std::chrono::seconds(30)));
  EXPECT_EQ(p->SleepAfterFor("b"), KeepAlive::Forever());  // only under memory pressure
  EXPECT_EQ(p->SleepAfterFor("c"), KeepAlive::Of(std::chrono::minutes(10)));
  EXPECT_EQ(p->SleepAfterFor("unlisted"), KeepAlive::Of(std::chrono::minutes(10)));
  // sleep_after is no keep_alive: no clamp applies, and the keep_alive defaults are unchanged.
  EXPECT_EQ(p->DefaultFor("a"), k5m);

  auto none = ParsePolicy("[models.a]\nsleep_after = \"1m\"\n", "conf.toml", k5m);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->sleep_after.has_value());
  EXPECT_FALSE(none->SleepAfterFor("b").has_value());  // unset: never sleeps
  EXPECT_EQ(none->SleepAfterFor("a"), KeepAlive::Of(std::chrono::minutes(1)));
}

TEST(Policy, SleepAfterErrorsNameTheFileLineAndColumn) {
  auto bad = ParsePolicy("sleep_after = \"soon\"\n", "conf.toml", k5m);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("conf.toml:1:15: sleep_after: ", 0), 0u) << bad.status().message();
  auto type = ParsePolicy("[models.a]\nsleep_after = true\n", "conf.toml", k5m);
  ASSERT_FALSE(type.ok());
  EXPECT_EQ(type.status().message(),
            "conf.toml:2:15: sleep_after must be a duration such as \"5m\" or a number of seconds");
  auto automatic = ParsePolicy("sleep_after = \"auto\"\n", "conf.toml", k5m);
  EXPECT_FALSE(automatic.ok());
}

}  // namespace
}  // namespace resident::sched
