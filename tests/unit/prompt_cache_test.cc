// The prompt cache folder (runner/prompt_cache.h), without llama.cpp: the file format, the key,
// atomic writes, the size cap with least-recently-used eviction, and every broken entry (corrupt,
// cut short, another key's) ignored and removed, never used.
#include "runner/prompt_cache.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "cli/prompt_cache_settings.h"
#include "core/checksum.h"
#include "support/test_env.h"

namespace resident::runner {
namespace {

namespace fs = std::filesystem;

std::vector<int32_t> Tokens(int32_t first, size_t n) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = first + static_cast<int32_t>(i);
  return t;
}

std::string Payload(char fill, size_t n) {
  std::string p(n, fill);
  for (size_t i = 0; i < n; i += 97) p[i] = static_cast<char>(i % 251);
  return p;
}

// A payload writer that writes these bytes (what llama_state_seq_save_file does in the engine).
PromptCacheFolder::PayloadWriter Writes(std::string bytes) {
  return [bytes = std::move(bytes)](const std::string& path) -> Status {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
    return out ? Status::Ok() : Status::Internal("cannot write " + path);
  };
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

// Sets a file's modification time to `seconds` after the epoch: eviction order without sleeping.
void SetMtime(const std::string& path, time_t seconds) {
  timespec times[2] = {{seconds, 0}, {seconds, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

size_t FilesIn(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string() != ".lock";
  return n;
}

TEST(PromptCacheFolderTest, TheHeaderRoundTripsAndItsFooterFindsIt) {
  const std::vector<int32_t> tokens = Tokens(100, 1500);
  const std::string trailer = EncodePromptCacheTrailer("key-1", tokens, 1024, 10000, 0x1234);
  const std::string footer = trailer.substr(trailer.size() - kPromptCacheFooterBytes);
  const std::string header = trailer.substr(0, trailer.size() - kPromptCacheFooterBytes);
  EXPECT_EQ(PromptCacheHeaderBytes(footer), header.size());
  auto e = DecodePromptCacheHeader(header, "key-1");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->tokens, tokens);
  EXPECT_EQ(e->canonical, 1024u);
  EXPECT_EQ(e->payload_bytes, 10000u);
  EXPECT_EQ(e->payload_checksum, 0x1234u);

  auto other = DecodePromptCacheHeader(header, "key-2");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("made for another model file or other context settings"), std::string::npos);
  for (size_t at : {size_t{3}, size_t{9}, size_t{14}, size_t{30}, size_t{50}, size_t{2000}, header.size() - 3}) {
    std::string bad = header;
    bad[at] ^= 0x10;
    EXPECT_FALSE(DecodePromptCacheHeader(bad, "key-1").ok()) << "byte " << at;
  }
  EXPECT_FALSE(DecodePromptCacheHeader(header.substr(0, 100), "key-1").ok());
  EXPECT_FALSE(DecodePromptCacheHeader(header + "x", "key-1").ok());
  EXPECT_EQ(PromptCacheHeaderBytes("not a prompt cache footer at all"), 0u);
  EXPECT_EQ(PromptCacheHeaderBytes(std::string(16, '\0')), 0u);
}

TEST(PromptCacheFolderTest, ASavedEntryIsFoundAndVerified) {
  const std::string dir = testing::TestCaseDir() + "/cache";
  PromptCacheFolder folder(dir, 1 << 20, "model=a;n_ctx=2048");
  const std::vector<int32_t> tokens = Tokens(1, 300);
  const std::string payload = Payload('s', 50000);
  auto saved = folder.Save(tokens, 256, Writes(payload));
  ASSERT_TRUE(saved.ok()) << saved.status().message();
  EXPECT_EQ(saved->path, folder.PathFor(tokens));
  EXPECT_EQ(saved->bytes, fs::file_size(saved->path));
  EXPECT_EQ(saved->evicted, 0u);
  EXPECT_EQ(FilesIn(dir), 1u) << "no temporary file is left behind";

  std::vector<std::string> dropped;
  auto entries = folder.Scan(&dropped);
  EXPECT_TRUE(dropped.empty());
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].tokens, tokens);
  EXPECT_EQ(entries[0].canonical, 256u);
  EXPECT_EQ(entries[0].payload_bytes, payload.size());
  EXPECT_EQ(entries[0].file_bytes, saved->bytes);
  EXPECT_EQ(ReadAll(saved->path).substr(0, payload.size()), payload) << "the payload comes first, as written";
  EXPECT_EQ(fs::status(saved->path).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  auto verified = folder.Verify(entries[0]);
  ASSERT_TRUE(verified.ok()) << verified.status().message();
  EXPECT_EQ(verified->entry().tokens, tokens);
  // The open file itself: what llama.cpp reads through this path is what was checked, even once
  // the entry is replaced or removed.
  fs::remove(saved->path);
  EXPECT_EQ(ReadAll(verified->path()).substr(0, payload.size()), payload);

  // The same tokens again replace the entry; nothing else appears.
  ASSERT_TRUE(folder.Save(tokens, 256, Writes(Payload('t', 50000))).ok());
  ASSERT_TRUE(folder.Save(tokens, 256, Writes(Payload('u', 50000))).ok());
  EXPECT_EQ(FilesIn(dir), 1u);

  // A payload writer that fails leaves nothing behind.
  auto failed = folder.Save(Tokens(9, 300), 0, [](const std::string& path) {
    WriteAll(path, "half a state");
    return Status::Internal("disk full");
  });
  EXPECT_EQ(failed.status().message(), "disk full");
  EXPECT_EQ(FilesIn(dir), 1u);
}

TEST(PromptCacheFolderTest, AnotherKeySeesNothingAndRemovesNothing) {
  const std::string dir = testing::TestCaseDir() + "/cache";
  PromptCacheFolder ctx2048(dir, 1 << 20, "model=a;n_ctx=2048");
  PromptCacheFolder ctx4096(dir, 1 << 20, "model=a;n_ctx=4096");
  ASSERT_TRUE(ctx2048.Save(Tokens(1, 100), 0, Writes(Payload('x', 1000))).ok());
  std::vector<std::string> dropped;
  EXPECT_TRUE(ctx4096.Scan(&dropped).empty());
  EXPECT_TRUE(dropped.empty());
  EXPECT_EQ(ctx2048.Scan(&dropped).size(), 1u) << "the other key's entry is still there";
}

TEST(PromptCacheFolderTest, ACorruptPayloadIsRefusedAndRemoved) {
  const std::string dir = testing::TestCaseDir() + "/cache";
  PromptCacheFolder folder(dir, 1 << 20, "k");
  const std::vector<int32_t> tokens = Tokens(7, 200);
  auto saved = folder.Save(tokens, 0, Writes(Payload('c', 30000)));
  ASSERT_TRUE(saved.ok());
  auto entries = folder.Scan(nullptr);
  ASSERT_EQ(entries.size(), 1u);
  std::string bytes = ReadAll(saved->path);
  bytes[20000] ^= 0x01;  // one bit of the state
  WriteAll(saved->path, bytes);
  EXPECT_EQ(folder.Scan(nullptr).size(), 1u) << "a scan reads headers only";
  auto verified = folder.Verify(entries[0]);
  ASSERT_FALSE(verified.ok());
  EXPECT_EQ(verified.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(verified.status().message().find("fails its checksum"), std::string::npos) << verified.status().message();
  EXPECT_FALSE(fs::exists(saved->path));
  // Gone meanwhile (evicted by another runner): kNotFound, nothing to say.
  EXPECT_EQ(folder.Verify(entries[0]).status().code(), StatusCode::kNotFound);
}

TEST(PromptCacheFolderTest, TruncatedCorruptAndForeignEntriesAreDroppedAtScan) {
  const std::string dir = testing::TestCaseDir() + "/cache";
  PromptCacheFolder folder(dir, 1 << 20, "mine");
  PromptCacheFolder other(dir, 1 << 20, "theirs");
  auto good = folder.Save(Tokens(1, 100), 0, Writes(Payload('g', 5000)));
  auto cut = folder.Save(Tokens(2, 100), 0, Writes(Payload('h', 5000)));
  auto flipped = folder.Save(Tokens(3, 100), 0, Writes(Payload('i', 5000)));
  auto theirs = other.Save(Tokens(4, 100), 0, Writes(Payload('j', 5000)));
  auto spliced = folder.Save(Tokens(6, 100), 0, Writes(Payload('k', 5000)));
  ASSERT_TRUE(good.ok() && cut.ok() && flipped.ok() && theirs.ok() && spliced.ok());

  fs::resize_file(cut->path, fs::file_size(cut->path) - 1000);  // a save cut short
  std::string bytes = ReadAll(flipped->path);
  bytes[5000 + 100] ^= 0x40;  // inside the header's tokens
  WriteAll(flipped->path, bytes);
  bytes = ReadAll(spliced->path);
  WriteAll(spliced->path, bytes.substr(0, 4000) + bytes.substr(5000));  // payload bytes lost, header whole
  // Another key's file under one of this key's names (a copy, a checksum collision).
  const std::string foreign = folder.PathFor(Tokens(4, 100));
  fs::copy_file(theirs->path, foreign);
  const std::string garbage = folder.PathFor(Tokens(5, 100));
  WriteAll(garbage, "not a prompt cache entry");

  std::vector<std::string> dropped;
  auto entries = folder.Scan(&dropped);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].path, good->path);
  ASSERT_EQ(dropped.size(), 5u);
  std::string all;
  for (const std::string& d : dropped) all += d + "\n";
  EXPECT_NE(all.find(cut->path + ": it does not end with the footer of a prompt cache entry (cut short"), std::string::npos)
      << all;
  EXPECT_NE(all.find(spliced->path + ": it is cut short or overlong"), std::string::npos) << all;
  EXPECT_NE(all.find(flipped->path + ": its header fails its checksum"), std::string::npos) << all;
  EXPECT_NE(all.find(foreign + ": it was made for another model file or other context settings"), std::string::npos) << all;
  EXPECT_NE(all.find(garbage + ": it does not end with the footer"), std::string::npos) << all;
  EXPECT_FALSE(fs::exists(cut->path));
  EXPECT_FALSE(fs::exists(spliced->path));
  EXPECT_FALSE(fs::exists(flipped->path));
  EXPECT_FALSE(fs::exists(foreign));
  EXPECT_FALSE(fs::exists(garbage));
  EXPECT_TRUE(fs::exists(theirs->path)) << "the other key's own entry stays";
}

TEST(PromptCacheFolderTest, TheFolderKeepsToItsSizeDroppingTheLeastRecentlyUsedFirst) {
  const std::string dir = testing::TestCaseDir() + "/cache";
  const std::string payload = Payload('e', 20000);
  const uint64_t entry_bytes = EncodePromptCacheTrailer("a", Tokens(0, 100), 0, payload.size(), 0).size() + payload.size();
  // Room for three entries of either key.
  PromptCacheFolder a(dir, 3 * entry_bytes + 100, "a");
  PromptCacheFolder b(dir, 3 * entry_bytes + 100, "b");
  auto e1 = a.Save(Tokens(1, 100), 0, Writes(payload));
  auto e2 = b.Save(Tokens(2, 100), 0, Writes(payload));
  auto e3 = a.Save(Tokens(3, 100), 0, Writes(payload));
  ASSERT_TRUE(e1.ok() && e2.ok() && e3.ok());
  EXPECT_EQ(e3->bytes, entry_bytes);
  SetMtime(e1->path, 1000);  // the oldest
  SetMtime(e2->path, 2000);
  SetMtime(e3->path, 3000);

  auto e4 = a.Save(Tokens(4, 100), 0, Writes(payload));
  ASSERT_TRUE(e4.ok());
  EXPECT_EQ(e4->evicted, 1u);
  EXPECT_EQ(e4->evicted_bytes, entry_bytes);
  EXPECT_FALSE(fs::exists(e1->path));
  EXPECT_TRUE(fs::exists(e2->path) && fs::exists(e3->path) && fs::exists(e4->path));

  // A restore renews an entry: the oldest is then the other key's.
  SetMtime(e4->path, 4000);
  auto entries = a.Scan(nullptr);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].path, e4->path) << "newest first";
  EXPECT_EQ(entries[1].path, e3->path);
  a.Touch(entries[1]);  // e3: now
  auto e5 = b.Save(Tokens(5, 100), 0, Writes(payload));
  ASSERT_TRUE(e5.ok());
  EXPECT_EQ(e5->evicted, 1u);
  EXPECT_FALSE(fs::exists(e2->path));
  EXPECT_TRUE(fs::exists(e3->path));

  // An entry larger than the whole folder is never written.
  auto huge = a.Save(Tokens(6, 100), 0, Writes(std::string(4 * entry_bytes, 'z')));
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(fs::exists(a.PathFor(Tokens(6, 100))));
  EXPECT_EQ(FilesIn(dir), 3u) << "and its temporary file is gone";
}

