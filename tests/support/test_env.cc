#include "support/test_env.h"

#include <gtest/gtest.h>

#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace resident::testing {
namespace fs = std::filesystem;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/resident-test-XXXXXX";
    char* p = mkdtemp(tmpl);
    if (!p) throw std::runtime_error("mkdtemp failed");
    path = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};


}  // namespace

int BindLoopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

int FreePort() {
  int port = 0;
  ::close(BindLoopback(&port));
  return port;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

const std::string& TestDir() {
  static TempDir dir;
  return dir.path;
}

std::string TestCaseDir() {
  std::string dir = TestDir() + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  fs::create_directories(dir);
  return dir;
}

int ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << "port " << port;
  return fd;
}

std::string SynthModel(const std::string& params, int seed) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  // Shared across test processes of one run: ctest runs each test in its own process.
  std::string cache = std::string(std::getenv("HOME") ? std::getenv("HOME") : "/tmp") + "/.cache/resident/test-models";
  fs::create_directories(cache);
  std::string path = cache + "/synth-" + params + "-" + std::to_string(seed) + ".gguf";
  if (!fs::exists(path)) {
    // ctest runs tests in parallel processes: each writes its own file, the rename is atomic.
    std::string mine = path + "." + std::to_string(::getpid()) + ".gguf";
    std::string cmd = std::string(RESIDENT_BINARY) + " synth '" + mine + "' --params " + params + " --seed " +
                      std::to_string(seed) + " > /dev/null";
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("resident synth failed: " + cmd);
    fs::rename(mine, path);
  }
  return path;
}

ServerProcess::ServerProcess(const std::string& models_dir, std::map<std::string, std::string> env,
                             const std::string& binary, const std::vector<std::string>& args) {
  port_ = FreePort();
  static int counter = 0;
  log_path_ = TestDir() + "/server-" + std::to_string(++counter) + ".log";
  // A RESIDENT_HOST given is a bare address ("0.0.0.0"); the port is always a free one.
  auto host = env.find("RESIDENT_HOST");
  env["RESIDENT_HOST"] = (host != env.end() ? host->second : std::string("127.0.0.1")) + ":" + std::to_string(port_);
  // Tests count runner processes: no spare unless the test asks for one.
  env.emplace("RESIDENT_SPARE_RUNNER", "0");
  // A private, empty model store unless the test gives one: never the user's ~/.resident/models.
  env.emplace("RESIDENT_MODELS", TestDir() + "/store-" + std::to_string(counter));
  // No residency history shared between the servers of a test unless the test asks for one.
  env.emplace("RESIDENT_LEARNER_STATE", "off");
  // Each server its own request log (one beside the store would be shared by the test's servers).
  env.emplace("RESIDENT_REQUEST_LOG", TestDir() + "/request-log-" + std::to_string(counter) + ".csv");
  // The prompt cache is on by default in a real server; tests that mean it turn it on (a folder of
  // their own), so that no other test saves to or restores from ~/.cache.
  env.emplace("RESIDENT_PROMPT_CACHE", "off");
  std::vector<std::string> argv_strings = {binary, "serve", "--models-dir", models_dir};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ == 0) {
    for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  // A minute to answer: a sanitizer build on a busy machine can take seconds to start. A server
  // that died is reported at once.
  bool answered = false;
  WaitFor([&] { return (answered = Get(port_, "/").status == 200) || !alive(); }, std::chrono::seconds(60));
  if (answered) return;
  std::ifstream log(log_path_);
  std::stringstream ss;
  ss << log.rdbuf();
  throw std::runtime_error("resident serve did not start: " + ss.str());
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && alive()) Terminate();
}

bool ServerProcess::alive() const {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  return r == 0;
}

std::vector<pid_t> ServerProcess::Children() const {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid_) + "/task", ec)) {
    std::ifstream in(task.path() / "children");
    pid_t p;
    while (in >> p) {
      // Runners only: a sanitizer build's server may also start llvm-symbolizer (to symbolize a
      // stack for a report or a suppression), which is not the server's doing.
      std::ifstream cmdline("/proc/" + std::to_string(p) + "/cmdline");
      std::string argv0, argv1;
      std::getline(cmdline, argv0, '\0');
      std::getline(cmdline, argv1, '\0');
      if (argv1 == "runner" || argv0.empty()) out.push_back(p);  // empty: exited, not yet reaped
    }
  }
  return out;
}

int ServerProcess::Terminate() {
  ::kill(pid_, SIGTERM);
  int status = 0;
  // A minute before SIGKILL: the tests that care how fast a server stops measure it themselves;
  // a slow stop on a busy machine must not become a killed one.
  if (!WaitFor([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, std::chrono::seconds(60))) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  return status;
}

std::vector<nlohmann::json> HttpReply::lines() const {
  std::vector<nlohmann::json> out;
  std::stringstream ss(body);
  std::string line;
  while (std::getline(ss, line)) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line, nullptr, false));
  }
  return out;
}

