// Pull and push against a real registry (Debian's docker-registry on loopback): push a model,
// remove it, pull it back byte for byte; progress lines as Ollama's; a broken connection resumes
// by a range request, within the pull and at the next pull after the client left; a corrupt blob
// in the registry fails with a digest error and leaves the store as it was; an unknown model,
// an unreachable registry.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "store/manifest.h"
#include "store/sha256.h"
#include "support/registry_process.h"
#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    store_ = dir_ + "/store";
    fs::create_directories(dir_ + "/models");
    registry_ = std::make_unique<RegistryProcess>(dir_ + "/registry");
  }
  std::map<std::string, std::string> Env() const { return {{"RESIDENT_MODELS", store_}}; }
  std::string Name(const std::string& host) const { return host + "/library/m1:latest"; }

  // Creates `name` in the store (weights, a system prompt, a parameter) through the API.
  static void CreateModel(int port, const std::string& name) {
    json body{{"model", name}, {"from", SynthModel("20M", 1)}, {"system", "be brief"},
              {"parameters", {{"temperature", 0.5}}}, {"stream", false}};
    auto r = Post(port, "/api/create", body.dump());
    ASSERT_EQ(r.status, 200) << r.body;
  }
  // The manifest of `name` in the store, parsed.
  store::Manifest StoreManifest(const std::string& name) const {
    auto slash = name.find('/');
    std::string host = name.substr(0, slash);
    std::string path = store_ + "/manifests/" + host + "/library/m1/latest";
    auto m = store::ParseManifest(ReadAll(path));
    EXPECT_TRUE(m.ok()) << path;
    return m.ok() ? *m : store::Manifest{};
  }
  std::string BlobPath(const std::string& digest) const { return store_ + "/blobs/sha256-" + digest.substr(7); }
  // The digests of a manifest's blobs, the config's first.
  static std::vector<store::Layer> Blobs(const store::Manifest& m) {
    std::vector<store::Layer> out{m.config};
    out.insert(out.end(), m.layers.begin(), m.layers.end());
    return out;
  }
  // Creates the model in the store, pushes it to the registry and removes it from the store:
  // its manifest, and the weights' bytes in *weights_bytes.
  store::Manifest PushedAndRemoved(int port, std::string* weights_bytes) {
    const std::string name = Name(registry_->host());
    CreateModel(port, name);
    auto pushed = Post(port, "/api/push", json{{"model", name}, {"insecure", true}, {"stream", false}}.dump());
    EXPECT_EQ(pushed.status, 200) << pushed.body;
    store::Manifest manifest = StoreManifest(name);
    if (weights_bytes != nullptr && !manifest.layers.empty()) *weights_bytes = ReadAll(BlobPath(manifest.layers[0].digest));
    CliRun rm = RunCli(port, "rm " + name);
    EXPECT_EQ(rm.code, 0) << rm.out;
    return manifest;
  }
  // A pull through the API, streamed: its lines.
  static std::vector<json> PullLines(int port, const std::string& name) {
    auto r = Post(port, "/api/pull", json{{"model", name}, {"insecure", true}}.dump());
    EXPECT_EQ(r.status, 200) << r.body;
    return r.lines();
  }

  std::string dir_, store_;
  std::unique_ptr<RegistryProcess> registry_;
};

