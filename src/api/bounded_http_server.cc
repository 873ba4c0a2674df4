#include "api/bounded_http_server.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "api/client_watcher.h"
#include "api/http_framing.h"

namespace resident::api {
namespace {

constexpr uint64_t kTrimAfterBodyBytes = 1u << 20;

using Ms = std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// Set on the accepting thread while it runs a connection that found no room (see the overflow
// in BoundedHttpServer's constructor): process_and_close_socket then answers 503.
thread_local bool t_rejecting = false;

// poll() for one socket: > 0 ready, 0 timed out, < 0 error or hang-up without data.
int PollFor(int fd, short events, Ms timeout) {
  pollfd p{fd, events, 0};
  auto deadline = SteadyClock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<Ms>(deadline - SteadyClock::now());
    int rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (rc < 0 && errno == EINTR) continue;
    if (rc > 0 && (p.revents & (events | POLLHUP | POLLERR)) == 0) return -1;
    return rc;
  }
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
      continue;
    }
    out += c;
  }
  return out;
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

std::string CannedAnswer(int status, std::string_view message) {
  std::string body = fmt::format("{{\"error\":\"{}\"}}", JsonEscape(message));
  return fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n"
      "Connection: close\r\n\r\n{}",
      status, ReasonPhrase(status), body.size(), body);
}

// The request being handled on this thread, for BoundedHttpServer::ClientGone().
struct RequestInProgress {
  int fd = -1;
  ClientWatcher* watcher = nullptr;
  std::optional<std::stop_source> gone;  // made, and watched, at the first ClientGone()
  uint64_t watch_id = 0;

  ~RequestInProgress() {
    if (watcher != nullptr) watcher->Unwatch(watch_id, fd);
  }
};
thread_local RequestInProgress* t_request = nullptr;

void AddressOf(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if ((peer ? ::getpeername(fd, sa, &len) : ::getsockname(fd, sa, &len)) != 0) return;
  char host[NI_MAXHOST];
  if (::getnameinfo(sa, len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) == 0) ip = host;
  if (addr.ss_family == AF_INET) port = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  if (addr.ss_family == AF_INET6) port = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
}

