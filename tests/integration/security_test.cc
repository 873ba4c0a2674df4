// "Safe by default" on the real binary: the API key, CORS, body / connection / idle limits, a
// prompt longer than the context, and the start-up warning for a server others can reach.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

struct Reply {
  int status = 0;  // 0: no answer
  std::string body;
  httplib::Headers headers;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  json error() const {
    auto j = json::parse(body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"] : json();
  }
};

Reply Call(int port, const std::string& method, const std::string& path, httplib::Headers headers = {},
           const std::string& body = "") {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(std::chrono::minutes(2));
  httplib::Request req;
  req.method = method;
  req.path = path;
  req.headers = std::move(headers);
  if (!body.empty()) {
    req.body = body;
    req.set_header("Content-Type", "application/json");
  }
  auto r = c.send(req);
  if (!r) return {};
  return {r->status, r->body, r->headers};
}

httplib::Headers Bearer(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }

// True when the server has closed `fd` (a read returns end of file or an error) at once.
bool ClosedByServer(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  char buf[256];
  return ::recv(fd, buf, sizeof buf, MSG_DONTWAIT) <= 0;
}

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/tiny.gguf");
  }
  std::string dir_;
};

TEST_F(SecurityTest, WithAnApiKeyEveryRouteButTheRootNeedsIt) {
  ServerProcess server(dir_, {{"RESIDENT_API_KEY", "s3cret-key"}});
  int port = server.port();
  // The root stays open: it is how clients (and ServerProcess) see that the server runs.
  EXPECT_EQ(Call(port, "GET", "/").status, 200);
  EXPECT_EQ(Call(port, "HEAD", "/").status, 200);

  Reply missing = Call(port, "GET", "/api/tags");
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.header("WWW-Authenticate").rfind("Bearer", 0), 0u) << missing.header("WWW-Authenticate");
  ASSERT_TRUE(missing.error().is_string()) << missing.body;
  EXPECT_NE(missing.error().get<std::string>().find("API key"), std::string::npos) << missing.body;

  Reply wrong = Call(port, "GET", "/api/tags", Bearer("s3cret-kez"));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_NE(wrong.error().get<std::string>().find("not valid"), std::string::npos) << wrong.body;
  EXPECT_EQ(Call(port, "GET", "/api/tags", {{"Authorization", "Basic czNjcmV0LWtleTo="}}).status, 401);

  EXPECT_EQ(Call(port, "GET", "/api/tags", Bearer("s3cret-key")).status, 200);
  EXPECT_EQ(Call(port, "GET", "/v1/models", Bearer("s3cret-key")).status, 200);
  EXPECT_EQ(Call(port, "GET", "/api/version", {{"Authorization", "bearer s3cret-key"}}).status, 200);
  // Every route, unknown ones included, and the body is never looked at without the key.
  EXPECT_EQ(Call(port, "POST", "/api/generate", {}, R"({"model":"tiny","prompt":"hi"})").status, 401);
  EXPECT_EQ(Call(port, "POST", "/v1/chat/completions", {}, "{}").status, 401);
  EXPECT_EQ(Call(port, "DELETE", "/api/delete", {}, R"({"model":"tiny"})").status, 401);
  EXPECT_EQ(Call(port, "GET", "/no/such/route").status, 401);
  EXPECT_EQ(Call(port, "GET", "/no/such/route", Bearer("s3cret-key")).status, 404);

  // A CORS preflight carries no credentials: it never needs the key.
  Reply preflight = Call(port, "OPTIONS", "/api/chat",
                         {{"Origin", "http://localhost:3000"},
                          {"Access-Control-Request-Method", "POST"},
                          {"Access-Control-Request-Headers", "authorization,content-type"}});
  EXPECT_EQ(preflight.status, 204);
  EXPECT_EQ(preflight.header("Access-Control-Allow-Origin"), "http://localhost:3000");
  EXPECT_NE(preflight.header("Access-Control-Allow-Headers").find("Authorization"), std::string::npos);
  // A 401 to an allowed page carries the CORS headers, so the page can read the error.
  Reply page = Call(port, "GET", "/api/tags", {{"Origin", "http://localhost:3000"}});
  EXPECT_EQ(page.status, 401);
  EXPECT_EQ(page.header("Access-Control-Allow-Origin"), "http://localhost:3000");

  // The command line sends RESIDENT_API_KEY.
  CliRun ps = RunCli(port, "ps", {{"RESIDENT_API_KEY", "s3cret-key"}});
  EXPECT_EQ(ps.code, 0) << ps.out;
  EXPECT_NE(ps.out.find("NAME"), std::string::npos) << ps.out;
  CliRun list = RunCli(port, "list", {{"RESIDENT_API_KEY", "s3cret-key"}});
  EXPECT_EQ(list.code, 0) << list.out;
  EXPECT_NE(list.out.find("tiny"), std::string::npos) << list.out;
  CliRun stop = RunCli(port, "stop tiny", {{"RESIDENT_API_KEY", "s3cret-key"}});
  EXPECT_EQ(stop.code, 0) << stop.out;
  // Without it: a clear refusal, not a crash.
  CliRun no_key = RunCli(port, "ps");
  EXPECT_NE(no_key.code, 0);
  EXPECT_NE(no_key.out.find("unauthorized"), std::string::npos) << no_key.out;
  CliRun bad_key = RunCli(port, "list", {{"RESIDENT_API_KEY", "nope"}});
  EXPECT_NE(bad_key.code, 0);
  EXPECT_NE(bad_key.out.find("not valid"), std::string::npos) << bad_key.out;
}

