#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

namespace resident {
namespace {

std::string Errno() { return std::strerror(errno); }

}  // namespace

Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  const std::filesystem::path target(path);
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(std::random_device{}());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Internal("cannot create " + tmp + ": " + Errno());
  Status st = Status::Ok();
  while (!contents.empty()) {
    ssize_t n = ::write(fd, contents.data(), contents.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      st = Status::Internal("cannot write " + tmp + ": " + Errno());
      break;
    }
    contents.remove_prefix(static_cast<size_t>(n));
  }
  if (st.ok() && ::fsync(fd) != 0) st = Status::Internal("cannot sync " + tmp + ": " + Errno());
  if (::close(fd) != 0 && st.ok()) st = Status::Internal("cannot close " + tmp + ": " + Errno());
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = Status::Internal("cannot rename " + tmp + ": " + Errno());
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // the rename itself survives a crash
    ::close(dfd);
  }
  return Status::Ok();
}

Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound(path + " does not exist");
    return Status::Internal("cannot open " + path + ": " + Errno());
  }
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return Status::Internal("cannot read " + path + ": " + Errno());
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return Status::InvalidArgument(path + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  return out;
}

}  // namespace resident
