// `serve`'s HTTP limits from the environment; the connection limit follows the scheduler's queue.
#include "cli/http_settings.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <optional>
#include <string>

namespace resident::cli {
namespace {

// RESIDENT_MAX_CONNECTIONS unset for the test, restored after it.
class HttpSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* v = std::getenv("RESIDENT_MAX_CONNECTIONS")) saved_ = v;
    ::unsetenv("RESIDENT_MAX_CONNECTIONS");
  }
  void TearDown() override {
    ::unsetenv("RESIDENT_MAX_CONNECTIONS");
    if (saved_) ::setenv("RESIDENT_MAX_CONNECTIONS", saved_->c_str(), 1);
  }
  std::optional<std::string> saved_;
};

TEST_F(HttpSettingsTest, TheConnectionLimitFollowsTheQueueUnlessSet) {
  sched::Scheduler::Options so;  // max_queue 512, max_loaded 3, num_parallel 1
  EXPECT_EQ(ConnectionsForScheduler(so), 512u + 3u + kSpareConnections);
  so.max_queue = 20;
  so.max_loaded = 2;
  so.num_parallel = 4;
  EXPECT_EQ(ConnectionsForScheduler(so), 20u + 8u + kSpareConnections);

  api::ApiServer::Options options;
  ASSERT_TRUE(ApplyHttpSettingsFromEnv(ConnectionsForScheduler(so), &options).ok());
  EXPECT_EQ(options.limits.max_connections, 92u);
  EXPECT_EQ(options.limits.max_queued, 92u);  // as many more may wait for a worker

  ::setenv("RESIDENT_MAX_CONNECTIONS", "7", 1);
  ASSERT_TRUE(ApplyHttpSettingsFromEnv(ConnectionsForScheduler(so), &options).ok());
  EXPECT_EQ(options.limits.max_connections, 7u);
  ::setenv("RESIDENT_MAX_CONNECTIONS", "0", 1);
  Status bad = ApplyHttpSettingsFromEnv(100, &options);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("RESIDENT_MAX_CONNECTIONS"), std::string::npos) << bad.message();
}

}  // namespace
}  // namespace resident::cli
