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

}  // namespace
}  // namespace resident::sched
