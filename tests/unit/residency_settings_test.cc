// The scheduler's settings from the environment (RESIDENT_*, then OLLAMA_*), and the memory
// budget from the machine's memory and cgroup limit.
#include "cli/residency_settings.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include "cli/config.h"
#include "core/system_info.h"
#include "support/test_env.h"

namespace resident::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uint64_t kGiB = 1ull << 30;

// Every variable LoadResidencySettings reads is unset for the test and restored after it.
class SettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kNames) {
      if (const char* v = std::getenv(name)) saved_[name] = v;
      ::unsetenv(name);
    }
  }
  void TearDown() override {
    for (const char* name : kNames) {
      ::unsetenv(name);
      if (auto it = saved_.find(name); it != saved_.end()) ::setenv(name, it->second.c_str(), 1);
    }
  }
  static void Set(const char* name, const char* value) { ::setenv(name, value, 1); }
  static Result<ResidencySettings> Load(MachineMemory machine = {16 * kGiB, 0}) {
    return LoadResidencySettings("", machine);
  }

  static constexpr const char* kNames[] = {
      "RESIDENT_KEEP_ALIVE",       "OLLAMA_KEEP_ALIVE",     "RESIDENT_MAX_LOADED_MODELS", "OLLAMA_MAX_LOADED_MODELS",
      "RESIDENT_NUM_PARALLEL",     "OLLAMA_NUM_PARALLEL",   "RESIDENT_MAX_QUEUE",         "OLLAMA_MAX_QUEUE",
      "RESIDENT_CONTEXT_LENGTH",   "OLLAMA_CONTEXT_LENGTH", "RESIDENT_MEMORY_LIMIT",      "RESIDENT_CONFIG",
      "RESIDENT_LOAD_TIMEOUT",     "OLLAMA_LOAD_TIMEOUT",   "RESIDENT_HEALTH_TIMEOUT",    "RESIDENT_SPARE_RUNNER",
      "RESIDENT_COLD_START_COST",  "RESIDENT_PRELOAD",      "RESIDENT_MEMORY_MARGIN"};
  std::map<std::string, std::string> saved_;
};

TEST_F(SettingsTest, DefaultsMatchOllama) {
  auto s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->scheduler.max_loaded, 3);
  EXPECT_EQ(s->scheduler.num_parallel, 1);
  EXPECT_EQ(s->scheduler.max_queue, 512);
  EXPECT_EQ(s->scheduler.default_keep_alive, KeepAlive::Of(Duration(5min)));
  EXPECT_EQ(s->num_ctx, 4096);  // Ollama's default without a large GPU
  EXPECT_EQ(s->load_timeout, 5min);
  EXPECT_EQ(s->health_timeout, 20s);
  EXPECT_TRUE(s->spare_runner);
  EXPECT_EQ(s->memory_margin, 512u << 20);
  Set("RESIDENT_MEMORY_MARGIN", "1GiB");
  s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->memory_margin, 1ull << 30);
}

TEST_F(SettingsTest, OllamaNamesAreTheFallbackAndResidentNamesWin) {
  Set("OLLAMA_MAX_LOADED_MODELS", "5");
  Set("OLLAMA_NUM_PARALLEL", "4");
  Set("OLLAMA_MAX_QUEUE", "7");
  Set("OLLAMA_KEEP_ALIVE", "10m");
  Set("OLLAMA_CONTEXT_LENGTH", "4096");
  Set("OLLAMA_LOAD_TIMEOUT", "30s");
  auto s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->scheduler.max_loaded, 5);
  EXPECT_EQ(s->scheduler.num_parallel, 4);
  EXPECT_EQ(s->scheduler.max_queue, 7);
  EXPECT_EQ(s->scheduler.default_keep_alive, KeepAlive::Of(Duration(10min)));
  EXPECT_EQ(s->scheduler.policy->default_keep_alive, KeepAlive::Of(10min));
  EXPECT_EQ(s->num_ctx, 4096);
  EXPECT_EQ(s->load_timeout, 30s);

  Set("RESIDENT_MAX_LOADED_MODELS", "2");
  Set("RESIDENT_NUM_PARALLEL", "1");
  Set("RESIDENT_MAX_QUEUE", "9");
  Set("RESIDENT_KEEP_ALIVE", "-1");
  Set("RESIDENT_CONTEXT_LENGTH", "1024");
  Set("RESIDENT_LOAD_TIMEOUT", "0");
  s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->scheduler.max_loaded, 2);
  EXPECT_EQ(s->scheduler.num_parallel, 1);
  EXPECT_EQ(s->scheduler.max_queue, 9);
  EXPECT_EQ(s->scheduler.default_keep_alive, KeepAlive::Forever());
  EXPECT_EQ(s->num_ctx, 1024);
  EXPECT_EQ(s->load_timeout, 0ms);  // no limit
}

