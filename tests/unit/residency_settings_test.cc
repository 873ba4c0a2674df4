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
      "RESIDENT_LOAD_TIMEOUT",     "OLLAMA_LOAD_TIMEOUT",   "RESIDENT_HEALTH_TIMEOUT",    "RESIDENT_SPARE_RUNNER"};
  std::map<std::string, std::string> saved_;
};

TEST_F(SettingsTest, DefaultsMatchOllama) {
  auto s = Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->scheduler.max_loaded, 3);
  EXPECT_EQ(s->scheduler.num_parallel, 1);
  EXPECT_EQ(s->scheduler.max_queue, 512);
  EXPECT_EQ(s->scheduler.default_keep_alive, KeepAlive::Of(Duration(5min)));
  EXPECT_EQ(s->num_ctx, 2048);
  EXPECT_EQ(s->load_timeout, 5min);
  EXPECT_EQ(s->health_timeout, 20s);
  EXPECT_TRUE(s->spare_runner);
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
      {"RESIDENT_HEALTH_TIMEOUT", "soon"},  {"RESIDENT_CONFIG", "/nonexistent/resident.toml"}};
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