TEST_F(SecurityTest, CorsAllowsLocalPagesAndRefusesOthers) {
  ServerProcess server(dir_);
  int port = server.port();
  // No Origin (curl, SDKs, the CLI): not a CORS request, no CORS headers.
  Reply plain = Call(port, "GET", "/api/version");
  EXPECT_EQ(plain.status, 200);
  EXPECT_EQ(plain.header("Access-Control-Allow-Origin"), "");

  Reply local = Call(port, "GET", "/api/version", {{"Origin", "http://localhost:5173"}});
  EXPECT_EQ(local.status, 200);
  EXPECT_EQ(local.header("Access-Control-Allow-Origin"), "http://localhost:5173");
  EXPECT_NE(local.header("Vary").find("Origin"), std::string::npos);
  EXPECT_EQ(Call(port, "GET", "/api/version", {{"Origin", "vscode-webview://abc123"}}).status, 200);

  Reply preflight = Call(port, "OPTIONS", "/v1/chat/completions",
                         {{"Origin", "http://127.0.0.1:8080"},
                          {"Access-Control-Request-Method", "POST"},
                          {"Access-Control-Request-Headers", "content-type,x-stainless-os"}});
  EXPECT_EQ(preflight.status, 204);
  EXPECT_EQ(preflight.header("Access-Control-Allow-Origin"), "http://127.0.0.1:8080");
  EXPECT_NE(preflight.header("Access-Control-Allow-Methods").find("POST"), std::string::npos);
  for (const char* h : {"Authorization", "Content-Type", "x-stainless-os", "OpenAI-Beta"}) {
    EXPECT_NE(preflight.header("Access-Control-Allow-Headers").find(h), std::string::npos) << h;
  }

  // Another site: refused, preflight or not, before any work is done.
  for (const char* method : {"GET", "OPTIONS"}) {
    Reply r = Call(port, method, "/api/tags", {{"Origin", "https://evil.example"}});
    EXPECT_EQ(r.status, 403) << method;
    EXPECT_EQ(r.header("Access-Control-Allow-Origin"), "") << method;
  }
  Reply post = Call(port, "POST", "/api/generate", {{"Origin", "https://evil.example"}},
                    R"({"model":"tiny","prompt":"hi","stream":false})");
  EXPECT_EQ(post.status, 403);
  EXPECT_NE(post.error().get<std::string>().find("RESIDENT_ORIGINS"), std::string::npos) << post.body;
  EXPECT_TRUE(server.Children().empty());  // nothing was loaded for it

  // RESIDENT_ORIGINS adds origins (wildcards as Ollama), the local ones stay.
  ServerProcess listed(dir_, {{"RESIDENT_ORIGINS", "https://app.example.com, http://example.com:*"},
                              {"OLLAMA_ORIGINS", "https://ignored.example"}});
  EXPECT_EQ(Call(listed.port(), "GET", "/api/version", {{"Origin", "https://app.example.com"}}).status, 200);
  EXPECT_EQ(Call(listed.port(), "GET", "/api/version", {{"Origin", "http://example.com:8080"}}).status, 200);
  EXPECT_EQ(Call(listed.port(), "GET", "/api/version", {{"Origin", "http://localhost"}}).status, 200);
  EXPECT_EQ(Call(listed.port(), "GET", "/api/version", {{"Origin", "https://ignored.example"}}).status, 403);
  EXPECT_EQ(Call(listed.port(), "GET", "/api/version", {{"Origin", "https://example.com"}}).status, 403);

  // OLLAMA_ORIGINS="*": everyone, answered with "*".
  ServerProcess open(dir_, {{"OLLAMA_ORIGINS", "*"}});
  Reply any = Call(open.port(), "GET", "/api/version", {{"Origin", "https://evil.example"}});
  EXPECT_EQ(any.status, 200);
  EXPECT_EQ(any.header("Access-Control-Allow-Origin"), "*");
}