TEST(PromptCacheFolderTest, AStaleTemporaryFileIsCleanedUpAndAFreshOneLeftAlone) {
  const std::string dir = testing::TestCaseDir() + "/cache";
  PromptCacheFolder folder(dir, 1 << 20, "k");
  fs::create_directories(dir);
  // What a runner killed in the middle of a save leaves: the rename never happened.
  const std::string stale = folder.PathFor(Tokens(1, 100)) + ".tmp-123-456";
  const std::string fresh = folder.PathFor(Tokens(2, 100)) + ".tmp-789-012";
  WriteAll(stale, "half");
  WriteAll(fresh, "half");
  SetMtime(stale, ::time(nullptr) - 2 * 3600);
  ASSERT_TRUE(folder.Save(Tokens(3, 100), 0, Writes(Payload('q', 100))).ok());
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(fresh)) << "another runner may be writing it now";
  EXPECT_TRUE(folder.Scan(nullptr).size() == 1u) << "a temporary file is never an entry";
}

TEST(PromptCacheFolderTest, AModelFileIsKnownByItsDigestOrPathSizeAndTime) {
  const std::string dir = testing::TestCaseDir();
  const std::string blob = dir + "/sha256-" + std::string(64, 'a');
  const std::string plain = dir + "/m.gguf";
  WriteAll(blob, "GGUF1234");
  WriteAll(plain, "GGUF1234");
  SetMtime(blob, 1700000000);
  SetMtime(plain, 1700000000);
  auto b = ModelFileIdentity(blob);
  auto p = ModelFileIdentity(plain);
  ASSERT_TRUE(b.ok() && p.ok());
  EXPECT_EQ(*b, "sha256:" + std::string(64, 'a') + ";size=8;mtime=1700000000.0");
  EXPECT_EQ(*p, fs::canonical(plain).string() + ";size=8;mtime=1700000000.0");
  // Edited in place or replaced: another identity, so the old states are never found.
  SetMtime(plain, 1700000001);
  EXPECT_NE(*ModelFileIdentity(plain), *p);
  WriteAll(plain, "GGUF12345");
  SetMtime(plain, 1700000000);
  EXPECT_NE(*ModelFileIdentity(plain), *p);
  EXPECT_EQ(ModelFileIdentity(dir + "/missing.gguf").status().code(), StatusCode::kNotFound);
}