TEST_F(RegistryTest, PushRemovePullGivesTheSameBlobsAndAWorkingModel) {
  ServerProcess server(dir_ + "/models", Env());
  const int port = server.port();
  const std::string name = Name(registry_->host());
  CreateModel(port, name);
  const store::Manifest manifest = StoreManifest(name);
  ASSERT_EQ(manifest.layers.size(), 3u);  // weights, system, params
  std::map<std::string, std::string> bytes;
  for (const auto& l : Blobs(manifest)) bytes[l.digest] = ReadAll(BlobPath(l.digest));

  CliRun push = RunCli(port, "push " + name + " --insecure");
  ASSERT_EQ(push.code, 0) << push.out;
  EXPECT_NE(push.out.find("pushing manifest"), std::string::npos) << push.out;
  for (const auto& l : Blobs(manifest)) {
    EXPECT_EQ(ReadAll(registry_->BlobFile(l.digest)), bytes[l.digest]) << "the registry's copy of " << l.digest;
  }
  // A second push finds every blob there and sends only the manifest.
  auto again = Post(port, "/api/push", json{{"model", name}, {"insecure", true}}.dump());
  ASSERT_EQ(again.status, 200);
  auto push_lines = again.lines();
  ASSERT_FALSE(push_lines.empty());
  EXPECT_EQ(push_lines.front()["status"], "retrieving manifest");
  EXPECT_EQ(push_lines.back()["status"], "success") << again.body;

  CliRun rm = RunCli(port, "rm " + name);
  ASSERT_EQ(rm.code, 0) << rm.out;
  for (const auto& l : Blobs(manifest)) EXPECT_FALSE(fs::exists(BlobPath(l.digest)));

  CliRun pull = RunCli(port, "pull " + name + " --insecure");
  ASSERT_EQ(pull.code, 0) << pull.out;
  for (const char* step : {"pulling manifest", "verifying sha256 digest", "writing manifest", "success"}) {
    EXPECT_NE(pull.out.find(step), std::string::npos) << step << " in " << pull.out;
  }
  EXPECT_NE(pull.out.find("pulling " + manifest.layers[0].digest.substr(7, 12)), std::string::npos) << pull.out;
  for (const auto& l : Blobs(manifest)) {
    EXPECT_EQ(ReadAll(BlobPath(l.digest)), bytes[l.digest]) << "pulled " << l.digest;
    EXPECT_FALSE(fs::exists(BlobPath(l.digest) + "-partial"));
  }
  // The pulled model is listed, has its system prompt and answers.
  auto show = Post(port, "/api/show", json{{"model", name}}.dump());
  ASSERT_EQ(show.status, 200) << show.body;
  EXPECT_EQ(show.json().value("system", ""), "be brief");
  auto gen = Post(port, "/api/generate",
                  json{{"model", name}, {"prompt", "hi"}, {"stream", false}, {"options", {{"num_predict", 2}}}}.dump());
  EXPECT_EQ(gen.status, 200) << gen.body;

  // Pulling it again downloads nothing: every blob is reported complete at once.
  auto lines = PullLines(port, name);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.front()["status"], "pulling manifest");
  EXPECT_EQ(lines.back()["status"], "success");
  for (const json& j : lines) {
    if (j.contains("total")) {
      EXPECT_EQ(j["completed"], j["total"]) << j.dump();
    }
  }
}

TEST_F(RegistryTest, ProgressLinesAreOllamasAndErrorsSayWhatWentWrong) {
  ServerProcess server(dir_ + "/models", Env());
  const int port = server.port();
  const std::string name = Name(registry_->host());
  const store::Manifest manifest = PushedAndRemoved(port, nullptr);

  auto lines = PullLines(port, name);
  ASSERT_GE(lines.size(), 6u);
  EXPECT_EQ(lines[0], json({{"status", "pulling manifest"}}));
  std::map<std::string, uint64_t> last;
  for (const json& j : lines) {
    if (!j.contains("digest")) continue;
    const std::string digest = j["digest"];
    EXPECT_EQ(j["status"], "pulling " + digest.substr(7, 12));
    EXPECT_GE(j["completed"].get<uint64_t>(), last[digest]) << "progress only grows";
    last[digest] = j["completed"].get<uint64_t>();
  }
  for (const auto& l : Blobs(manifest)) EXPECT_EQ(last[l.digest], l.size) << l.digest;
  const size_t n = lines.size();
  EXPECT_EQ(lines[n - 3], json({{"status", "verifying sha256 digest"}}));
  EXPECT_EQ(lines[n - 2], json({{"status", "writing manifest"}}));
  EXPECT_EQ(lines[n - 1], json({{"status", "success"}}));

  // An unknown model: Ollama's words, streamed and not.
  const std::string unknown = registry_->host() + "/library/nope:latest";
  auto streamed = PullLines(port, unknown);
  ASSERT_FALSE(streamed.empty());
  EXPECT_EQ(streamed.back(), json({{"error", "pull model manifest: file does not exist"}}));
  auto whole = Post(port, "/api/pull", json{{"model", unknown}, {"insecure", true}, {"stream", false}}.dump());
  EXPECT_EQ(whole.status, 404);
  EXPECT_EQ(whole.json(), json({{"error", "pull model manifest: file does not exist"}}));
  CliRun cli = RunCli(port, "pull " + unknown + " --insecure");
  EXPECT_NE(cli.code, 0);
  EXPECT_NE(cli.out.find("file does not exist"), std::string::npos) << cli.out;

  // Nothing listens: the registry cannot be reached, and the message says so.
  const std::string nowhere = "127.0.0.1:" + std::to_string(FreePort()) + "/library/m1:latest";
  auto down = Post(port, "/api/pull", json{{"model", nowhere}, {"insecure", true}, {"stream", false}}.dump());
  EXPECT_NE(down.status, 200);
  EXPECT_NE(down.json().value("error", "").find("pull model manifest: cannot reach 127.0.0.1:"), std::string::npos)
      << down.body;
  // A bad name never reaches the network.
  auto bad = Post(port, "/api/pull", json{{"model", "../etc/passwd"}}.dump());
  EXPECT_EQ(bad.status, 400) << bad.body;
  // Pushing a model the store does not have.
  auto missing = Post(port, "/api/push", json{{"model", unknown}, {"insecure", true}, {"stream", false}}.dump());
  EXPECT_EQ(missing.status, 404) << missing.body;
}