TEST_F(SecurityTest, OversizedBodiesGet413) {
  ServerProcess server(dir_, {{"RESIDENT_MAX_BODY", "64KiB"}});
  std::string big = json{{"model", "tiny"}, {"prompt", std::string(100 << 10, 'a')}}.dump();
  Reply r = Call(server.port(), "POST", "/api/generate", {}, big);
  EXPECT_EQ(r.status, 413);
  ASSERT_TRUE(r.error().is_string()) << r.body;
  EXPECT_NE(r.error().get<std::string>().find("too large"), std::string::npos) << r.body;
  EXPECT_TRUE(server.Children().empty());
  // Under the limit: handled as usual.
  EXPECT_EQ(Call(server.port(), "POST", "/api/show", {}, R"({"model":"ghost"})").status, 404);
  // A bad limit stops start-up with the variable's name.
  CliRun bad = RunCli(0, "serve", {{"RESIDENT_MAX_BODY", "lots"}, {"RESIDENT_MODELS", dir_ + "/store"}});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.out.find("RESIDENT_MAX_BODY"), std::string::npos) << bad.out;
}

// Found with `curl -d @body.json` (every example in Ollama's docs is `curl -d`): curl sends
// application/x-www-form-urlencoded, and the HTTP library capped such bodies at 8 KB, answering
// "413 request body too large (the limit is 33.6 MB, RESIDENT_MAX_BODY)" to a 20 KB request.
// Ollama ignores Content-Type; so does every route here, up to RESIDENT_MAX_BODY.
TEST_F(SecurityTest, BodiesAreReadWhateverTheirContentTypeUpToTheBodyLimit) {
  ServerProcess server(dir_, {{"RESIDENT_MAX_BODY", "64KiB"}});
  int port = server.port();
  const std::string words(20 << 10, 'a');  // 20 KB of prompt: one long token run, trimmed below
  const std::string generate =
      json{{"model", "tiny"}, {"prompt", "hi"}, {"system", words}, {"raw", true}, {"stream", false},
           {"options", {{"num_predict", 1}, {"num_ctx", 8192}}}}
          .dump();
  for (const char* type : {"application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz",
                           "multipart/form-data", "text/plain", ""}) {
    std::string header = *type ? std::string("Content-Type: ") + type + "\r\n" : "";
    RawReply gen = RawRequest(port, RawPost("/api/generate", generate, header));
    EXPECT_EQ(gen.status, 200) << type << ": " << gen.body.substr(0, 300);
    EXPECT_TRUE(gen.json().value("done", false)) << type << ": " << gen.body.substr(0, 300);
    // Every route reads the body: a lookup of a model that does not exist, 20 KB of padding.
    const std::string show = json{{"model", "ghost"}, {"padding", words}}.dump();
    RawReply r = RawRequest(port, RawPost("/api/show", show, header));
    EXPECT_EQ(r.status, 404) << type << ": " << r.body.substr(0, 300);
    RawReply v1 = RawRequest(port, RawPost("/v1/chat/completions",
                                           json{{"model", "ghost"}, {"messages", {{{"role", "user"}, {"content", words}}}}}.dump(),
                                           header));
    EXPECT_EQ(v1.status, 404) << type << ": " << v1.body.substr(0, 300);
    // Beyond the limit, the 413 names the limit that was hit.
    RawReply big = RawRequest(port, RawPost("/api/generate", std::string(100 << 10, ' ') + generate, header));
    EXPECT_EQ(big.status, 413) << type;
    EXPECT_EQ(big.json().value("error", ""), "request body too large (the limit is 65.5 KB, RESIDENT_MAX_BODY)")
        << type << ": " << big.body;
  }
}