TEST_F(SettingsTest, ZeroMaxLoadedModelsMeansTheDefault) {
  Set("OLLAMA_MAX_LOADED_MODELS", "0");  // Ollama: 0 is "3 per GPU, 3 on CPU"
  auto s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scheduler.max_loaded, 3);
}

TEST_F(SettingsTest, BadValuesNameTheVariable) {
  const std::pair<const char*, const char*> bad[] = {
      {"OLLAMA_MAX_LOADED_MODELS", "many"}, {"RESIDENT_MAX_LOADED_MODELS", "-1"}, {"OLLAMA_NUM_PARALLEL", "0"},
      {"RESIDENT_NUM_PARALLEL", "2x"},      {"OLLAMA_MAX_QUEUE", "0"},            {"RESIDENT_MAX_QUEUE", "1.5"},
      {"RESIDENT_CONTEXT_LENGTH", "big"},   {"RESIDENT_MEMORY_LIMIT", "lots"},    {"RESIDENT_LOAD_TIMEOUT", "1d"},
      {"RESIDENT_HEALTH_TIMEOUT", "soon"},  {"RESIDENT_CONFIG", "/nonexistent/resident.toml"},
      {"RESIDENT_COLD_START_COST", "lots"}, {"RESIDENT_COLD_START_COST", "-5m"}, {"RESIDENT_MEMORY_MARGIN", "some"}};
  for (const auto& [name, value] : bad) {
    SCOPED_TRACE(std::string(name) + "=" + value);
    Set(name, value);
    auto s = Load();
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.status().message().find(std::string(name) == "RESIDENT_CONFIG" ? value : name), std::string::npos)
        << s.status().message();
    ::unsetenv(name);
  }
  // An invalid keep_alive is no error: 5 minutes, as in Ollama (with a warning in the log).
  Set("OLLAMA_KEEP_ALIVE", "soon");
  auto s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scheduler.default_keep_alive, KeepAlive::Of(Duration(5min)));
}

TEST_F(SettingsTest, TheBudgetIsThreeQuartersOfMemoryNeverAboveTheCgroupLimit) {
  auto s = Load({16 * kGiB, 0});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scheduler.memory_budget, 12 * kGiB);
  EXPECT_EQ(s->budget_source, "75% of physical memory");

  s = Load({16 * kGiB, 4 * kGiB});  // a container's limit is what this process can use
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scheduler.memory_budget, 3 * kGiB);
  EXPECT_EQ(s->budget_source, "75% of the cgroup limit");

  Set("RESIDENT_MEMORY_LIMIT", "2GiB");  // an explicit limit wins...
  s = Load({16 * kGiB, 4 * kGiB});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scheduler.memory_budget, 2 * kGiB);
  EXPECT_EQ(s->budget_source, "RESIDENT_MEMORY_LIMIT");

  Set("RESIDENT_MEMORY_LIMIT", "8GiB");  // ...but never beyond the cgroup limit
  s = Load({16 * kGiB, 4 * kGiB});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scheduler.memory_budget, 4 * kGiB);

  Set("RESIDENT_MEMORY_LIMIT", "64GiB");  // nor beyond physical memory
  s = Load({16 * kGiB, 0});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scheduler.memory_budget, 16 * kGiB);
}

TEST_F(SettingsTest, ThePolicyFilesMemoryLimitComesAfterTheVariable) {
  std::string config = resident::testing::TestCaseDir() + "/resident.toml";
  std::ofstream(config) << "memory_limit = \"6GiB\"\n";
  Set("RESIDENT_CONFIG", config.c_str());
  auto s = Load({16 * kGiB, 0});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->scheduler.memory_budget, 6 * kGiB);
  EXPECT_EQ(s->budget_source, config);
  Set("RESIDENT_MEMORY_LIMIT", "1GiB");
  s = Load({16 * kGiB, 0});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scheduler.memory_budget, 1 * kGiB);
}

