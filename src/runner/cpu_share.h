// CpuShare: how many runners are computing right now, shared by every runner of one server.
//
// ggml's CPU threads meet at a barrier after every operation of a graph, spinning while they
// wait. Two runners that each use every core (the default thread count) on the same cores make
// each other's threads miss those barriers, and both slow down many times over (measured on 2
// cores: 10-100x). So a runner that uses the default thread count divides the cores by the number
// of runners busy at the moment, before every decode; an explicit num_thread is left alone.
//
// The server creates one shared page (memfd) and passes it to every runner it starts. Each runner
// claims a row (its pid) and marks it busy while it has work; the server clears a runner's row
// when it reaps the process, so a runner that crashed while busy is not counted on.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace resident::runner {

class CpuShare {
 public:
  static constexpr int kRows = 64;

  // The server's share (created on first use; fd() is -1 if the memfd could not be made, and then
  // runners work without it).
  static CpuShare& ForServer();
  // A runner's view of the share passed as `fd`; claims a row for this process.
  static CpuShare& ForRunner(int fd);

  int fd() const { return fd_; }
  // Runner side: mark this process busy or idle.
  void SetBusy(bool busy);
  // Runners busy now (at least 1 when this process is busy itself).
  int BusyCount() const;
  // Server side: runners busy now (0 without a share).
  int BusyRunners() const;
  // Server side: the runner `pid` is gone; its row is free again.
  void Forget(pid_t pid);

  // Threads for one runner: `cores` split among the busy runners, at least 1.
  static int ThreadsFor(int cores, int busy_runners);

 private:
  struct Table {
    std::atomic<int32_t> owner[kRows];  // pid of the runner holding the row, 0 if free
    std::atomic<int32_t> busy[kRows];
  };
  CpuShare() = default;
  void Map(int fd);
  int fd_ = -1;
  Table* table_ = nullptr;
  int row_ = -1;  // runner side: the claimed row
};

}  // namespace resident::runner