TEST_F(SecurityTest, SlowClientsAreDroppedAfterTheIdleTimeoutWhileOthersAreServed) {
  ServerProcess server(dir_, {{"RESIDENT_IDLE_TIMEOUT", "1s"}, {"RESIDENT_MAX_CONNECTIONS", "8"}});
  int port = server.port();
  auto t0 = SteadyClock::now();
  // Three connections that send nothing, and one that sends its headers a byte at a time.
  std::vector<int> silent;
  for (int i = 0; i < 3; ++i) silent.push_back(ConnectLoopback(port));
  int loris = ConnectLoopback(port);
  std::string head = "POST /api/generate HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(100, 'z') + "\r\n";
  size_t sent = 0;
  int served = 0, asked = 0;
  bool loris_closed = false;
  // Without an idle timeout nothing closes and the loop runs to its end (a loose limit: a busy
  // sanitizer build answers slowly; the loris's 140 bytes take 14 s at one per 100 ms).
  while (SteadyClock::now() - t0 < 12s) {
    if (!loris_closed && sent < head.size()) {
      if (::send(loris, &head[sent], 1, MSG_NOSIGNAL) == 1) ++sent;
    }
    loris_closed = loris_closed || ClosedByServer(loris);
    // Others are served all along.
    ++asked;
    if (Call(port, "GET", "/api/version").status == 200) ++served;
    bool all_closed = loris_closed;
    for (int fd : silent) all_closed = all_closed && ClosedByServer(fd);
    if (all_closed) break;
    std::this_thread::sleep_for(100ms);
  }
  auto waited = SteadyClock::now() - t0;
  EXPECT_TRUE(loris_closed) << "sent " << sent << " bytes";
  EXPECT_LT(sent, head.size());  // cut off before its headers were complete
  for (int fd : silent) {
    EXPECT_TRUE(ClosedByServer(fd));
    ::close(fd);
  }
  ::close(loris);
  EXPECT_LT(waited, 10s);
  EXPECT_GE(served, 1);
  EXPECT_EQ(served, asked);  // every other client was served while the slow ones were held
  EXPECT_TRUE(server.alive());
}

TEST_F(SecurityTest, BeyondTheConnectionLimitA503ComesAtOnce) {
  // The held connections stay held past any stall of a busy machine (they would be closed at the
  // idle timeout, and the probe then served).
  ServerProcess server(dir_, {{"RESIDENT_IDLE_TIMEOUT", "60s"}, {"RESIDENT_MAX_CONNECTIONS", "2"}});
  int port = server.port();
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) {  // 2 served + 2 waiting for a worker
    held.push_back(ConnectLoopback(port));
    std::this_thread::sleep_for(50ms);
  }
  auto t0 = SteadyClock::now();
  Reply r = Call(port, "GET", "/api/version");
  EXPECT_LT(SteadyClock::now() - t0, 10s);  // not after a held connection's 60 s
  EXPECT_EQ(r.status, 503);
  ASSERT_TRUE(r.error().is_string()) << r.body;
  // Ollama's words, which clients match to retry.
  EXPECT_EQ(r.error(), "server busy, please try again.  maximum pending requests exceeded") << r.body;
  for (int fd : held) ::close(fd);
  int status = 0;
  for (int i = 0; i < 100 && (status = Call(port, "GET", "/api/version").status) != 200; ++i) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(status, 200);
  std::ifstream log(server.log_path());
  std::stringstream ss;
  ss << log.rdbuf();
  EXPECT_NE(ss.str().find("RESIDENT_MAX_CONNECTIONS"), std::string::npos) << ss.str();
}