// ---- keep_alive "auto", cold_start_cost, preload ----------------------------------------------

class AutoSettingsTest : public SettingsTest {
 protected:
  // A policy file with this text, named by RESIDENT_CONFIG.
  std::string Config(const std::string& text) {
    std::string path = resident::testing::TestCaseDir() + "/resident.toml";
    std::ofstream(path) << text;
    Set("RESIDENT_CONFIG", path.c_str());
    return path;
  }
  static KeepAlive DefaultOf(const ResidencySettings& s) {
    EXPECT_EQ(s.scheduler.default_keep_alive, s.scheduler.policy->default_keep_alive);
    return s.scheduler.default_keep_alive;
  }
};

TEST_F(AutoSettingsTest, ResidentKeepAliveBeatsTheFileWhichBeatsOllamaKeepAlive) {
  Set("OLLAMA_KEEP_ALIVE", "10m");
  auto s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(DefaultOf(*s), KeepAlive::Of(10min));  // no file: OLLAMA_KEEP_ALIVE

  Config("keep_alive = \"1h\"\n");
  s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(DefaultOf(*s), KeepAlive::Of(1h));  // the file over OLLAMA_KEEP_ALIVE

  Set("RESIDENT_KEEP_ALIVE", "2m");
  s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(DefaultOf(*s), KeepAlive::Of(2min));  // RESIDENT_KEEP_ALIVE over the file
  EXPECT_EQ(s->scheduler.policy->file_keep_alive, KeepAlive::Of(1h));

  // A RESIDENT_KEEP_ALIVE that is only blanks or quotes counts as unset, as DefaultKeepAliveFromEnv
  // reads it: the file's keep_alive still beats OLLAMA_KEEP_ALIVE.
  for (const char* blank : {"  ", "\"\"", "''"}) {
    SCOPED_TRACE(blank);
    Set("RESIDENT_KEEP_ALIVE", blank);
    s = Load();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(DefaultOf(*s), KeepAlive::Of(1h));
  }

  // A file without a keep_alive leaves the environment's.
  Config("memory_limit = \"1GiB\"\n");
  ::unsetenv("RESIDENT_KEEP_ALIVE");
  s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(DefaultOf(*s), KeepAlive::Of(10min));
}

TEST_F(AutoSettingsTest, KeepAliveAutoFromTheVariableOrTheFile) {
  Set("RESIDENT_KEEP_ALIVE", "auto");
  auto s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(DefaultOf(*s), KeepAlive::Auto());
  Set("RESIDENT_KEEP_ALIVE", " auto ");  // trimmed, as every keep_alive variable
  s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(DefaultOf(*s), KeepAlive::Auto());
  Config("keep_alive = \"1h\"\n");
  s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(DefaultOf(*s), KeepAlive::Auto());  // the variable still wins

  ::unsetenv("RESIDENT_KEEP_ALIVE");
  Set("OLLAMA_KEEP_ALIVE", "10m");
  Config("keep_alive = \"auto\"\n[models.coder]\nkeep_alive = \"30m\"\n");
  s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(DefaultOf(*s), KeepAlive::Auto());
  EXPECT_EQ(s->scheduler.policy->DefaultFor("coder"), KeepAlive::Of(30min));

  // OLLAMA_KEEP_ALIVE takes Ollama's forms only: "auto" there is invalid, so 5 minutes.
  ::unsetenv("RESIDENT_CONFIG");
  Set("OLLAMA_KEEP_ALIVE", "auto");
  s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(DefaultOf(*s), KeepAlive::Of(5min));
}

