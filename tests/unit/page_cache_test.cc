// core/page_cache: how much of a file is in the page cache (mincore). The kernel decides what it
// keeps, so the checks are bounds, never exact figures: a file just read whole is (nearly) all
// cached; one whose pages were dropped (POSIX_FADV_DONTNEED, which the kernel may ignore for a
// page in use) is mostly not.
#include "core/page_cache.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace resident {
namespace {

class PageCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("resident-page-cache-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // A file of `bytes` written and flushed to disk (so that its pages can be dropped).
  std::string Write(const std::string& name, size_t bytes) {
    std::string path = (dir_ / name).string();
    std::vector<char> data(bytes);
    for (size_t i = 0; i < bytes; ++i) data[i] = static_cast<char>(i * 31 + 7);
    std::ofstream(path, std::ios::binary).write(data.data(), static_cast<std::streamsize>(bytes));
    int fd = ::open(path.c_str(), O_RDONLY);
    ::fdatasync(fd);
    ::close(fd);
    return path;
  }
  static void ReadWhole(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> buf(1 << 20);
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    }
  }
  // tmpfs pages are the file itself: they cannot be dropped.
  bool OnTmpfs() const {
    struct statfs fs {};
    return ::statfs(dir_.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC;
  }
  static void Drop(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  std::filesystem::path dir_;
};

TEST_F(PageCacheTest, AFileReadWholeIsInThePageCache) {
  const size_t size = 8 << 20;
  std::string path = Write("m.gguf", size);
  ReadWhole(path);
  auto r = MeasurePageCache(path);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->file_bytes, size);
  EXPECT_FALSE(r->sampled);
  EXPECT_GE(r->cached_bytes, size * 9 / 10);
  EXPECT_LE(r->cached_bytes, size);
  EXPECT_GE(r->fraction(), 0.9);
}

TEST_F(PageCacheTest, DroppedPagesAreNotCounted) {
  if (OnTmpfs()) GTEST_SKIP() << "the temporary folder is on tmpfs, whose pages cannot be dropped";
  const size_t size = 8 << 20;
  std::string path = Write("m.gguf", size);
  ReadWhole(path);
  Drop(path);
  auto r = MeasurePageCache(path);
  ASSERT_TRUE(r.ok());
  // Dropping is advice: the kernel keeps pages it cannot drop, but a flushed file it has no use
  // for goes, here always most of it.
  EXPECT_LT(r->fraction(), 0.5);
  // Measuring reads nothing in.
  auto again = MeasurePageCache(path);
  ASSERT_TRUE(again.ok());
  EXPECT_LT(again->fraction(), 0.5);
}

TEST_F(PageCacheTest, ALargeFileIsSampled) {
  // Sparse: more pages than a whole scan checks, none of them written (no page is cached).
  std::string path = (dir_ / "big.gguf").string();
  {
    std::ofstream f(path, std::ios::binary);
  }
  std::filesystem::resize_file(path, (kFullScanPages + 1) * 4096 * 2);
  auto r = MeasurePageCache(path);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->sampled);
  EXPECT_EQ(r->file_bytes, (kFullScanPages + 1) * 4096 * 2);
  EXPECT_LE(r->cached_bytes, r->file_bytes);
}

TEST_F(PageCacheTest, EmptyMissingAndOtherFiles) {
  std::string empty = Write("empty.gguf", 0);
  auto r = MeasurePageCache(empty);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->file_bytes, 0u);
  EXPECT_DOUBLE_EQ(r->fraction(), 1.0);
  EXPECT_EQ(MeasurePageCache((dir_ / "missing").string()).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(MeasurePageCache(dir_.string()).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PageCacheTest, TheTrackerKeepsAReadingAndMeasuresAgainWhenTheFileChanges) {
  std::string path = Write("m.gguf", 1 << 20);
  ReadWhole(path);
  PageCacheTracker tracker(std::chrono::hours(1));
  auto first = tracker.Get(path);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->file_bytes, 1u << 20);
  Drop(path);
  // Kept: within the refresh time, for the same size and mtime.
  EXPECT_EQ(tracker.Get(path)->cached_bytes, first->cached_bytes);
  // Another size: measured again.
  std::filesystem::resize_file(path, 2 << 20);
  auto grown = tracker.Get(path);
  ASSERT_TRUE(grown.has_value());
  EXPECT_EQ(grown->file_bytes, 2u << 20);
  EXPECT_FALSE(tracker.Get((dir_ / "missing").string()).has_value());
  ASSERT_TRUE(tracker.Fraction(path).has_value());
}

TEST_F(PageCacheTest, ATrackerWithNoRefreshTimeMeasuresEveryTime) {
  if (OnTmpfs()) GTEST_SKIP() << "the temporary folder is on tmpfs, whose pages cannot be dropped";
  std::string path = Write("m.gguf", 4 << 20);
  ReadWhole(path);
  PageCacheTracker tracker(std::chrono::milliseconds(0));
  ASSERT_GE(tracker.Fraction(path).value_or(0), 0.9);
  Drop(path);
  EXPECT_LT(tracker.Fraction(path).value_or(1), 0.5);
}

}  // namespace
}  // namespace resident