TEST_F(RegistryTest, ACorruptBlobFailsTheDigestCheckAndLeavesTheStoreAsItWas) {
  ServerProcess server(dir_ + "/models", Env());
  const int port = server.port();
  const std::string name = Name(registry_->host());
  const store::Manifest manifest = PushedAndRemoved(port, nullptr);
  // One byte of the weights changed in the registry's storage, the size kept.
  const store::Layer& weights = manifest.layers[0];
  {
    std::fstream f(registry_->BlobFile(weights.digest), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(weights.size / 2));
    f.put('\x5a');
  }
  auto lines = PullLines(port, name);
  ASSERT_FALSE(lines.empty());
  const std::string error = lines.back().value("error", "");
  EXPECT_NE(error.find("digest mismatch, file must be downloaded again: want " + weights.digest), std::string::npos)
      << lines.back().dump();
  EXPECT_FALSE(fs::exists(BlobPath(weights.digest)));
  EXPECT_FALSE(fs::exists(BlobPath(weights.digest) + "-partial"));
  EXPECT_FALSE(fs::exists(store_ + "/manifests/" + registry_->host() + "/library/m1/latest"));
  EXPECT_EQ(Get(port, "/api/tags").json()["models"].size(), 0u);
}

TEST_F(RegistryTest, ACutConnectionResumesWithARangeRequest) {
  ServerProcess server(dir_ + "/models", Env());
  const int port = server.port();
  std::string original;
  const store::Manifest manifest = PushedAndRemoved(port, &original);
  const store::Layer& weights = manifest.layers[0];

  // Through a proxy that cuts the first download of the weights after 5 MB: the pull goes on
  // from there with a range request and succeeds.
  TcpProxy proxy(registry_->port());
  proxy.Slow("/blobs/" + weights.digest, 0);
  proxy.Cut(1, 5'000'000);
  const std::string via = "127.0.0.1:" + std::to_string(proxy.port()) + "/library/m1:latest";
  auto lines = PullLines(port, via);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["status"], "success") << lines.back().dump();
  // The second request for the weights asks for what follows the bytes the cut let through (5 MB
  // less the answer's headers).
  std::vector<uint64_t> ranges;
  for (const std::string& head : proxy.Requests()) {
    size_t at = head.find("Range: bytes=");
    if (head.find("/blobs/" + weights.digest) != std::string::npos && at != std::string::npos) {
      ranges.push_back(std::stoull(head.substr(at + 13)));
    }
  }
  ASSERT_EQ(ranges.size(), 1u);
  EXPECT_GT(ranges[0], 4'990'000u);
  EXPECT_LT(ranges[0], 5'000'000u);
  EXPECT_EQ(ReadAll(BlobPath(weights.digest)), original);
  EXPECT_TRUE(WaitForLog(server, "resuming at"));
}

