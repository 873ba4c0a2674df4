// CpuShare: the page every runner of a server shares to split the cores among the busy ones.
#include "runner/cpu_share.h"
#include "runner/runner_process.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace resident::runner {
namespace {

TEST(CpuShareTest, ThreadsSplitTheCoresAmongBusyRunnersAndNeverDropToZero) {
  EXPECT_EQ(CpuShare::ThreadsFor(2, 1), 2);
  EXPECT_EQ(CpuShare::ThreadsFor(2, 2), 1);
  EXPECT_EQ(CpuShare::ThreadsFor(2, 3), 1);
  EXPECT_EQ(CpuShare::ThreadsFor(16, 3), 5);
  EXPECT_EQ(CpuShare::ThreadsFor(8, 0), 8);
}

// Each forked child is a runner: it claims a row, marks itself busy or idle, then reports what it
// counts through its exit code. The server (this process) forgets a child's row when it reaps it.
// A forked child playing a runner: it claims a row, marks itself busy or idle, says so, waits
// for Report(), then exits with the count of busy runners it sees.
class FakeRunner {
 public:
  FakeRunner(int share_fd, bool busy) {
    int ready[2];
    EXPECT_EQ(pipe(ready), 0);
    EXPECT_EQ(pipe(go_), 0);
    pid_ = fork();
    if (pid_ == 0) {
      CpuShare& share = CpuShare::ForRunner(share_fd);
      share.SetBusy(busy);
      char c = 0;
      if (write(ready[1], &c, 1) != 1) _exit(100);
      if (read(go_[0], &c, 1) != 1) _exit(101);
      _exit(share.BusyCount());
    }
    char c;
    EXPECT_EQ(read(ready[0], &c, 1), 1);
    close(ready[0]);
    close(ready[1]);
  }
  ~FakeRunner() {
    close(go_[0]);
    close(go_[1]);
  }
  pid_t pid() const { return pid_; }
  // The count it sees now; the child exits (and is reaped, not yet forgotten).
  int Report() {
    char c = 1;
    EXPECT_EQ(write(go_[1], &c, 1), 1);
    int status = 0;
    waitpid(pid_, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int go_[2] = {-1, -1};
};

TEST(CpuShareTest, RunnersSeeEachOtherBusyAndTheServerFreesTheRowOfOneThatIsGone) {
  CpuShare& server = CpuShare::ForServer();
  ASSERT_GE(server.fd(), 0);
  FakeRunner busy_a(server.fd(), true), idle(server.fd(), false), busy_b(server.fd(), true);
  EXPECT_EQ(busy_a.Report(), 2);  // itself and busy_b, not the idle one
  EXPECT_EQ(server.BusyRunners(), 2) << "the server sees the same count";
  server.Forget(busy_a.pid());
  EXPECT_EQ(server.BusyRunners(), 1);
  EXPECT_EQ(idle.Report(), 1);  // busy_b only (and never less than 1)
  server.Forget(idle.pid());
  // busy_b exits while busy: until the server forgets it, it still counts.
  EXPECT_EQ(busy_b.Report(), 1);
  {
    FakeRunner late(server.fd(), true);
    EXPECT_EQ(late.Report(), 2) << "a runner that died busy counts until it is forgotten";
    server.Forget(late.pid());
  }
  server.Forget(busy_b.pid());
  FakeRunner last(server.fd(), true);
  EXPECT_EQ(last.Report(), 1);
  server.Forget(last.pid());
  EXPECT_EQ(server.BusyRunners(), 0) << "the server's own count has no floor of 1";
}

TEST(CpuShareTest, ASpareRunnerStartsOnlyWhenNoLoadRunsAndNoRunnerComputes) {
  EXPECT_TRUE(SpareMayStart(0, 0));
  EXPECT_FALSE(SpareMayStart(1, 0)) << "a load in progress";
  EXPECT_FALSE(SpareMayStart(0, 1)) << "a runner decoding";
  EXPECT_FALSE(SpareMayStart(2, 3));
  EXPECT_LT(kSpareDelay, kSpareMaxWait) << "a busy server still gets its spare, later";
}

}  // namespace
}  // namespace resident::runner