TEST_F(SecurityTest, APromptLongerThanTheContextIsAClear400AndTheRunnerLivesOn) {
  // Every request (OpenAI's too, which has no num_ctx) gets a context of 256 tokens.
  ServerProcess server(dir_, {{"RESIDENT_CONTEXT_LENGTH", "256"}});
  int port = server.port();
  std::string long_prompt;
  for (int i = 0; i < 600; ++i) long_prompt += "word ";
  json options{{"num_predict", 4}, {"seed", 1}};
  // Streamed or not, generate or chat or OpenAI's: a 400 that says why, before any text.
  for (bool stream : {true, false}) {
    Reply gen = Call(port, "POST", "/api/generate", {},
                     json{{"model", "tiny"}, {"prompt", long_prompt}, {"stream", stream}, {"options", options}}.dump());
    EXPECT_EQ(gen.status, 400) << gen.body;
    ASSERT_TRUE(gen.error().is_string()) << gen.body;
    std::string msg = gen.error();
    EXPECT_NE(msg.find("tokens, more than the context of 256"), std::string::npos) << msg;
    Reply chat = Call(port, "POST", "/api/chat", {},
                      json{{"model", "tiny"},
                           {"messages", {{{"role", "user"}, {"content", long_prompt}}}},
                           {"stream", stream},
                           {"options", options}}
                          .dump());
    EXPECT_EQ(chat.status, 400) << chat.body;
  }
  Reply openai = Call(port, "POST", "/v1/chat/completions", {},
                      json{{"model", "tiny"},
                           {"messages", {{{"role", "user"}, {"content", long_prompt}}}},
                           {"stream", true},
                           {"max_tokens", 4}}
                          .dump());
  EXPECT_EQ(openai.status, 400) << openai.body;
  EXPECT_TRUE(openai.error().is_object() && openai.error().contains("message")) << openai.body;

  // The runner that refused it serves the next request.
  auto runners = server.Children();
  ASSERT_EQ(runners.size(), 1u);
  Reply ok = Call(port, "POST", "/api/generate", {},
                  json{{"model", "tiny"}, {"prompt", "hello"}, {"stream", true}, {"options", options}}.dump());
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_NE(ok.body.find("\"done\":true"), std::string::npos) << ok.body;
  EXPECT_EQ(ok.body.find("\"error\""), std::string::npos) << ok.body;
  EXPECT_EQ(server.Children(), runners);
}

// Starts `resident serve` with `env` (RESIDENT_HOST included), waits until it answers on
// 127.0.0.1:port, stops it and returns its log.
std::string ServeLog(const std::string& models_dir, int port, const std::map<std::string, std::string>& env) {
  std::string log_path = models_dir + "/serve-" + std::to_string(port) + ".log";
  pid_t pid = ::fork();
  if (pid == 0) {
    for (const char* name : {"RESIDENT_API_KEY", "RESIDENT_HOST", "OLLAMA_HOST"}) ::unsetenv(name);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::setenv("RESIDENT_MODELS", (models_dir + "/store").c_str(), 1);
    ::setenv("RESIDENT_SPARE_RUNNER", "0", 1);
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(RESIDENT_BINARY, RESIDENT_BINARY, "serve", "--models-dir", models_dir.c_str(), nullptr);
    ::_exit(127);
  }
  for (int i = 0; i < 500 && Call(port, "GET", "/").status != 200; ++i) std::this_thread::sleep_for(10ms);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  std::ifstream in(log_path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

TEST_F(SecurityTest, WarnsAtStartWhenOtherMachinesCanConnectWithoutAKey) {
  const std::string kWarning = "without an API key";
  auto address = [](const char* host, int p) { return std::string(host) + std::to_string(p); };
  int port = FreePort();
  std::string open = ServeLog(dir_, port, {{"RESIDENT_HOST", address("0.0.0.0:", port)}});
  EXPECT_NE(open.find("listening on"), std::string::npos) << open;
  EXPECT_NE(open.find(kWarning), std::string::npos) << open;
  EXPECT_NE(open.find("RESIDENT_API_KEY"), std::string::npos) << open;

  port = FreePort();
  std::string keyed = ServeLog(dir_, port, {{"RESIDENT_HOST", address("0.0.0.0:", port)}, {"RESIDENT_API_KEY", "k"}});
  EXPECT_NE(keyed.find("listening on"), std::string::npos) << keyed;
  EXPECT_EQ(keyed.find(kWarning), std::string::npos) << keyed;

  // The default address is loopback: no warning.
  port = FreePort();
  std::string local = ServeLog(dir_, port, {{"OLLAMA_HOST", address(":", port)}});
  EXPECT_NE(local.find(address("listening on http://127.0.0.1:", port)), std::string::npos) << local;
  EXPECT_EQ(local.find(kWarning), std::string::npos) << local;
}

}  // namespace
}  // namespace resident::testing