TEST_F(RegistryTest, APullWhoseClientLeftResumesAtTheNextPull) {
  ServerProcess server(dir_ + "/models", Env());
  const int port = server.port();
  std::string original;
  const store::Manifest manifest = PushedAndRemoved(port, &original);
  const store::Layer& weights = manifest.layers[0];

  // The weights come slowly (4 MB/s); the client leaves once a few MB are in.
  TcpProxy proxy(registry_->port());
  proxy.Slow("/blobs/" + weights.digest, 4'000'000);
  const std::string via = "127.0.0.1:" + std::to_string(proxy.port()) + "/library/m1:latest";
  const std::string partial = BlobPath(weights.digest) + "-partial";
  {
    int fd = ConnectLoopback(port);
    const std::string body = json{{"model", via}, {"insecure", true}}.dump();
    const std::string request = "POST /api/pull HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    ASSERT_TRUE(WaitFor([&] { return fs::exists(partial) && fs::file_size(partial) > 2'000'000; },
                        std::chrono::seconds(60)));
    ::close(fd);
  }
  // The download stops (its only client left) and keeps what it had.
  ASSERT_TRUE(WaitForLog(server, "pull cancelled"));
  const uint64_t kept = fs::file_size(partial);
  EXPECT_GT(kept, 2'000'000u);
  EXPECT_LT(kept, weights.size);

  proxy.Slow("/blobs/" + weights.digest, 0);
  auto lines = PullLines(port, via);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["status"], "success") << lines.back().dump();
  EXPECT_TRUE(WaitForLog(server, "pull: resuming blob " + weights.digest));
  bool ranged = false;
  for (const std::string& head : proxy.Requests()) {
    ranged |= head.find("/blobs/" + weights.digest) != std::string::npos &&
              head.find("Range: bytes=" + std::to_string(kept) + "-") != std::string::npos;
  }
  EXPECT_TRUE(ranged) << "the second pull asks for the bytes after the " << kept << " it kept";
  EXPECT_EQ(ReadAll(BlobPath(weights.digest)), original);
  EXPECT_FALSE(fs::exists(partial));
}

TEST_F(RegistryTest, TwoPullsOfOneModelAtOnceShareItsDownload) {
  ServerProcess server(dir_ + "/models", Env());
  const int port = server.port();
  std::string original;
  const store::Layer weights = PushedAndRemoved(port, &original).layers[0];

  // Slowly (8 MB/s), so that the second pull starts while the first downloads.
  TcpProxy proxy(registry_->port());
  proxy.Slow("/blobs/" + weights.digest, 8'000'000);
  const std::string via = "127.0.0.1:" + std::to_string(proxy.port()) + "/library/m1:latest";
  HttpReply first, second;
  std::thread a([&] { first = Post(port, "/api/pull", json{{"model", via}, {"insecure", true}}.dump()); });
  ASSERT_TRUE(WaitFor([&] { return fs::exists(BlobPath(weights.digest) + "-partial"); }, std::chrono::seconds(60)));
  second = Post(port, "/api/pull", json{{"model", via}, {"insecure", true}}.dump());
  a.join();
  for (const HttpReply* r : {&first, &second}) {
    auto lines = r->lines();
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back()["status"], "success") << r->body;
  }
  // The second pull watched the first one's download: the weights were fetched once.
  int gets = 0;
  for (const std::string& head : proxy.Requests()) gets += head.find("/blobs/" + weights.digest) != std::string::npos;
  EXPECT_EQ(gets, 1);
  EXPECT_EQ(ReadAll(BlobPath(weights.digest)), original);
}

TEST_F(RegistryTest, PullingANewVersionOfALoadedModelDoesNotDisturbIt) {
  ServerProcess server(dir_ + "/models", Env());
  const int port = server.port();
  const std::string name = Name(registry_->host());
  // The registry has one version; the store then gets another (other weights) under the same name.
  const store::Manifest pushed = PushedAndRemoved(port, nullptr);
  json other{{"model", name}, {"from", SynthModel("20M", 2)}, {"stream", false}};
  ASSERT_EQ(Post(port, "/api/create", other.dump()).status, 200);
  const store::Manifest local = StoreManifest(name);
  ASSERT_NE(local.layers[0].digest, pushed.layers[0].digest);

  // A long generation on the loaded local version, and the pull meanwhile.
  HttpReply generation;
  std::thread gen([&] {
    generation = Post(port, "/api/generate", json{{"model", name}, {"prompt", "hi"}, {"stream", false},
                                                  {"options", {{"num_predict", 200}, {"seed", 1}}}}.dump());
  });
  ASSERT_TRUE(WaitFor([&] { return Get(port, "/api/ps").json()["models"].size() == 1; }, std::chrono::seconds(60)));
  auto lines = PullLines(port, name);
  gen.join();
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["status"], "success") << lines.back().dump();
  // The generation that ran through the pull finished whole.
  ASSERT_EQ(generation.status, 200) << generation.body;
  EXPECT_EQ(generation.json()["done"], true);
  EXPECT_GT(generation.json().value("eval_count", 0), 0);
  // The store now has the registry's version, and the next request runs it.
  EXPECT_EQ(StoreManifest(name).layers[0].digest, pushed.layers[0].digest);
  auto next = Post(port, "/api/generate",
                   json{{"model", name}, {"prompt", "hi"}, {"stream", false}, {"options", {{"num_predict", 2}}}}.dump());
  EXPECT_EQ(next.status, 200) << next.body;
}

}  // namespace
}  // namespace resident::testing
