#include "core/page_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace resident {
namespace {

// Pages of [first, first + count) of the mapping that are in the page cache.
uint64_t CountCached(const unsigned char* base, uint64_t page, uint64_t first, uint64_t count,
                     std::vector<unsigned char>& vec) {
  vec.resize(count);
  if (::mincore(const_cast<unsigned char*>(base) + first * page, count * page, vec.data()) != 0) return 0;
  uint64_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

}  // namespace

double PageCacheReading::fraction() const {
  if (file_bytes == 0) return 1.0;
  return std::min(1.0, static_cast<double>(cached_bytes) / static_cast<double>(file_bytes));
}

Result<PageCacheReading> MeasurePageCache(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::NotFound(path + " does not exist")
                           : Status::Internal(path + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + " is not a regular file");
  PageCacheReading r;
  r.file_bytes = static_cast<uint64_t>(st.st_size);
  if (r.file_bytes == 0) return r;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Internal("cannot open " + path + ": " + std::strerror(errno));
  void* map = ::mmap(nullptr, r.file_bytes, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return Status::Internal("cannot map " + path + ": " + std::strerror(errno));
  const auto* base = static_cast<const unsigned char*>(map);
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t pages = (r.file_bytes + page - 1) / page;
  std::vector<unsigned char> vec;
  if (pages <= kFullScanPages) {
    const uint64_t cached = CountCached(base, page, 0, pages, vec);
    r.cached_bytes = std::min(r.file_bytes, cached * page);
  } else {
    const uint64_t window = kFullScanPages / kSampleWindows;
    uint64_t cached = 0, checked = 0;
    for (uint64_t i = 0; i < kSampleWindows; ++i) {
      // Windows spread evenly from the first page to the last.
      const uint64_t first = (pages - window) * i / (kSampleWindows - 1);
      cached += CountCached(base, page, first, window, vec);
      checked += window;
    }
    r.cached_bytes = static_cast<uint64_t>(static_cast<double>(r.file_bytes) * static_cast<double>(cached) /
                                           static_cast<double>(checked));
    r.sampled = true;
  }
  ::munmap(map, r.file_bytes);
  return r;
}

std::optional<PageCacheReading> PageCacheTracker::Get(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const int64_t mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = kept_.find(path);
  if (it != kept_.end() && it->second.size == size && it->second.mtime_ns == mtime_ns &&
      now - it->second.at < refresh_) {
    return it->second.reading;
  }
  auto reading = MeasurePageCache(path);
  if (!reading.ok()) {
    if (it != kept_.end()) kept_.erase(it);
    return std::nullopt;
  }
  kept_[path] = Kept{*reading, size, mtime_ns, now};
  return *reading;
}

std::optional<double> PageCacheTracker::Fraction(const std::string& path) {
  auto r = Get(path);
  if (!r) return std::nullopt;
  return r->fraction();
}

}  // namespace resident
