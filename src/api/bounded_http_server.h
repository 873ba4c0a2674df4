// BoundedHttpServer: cpp-httplib's server with the limits a server reachable by others needs.
//
// - Connections: at most `max_connections` are served at once (one worker thread each) and at
//   most `max_queued` more wait for a worker; beyond that a new connection is answered
//   "503 server busy" at once by the accepting thread and closed, instead of waiting forever.
// - Idle time: a connection that sends nothing for `idle_timeout` (before its first request,
//   between keep-alive requests, in the middle of a request body) is closed; so is one whose
//   client stops reading a response for that long. The request line and headers must arrive in
//   full within `idle_timeout` of their first byte, so a client that dribbles a header a byte a
//   second (slow loris) cannot hold a worker either.
// - Header size: request line plus headers at most `max_header_bytes`, else 431.
//
// It takes over httplib's per-connection loop (process_and_close_socket, the hook httplib's own
// SSLServer overrides) with a socket stream that enforces these limits, and calls httplib's
// process_request for each request, so routing and handlers are unchanged.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace resident::api {

struct ConnectionLimits {
  size_t max_connections = 128;  // served at once (worker threads)
  size_t max_queued = 128;       // accepted and waiting for a worker
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(10)};
  size_t max_header_bytes = 64u << 10;
  size_t max_requests_per_connection = 100;  // keep-alive
};

// httplib's task queue with a bound: `workers` threads run tasks; at most `max_queued` tasks wait.
// A task that would exceed the bound is handed to `overflow` on the caller's thread instead
// (httplib's tasks are connections: the overflow answers 503 and closes them).
class BoundedThreadPool : public httplib::TaskQueue {
 public:
  using Overflow = std::function<void(std::function<void()> task)>;
  BoundedThreadPool(size_t workers, size_t max_queued, Overflow overflow);
  ~BoundedThreadPool() override;

  void enqueue(std::function<void()> fn) override;
  // Runs the tasks already queued, then joins the workers. Idempotent.
  void shutdown() override;
  // Tasks running or waiting now.
  size_t load() const;

 private:
  void Work();

  const size_t workers_;
  const size_t max_queued_;
  const Overflow overflow_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  size_t running_ = 0;                      // guarded by mu_
  bool shutdown_ = false;                   // guarded by mu_
  std::vector<std::thread> threads_;
};

class BoundedHttpServer : public httplib::Server {
 public:
  explicit BoundedHttpServer(ConnectionLimits limits);

  const ConnectionLimits& limits() const { return limits_; }
  // True when the bound socket takes connections from this machine only (127.0.0.0/8, ::1).
  // False before binding.
  bool BoundToLoopbackOnly() const;

 private:
  bool process_and_close_socket(socket_t sock) override;
  // Writes a 503 to a connection that found every worker and queue place taken, and closes it.
  void RejectBusy(socket_t sock);

  const ConnectionLimits limits_;
};

}  // namespace resident::api
