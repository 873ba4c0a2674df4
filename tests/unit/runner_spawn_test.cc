// A runner outlives the thread that asked for it. PR_SET_PDEATHSIG (a runner never outlives its
// server) fires when the *thread* that forked the child ends: runners forked on an HTTP worker
// thread were killed a minute after that thread went idle, with their model loaded (or asleep).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "runner/runner_process.h"

namespace resident::runner {
namespace {

TEST(RunnerSpawnTest, ARunnerOutlivesTheThreadThatAskedForIt) {
  Result<SpawnedRunner> spawned = Status::Internal("not spawned");
  std::thread asker([&] { spawned = RunnerProcess::Spawn(RESIDENT_BINARY); });
  asker.join();  // the thread is gone
  ASSERT_TRUE(spawned.ok()) << spawned.status().message();
  // A killed child would be a zombie within milliseconds; give it a generous moment.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int status = 0;
  EXPECT_EQ(::waitpid(spawned->pid, &status, WNOHANG), 0) << "the runner died with the thread that spawned it";
  RunnerProcess::Discard(*spawned);  // closes its socket: it exits, and is reaped
  EXPECT_NE(::kill(spawned->pid, 0), 0);
}

}  // namespace
}  // namespace resident::runner
