// ClientWatcher: notices that the client of a request being handled has gone away, so that the
// work done for it (waiting in the scheduler's queue, a generation, an embedding) is cancelled
// instead of running on for nobody.
//
// One thread watches every registered connection with epoll for EPOLLRDHUP (the client closed
// its side: curl -m, a killed process, a closed browser tab), EPOLLHUP or EPOLLERR (a reset),
// and requests a stop on the request's std::stop_source; what the request waits on registers a
// std::stop_callback with its token (sched::Scheduler::Acquire wakes, runner::RunnerProcess
// sends the runner a cancel). Data the client sends meanwhile (a pipelined request) is not a
// hang-up and is left unread. Like Go's net/http (Ollama's server), a client that half-closes
// after its request counts as gone.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <stop_token>
#include <thread>

namespace resident::api {

class ClientWatcher {
 public:
  ClientWatcher();
  // Stops the thread. Watches still registered simply end.
  ~ClientWatcher();
  ClientWatcher(const ClientWatcher&) = delete;
  ClientWatcher& operator=(const ClientWatcher&) = delete;

  // Requests a stop on `source` once the peer of `fd` closes its side or resets (at once if it
  // already has). Returns an id for Unwatch. The thread starts with the first watch. When epoll
  // cannot be used (no descriptors left) nothing is watched and 0 is returned: the request
  // then runs to its end as before.
  uint64_t Watch(int fd, std::stop_source source);
  // Stops watching (call before `fd` is closed). After it returns no stop is requested for this
  // watch. Unknown or 0 ids are ignored.
  void Unwatch(uint64_t id, int fd);

  // Connections watched now (for tests).
  size_t watched() const;

 private:
  void Loop();

  int epoll_ = -1;
  int wake_ = -1;  // an eventfd in the epoll set: the destructor's wake-up
  mutable std::mutex mu_;
  std::map<uint64_t, std::stop_source> watches_;  // guarded by mu_
  uint64_t next_id_ = 1;                          // guarded by mu_
  std::thread thread_;                            // started under mu_
};

}  // namespace resident::api
