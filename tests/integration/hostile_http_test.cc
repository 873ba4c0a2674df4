// Issue 20, items 6 and 7, on the real binary over raw sockets: ambiguous HTTP framing is refused
// and the bytes after it never run as a request (request smuggling), and a loopback server
// refuses Host headers that are not local (DNS rebinding).
//
// Every framing case sends, on one connection, a request whose framing is ambiguous followed by a
// "smuggled" request that would unload the model (keep_alive 0). The case holds when the status
// is the refusal, exactly one answer came back, and the model is still loaded.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "support/test_env.h"

namespace resident::testing {
namespace {
using namespace std::string_literals;
namespace fs = std::filesystem;
using nlohmann::json;

const std::string kUnloadBody = R"({"model":"tiny","keep_alive":0})";
const std::string kSmuggled =
    "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(kUnloadBody.size()) +
    "\r\n\r\n" + kUnloadBody;

class HostileHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/tiny.gguf");
  }
  // Loads tiny (an empty prompt loads it).
  void Load(int port) { ASSERT_EQ(Post(port, "/api/generate", R"({"model":"tiny"})").status, 200); }
  bool Loaded(int port) {
    auto ps = Get(port, "/api/ps").json();
    return ps.is_object() && ps["models"].is_array() && ps["models"].size() == 1;
  }
  std::string dir_;
};

struct FramingCase {
  const char* name;
  std::string request;  // the ambiguous request, without the smuggled one
  int status;
  const char* message;  // part of the error message
};

TEST_F(HostileHttpTest, AmbiguousFramingIsRefusedAndTheBytesAfterItNeverRun) {
  ServerProcess server(dir_);
  const int port = server.port();
  Load(port);
  const std::string head = "POST /api/show HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  const std::string show = R"({"model":"tiny"})";  // 16 bytes
  const std::vector<FramingCase> cases = {
      {"content-length-and-chunked", head + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
       "Content-Length together with Transfer-Encoding"},
      {"chunked-and-content-length", head + "Transfer-Encoding: chunked\r\nContent-Length: 16\r\n\r\n" + show, 400,
       "Content-Length together with Transfer-Encoding"},
      {"xchunked", head + "Transfer-Encoding: xchunked\r\n\r\n", 400, "the last coding must be chunked"},
      {"chunked-identity", head + "Transfer-Encoding: chunked, identity\r\n\r\n", 400,
       "the last coding must be chunked"},
      {"gzip-chunked", head + "Transfer-Encoding: gzip, chunked\r\n\r\n10\r\n" + show + "\r\n0\r\n\r\n", 501,
       "only chunked is supported"},
      {"two-content-lengths", head + "Content-Length: 16\r\nContent-Length: 0\r\n\r\n" + show, 400,
       "two different Content-Length values"},
      {"negative-length", head + "Content-Length: -1\r\n\r\n", 400, "is not a number of bytes"},
      {"non-numeric-length", head + "Content-Length: abc\r\n\r\n", 400, "is not a number of bytes"},
      {"malformed-chunk-size", head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n" + show + "\r\n0\r\n\r\n", 400,
       "malformed chunk size"},
      {"chunk-longer-than-its-size", head + "Transfer-Encoding: chunked\r\n\r\n2\r\n" + show + "\r\n0\r\n\r\n", 400,
       "longer than its size"},
      {"nul-in-a-header", head + "X-Evil: a\0b\r\nContent-Length: 16\r\n\r\n"s + show, 400,
       "control character 0x00"},
      {"bare-lf", head + "Content-Length: 16\n\r\n" + show, 400, "LF alone"},
      {"space-before-colon", head + "Content-Length : 99\r\n\r\n", 400, "whitespace between"},
  };
  for (const FramingCase& c : cases) {
    RawReply r = RawRequest(port, c.request + kSmuggled);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.raw.substr(0, 300);
    EXPECT_NE(r.json().value("error", "").find(c.message), std::string::npos) << c.name << ": " << r.body;
    EXPECT_NE(r.raw.find("Connection: close"), std::string::npos) << c.name;
    EXPECT_EQ(r.responses, 1) << c.name << ": " << r.raw.substr(0, 600);  // nothing more was answered
    EXPECT_FALSE(r.reset) << c.name;                                      // the answer is read, not lost to a reset
    ASSERT_TRUE(Loaded(port)) << c.name << ": the smuggled unload ran";
  }
  EXPECT_TRUE(server.alive());
}

