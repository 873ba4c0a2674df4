// For the pull and push tests: Debian's docker-registry (the reference registry) on a free
// loopback port, and a TCP proxy in front of a port that can slow its answers down and cut them.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace resident::testing {

// `docker-registry serve` with its storage in `dir`/data, listening on 127.0.0.1 only; started
// by the constructor (which waits until /v2/ answers), stopped by the destructor.
class RegistryProcess {
 public:
  explicit RegistryProcess(const std::string& dir);
  ~RegistryProcess();
  RegistryProcess(const RegistryProcess&) = delete;
  RegistryProcess& operator=(const RegistryProcess&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  // The file the registry keeps a blob's bytes in ("sha256:<hex>").
  std::string BlobFile(const std::string& digest) const;

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Forwards 127.0.0.1:port() to 127.0.0.1:target. Each connection's first request is noted.
// Answers to requests whose first line contains `slow_match` go out at `bytes_per_second`; the
// first `cuts` of them are cut (both sides closed) after `cut_after` bytes.
class TcpProxy {
 public:
  explicit TcpProxy(int target);
  ~TcpProxy();

  int port() const { return port_; }
  void Slow(const std::string& match, uint64_t bytes_per_second) {
    std::lock_guard lock(mu_);
    slow_match_ = match;
    bytes_per_second_ = bytes_per_second;
  }
  void Cut(int cuts, uint64_t after) {
    std::lock_guard lock(mu_);
    cuts_ = cuts;
    cut_after_ = after;
  }
  // The request heads (up to the blank line) seen so far.
  std::vector<std::string> Requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void Accept();
  void Serve(int client);

  int port_ = 0;
  int target_ = 0;
  int listener_ = -1;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<std::thread> workers_;  // guarded by mu_
  std::vector<std::string> requests_;  // guarded by mu_
  std::string slow_match_;             // guarded by mu_
  uint64_t bytes_per_second_ = 0;      // guarded by mu_
  int cuts_ = 0;                       // guarded by mu_
  uint64_t cut_after_ = 0;             // guarded by mu_
};

}  // namespace resident::testing
