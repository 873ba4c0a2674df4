// The request log's bounds (size, age: rotation into a second file), its crash safety (a torn
// last line is skipped and ended, earlier lines never corrupted) and what it records.
#include "api/request_log.h"

#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/test_env.h"

namespace resident::api {
namespace {

namespace fs = std::filesystem;
constexpr double kDay = 24 * 3600;
// Now: a file reopened is judged by its modification time, which is real.
const double kT0 = static_cast<double>(std::time(nullptr));

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t SizeOr0(const std::string& path) {
  std::error_code ec;
  auto n = fs::file_size(path, ec);
  return ec ? 0 : n;
}

std::string Fresh(const std::string& name) {
  std::string dir = testing::TestCaseDir();
  std::string path = dir + "/" + name;
  fs::remove(path);
  fs::remove(RotatedRequestLogPath(path));
  return path;
}

TEST(RequestLogTest, RotatedPathKeepsTheCsvExtension) {
  EXPECT_EQ(RotatedRequestLogPath("/a/request-log.csv"), "/a/request-log.1.csv");
  EXPECT_EQ(RotatedRequestLogPath("/a/log"), "/a/log.1");
}

TEST(RequestLogTest, ALineIsTimeModelAndTokensOnly) {
  EXPECT_EQ(FormatRequestLogLine(1764253563.4091, "m1:latest", 29, 16), "1764253563.409,m1:latest,29,16");
  EXPECT_EQ(FormatRequestLogLine(1.5, "m", -3, 0), "1.500,m,0,0");
  // A name that does not fit one CSV field is never written (no valid model name has these).
  EXPECT_EQ(FormatRequestLogLine(1, "a,b", 1, 1), "");
  EXPECT_EQ(FormatRequestLogLine(1, "a\nb", 1, 1), "");
  EXPECT_EQ(FormatRequestLogLine(1, "", 1, 1), "");
}

TEST(RequestLogTest, WritesAHeaderThenOneLinePerRequestThatSimulateReads) {
  const std::string path = Fresh("request-log.csv");
  {
    RequestLogFile f({path});
    ASSERT_TRUE(f.Append("1800000000.000,m1:latest,10,5", kT0, kT0).ok());
    ASSERT_TRUE(f.Append("1800000001.500,m2:latest,3,0", kT0 + 1.5, kT0 + 1.5).ok());
  }
  EXPECT_EQ(Slurp(path), std::string(kRequestLogHeader) +
                             "1800000000.000,m1:latest,10,5\n1800000001.500,m2:latest,3,0\n");
  EXPECT_EQ(fs::status(path).permissions() & (fs::perms::group_all | fs::perms::others_all), fs::perms::none)
      << "only its owner reads the log";
  auto read = ReadRequestLog(path);
  ASSERT_TRUE(read.ok()) << read.status().message();
  ASSERT_EQ(read->entries.size(), 2u);
  EXPECT_EQ(read->entries[1].model, "m2:latest");
  EXPECT_DOUBLE_EQ(read->entries[1].timestamp_s, 1800000001.5);
  EXPECT_EQ(read->entries[0].prompt_tokens, 10);
  EXPECT_EQ(read->entries[0].output_tokens, 5);
  EXPECT_EQ(read->skipped, 0u);
}

TEST(RequestLogTest, SizeBoundRotatesIntoASecondFileAndDropsTheOldest) {
  const std::string path = Fresh("request-log.csv");
  const uint64_t max_bytes = 2000;
  RequestLogFile f({path, max_bytes});
  const int n = 500;  // about 22 bytes a line: 11,000 bytes written in all
  for (int i = 0; i < n; ++i) {
    std::string line = FormatRequestLogLine(kT0 + i, "m:latest", i, 1);
    ASSERT_TRUE(f.Append(line, kT0 + i, kT0 + i).ok());
    ASSERT_LE(SizeOr0(path) + SizeOr0(RotatedRequestLogPath(path)), max_bytes) << "after line " << i;
  }
  ASSERT_TRUE(fs::exists(RotatedRequestLogPath(path)));
  auto read = ReadRequestLog(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->skipped, 0u);
  ASSERT_GT(read->entries.size(), 40u) << "each file holds up to half of the bound";
  // The newest lines, in order, up to the last one written.
  for (size_t i = 0; i < read->entries.size(); ++i) {
    EXPECT_EQ(read->entries[i].prompt_tokens, n - static_cast<int>(read->entries.size()) + static_cast<int>(i));
  }
}

TEST(RequestLogTest, AgeBoundRotatesAtHalfAndRemovesACopyOlderThanTheBound) {
  const std::string path = Fresh("request-log.csv");
  const std::string rotated = RotatedRequestLogPath(path);
  RequestLogFile f({path, 64u << 20, std::chrono::hours(24 * 30)});
  ASSERT_TRUE(f.Append(FormatRequestLogLine(kT0, "a:latest", 1, 1), kT0, kT0).ok());
  ASSERT_TRUE(f.Append(FormatRequestLogLine(kT0 + 10 * kDay, "a:latest", 2, 1), kT0 + 10 * kDay, kT0 + 10 * kDay).ok());
  EXPECT_FALSE(fs::exists(rotated)) << "the first line is 10 days old: under half of 30";
  // 16 days after the first line: the file rotates; the copy keeps days 0 and 10.
  ASSERT_TRUE(f.Append(FormatRequestLogLine(kT0 + 16 * kDay, "b:latest", 3, 1), kT0 + 16 * kDay, kT0 + 16 * kDay).ok());
  ASSERT_TRUE(fs::exists(rotated));
  auto read = ReadRequestLog(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->entries.size(), 3u);
  // 41 days: the file (first line day 16) rotates again, replacing the copy of days 0 and 10.
  ASSERT_TRUE(f.Append(FormatRequestLogLine(kT0 + 41 * kDay, "c:latest", 4, 1), kT0 + 41 * kDay, kT0 + 41 * kDay).ok());
  read = ReadRequestLog(path);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->entries.size(), 2u);
  EXPECT_EQ(read->entries[0].model, "b:latest");
  EXPECT_EQ(read->entries[1].model, "c:latest");
  // 75 days: the file rotates; the copy it becomes was last written on day 41, more than 30
  // days ago: removed. Only the new line is left.
  ASSERT_TRUE(f.Append(FormatRequestLogLine(kT0 + 75 * kDay, "d:latest", 5, 1), kT0 + 75 * kDay, kT0 + 75 * kDay).ok());
  EXPECT_FALSE(fs::exists(rotated));
  read = ReadRequestLog(path);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->entries.size(), 1u);
  EXPECT_EQ(read->entries[0].model, "d:latest");
}