// One connection's socket as httplib reads and writes it, with the limits of ConnectionLimits.
// Reads are buffered; while a request's line and headers are being read, the bytes handed out
// are counted and scanned for the empty line that ends them.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(socket_t sock, const ConnectionLimits& limits) : sock_(sock), limits_(limits) {}

  // Waits for the first byte of the next request. False when nothing came within the idle
  // timeout or the server is stopping (`listener` closed).
  bool WaitForRequest(const std::atomic<socket_t>& listener) {
    if (pos_ < len_) return true;
    auto deadline = SteadyClock::now() + limits_.idle_timeout;
    while (listener != INVALID_SOCKET) {
      auto left = std::chrono::duration_cast<Ms>(deadline - SteadyClock::now());
      if (left.count() <= 0) return false;
      int rc = PollFor(sock_, POLLIN, std::min(left, Ms(100)));
      if (rc != 0) return rc > 0;
    }
    return false;
  }

  // A request starts: its line and headers must arrive within the idle timeout from now.
  void BeginRequest() {
    phase_ = Phase::kHead;
    at_line_start_ = false;
    head_bytes_ = 0;
    head_.clear();
    framing_ = RequestFraming{};
    body_left_ = 0;
    body_bytes_ = 0;
    chunks_.reset();
    head_deadline_ = SteadyClock::now() + limits_.idle_timeout;
  }

  bool is_readable() const override { return pos_ < len_ || PollFor(sock_, POLLIN, limits_.idle_timeout) > 0; }
  bool is_writable() const override { return !refused_ && PollFor(sock_, POLLOUT, limits_.idle_timeout) > 0; }

  ssize_t read(char* ptr, size_t size) override {
    if (refused_) return -1;
    if (phase_ == Phase::kBody) return ReadBody(ptr, size);
    if (pos_ == len_ && !Fill()) return -1;
    size_t n = std::min(size, len_ - pos_);
    bool head_ended = false;
    if (phase_ == Phase::kHead) {
      for (size_t i = 0; i < n; ++i) {
        char c = buf_[pos_ + i];
        if (++head_bytes_ > limits_.max_header_bytes) {
          Refuse(FramingError{431, fmt::format("request headers larger than {} bytes (RESIDENT_MAX_HEADER)",
                                               limits_.max_header_bytes)});
          return -1;
        }
        if (c == '\n') {
          if (at_line_start_) {  // the empty line: the headers end here
            head_ended = true;
            n = i + 1;
            break;
          }
          at_line_start_ = true;
        } else if (c != '\r') {
          at_line_start_ = false;
        }
      }
      head_.append(buf_ + pos_, n);
    }
    std::memcpy(ptr, buf_ + pos_, n);
    pos_ += n;
    if (head_ended && !EndHead()) return -1;
    return static_cast<ssize_t>(n);
  }

  // The request's body was read to its end (or it has none), so the next bytes are the next
  // request. False while the head is incomplete or the body partly read.
  bool BodyComplete() const {
    if (refused_ || phase_ != Phase::kBody) return false;
    switch (framing_.body) {
      case RequestFraming::Body::kNone: return true;
      case RequestFraming::Body::kLength: return body_left_ == 0;
      case RequestFraming::Body::kChunked: return chunks_ && chunks_->done();
    }
    return false;
  }
  // A refusal was answered here: the connection must close.
  bool refused() const { return refused_; }
  // Bytes of the current request's body read so far.
  uint64_t body_bytes() const { return body_bytes_; }
  // Some of a request arrived since BeginRequest (not only the end of the connection).
  bool RequestStarted() const { return head_bytes_ > 0 || phase_ == Phase::kBody; }

  ssize_t write(const char* ptr, size_t size) override {
    if (!is_writable()) return -1;
    while (true) {
      ssize_t n = ::send(sock_, ptr, size, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      return n;
    }
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override { AddressOf(sock_, true, ip, port); }
  void get_local_ip_and_port(std::string& ip, int& port) const override { AddressOf(sock_, false, ip, port); }
  socket_t socket() const override { return sock_; }

 private:
  // The head is complete: check its framing (http_framing.h) before httplib parses it.
  bool EndHead() {
    auto checked = CheckRequestHead(head_);
    head_.clear();
    if (auto* error = std::get_if<FramingError>(&checked)) {
      Refuse(*error);
      return false;
    }
    framing_ = std::get<RequestFraming>(checked);
    body_left_ = framing_.content_length;
    if (framing_.body == RequestFraming::Body::kChunked) {
      chunks_.emplace(limits_.max_body_bytes, limits_.max_body_message);
    }
    phase_ = Phase::kBody;
    return true;
  }

  // The body as its framing delimits it; end of stream (0) after its last byte, so that httplib
  // never reads into the next request (a POST without a length is read until end of stream).
  ssize_t ReadBody(char* ptr, size_t size) {
    if (size == 0) return 0;
    if (framing_.body == RequestFraming::Body::kNone) return 0;
    if (framing_.body == RequestFraming::Body::kLength) {
      if (body_left_ == 0) return 0;
      if (pos_ == len_ && !Fill()) return -1;
      size_t n = static_cast<size_t>(std::min<uint64_t>({size, len_ - pos_, body_left_}));
      std::memcpy(ptr, buf_ + pos_, n);
      pos_ += n;
      body_left_ -= n;
      body_bytes_ += n;
      return static_cast<ssize_t>(n);
    }
    // Chunked: the checker passes data and framing on, drops trailer fields, refuses the rest.
    size_t out = 0;
    while (out == 0) {
      if (chunks_->done()) return 0;
      if (pos_ == len_ && !Fill()) return -1;
      while (out < size && pos_ < len_ && !chunks_->done()) {
        if (size_t k = chunks_->TakeData(std::min(size - out, len_ - pos_)); k > 0) {
          std::memcpy(ptr + out, buf_ + pos_, k);
          out += k;
          pos_ += k;
          continue;
        }
        auto verdict = chunks_->Feed(buf_[pos_]);
        if (verdict == ChunkedBodyChecker::Verdict::kError) {
          Refuse(chunks_->error());
          return -1;
        }
        if (verdict == ChunkedBodyChecker::Verdict::kPass) ptr[out++] = buf_[pos_];
        ++pos_;
      }
    }
    body_bytes_ += out;
    return static_cast<ssize_t>(out);
  }

  bool Fill() {
    Ms timeout = limits_.idle_timeout;
    if (phase_ == Phase::kHead) {
      auto left = std::chrono::duration_cast<Ms>(head_deadline_ - SteadyClock::now());
      if (left.count() <= 0) return false;
      timeout = std::min(timeout, left);
    }
    if (PollFor(sock_, POLLIN, timeout) <= 0) return false;
    while (true) {
      ssize_t n = ::recv(sock_, buf_, sizeof buf_, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      pos_ = 0;
      len_ = static_cast<size_t>(n);
      return true;
    }
  }

  // Answers the refusal and refuses every further read and write on this connection (httplib's
  // own answer to the failed read then fails to write).
  void Refuse(const FramingError& error) {
    SendAll(sock_, CannedAnswer(error.status, error.message));
    refused_ = true;
  }

  const socket_t sock_;
  const ConnectionLimits& limits_;
  enum class Phase { kHead, kBody };
  char buf_[4096];
  size_t pos_ = 0, len_ = 0;
  Phase phase_ = Phase::kHead;
  bool at_line_start_ = false;
  size_t head_bytes_ = 0;
  std::string head_;                 // the head so far (at most max_header_bytes)
  RequestFraming framing_;           // from the head, once complete
  uint64_t body_left_ = 0;           // kLength: bytes of body not yet read
  uint64_t body_bytes_ = 0;          // bytes of body read
  std::optional<ChunkedBodyChecker> chunks_;  // kChunked
  SteadyClock::time_point head_deadline_{};
  bool refused_ = false;
};

}  // namespace

// ---- LingeringCloser ----------------------------------------------------------------------

// Closes sockets that were answered and shut down for writing, once their client has closed its
// side too (or after kLingerFor): closing a socket while the client's request is still unread, or
// still arriving, resets the connection, and a reset can discard the answer before the client
// reads it. One thread polls them all (a burst of refused connections costs no thread each).
class LingeringCloser {
 public:
  static constexpr Ms kLingerFor{2000};
  static constexpr size_t kMaxSockets = 4096;  // beyond: what has arrived is read, then closed

  LingeringCloser() {
    wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  }
  ~LingeringCloser() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    Wake();
    if (thread_.joinable()) thread_.join();
    for (int fd : incoming_) ::close(fd);
    if (wake_ >= 0) ::close(wake_);
  }

  // Takes `fd` (already answered and shut down for writing) and closes it later.
  void Add(int fd) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_ || wake_ < 0 || held_ + incoming_.size() >= kMaxSockets) {
        Drain(fd);
        ::close(fd);
        return;
      }
      incoming_.push_back(fd);
      if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    }
    Wake();
  }

 private:
  struct Held {
    int fd;
    SteadyClock::time_point deadline;
  };

  // Reads what the client sent; false once it closed its side (or the socket failed).
  static bool Drain(int fd) {
    char sink[4096];
    while (true) {
      ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
      if (n > 0) continue;
      if (n < 0 && errno == EINTR) continue;
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }

  void Wake() {
    if (wake_ < 0) return;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_, &one, sizeof one);
  }

  void Loop() {
    std::vector<Held> held;
    std::vector<pollfd> polled;
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) break;
        const auto deadline = SteadyClock::now() + kLingerFor;
        for (int fd : incoming_) held.push_back({fd, deadline});
        incoming_.clear();
        held_ = held.size();
      }
      polled.assign(1, pollfd{wake_, POLLIN, 0});
      auto next = SteadyClock::now() + kLingerFor;
      for (const Held& h : held) {
        polled.push_back(pollfd{h.fd, POLLIN, 0});
        next = std::min(next, h.deadline);
      }
      auto wait = std::chrono::duration_cast<Ms>(next - SteadyClock::now()).count() + 1;
      int rc = ::poll(polled.data(), polled.size(), static_cast<int>(std::max<int64_t>(1, wait)));
      if (rc < 0 && errno != EINTR) break;
      if (polled[0].revents & POLLIN) {
        uint64_t n;
        [[maybe_unused]] ssize_t r = ::read(wake_, &n, sizeof n);
      }
      const auto now = SteadyClock::now();
      size_t kept = 0;
      for (size_t i = 0; i < held.size(); ++i) {
        bool open = true;
        if (polled[i + 1].revents != 0) open = Drain(held[i].fd);
        if (open && now < held[i].deadline) {
          held[kept++] = held[i];
        } else {
          ::close(held[i].fd);
        }
      }
      held.resize(kept);
    }
    for (const Held& h : held) ::close(h.fd);
  }

  std::mutex mu_;
  std::vector<int> incoming_;  // guarded by mu_: added, not yet polled
  size_t held_ = 0;            // guarded by mu_: being polled (as of the loop's last turn)
  bool stop_ = false;          // guarded by mu_
  int wake_ = -1;              // an eventfd: incoming_ changed, or stop_
  std::thread thread_;
};

