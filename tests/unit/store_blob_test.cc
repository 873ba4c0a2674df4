// Blobs (digest-named files, atomic writes, hard-link import) and manifests.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include "store/blob_store.h"
#include "store/manifest.h"
#include "store/sha256.h"

namespace resident::store {
namespace {
namespace fs = std::filesystem;

class StoreBlobTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("resident-blob-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  fs::path dir_;
};

TEST_F(StoreBlobTest, Sha256MatchesKnownVectors) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string p = Write("f", "abc");
  uint64_t seen = 0;
  auto h = Sha256File(p, [&](uint64_t done, uint64_t total) {
    seen = done;
    EXPECT_EQ(total, 3u);
    return true;
  });
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, Sha256Hex("abc"));
  EXPECT_EQ(seen, 3u);
}

TEST_F(StoreBlobTest, DigestsAreValidatedBeforeBecomingPaths) {
  BlobStore blobs(dir_.string());
  const std::string hex(64, 'a');
  EXPECT_EQ(*CanonicalDigest("sha256:" + hex), "sha256:" + hex);
  EXPECT_EQ(*CanonicalDigest("sha256-" + std::string(64, 'A')), "sha256:" + hex);
  EXPECT_EQ(*blobs.PathFor("sha256:" + hex), (dir_ / "blobs" / ("sha256-" + hex)).string());
  for (std::string bad : std::vector<std::string>{std::string(""), std::string("sha256:"), "sha256:" + std::string(63, 'a'),
                          "sha256:" + std::string(65, 'a'), "sha256:" + std::string(62, 'a') + "..",
                          std::string("sha256:../../../../etc/passwd"), "sha512:" + hex, "md5:" + hex, "../sha256-" + hex,
                          "sha256:" + std::string(63, 'a') + "g", "sha256:" + std::string(63, 'a') + "/",
                          "sha256:%2e%2e" + std::string(58, 'a'), std::string("sha256:") + std::string(63, 'a') + '\0'}) {
    EXPECT_FALSE(blobs.PathFor(bad).ok()) << bad;
    EXPECT_FALSE(blobs.Has(bad));
    EXPECT_FALSE(blobs.ReadVerified(bad).ok());
  }
}

TEST_F(StoreBlobTest, PutIsContentAddressedAndVerifiedOnRead) {
  BlobStore blobs(dir_.string());
  auto d = blobs.Put("hello");
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ(*d, "sha256:" + Sha256Hex("hello"));
  EXPECT_EQ(*blobs.Put("hello"), *d);  // idempotent
  EXPECT_EQ(*blobs.ReadVerified(*d), "hello");
  // No temp files left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_ / "blobs")) {
    ++files;
    EXPECT_EQ(e.path().filename().string().rfind("sha256-", 0), 0u);
  }
  EXPECT_EQ(files, 1);
  // A corrupted blob is reported as a digest mismatch.
  std::ofstream(*blobs.PathFor(*d), std::ios::binary) << "HELLO";
  auto bad = blobs.ReadVerified(*d);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("digest mismatch"), std::string::npos);
  EXPECT_EQ(blobs.ReadVerified("sha256:" + std::string(64, 'b')).status().code(), StatusCode::kNotFound);
}

TEST_F(StoreBlobTest, ImportHardLinksOnTheSameFileSystem) {
  std::string src = Write("weights.gguf", std::string(10000, 'w'));
  BlobStore blobs(dir_.string());
  uint64_t last = 0;
  auto imported = blobs.ImportFile(src, [&](ImportPass pass, uint64_t done, uint64_t) {
    EXPECT_EQ(pass, ImportPass::kHashing);  // a hard link copies nothing
    last = done;
    return true;
  });
  ASSERT_TRUE(imported.ok()) << imported.status().message();
  EXPECT_EQ(imported->how, ImportedBlob::How::kHardLink);
  EXPECT_EQ(imported->size, 10000u);
  EXPECT_EQ(last, 10000u);
  struct stat a {}, b {};
  ASSERT_EQ(::stat(src.c_str(), &a), 0);
  ASSERT_EQ(::stat(blobs.PathFor(imported->digest)->c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);  // no second copy
  auto again = blobs.ImportFile(src);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->how, ImportedBlob::How::kExisting);
  EXPECT_EQ(blobs.ImportFile((dir_ / "missing").string()).status().code(), StatusCode::kNotFound);
  auto cancelled = BlobStore((dir_ / "other").string()).ImportFile(src, [](ImportPass, uint64_t, uint64_t) { return false; });
  EXPECT_EQ(cancelled.status().code(), StatusCode::kCancelled);
}

