// BoundedHttpServer: cpp-httplib's server with the limits a server reachable by others needs.
//
// - Connections: at most `max_connections` are served at once (one worker thread each, started
//   when a connection finds no idle worker, ended after a minute without work; small stacks, so a
//   thread costs a few dozen KB) and at most `max_queued` more wait for a worker; beyond that a
//   new connection is answered 503 at once by the accepting thread, with Ollama's busy message
//   (kBusyMessage: clients match it to retry), and closed once the client has read the answer,
//   never reset. The listening socket's backlog is widened (httplib's is 5), so that a burst of
//   connections is accepted and answered instead of waiting for the client's SYN retries.
// - Idle time: a connection that sends nothing for `idle_timeout` (before its first request,
//   between keep-alive requests, in the middle of a request body) is closed; so is one whose
//   client stops reading a response for that long. The request line and headers must arrive in
//   full within `idle_timeout` of their first byte, so a client that dribbles a header a byte a
//   second (slow loris) cannot hold a worker either.
// - Header size: request line plus headers at most `max_header_bytes`, else 431.
// - Framing (api/http_framing.h, RFC 9112): every request head is checked before httplib acts on
//   it, and a chunked body as it is read (at most `max_body_bytes` of data, else 413); ambiguous
//   or malformed framing is answered 400 (501 for a coding other than chunked) and the
//   connection is closed, so that bytes after it never run as another request. A request
//   without Content-Length or Transfer-Encoding has no body. A request whose body was not read
//   to its end (a route that takes none, a refusal before routing) ends its connection too.
//   Connections closed with bytes still unread linger (LingeringCloser) so that the answer is
//   read before the close, not lost to a reset.
// - Clients that go away: ClientGone() gives a handler a stop token that is stopped when its
//   client closes the connection (api/client_watcher.h).
//
// It takes over httplib's per-connection loop (process_and_close_socket, the hook httplib's own
// SSLServer overrides) with a socket stream that enforces these limits, and calls httplib's
// process_request for each request, so routing and handlers are unchanged.
#pragma once

#include <httplib.h>
#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace resident::api {

// Stack frames are several times larger under AddressSanitizer and ThreadSanitizer.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr size_t kStackFactor = 4;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr size_t kStackFactor = 4;
#else
inline constexpr size_t kStackFactor = 1;
#endif
#else
inline constexpr size_t kStackFactor = 1;
#endif

// The longest request path routed: none of resident's routes is longer (a model name is at most
// 350 characters), and httplib's regex routing recurses once per character of the path, so a
// longer one is answered 404 before routing (see worker_stack_bytes).
inline constexpr size_t kMaxRoutedPath = 1024;

// The body of every 503 "busy" answer, the HTTP layer's and the scheduler's alike: Ollama's own
// words (two spaces after the period), which client libraries match to retry.
inline constexpr const char* kBusyMessage = "server busy, please try again.  maximum pending requests exceeded";

struct ConnectionLimits {
  size_t max_connections = 128;  // served at once (worker threads, started as needed)
  size_t max_queued = 128;       // accepted and waiting for a worker
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(10)};
  size_t max_header_bytes = 64u << 10;
  // The most body bytes taken (0: no limit). httplib checks a Content-Length against its own
  // payload limit (set_payload_max_length); this bounds chunked bodies, which it does not.
  size_t max_body_bytes = 0;
  std::string max_body_message = "request body too large";  // the 413's message for a chunked body
  size_t max_requests_per_connection = 100;  // keep-alive
  // Each worker thread's stack (virtual memory: only the pages a thread touches are resident).
  // A handler's deepest use is bounded by the request limits: JSON nests at most kMaxJsonDepth
  // levels (api/requests.h; a JSON schema that deep converted to a grammar needs 256-512 KB) and
  // a routed path is at most kMaxRoutedPath bytes (httplib's regex routing recurses per
  // character, about 400 bytes each). A test sends requests at those limits.
  size_t worker_stack_bytes = (1u << 20) * kStackFactor;
};

// httplib's task queue with a bound: up to `workers` threads run tasks, each started when a task
// finds no idle thread and ended after `idle_exit` without work; at most `max_queued` tasks wait.
// A task that would exceed the bound, or finds no thread when none can be started, is handed to
// `overflow` on the caller's thread instead (httplib's tasks are connections: the overflow
// answers 503 and closes them).
class BoundedThreadPool : public httplib::TaskQueue {
 public:
  using Overflow = std::function<void(std::function<void()> task)>;
  BoundedThreadPool(size_t workers, size_t max_queued, Overflow overflow, size_t stack_bytes = (1u << 20) * kStackFactor,
                    std::chrono::milliseconds idle_exit = std::chrono::seconds(60));
  ~BoundedThreadPool() override;

  void enqueue(std::function<void()> fn) override;
  // Runs the tasks already queued, then joins the workers. Idempotent.
  void shutdown() override;
  // Tasks running or waiting now.
  size_t load() const;
  // Worker threads alive now (busy or idle).
  size_t threads() const;

 private:
  static void* ThreadMain(void* pool);
  void Work();
  // Starts one more worker. False when the system refuses a thread. Requires mu_.
  bool StartWorker();
  // Joins the workers that ended on their own. Call without mu_.
  void JoinExited();

  const size_t workers_;
  const size_t max_queued_;
  const Overflow overflow_;
  const size_t stack_bytes_;
  const std::chrono::milliseconds idle_exit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  size_t running_ = 0;                      // guarded by mu_: tasks being run
  size_t idle_ = 0;                         // guarded by mu_: workers waiting for a task
  bool shutdown_ = false;                   // guarded by mu_
  std::vector<pthread_t> live_;             // guarded by mu_: workers started and not ended
  std::vector<pthread_t> exited_;           // guarded by mu_: workers that ended, to be joined
};

class LingeringCloser;
class ClientWatcher;

class BoundedHttpServer : public httplib::Server {
 public:
  explicit BoundedHttpServer(ConnectionLimits limits);
  ~BoundedHttpServer() override;

  // httplib's bind_to_port / bind_to_any_port, then the listening backlog widened to what the
  // kernel allows (net.core.somaxconn). Return as httplib's: false / -1 when the address cannot
  // be bound.
  bool BindPort(const std::string& host, int port);
  int BindAnyPort(const std::string& host);

  const ConnectionLimits& limits() const { return limits_; }
  // True when the bound socket takes connections from this machine only (127.0.0.0/8, ::1).
  // False before binding.
  bool BoundToLoopbackOnly() const;

  // For a handler (on the thread httplib runs it on): a token that is stopped as soon as the
  // client of the request being handled goes away (closes its side of the connection, or resets
  // it), for the whole request, a streamed answer included. Pass it to whatever waits or
  // computes for the request. Outside a request: a token that never stops.
  static std::stop_token ClientGone();

  // The listening socket's backlog (what listen() was given; the kernel caps it at
  // net.core.somaxconn). 0 before binding.
  int backlog() const { return backlog_; }

 private:
  bool process_and_close_socket(socket_t sock) override;
  // Writes a 503 to a connection that found every worker and queue place taken, and closes it
  // once the client has read it (see LingeringCloser in the .cc).
  void RejectBusy(socket_t sock);
  void WidenBacklog();
  // Runs one refused request line through httplib's parser, so that its statics are built here.
  void WarmUpParser();

  const ConnectionLimits limits_;
  std::unique_ptr<LingeringCloser> closer_;
  std::unique_ptr<ClientWatcher> watcher_;
  int backlog_ = 0;
};

}  // namespace resident::api