// A body that no route reads (a GET's, or one refused before routing) would otherwise be read as
// the next request: the connection ends after the answer instead.
TEST_F(HostileHttpTest, ABodyLeftUnreadEndsTheConnection) {
  ServerProcess server(dir_);
  const int port = server.port();
  Load(port);
  const std::string get =
      "GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(kSmuggled.size()) +
      "\r\n\r\n";
  RawReply r = RawRequest(port, get + kSmuggled);
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.responses, 1) << r.raw;
  EXPECT_TRUE(Loaded(port));
  // Refused by the CORS check before its body was read.
  const std::string foreign =
      "POST /api/show HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\n"
      "Content-Length: " +
      std::to_string(kSmuggled.size()) + "\r\n\r\n";
  r = RawRequest(port, foreign + kSmuggled);
  EXPECT_EQ(r.status, 403) << r.raw;
  EXPECT_EQ(r.responses, 1) << r.raw;
  EXPECT_TRUE(Loaded(port));
  // A chunked body left unread, likewise.
  const std::string chunked_get = "GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  r = RawRequest(port, chunked_get + "1\r\nx\r\n0\r\n\r\n" + kSmuggled);
  EXPECT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.responses, 1) << r.raw;
  EXPECT_TRUE(Loaded(port));
}

// The controls: well-formed requests on one connection are all served (so the cases above
// would see a smuggled request run), a chunked body with extensions and trailers is read, and a
// request without a length has an empty body instead of waiting for the connection to close.
TEST_F(HostileHttpTest, WellFormedPipelinedAndChunkedRequestsAreServed) {
  ServerProcess server(dir_);
  const int port = server.port();
  const std::string version = "GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  RawReply two =
      RawRequest(port, version + version + "GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(two.responses, 3) << two.raw;
  const std::string body = R"({"model":"tiny"})";
  RawReply chunked =
      RawRequest(port,
                 "POST /api/show HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n6;part=1\r\n" +
                     body.substr(0, 6) + "\r\na\r\n" + body.substr(6) + "\r\n0\r\nX-Checksum: none\r\n\r\n");
  EXPECT_EQ(chunked.status, 200) << chunked.raw.substr(0, 400);
  EXPECT_TRUE(chunked.json().contains("modelfile")) << chunked.body.substr(0, 300);
  // No Content-Length: no body (httplib read to the end of the connection: a 10 s wait, then 400).
  RawReply empty = RawRequest(port,
                              "POST /api/show HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                              "GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(empty.status, 400) << empty.raw;
  EXPECT_EQ(empty.responses, 2) << empty.raw;  // and the next request on the connection is served
  // A chunked body past RESIDENT_MAX_BODY is a 413 that names the limit.
  ServerProcess small(dir_, {{"RESIDENT_MAX_BODY", "1KiB"}});
  RawReply big = RawRequest(small.port(),
                            "POST /api/show HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "800\r\n" +
                                std::string(2048, ' ') + "\r\n0\r\n\r\n");
  EXPECT_EQ(big.status, 413) << big.raw.substr(0, 300);
  EXPECT_NE(big.json().value("error", "").find("RESIDENT_MAX_BODY"), std::string::npos) << big.body;
}

httplib::Result GetWithHost(int port, const std::string& path, const std::string& host, httplib::Headers extra = {}) {
  httplib::Client c("127.0.0.1", port);
  extra.emplace("Host", host);
  return c.Get(path.c_str(), extra);
}

TEST_F(HostileHttpTest, OnLoopbackOnlyLocalHostNamesAreServed) {
  ServerProcess server(dir_);
  const int port = server.port();
  Load(port);
  const std::string p = ":" + std::to_string(port);
  for (const std::string& host :
       {"localhost" + p, "127.0.0.1" + p, "[::1]" + p, "app.localhost" + p, std::string("LOCALHOST")}) {
    auto r = GetWithHost(port, "/api/tags", host);
    ASSERT_TRUE(r) << host;
    EXPECT_EQ(r->status, 200) << host;
  }
  auto r = GetWithHost(port, "/api/tags", "attacker.example:11434");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("attacker.example:11434"), std::string::npos) << r->body;
  EXPECT_NE(r->body.find("RESIDENT_ORIGINS"), std::string::npos) << r->body;
  // The rebinding attack itself: a keep_alive 0 with the attacker's Host and no Origin.
  RawReply unload = RawRequest(port,
                               "POST /api/generate HTTP/1.1\r\nHost: attacker.example:11434\r\n"
                               "Connection: close\r\nContent-Length: " +
                                   std::to_string(kUnloadBody.size()) + "\r\n\r\n" + kUnloadBody);
  EXPECT_EQ(unload.status, 403) << unload.raw;
  EXPECT_TRUE(Loaded(port));
  EXPECT_EQ(GetWithHost(port, "/", "attacker.example")->status, 403);

  // RESIDENT_ORIGINS names hosts that may be used.
  ServerProcess listed(dir_, {{"RESIDENT_ORIGINS", "https://app.example.com"}});
  EXPECT_EQ(GetWithHost(listed.port(), "/api/tags", "app.example.com")->status, 200);
  EXPECT_EQ(GetWithHost(listed.port(), "/api/tags", "attacker.example")->status, 403);
}

TEST_F(HostileHttpTest, OnAllAddressesWithAKeyTheHostIsNotChecked) {
  ServerProcess server(dir_, {{"RESIDENT_HOST", "0.0.0.0"}, {"RESIDENT_API_KEY", "k"}});
  auto r = GetWithHost(server.port(), "/api/tags", "ollama.example.com:11434", {{"Authorization", "Bearer k"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

}  // namespace
}  // namespace resident::testing
