#include "support/test_env.h"

#include <gtest/gtest.h>

#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

}  // namespace

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
  env["RESIDENT_HOST"] = "127.0.0.1:" + std::to_string(port_);
  // Tests count runner processes: no spare unless the test asks for one.
  env.emplace("RESIDENT_SPARE_RUNNER", "0");
  // A private, empty model store unless the test gives one: never the user's ~/.resident/models.
  env.emplace("RESIDENT_MODELS", TestDir() + "/store-" + std::to_string(counter));
  // No residency history shared between the servers of a test unless the test asks for one.
  env.emplace("RESIDENT_LEARNER_STATE", "off");
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
  for (int i = 0; i < 500; ++i) {
    if (Get(port_, "/").status == 200) return;
    if (!alive()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
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
  for (int i = 0; i < 1000; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
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

HttpReply Post(int port, const std::string& path, const std::string& body) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(std::chrono::minutes(5));
  auto r = c.Post(path, body, "application/json");
  if (!r) return {};
  return {r->status, r->body};
}

HttpReply Get(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  auto r = c.Get(path);
  if (!r) return {};
  return {r->status, r->body};
}

void WriteTruncatedCopy(const std::string& src, const std::string& dst, size_t bytes) {
  std::ifstream in(src, std::ios::binary);
  std::string data(bytes, '\0');
  in.read(data.data(), static_cast<std::streamsize>(bytes));
  std::ofstream out(dst, std::ios::binary);
  out.write(data.data(), in.gcount());
}

}  // namespace resident::testing
