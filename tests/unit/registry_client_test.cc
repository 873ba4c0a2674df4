// RegistryClient against a small in-process HTTP server standing in for a registry that wants a
// token (the reference registry needs a signing token service for that): the Bearer challenge is
// answered with a token from its realm for its service and scope, the token is sent again and
// reused; a Basic challenge is refused with a message; a registry's error body is quoted; a
// registry that ignores a range is followed from byte 0.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <unistd.h>
#include <string>
#include <thread>

#include "store/model_store.h"
#include "store/model_transfer.h"
#include "store/registry_client.h"

namespace resident::store {
namespace {

class FakeRegistry {
 public:
  FakeRegistry() {
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FakeRegistry() {
    server_.stop();
    thread_.join();
  }
  httplib::Server& server() { return server_; }
  ModelName Name(const std::string& model) const {
    ModelName n;
    n.host = "127.0.0.1:" + std::to_string(port_);
    n.model = model;
    return n;
  }
  int port() const { return port_; }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

RegistryOptions Plain() {
  RegistryOptions o;
  o.insecure = true;
  return o;
}

TEST(RegistryClientTest, ABearerChallengeIsAnsweredWithATokenFromItsRealm) {
  FakeRegistry fake;
  std::atomic<int> token_requests{0};
  std::string asked_service, asked_scope;
  const std::string realm = "http://127.0.0.1:" + std::to_string(fake.port()) + "/token";
  fake.server().Get("/token", [&](const httplib::Request& req, httplib::Response& res) {
    ++token_requests;
    asked_service = req.get_param_value("service");
    asked_scope = req.get_param_value("scope");
    res.set_content(R"({"token":"t0k3n"})", "application/json");
  });
  fake.server().Get(R"(/v2/library/m/(manifests|blobs)/.*)", [&](const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") != "Bearer t0k3n") {
      res.status = 401;
      res.set_header("WWW-Authenticate",
                     "Bearer realm=\"" + realm + "\",service=\"fake registry\",scope=\"repository:library/m:pull\"");
      res.set_content(R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})", "application/json");
      return;
    }
    res.set_content(req.path.find("/manifests/") != std::string::npos ? "{\"manifest\":1}" : "blob-bytes",
                    "application/octet-stream");
  });
  RegistryClient client(fake.Name("m"), Plain());
  auto manifest = client.GetManifest();
  ASSERT_TRUE(manifest.ok()) << manifest.status().message();
  EXPECT_EQ(*manifest, "{\"manifest\":1}");
  EXPECT_EQ(asked_service, "fake registry");
  EXPECT_EQ(asked_scope, "repository:library/m:pull");
  // The token is reused for the next request.
  std::string got;
  Status st = client.GetBlob("sha256:" + std::string(64, 'a'), 0, [&](uint64_t at, const char* d, size_t n) {
    EXPECT_EQ(at, got.size());
    got.append(d, n);
    return true;
  });
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(got, "blob-bytes");
  EXPECT_EQ(token_requests.load(), 1);
}

TEST(RegistryClientTest, ALoginChallengeAndARegistrysErrorsAreMessages) {
  FakeRegistry fake;
  fake.server().Get("/v2/library/basic/manifests/latest", [](const httplib::Request&, httplib::Response& res) {
    res.status = 401;
    res.set_header("WWW-Authenticate", "Basic realm=\"Registry\"");
  });
  fake.server().Get("/v2/library/broken/manifests/latest", [](const httplib::Request&, httplib::Response& res) {
    res.status = 500;
    res.set_content(R"({"errors":[{"code":"UNKNOWN","message":"disk on fire"}]})", "application/json");
  });
  auto basic = RegistryClient(fake.Name("basic"), Plain()).GetManifest();
  ASSERT_FALSE(basic.ok());
  EXPECT_EQ(basic.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(basic.status().message().find("asks for a login"), std::string::npos) << basic.status().message();
  auto broken = RegistryClient(fake.Name("broken"), Plain()).GetManifest();
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find("HTTP 500: UNKNOWN: disk on fire"), std::string::npos)
      << broken.status().message();
  auto missing = RegistryClient(fake.Name("missing"), Plain()).GetManifest();
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "file does not exist");
}

TEST(RegistryClientTest, ARegistryThatIgnoresTheRangeSendsFromByteZero) {
  FakeRegistry fake;
  fake.server().Get(R"(/v2/library/m/blobs/.*)", [](const httplib::Request& req, httplib::Response& res) {
    EXPECT_EQ(req.get_header_value("Range"), "bytes=4-");
    res.status = 200;  // the whole blob, not the range (chunked: httplib applies no range to it)
    res.set_chunked_content_provider("application/octet-stream", [](size_t, httplib::DataSink& sink) {
      sink.write("0123456789", 10);
      sink.done();
      return true;
    });
  });
  std::vector<uint64_t> starts;
  std::string got;
  Status st = RegistryClient(fake.Name("m"), Plain())
                  .GetBlob("sha256:" + std::string(64, 'b'), 4, [&](uint64_t at, const char* d, size_t n) {
                    if (starts.empty()) starts.push_back(at);
                    got.append(d, n);
                    return true;
                  });
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0], 0u);
  EXPECT_EQ(got, "0123456789");
}

TEST(RegistryClientTest, APullFromARegistryThatAnswersGarbageFailsAndWritesNothing) {
  FakeRegistry fake;
  fake.server().Get("/v2/library/junk/manifests/latest", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("<html>welcome to the captive portal</html>", "text/html");
  });
  // A manifest whose weights the registry then serves with more bytes than it names.
  const std::string digest = "sha256:" + std::string(64, 'c');
  const std::string config = "sha256:" + std::string(64, 'd');
  fake.server().Get("/v2/library/long/manifests/latest", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
                    R"("config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":")" + config +
                        R"(","size":4},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":")" +
                        digest + R"(","size":4}]})",
                    "application/vnd.docker.distribution.manifest.v2+json");
  });
  fake.server().Get(R"(/v2/library/long/blobs/.*)", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("far more than four bytes", "application/octet-stream");
  });
  const std::string root = ::testing::TempDir() + "/transfer-" + std::to_string(::getpid());
  std::filesystem::remove_all(root);
  ModelStore store(root, /*read_only=*/false, "store");
  ModelTransfers transfers(store);
  const std::string host = "127.0.0.1:" + std::to_string(fake.port());
  auto junk = transfers.Pull(host + "/library/junk", Plain(), nullptr);
  ASSERT_FALSE(junk.ok());
  EXPECT_NE(junk.status().message().find("answered something that is not a model manifest"), std::string::npos)
      << junk.status().message();
  auto long_blob = transfers.Pull(host + "/library/long", Plain(), nullptr);
  ASSERT_FALSE(long_blob.ok());
  EXPECT_NE(long_blob.status().message().find("sent more than the 4 bytes the manifest names"), std::string::npos)
      << long_blob.status().message();
  EXPECT_TRUE(store.List().empty());
  // Nothing half-written: no blob and no partial file of either.
  std::error_code ec;
  for (const auto& d : {digest, config}) {
    EXPECT_FALSE(std::filesystem::exists(root + "/blobs/sha256-" + d.substr(7), ec));
    EXPECT_FALSE(std::filesystem::exists(root + "/blobs/sha256-" + d.substr(7) + "-partial", ec));
  }
  std::filesystem::remove_all(root, ec);
}

}  // namespace
}  // namespace resident::store