// ---- BoundedThreadPool --------------------------------------------------------------------

BoundedThreadPool::BoundedThreadPool(size_t workers, size_t max_queued, Overflow overflow, size_t stack_bytes,
                                     std::chrono::milliseconds idle_exit)
    : workers_(std::max<size_t>(1, workers)), max_queued_(max_queued), overflow_(std::move(overflow)),
      stack_bytes_(std::max<size_t>(stack_bytes, PTHREAD_STACK_MIN)), idle_exit_(idle_exit) {}

BoundedThreadPool::~BoundedThreadPool() { shutdown(); }

bool BoundedThreadPool::StartWorker() {
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  pthread_attr_setstacksize(&attr, stack_bytes_);
  pthread_t t;
  int rc = pthread_create(&t, &attr, &BoundedThreadPool::ThreadMain, this);
  pthread_attr_destroy(&attr);
  if (rc != 0) return false;
  live_.push_back(t);
  return true;
}

void* BoundedThreadPool::ThreadMain(void* pool) {
  static_cast<BoundedThreadPool*>(pool)->Work();
  return nullptr;
}

void BoundedThreadPool::enqueue(std::function<void()> fn) {
  JoinExited();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!shutdown_ && running_ + queue_.size() < workers_ + max_queued_) {
      queue_.push_back(std::move(fn));
      // More tasks waiting than idle workers to take them: one more worker, while allowed.
      bool started = queue_.size() > idle_ && live_.size() < workers_ && StartWorker();
      if (!started && live_.empty()) {  // no thread to run it, none to come
        fn = std::move(queue_.back());
        queue_.pop_back();
      } else {
        cv_.notify_one();
        return;
      }
    }
  }
  overflow_(std::move(fn));
}