TEST(RequestLogTest, ATornLastLineIsSkippedAndEndedNeverCorruptingOtherLines) {
  const std::string path = Fresh("request-log.csv");
  {
    RequestLogFile f({path});
    ASSERT_TRUE(f.Append(FormatRequestLogLine(kT0, "m:latest", 7, 3), kT0, kT0).ok());
    ASSERT_TRUE(f.Append(FormatRequestLogLine(kT0 + 1, "m:latest", 8, 3), kT0 + 1, kT0 + 1).ok());
  }
  // A crash in the middle of the third line's write: part of it reached the file.
  { std::ofstream(path, std::ios::app) << "1800000002.000,m:lat"; }
  auto read = ReadRequestLog(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->entries.size(), 2u);
  EXPECT_EQ(read->skipped, 1u);
  // The server starts again: its first line must not be glued to the torn one.
  {
    RequestLogFile f({path});
    ASSERT_TRUE(f.Append(FormatRequestLogLine(kT0 + 3, "n:latest", 9, 4), kT0 + 3, kT0 + 3).ok());
  }
  read = ReadRequestLog(path);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->entries.size(), 3u);
  EXPECT_EQ(read->entries[2].model, "n:latest");
  EXPECT_EQ(read->entries[2].prompt_tokens, 9);
  EXPECT_EQ(read->skipped, 1u) << "the torn line, now ended, is still skipped";
  EXPECT_NE(Slurp(path).find("m:lat\n" + FormatRequestLogLine(kT0 + 3, "n:latest", 9, 4) + "\n"), std::string::npos)
      << Slurp(path);
}

TEST(RequestLogTest, ReadingKeepsTheNewestAndSortsByArrival) {
  const std::string path = Fresh("request-log.csv");
  {
    RequestLogFile f({path});
    // Lines are written as requests end: a long request's line comes after a later short one.
    for (double t : {5.0, 3.0, 9.0, 7.0, 1.0}) {
      ASSERT_TRUE(f.Append(FormatRequestLogLine(kT0 + t, "m", static_cast<int>(t), 0), kT0 + t, kT0 + 10).ok());
    }
  }
  auto all = ReadRequestLog(path);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->entries.size(), 5u);
  EXPECT_EQ(all->entries.front().prompt_tokens, 1);
  EXPECT_EQ(all->entries.back().prompt_tokens, 9);
  auto recent = ReadRequestLog(path, kT0 + 2, 3);
  ASSERT_TRUE(recent.ok());
  ASSERT_EQ(recent->entries.size(), 3u);
  EXPECT_EQ(recent->entries[0].prompt_tokens, 5);
  EXPECT_EQ(recent->older, 2u);
  EXPECT_EQ(ReadRequestLog(Fresh("none.csv")).status().code(), StatusCode::kNotFound);
}

TEST(RequestLogTest, TheServersLogWritesWhatWasQueued) {
  const std::string path = Fresh("request-log.csv");
  SystemClock clock;
  {
    RequestLog log({path}, clock);
    log.Append(clock.WallNow(), "m1:latest", 12, 4);
    log.Append(clock.WallNow(), "bad,name", 1, 1);  // never written
    log.Flush();
    auto read = ReadRequestLog(path);
    ASSERT_TRUE(read.ok());
    ASSERT_EQ(read->entries.size(), 1u);
    EXPECT_EQ(read->entries[0].model, "m1:latest");
    log.Append(clock.WallNow(), "m2:latest", 1, 0);
  }  // the destructor writes what is queued
  auto read = ReadRequestLog(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->entries.size(), 2u);
}

TEST(RequestLogTest, AThreadsRecordIsAppendedOnlyWhenAModelWasLeased) {
  const std::string path = Fresh("request-log.csv");
  SystemClock clock;
  RequestLog log({path}, clock);
  BeginRequestRecord(clock.WallNow());  // e.g. GET /api/tags: no model
  EndRequestRecord(&log);
  BeginRequestRecord(clock.WallNow());
  NoteRequestModel("m:latest");
  NoteRequestTokens(20, 0);
  NoteRequestTokens(0, 5);
  EndRequestRecord(&log);
  EndRequestRecord(&log);  // ended twice (a logger run again): nothing more
  log.Flush();
  auto read = ReadRequestLog(path);
  ASSERT_TRUE(read.ok());
  ASSERT_EQ(read->entries.size(), 1u);
  EXPECT_EQ(read->entries[0].prompt_tokens, 20);
  EXPECT_EQ(read->entries[0].output_tokens, 5);
}

}  // namespace
}  // namespace resident::api