// RESIDENT_PROMPT_CACHE / RESIDENT_PROMPT_CACHE_SIZE unset for each test, restored after it.
class PromptCacheSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : kNames) {
      const char* v = std::getenv(name);
      saved_.emplace_back(v ? std::optional<std::string>(v) : std::nullopt);
      ::unsetenv(name);
    }
  }
  void TearDown() override {
    for (size_t i = 0; i < 2; ++i) {
      if (saved_[i]) ::setenv(kNames[i], saved_[i]->c_str(), 1);
      else ::unsetenv(kNames[i]);
    }
  }
  static constexpr const char* kNames[2] = {"RESIDENT_PROMPT_CACHE", "RESIDENT_PROMPT_CACHE_SIZE"};
  std::vector<std::optional<std::string>> saved_;
};

TEST_F(PromptCacheSettingsTest, OnByDefaultUnderTheHomeCacheAndOffWhenAsked) {
  auto s = cli::PromptCacheSettingsFromEnv("/home/u");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->on());
  EXPECT_EQ(s->dir, "/home/u/.cache/resident/prompt-cache");
  EXPECT_EQ(s->max_bytes, 2ull << 30);

  ::setenv("RESIDENT_PROMPT_CACHE", "/var/cache/pc", 1);
  ::setenv("RESIDENT_PROMPT_CACHE_SIZE", "500MiB", 1);
  s = cli::PromptCacheSettingsFromEnv("/home/u");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->dir, "/var/cache/pc");
  EXPECT_EQ(s->max_bytes, 500ull << 20);

  ::setenv("RESIDENT_PROMPT_CACHE_SIZE", "0", 1);
  s = cli::PromptCacheSettingsFromEnv("/home/u");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->on());
  EXPECT_TRUE(s->dir.empty());

  ::unsetenv("RESIDENT_PROMPT_CACHE_SIZE");
  ::setenv("RESIDENT_PROMPT_CACHE", "off", 1);
  s = cli::PromptCacheSettingsFromEnv("/home/u");
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->on());

  ::setenv("RESIDENT_PROMPT_CACHE_SIZE", "lots", 1);
  s = cli::PromptCacheSettingsFromEnv("/home/u");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("RESIDENT_PROMPT_CACHE_SIZE=\"lots\""), std::string::npos);
}

}  // namespace
}  // namespace resident::runner