TEST_F(StoreBlobTest, ImportCopiesAcrossFileSystems) {
  // /dev/shm is a different file system from the temp folder on most machines; skip otherwise.
  std::error_code ec;
  fs::path shm = fs::path("/dev/shm") / dir_.filename();
  if (!fs::create_directories(shm, ec) || ec) GTEST_SKIP() << "no /dev/shm";
  std::string src = Write("w.gguf", "GGUF-and-more");
  BlobStore blobs(shm.string());
  std::vector<std::pair<ImportPass, uint64_t>> seen;
  auto imported = blobs.ImportFile(src, [&](ImportPass pass, uint64_t done, uint64_t) {
    seen.emplace_back(pass, done);
    return true;
  });
  struct stat a {}, b {};
  ::stat(src.c_str(), &a);
  ::stat(shm.c_str(), &b);
  ASSERT_TRUE(imported.ok()) << imported.status().message();
  if (a.st_dev != b.st_dev) {
    EXPECT_NE(imported->how, ImportedBlob::How::kHardLink);
  }
  // The copy is its own pass, reported as such (not a second hashing pass from 0).
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front().first, ImportPass::kHashing);
  if (imported->how == ImportedBlob::How::kCopy) {
    EXPECT_EQ(seen.back(), std::make_pair(ImportPass::kCopying, uint64_t{13}));
  } else {
    EXPECT_EQ(seen.back().first, ImportPass::kHashing);
  }
  EXPECT_EQ(*blobs.ReadVerified(imported->digest), "GGUF-and-more");
  fs::remove_all(shm, ec);
}

TEST_F(StoreBlobTest, ManifestRoundTripsAndRejectsCorruption) {
  Manifest m;
  m.config = {std::string(kConfigMediaType), "sha256:" + std::string(64, 'c'), 10};
  m.layers.push_back({std::string(kLayerModel), "sha256:" + std::string(64, 'd'), 1000});
  m.layers.push_back({std::string(kLayerSystem), "sha256:" + std::string(64, 'e'), 5});
  std::string text = SerializeManifest(m);
  EXPECT_NE(text.find("\"schemaVersion\":2"), std::string::npos);
  EXPECT_NE(text.find(std::string(kManifestMediaType)), std::string::npos);
  auto back = ParseManifest(text);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->layers.size(), 2u);
  EXPECT_EQ(back->Find(kLayerModel)->size, 1000u);
  EXPECT_EQ(back->TotalSize(), 1015u);
  EXPECT_EQ(back->Find(kLayerLicense), nullptr);

  for (std::string bad : {std::string("not json"), std::string("[]"), std::string("{}"),
                          std::string(R"({"schemaVersion":2})"),
                          std::string(R"({"schemaVersion":2,"config":{"digest":"sha256:../../x","size":1},"layers":[]})"),
                          std::string(R"({"schemaVersion":2,"config":{"digest":"sha256:)") + std::string(64, 'a') +
                              R"(","size":-1},"layers":[]})",
                          std::string(R"({"schemaVersion":1,"config":{},"layers":[]})")}) {
    auto r = ParseManifest(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("corrupt manifest"), std::string::npos);
  }
}

TEST_F(StoreBlobTest, ManifestAndConfigBytesAreTheOnesOllamaWrites) {
  Manifest m;
  m.config = {std::string(kConfigMediaType), "sha256:" + std::string(64, 'c'), 10};
  m.layers.push_back({std::string(kLayerModel), "sha256:" + std::string(64, 'd'), 1000});
  m.layers.push_back({std::string(kLayerParams), "sha256:" + std::string(64, 'e'), 5});
  EXPECT_EQ(SerializeManifest(m),
            R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
            R"("config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:)" +
                std::string(64, 'c') +
                R"(","size":10},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:)" +
                std::string(64, 'd') +
                R"(","size":1000},{"mediaType":"application/vnd.ollama.image.params","digest":"sha256:)" +
                std::string(64, 'e') + R"(","size":5}]})");

#if defined(__x86_64__)
  EXPECT_EQ(ConfigArchitecture(), "amd64");
#elif defined(__aarch64__)
  EXPECT_EQ(ConfigArchitecture(), "arm64");
#endif
  ModelConfig c;
  c.model_family = "llama";
  c.model_families = {"llama"};
  c.model_type = "20M";
  c.file_type = "F16";
  EXPECT_EQ(SerializeConfig(c, {"sha256:a", "sha256:b"}),
            R"({"model_format":"gguf","model_family":"llama","model_families":["llama"],"model_type":"20M",)"
            R"("file_type":"F16","architecture":")" +
                ConfigArchitecture() +
                R"(","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:a","sha256:b"]}})");
}

TEST_F(StoreBlobTest, ConfigRoundTrips) {
  ModelConfig c;
  c.model_family = "llama";
  c.model_families = {"llama"};
  c.model_type = "8.0B";
  c.file_type = "Q4_K_M";
  auto back = ParseConfig(SerializeConfig(c, {"sha256:x"}));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->model_format, "gguf");
  EXPECT_EQ(back->model_type, "8.0B");
  EXPECT_EQ(back->file_type, "Q4_K_M");
  EXPECT_EQ(back->model_families, std::vector<std::string>{"llama"});
  EXPECT_FALSE(ParseConfig("nope").ok());
}

}  // namespace
}  // namespace resident::store
