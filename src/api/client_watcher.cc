#include "api/client_watcher.h"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace resident::api {

ClientWatcher::ClientWatcher() {
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_ >= 0 && wake_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = 0;  // ids start at 1
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev) != 0) {
      ::close(epoll_);
      epoll_ = -1;
    }
  }
  if (epoll_ < 0 || wake_ < 0) {
    spdlog::warn("cannot watch for clients that go away ({}): their requests run to the end", std::strerror(errno));
  }
}

ClientWatcher::~ClientWatcher() {
  if (wake_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  if (epoll_ >= 0) ::close(epoll_);
  if (wake_ >= 0) ::close(wake_);
}

uint64_t ClientWatcher::Watch(int fd, std::stop_source source) {
  if (epoll_ < 0 || wake_ < 0) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t id = next_id_++;
  epoll_event ev{};
  // One event per watch: a hung-up socket stays readable, and one stop is all it needs.
  ev.events = EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLONESHOT;
  ev.data.u64 = id;
  watches_.emplace(id, std::move(source));
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    watches_.erase(id);
    return 0;
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
  return id;
}

void ClientWatcher::Unwatch(uint64_t id, int fd) {
  if (id == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  // An event already taken from epoll for this id finds it gone (Loop looks it up under mu_).
  ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
  watches_.erase(id);
}

size_t ClientWatcher::watched() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watches_.size();
}

void ClientWatcher::Loop() {
  epoll_event events[64];
  while (true) {
    int n = ::epoll_wait(epoll_, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::warn("watching for clients that go away stopped: {}", std::strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t id = events[i].data.u64;
      if (id == 0) return;  // the destructor
      // Under mu_, so that Unwatch never returns while this stop is being requested; the stop's
      // callbacks are short (wake a wait, send a cancel frame) and never watch or unwatch.
      std::lock_guard<std::mutex> lock(mu_);
      auto it = watches_.find(id);
      if (it != watches_.end()) it->second.request_stop();
    }
  }
}

}  // namespace resident::api
