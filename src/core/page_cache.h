// Page cache residency of model files: how much of a file the kernel holds in memory now. A
// model whose file is in the page cache loads again at memory speed; one whose pages were dropped
// is read from disk. The scheduler uses it in the reload time of its eviction cost
// (sched/scheduler.h), and users see it (/api/tags details, `resident list`, /metrics).
//
// How: the file is mapped read-only (a mapping alone reads nothing) and mincore(2) says which of
// its pages are in the page cache. A file of up to kFullScanPages pages is checked whole; a larger
// one in kSampleWindows windows spread evenly over it, and the count scaled to the whole file
// (`sampled`). Nothing is read or faulted in, and no page's state changes.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "core/status.h"

namespace resident {

struct PageCacheReading {
  uint64_t file_bytes = 0;
  uint64_t cached_bytes = 0;  // estimated from the windows when sampled
  bool sampled = false;
  // cached_bytes / file_bytes (1 for an empty file).
  double fraction() const;
};

inline constexpr uint64_t kFullScanPages = 256 * 1024;  // 1 GiB of 4 KiB pages
inline constexpr uint64_t kSampleWindows = 64;

// Errors: kNotFound when the file does not exist, kInvalidArgument when it is not a regular file,
// kInternal when it cannot be opened or mapped.
Result<PageCacheReading> MeasurePageCache(const std::string& path);

// Readings kept per file (by path, with the file's size and mtime) and measured again at most
// every `refresh`, so that asking is cheap enough for every eviction decision and every listing.
// Thread-safe.
class PageCacheTracker {
 public:
  explicit PageCacheTracker(std::chrono::milliseconds refresh = std::chrono::seconds(5)) : refresh_(refresh) {}

  // The file's reading, at most `refresh` old (measured again at once when the file's size or
  // mtime changed); nullopt when it cannot be measured (missing, not a regular file).
  std::optional<PageCacheReading> Get(const std::string& path);
  // Get's fraction().
  std::optional<double> Fraction(const std::string& path);

 private:
  struct Kept {
    PageCacheReading reading;
    uint64_t size = 0;
    int64_t mtime_ns = 0;
    std::chrono::steady_clock::time_point at{};
  };
  const std::chrono::milliseconds refresh_;
  std::mutex mu_;
  std::map<std::string, Kept> kept_;  // guarded by mu_
};

}  // namespace resident