TEST_F(AutoSettingsTest, ResidentColdStartCostBeatsTheFiles) {
  auto s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->scheduler.cold_start_cost.ToString(), "15m0s,300x");  // the default

  Config("cold_start_cost = \"1h\"\n[models.big]\ncold_start_cost = \"10x\"\n");
  s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->scheduler.cold_start_cost.ToString(), "1h0m0s");
  EXPECT_EQ(s->scheduler.policy->ColdStartCostFor("small").ToString(), "1h0m0s");

  Set("RESIDENT_COLD_START_COST", "60x,5m");
  s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->scheduler.cold_start_cost.ToString(), "5m0s,60x");
  EXPECT_EQ(s->scheduler.policy->ColdStartCostFor("small").ToString(), "5m0s,60x");
  EXPECT_EQ(s->scheduler.policy->ColdStartCostFor("big").ToString(), "10x");  // a model's own entry still wins

  Set("RESIDENT_COLD_START_COST", "lots");
  s = Load();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.status().message().rfind("RESIDENT_COLD_START_COST=\"lots\": ", 0), 0u) << s.status().message();
  EXPECT_NE(s.status().message().find("such as \"300x\""), std::string::npos) << s.status().message();
}

TEST_F(AutoSettingsTest, PreloadsFromTheVariableThenTheFile) {
  auto s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->preload.empty());

  Set("RESIDENT_PRELOAD", " a, b:7b ,,c ,");
  s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->preload, (std::vector<std::string>{"a", "b:7b", "c"}));

  Config("[models.d]\npreload = true\n[models.e]\npreload = false\n[models.\"b:7b\"]\npreload = true\n");
  s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  // The file's entries by their normalized names, after the variable's, each once.
  EXPECT_EQ(s->preload, (std::vector<std::string>{"a", "b:7b", "c", "d:latest"}));

  ::unsetenv("RESIDENT_PRELOAD");
  s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->preload, (std::vector<std::string>{"b:7b", "d:latest"}));
}

// sleep_after: RESIDENT_SLEEP_AFTER (keep_alive's environment forms) wins over the file's top level;
// a model's entry wins over both; unset, models never sleep.
class SleepSettingsTest : public AutoSettingsTest {
 protected:
  void SetUp() override {
    AutoSettingsTest::SetUp();
    for (const char* name : {"RESIDENT_SLEEP_AFTER", "RESIDENT_HUGE_PAGES"}) {
      if (const char* v = std::getenv(name)) saved_[name] = v;
      ::unsetenv(name);
    }
  }
  void TearDown() override {
    for (const char* name : {"RESIDENT_SLEEP_AFTER", "RESIDENT_HUGE_PAGES"}) {
      ::unsetenv(name);
      if (auto it = saved_.find(name); it != saved_.end()) ::setenv(name, it->second.c_str(), 1);
    }
    AutoSettingsTest::TearDown();
  }
};

TEST_F(SleepSettingsTest, RunnersUseHugePagesWhenModelsMaySleepOrWhenAsked) {
  auto s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->huge_pages);  // nothing sleeps: nothing changes
  Set("RESIDENT_SLEEP_AFTER", "5m");
  s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->huge_pages);
  ::unsetenv("RESIDENT_SLEEP_AFTER");
  Config("[models.a]\nsleep_after = \"1m\"\n");  // one model's sleep_after is enough
  s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->huge_pages);
  Set("RESIDENT_HUGE_PAGES", "0");
  s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->huge_pages);
  ::unsetenv("RESIDENT_CONFIG");
  Set("RESIDENT_HUGE_PAGES", "1");
  s = Load();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->huge_pages);
}

TEST_F(SleepSettingsTest, UnsetModelsNeverSleep) {
  auto s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_FALSE(s->scheduler.default_sleep_after.has_value());
  EXPECT_FALSE(s->scheduler.policy->SleepAfterFor("m").has_value());
  for (const char* blank : {"", "  ", "\"\""}) {  // blank counts as unset, as for keep_alive
    SCOPED_TRACE(blank);
    Set("RESIDENT_SLEEP_AFTER", blank);
    s = Load();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_FALSE(s->scheduler.policy->SleepAfterFor("m").has_value());
  }
}

