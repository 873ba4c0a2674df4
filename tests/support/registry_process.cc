#include "support/registry_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "support/test_env.h"

namespace resident::testing {
namespace fs = std::filesystem;

namespace {

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Gives up when the proxy stops or the peer stops reading (the sockets have send timeouts).
bool SendAll(int fd, const char* data, size_t n, const std::atomic<bool>& stop) {
  while (n > 0) {
    if (stop) return false;
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

RegistryProcess::RegistryProcess(const std::string& dir) : dir_(dir) {
  const char* binary = "/usr/bin/docker-registry";
  if (!fs::exists(binary)) {
    ADD_FAILURE() << binary << " is missing: scripts/setup.sh installs Debian's docker-registry";
    return;
  }
  fs::create_directories(dir_ + "/data");
  port_ = FreePort();
  const std::string config = dir_ + "/config.yml";
  {
    std::ofstream out(config);
    out << "version: 0.1\n"
        << "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        << "storage:\n  filesystem:\n    rootdirectory: " << dir_ << "/data\n  delete:\n    enabled: true\n"
        << "http:\n  addr: 127.0.0.1:" << port_ << "\n";
  }
  const std::string log = dir_ + "/registry.log";
  pid_ = ::fork();
  if (pid_ == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(binary, binary, "serve", config.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool up = WaitFor([&] { return Get(port_, "/v2/").status == 200; }, std::chrono::seconds(30));
  if (!up) ADD_FAILURE() << "docker-registry did not start on port " << port_ << " (log: " << log << ")";
}

RegistryProcess::~RegistryProcess() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) ::usleep(50000);
  if (::waitpid(pid_, &status, WNOHANG) == 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
}

std::string RegistryProcess::BlobFile(const std::string& digest) const {
  const std::string hex = digest.substr(7);
  return dir_ + "/data/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/data";
}

TcpProxy::TcpProxy(int target) : target_(target) {
  listener_ = BindLoopback(&port_);
  ::listen(listener_, 64);
  acceptor_ = std::thread([this] { Accept(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  ::shutdown(listener_, SHUT_RDWR);
  acceptor_.join();
  ::close(listener_);
  std::vector<std::thread> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
}

void TcpProxy::Accept() {
  while (!stop_) {
    int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (stop_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // EMFILE and the like: no spin
      continue;
    }
    std::lock_guard lock(mu_);
    workers_.emplace_back([this, client] { Serve(client); });
  }
}

void TcpProxy::Serve(int client) {
  int upstream = Connect(target_);
  if (upstream < 0) {
    ::close(client);
    return;
  }
  // Timeouts let the threads notice stop_.
  timeval tv{0, 200000};
  for (int fd : {client, upstream}) {
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  // The request head, noted; then everything from the client goes on as it comes.
  std::string head;
  char buf[65536];
  while (head.find("\r\n\r\n") == std::string::npos && !stop_) {
    ssize_t n = ::recv(client, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      break;
    }
    head.append(buf, static_cast<size_t>(n));
  }
  bool slow = false, cut = false;
  uint64_t rate = 0, cut_after = 0;
  {
    std::lock_guard lock(mu_);
    const size_t end = head.find("\r\n\r\n");
    requests_.push_back(head.substr(0, end));
    const std::string first_line = head.substr(0, head.find("\r\n"));
    if (!slow_match_.empty() && first_line.find(slow_match_) != std::string::npos) {
      slow = true;
      rate = bytes_per_second_;
      if (cuts_ > 0) {
        cut = true;
        cut_after = cut_after_;
        --cuts_;
      }
    }
  }
  std::atomic<bool> done{false};
  std::thread up([&] {
    if (!SendAll(upstream, head.data(), head.size(), stop_)) {
      done = true;
      return;
    }
    while (!done && !stop_) {
      char b[65536];
      ssize_t got = ::recv(client, b, sizeof b, 0);
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (got <= 0 || !SendAll(upstream, b, static_cast<size_t>(got), stop_)) {
        done = true;  // the client left: so does the answer
        ::shutdown(upstream, SHUT_WR);
        break;
      }
    }
  });
  uint64_t sent = 0;
  const auto start = std::chrono::steady_clock::now();
  while (!done && !stop_) {
    size_t want = sizeof buf;
    if (slow && rate > 0) want = std::min<size_t>(want, 16384);
    if (cut) want = static_cast<size_t>(std::min<uint64_t>(want, cut_after - sent));
    if (want == 0) break;  // the cut
    ssize_t n = ::recv(upstream, buf, want, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      break;
    }
    if (!SendAll(client, buf, static_cast<size_t>(n), stop_)) break;
    sent += static_cast<uint64_t>(n);
    if (slow && rate > 0) {
      auto due = start + std::chrono::microseconds(sent * 1000000 / rate);
      std::this_thread::sleep_until(due);
    }
  }
  done = true;
  ::shutdown(client, SHUT_RDWR);
  ::shutdown(upstream, SHUT_RDWR);
  up.join();
  ::close(client);
  ::close(upstream);
}

}  // namespace resident::testing