// The JSON payloads of an SSE body ("data: ..." events), [DONE] as the string "[DONE]".
std::vector<nlohmann::json> SseEvents(const std::string& body) {
  std::vector<nlohmann::json> out;
  std::stringstream ss(body);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.rfind("data: ", 0) != 0) continue;
    std::string data = line.substr(6);
    out.push_back(data == "[DONE]" ? nlohmann::json("[DONE]") : nlohmann::json::parse(data, nullptr, false));
  }
  return out;
}

HttpReply Post(int port, const std::string& path, const std::string& body) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(std::chrono::minutes(5));
  auto r = c.Post(path, body, "application/json");
  if (!r) return {};
  return {r->status, r->body};
}

HttpReply Get(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(std::chrono::minutes(5));  // as Post: httplib's 5 s is short for a busy sanitizer build
  auto r = c.Get(path);
  if (!r) return {};
  return {r->status, r->body};
}

namespace {

// Answers one after another: a status line, headers, and a body of Content-Length bytes or
// chunks (none for 1xx, 204, 304).
int CountResponses(const std::string& raw) {
  int n = 0;
  size_t at = 0;
  while (raw.compare(at, 9, "HTTP/1.1 ") == 0) {
    ++n;
    size_t head_end = raw.find("\r\n\r\n", at);
    if (head_end == std::string::npos) break;
    std::string head = raw.substr(at, head_end - at);
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const int status = std::atoi(raw.c_str() + at + 9);
    at = head_end + 4;
    if (status < 200 || status == 204 || status == 304) continue;
    if (size_t cl = head.find("\r\ncontent-length:"); cl != std::string::npos) {
      at += std::strtoull(head.c_str() + cl + 17, nullptr, 10);
    } else if (head.find("transfer-encoding: chunked") != std::string::npos) {
      while (true) {
        size_t eol = raw.find("\r\n", at);
        if (eol == std::string::npos) return n;
        size_t size = std::strtoul(raw.c_str() + at, nullptr, 16);
        at = eol + 2 + size + 2;
        if (size == 0) break;
      }
    } else {
      break;  // read to the end of the connection
    }
  }
  return n;
}

std::string Dechunk(const std::string& raw) {
  std::string out;
  size_t i = 0;
  while (i < raw.size()) {
    size_t eol = raw.find("\r\n", i);
    if (eol == std::string::npos) break;
    size_t size = std::strtoul(raw.substr(i, eol - i).c_str(), nullptr, 16);
    if (size == 0) break;
    out += raw.substr(eol + 2, size);
    i = eol + 2 + size + 2;
  }
  return out;
}

}  // namespace

int SendRaw(int port, const std::string& request) {
  int fd = ConnectLoopback(port);
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  return fd;
}

int CountInLog(const ServerProcess& server, const std::string& needle) {
  std::ifstream in(server.log_path());
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  int n = 0;
  for (size_t at = 0; (at = log.find(needle, at)) != std::string::npos; at += needle.size()) ++n;
  return n;
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

bool WaitForLog(const ServerProcess& server, const std::string& needle, int count, std::chrono::seconds limit) {
  return WaitFor([&] { return CountInLog(server, needle) >= count || !server.alive(); }, limit) &&
         CountInLog(server, needle) >= count;
}

RawReply RawRequest(int port, const std::string& request) {
  RawReply reply;
  int fd = ConnectLoopback(port);
  timeval limit{300, 0};  // a failing test ends instead of hanging
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      reply.reset = errno == ECONNRESET;
      break;
    }
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[16384];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ECONNRESET) reply.reset = true;
    break;
  }
  ::close(fd);
  reply.raw = raw;
  reply.responses = CountResponses(raw);
  size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return reply;
  reply.status = std::atoi(raw.c_str() + 9);
  std::string head = raw.substr(0, head_end);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  reply.body = raw.substr(head_end + 4);
  if (head.find("transfer-encoding: chunked") != std::string::npos) reply.body = Dechunk(reply.body);
  return reply;
}

std::string RawPost(const std::string& path, const std::string& body, const std::string& headers) {
  return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

double MetricSample(const std::string& metrics, const std::string& series) {
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::strtod(line.c_str() + series.size() + 1, nullptr);
  }
  return std::nan("");
}

CliRun RunCli(int port, const std::string& args, const std::map<std::string, std::string>& env) {
  std::string cmd = "env -u RESIDENT_API_KEY RESIDENT_HOST=127.0.0.1:" + std::to_string(port) + " ";
  for (const auto& [k, v] : env) cmd += k + "='" + v + "' ";
  cmd += "timeout 60 " + std::string(RESIDENT_BINARY) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return {};
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

void WriteTruncatedCopy(const std::string& src, const std::string& dst, size_t bytes) {
  std::ifstream in(src, std::ios::binary);
  std::string data(bytes, '\0');
  in.read(data.data(), static_cast<std::streamsize>(bytes));
  std::ofstream out(dst, std::ios::binary);
  out.write(data.data(), in.gcount());
}

}  // namespace resident::testing