void BoundedThreadPool::shutdown() {
  std::vector<pthread_t> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      all.swap(exited_);
      if (all.empty() && live_.empty()) return;
    }
    for (pthread_t t : all) pthread_join(t, nullptr);
    all.clear();
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !exited_.empty() || live_.empty(); });
  }
}

void BoundedThreadPool::JoinExited() {
  std::vector<pthread_t> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done.swap(exited_);
  }
  for (pthread_t t : done) pthread_join(t, nullptr);
}

size_t BoundedThreadPool::load() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_ + queue_.size();
}

size_t BoundedThreadPool::threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_.size();
}

void BoundedThreadPool::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    ++idle_;
    bool woken = cv_.wait_for(lock, idle_exit_, [this] { return shutdown_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) {
      if (shutdown_ || !woken) break;  // shutting down with nothing left, or idle for idle_exit_
      continue;
    }
    std::function<void()> fn = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    lock.unlock();
    fn();
    fn = nullptr;  // the task's captures go before the lock is taken again
    lock.lock();
    --running_;
  }
  // Ended: joined by the next enqueue() or by shutdown().
  const pthread_t self = pthread_self();
  live_.erase(std::find_if(live_.begin(), live_.end(), [&](pthread_t t) { return pthread_equal(t, self); }));
  exited_.push_back(self);
  cv_.notify_all();
}

// ---- BoundedHttpServer --------------------------------------------------------------------

BoundedHttpServer::BoundedHttpServer(ConnectionLimits limits)
    : limits_(std::move(limits)), closer_(std::make_unique<LingeringCloser>()),
      watcher_(std::make_unique<ClientWatcher>()) {
  new_task_queue = [this] {
    return new BoundedThreadPool(
        limits_.max_connections, limits_.max_queued,
        [](std::function<void()> task) {
          t_rejecting = true;
          task();  // httplib's task: process_and_close_socket(sock), on this thread
          t_rejecting = false;
        },
        limits_.worker_stack_bytes);
  };
  auto idle = limits_.idle_timeout;
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(idle);
  auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(idle - secs);
  // httplib's own settings only shape what it says (Keep-Alive: timeout=N, max=M) and the socket
  // options it sets; the limits themselves are enforced by ConnectionStream.
  set_read_timeout(secs.count(), usecs.count());
  set_write_timeout(secs.count(), usecs.count());
  set_keep_alive_timeout(std::max<time_t>(1, static_cast<time_t>(secs.count())));
  set_keep_alive_max_count(std::max<size_t>(1, limits_.max_requests_per_connection));
  WarmUpParser();
}

BoundedHttpServer::~BoundedHttpServer() = default;

void BoundedHttpServer::WarmUpParser() {
  // httplib checks each request's method against a function-local static set, built by the
  // first thread that parses a request. Building it here, on the thread that constructs the
  // server and before any worker exists, orders it before every worker by their creation; left to
  // the first requests, two workers meet it at once, which is safe, but ThreadSanitizer cannot see
  // the initialization guard inside the uninstrumented library and stops the server with a report
  // (seen in a full TSan run: two first requests on two workers). A request line with a version
  // httplib refuses goes no further than the parser: nothing is routed, handled or logged (no
  // handler or logger is set yet).
  httplib::detail::BufferStream warm_up;
  const std::string line = "GET / HTTP/0.0\r\n\r\n";
  warm_up.write(line.data(), line.size());
  bool closed = false;
  process_request(warm_up, true, closed, nullptr);
}

