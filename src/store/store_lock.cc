#include "store/store_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace resident::store {

Result<StoreLock> StoreLock::Acquire(const std::string& root, Mode mode) {
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return Status::Internal("cannot create " + root + ": " + ec.message());
  const std::string path = root + "/.lock";
  // O_CLOEXEC: a runner started while the lock is held must not keep it.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Internal("cannot open " + path + ": " + std::strerror(errno));
  const int op = mode == Mode::kShared ? LOCK_SH : LOCK_EX;
  int r;
  while ((r = ::flock(fd, op)) != 0 && errno == EINTR) {
  }
  if (r != 0) {
    Status st = Status::Internal("cannot lock " + path + ": " + std::strerror(errno));
    ::close(fd);
    return st;
  }
  return StoreLock(fd);
}

StoreLock::StoreLock(StoreLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

StoreLock& StoreLock::operator=(StoreLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

StoreLock::~StoreLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor releases the lock
}

}  // namespace resident::store
