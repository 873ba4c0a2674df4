// Starting a runner process: RunnerProcess::Spawn returns once the child is the runner (it has
// exec'ed), not while it is still a copy of the server. The load's memory cap samples the child
// from then on; a sample taken between fork and exec counted the server's pages as the runner's
// (seen under ThreadSanitizer: a tiny model's runner "used 1.1 GB while loading" right after the
// server had parsed a million stop strings, and was killed).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/system_info.h"
#include "runner/runner_process.h"

namespace resident::runner {
namespace {

TEST(RunnerSpawnTest, ARunnerIsItselfWhenSpawnReturnsNotACopyOfTheServer) {
  // The "server" holds 384 MB of touched memory; a runner just started holds far less (under a
  // sanitizer too, whose runtime maps its shadow lazily).
  std::vector<char> held(384u << 20);
  std::memset(held.data(), 1, held.size());
  for (int i = 0; i < 5; ++i) {
    auto spawned = RunnerProcess::Spawn(RESIDENT_BINARY);
    ASSERT_TRUE(spawned.ok()) << spawned.status().message();
    const uint64_t rss = ProcessRssBytes(spawned->pid);
    EXPECT_LT(rss, 256u << 20) << "run " << i << ": the child still had the server's memory";
    RunnerProcess::Discard(*spawned);
  }
  EXPECT_EQ(held[held.size() / 2], 1);
}

TEST(RunnerSpawnTest, AnExecutableThatCannotRunIsAnErrorAtOnce) {
  auto spawned = RunnerProcess::Spawn("/nonexistent/resident");
  ASSERT_FALSE(spawned.ok());
  EXPECT_NE(spawned.status().message().find("could not start a runner (/nonexistent/resident)"), std::string::npos)
      << spawned.status().message();
}

}  // namespace
}  // namespace resident::runner