bool BoundedHttpServer::BindPort(const std::string& host, int port) {
  if (!bind_to_port(host, port)) return false;
  WidenBacklog();
  return true;
}

int BoundedHttpServer::BindAnyPort(const std::string& host) {
  int port = bind_to_any_port(host);
  if (port > 0) WidenBacklog();
  return port;
}

namespace {

// The most the kernel allows (net.core.somaxconn); listen() caps any larger backlog to it.
int SystemMaxBacklog() {
  std::ifstream in("/proc/sys/net/core/somaxconn");
  int n = 0;
  if (in >> n && n > 0) return n;
  return INT_MAX;  // unknown: the kernel caps it
}

}  // namespace

void BoundedHttpServer::WidenBacklog() {
  // listen() again on a listening socket only changes its backlog.
  socket_t sock = svr_sock_;
  if (sock == INVALID_SOCKET) return;
  const int backlog = SystemMaxBacklog();
  if (::listen(sock, backlog) == 0) backlog_ = backlog;
}

bool BoundedHttpServer::BoundToLoopbackOnly() const {
  socket_t sock = svr_sock_;
  if (sock == INVALID_SOCKET) return false;
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(sock, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  if (addr.ss_family == AF_INET) {
    return (ntohl(reinterpret_cast<sockaddr_in*>(&addr)->sin_addr.s_addr) >> 24) == 127;
  }
  if (addr.ss_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127;
  }
  return false;
}

void BoundedHttpServer::RejectBusy(socket_t sock) {
  static std::atomic<int64_t> last_log_ms{0};
  static std::atomic<uint64_t> rejected{0};
  uint64_t n = ++rejected;
  int64_t now_ms = std::chrono::duration_cast<Ms>(SteadyClock::now().time_since_epoch()).count();
  int64_t last = last_log_ms.load();
  if (now_ms - last >= 5000 && last_log_ms.compare_exchange_strong(last, now_ms)) {
    spdlog::warn("connection refused with 503: {} connections served and {} waiting, the most allowed "
                 "(RESIDENT_MAX_CONNECTIONS); {} refused so far",
                 limits_.max_connections, limits_.max_queued, n);
  }
  SendAll(sock, CannedAnswer(503, kBusyMessage));
  // The answer ends with our FIN; the socket is closed once the client has closed its side.
  ::shutdown(sock, SHUT_WR);
  closer_->Add(sock);
}

std::stop_token BoundedHttpServer::ClientGone() {
  RequestInProgress* r = t_request;
  if (r == nullptr) return {};
  if (!r->gone) {
    r->gone.emplace();
    r->watch_id = r->watcher->Watch(r->fd, *r->gone);
  }
  return r->gone->get_token();
}

bool BoundedHttpServer::process_and_close_socket(socket_t sock) {
  if (t_rejecting) {
    RejectBusy(sock);
    return false;
  }
  bool ret = false;
  bool linger = false;
  {
    ConnectionStream strm(sock, limits_);
    for (size_t left = keep_alive_max_count_; left > 0 && svr_sock_ != INVALID_SOCKET; --left) {
      if (!strm.WaitForRequest(svr_sock_)) break;
      strm.BeginRequest();
      bool connection_closed = false;
      {
        RequestInProgress request{sock, watcher_.get()};
        t_request = &request;
        ret = process_request(strm, left == 1, connection_closed, nullptr);
        t_request = nullptr;
      }
      // A large body was parsed into many small allocations, now freed, in this thread's malloc
      // arena, which keeps them: give the free pages back to the system, so that the server's
      // memory comes back after such requests (a few milliseconds, for large bodies only).
      if (strm.body_bytes() >= kTrimAfterBodyBytes) ::malloc_trim(0);
      // A refusal, or a body left unread (its bytes must never be taken for the next request):
      // the connection ends, once the client has read the answer.
      if (strm.refused() || (strm.RequestStarted() && !strm.BodyComplete())) {
        linger = true;
        break;
      }
      if (!ret || connection_closed) break;
    }
  }
  if (linger) {
    ::shutdown(sock, SHUT_WR);
    closer_->Add(sock);
  } else {
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
  return ret;
}

}  // namespace resident::api