TEST_F(SleepSettingsTest, TheVariableBeatsTheFilesTopLevelAndAModelsEntryBeatsBoth) {
  Config("sleep_after = \"10m\"\n[models.coder]\nsleep_after = \"30s\"\n[models.big]\nsleep_after = -1\n");
  auto s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->scheduler.policy->SleepAfterFor("chat"), KeepAlive::Of(10min));
  EXPECT_EQ(s->scheduler.policy->SleepAfterFor("coder"), KeepAlive::Of(30s));
  EXPECT_EQ(s->scheduler.policy->SleepAfterFor("big:latest"), KeepAlive::Forever());
  EXPECT_EQ(s->scheduler.default_sleep_after, KeepAlive::Of(10min));

  for (const auto& [value, expected] : std::vector<std::pair<const char*, KeepAlive>>{
           {"2m", KeepAlive::Of(2min)}, {"90", KeepAlive::Of(90s)}, {" '45s' ", KeepAlive::Of(45s)},
           {"0", KeepAlive::Of(Duration::zero())}, {"-1", KeepAlive::Forever()}}) {
    SCOPED_TRACE(value);
    Set("RESIDENT_SLEEP_AFTER", value);
    s = Load();
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(s->scheduler.policy->SleepAfterFor("chat"), expected);
    EXPECT_EQ(s->scheduler.policy->SleepAfterFor("coder"), KeepAlive::Of(30s));
  }
}

TEST_F(SleepSettingsTest, ABadVariableStopsStartUp) {
  for (const char* bad : {"soon", "1d", "auto"}) {
    SCOPED_TRACE(bad);
    Set("RESIDENT_SLEEP_AFTER", bad);
    auto s = Load();
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.status().message().rfind("RESIDENT_SLEEP_AFTER=\"" + std::string(bad) + "\" is not a duration", 0), 0u)
        << s.status().message();
  }
}

TEST(CgroupLimit, ReadsV2ThenV1AndIgnoresNoLimit) {
  const std::string root = resident::testing::TestCaseDir();
  EXPECT_EQ(CgroupMemoryLimitBytes(root, 16 * kGiB), 0u);  // no files: no limit
  std::ofstream(root + "/memory.max") << "max\n";
  EXPECT_EQ(CgroupMemoryLimitBytes(root, 16 * kGiB), 0u);
  fs::create_directories(root + "/memory");
  std::ofstream(root + "/memory/memory.limit_in_bytes") << "9223372036854771712\n";  // v1's "unlimited"
  EXPECT_EQ(CgroupMemoryLimitBytes(root, 16 * kGiB), 0u);
  std::ofstream(root + "/memory/memory.limit_in_bytes") << "2147483648\n";
  EXPECT_EQ(CgroupMemoryLimitBytes(root, 16 * kGiB), 2 * kGiB);  // v1
  std::ofstream(root + "/memory.max") << "1073741824\n";
  EXPECT_EQ(CgroupMemoryLimitBytes(root, 16 * kGiB), 1 * kGiB);  // v2 first
  EXPECT_EQ(CgroupMemoryLimitBytes(root, 512u << 20), 0u);       // above physical memory: no limit
  EXPECT_EQ(CgroupMemoryLimitBytes(root, 0), 1 * kGiB);          // physical memory unknown
}

TEST(IntFromEnv, ResidentThenOllamaThenTheFallback) {
  ::unsetenv("RESIDENT_TEST_INT");
  ::unsetenv("OLLAMA_TEST_INT");
  EXPECT_EQ(*IntFromEnv("RESIDENT_TEST_INT", "OLLAMA_TEST_INT", 7, 1), 7);
  ::setenv("OLLAMA_TEST_INT", "3", 1);
  EXPECT_EQ(*IntFromEnv("RESIDENT_TEST_INT", "OLLAMA_TEST_INT", 7, 1), 3);
  ::setenv("RESIDENT_TEST_INT", "", 1);  // empty counts as unset
  EXPECT_EQ(*IntFromEnv("RESIDENT_TEST_INT", "OLLAMA_TEST_INT", 7, 1), 3);
  ::setenv("RESIDENT_TEST_INT", "4", 1);
  EXPECT_EQ(*IntFromEnv("RESIDENT_TEST_INT", "OLLAMA_TEST_INT", 7, 1), 4);
  for (const char* bad : {"0", "-4", "4 ", "0x10", "99999999999"}) {
    ::setenv("RESIDENT_TEST_INT", bad, 1);
    auto r = IntFromEnv("RESIDENT_TEST_INT", "OLLAMA_TEST_INT", 7, 1);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), "RESIDENT_TEST_INT=\"" + std::string(bad) + "\" is not an integer of at least 1");
  }
  ::unsetenv("RESIDENT_TEST_INT");
  ::unsetenv("OLLAMA_TEST_INT");
}

}  // namespace
}  // namespace resident::cli
