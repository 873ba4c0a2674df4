// Residency with real runners: expiry, keep_alive 0, forever, eviction under a small memory
// budget, pins from a policy file, and memory that really comes back.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

class ResidencyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    // Three distinct ~80 MB (measured) models. The tests with a 200 MB budget load them with a
    // context of 2048 (RESIDENT_CONTEXT_LENGTH), so that two fit under a sanitizer too, whose
    // instrumented runners hold more.
    for (int i = 1; i <= 3; ++i) {
      fs::create_symlink(SynthModel("20M", i), dir_ + "/m" + std::to_string(i) + ".gguf");
    }
  }
  static json Load(int port, const std::string& model, const std::string& keep_alive_json = "") {
    std::string body = R"({"model":")" + model + R"(","prompt":"hi","stream":false,"options":{"num_predict":1}})";
    if (!keep_alive_json.empty()) body = body.substr(0, body.size() - 1) + R"(,"keep_alive":)" + keep_alive_json + "}";
    auto r = Post(port, "/api/generate", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json();
  }
  static std::set<std::string> Loaded(int port) {
    std::set<std::string> out;
    json ps = Get(port, "/api/ps").json();  // kept alive: the loop below refers into it
    for (auto& m : ps["models"]) out.insert(m["name"].get<std::string>());
    return out;
  }
  std::string dir_;
};

TEST_F(ResidencyTest, AModelUnloadsWhenItsKeepAliveExpires) {
  ServerProcess server(dir_);
  auto loaded_at = Clock::now();  // before the request: its keep_alive starts when it ends
  Load(server.port(), "m1", R"("5s")");  // 5 s: still loaded when asked below, on a busy machine too
  ASSERT_EQ(Loaded(server.port()), (std::set<std::string>{"m1:latest"}));
  // Poll until it is gone (the runner exit is checked below).
  while (!Loaded(server.port()).empty() && Clock::now() - loaded_at < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto gone_after = Clock::now() - loaded_at;
  EXPECT_TRUE(Loaded(server.port()).empty());
  EXPECT_GE(gone_after, std::chrono::seconds(5)) << "unloaded before its keep_alive expired";
  // That it goes at the expiry itself, not later (about 5 ms late measured here), is checked
  // exactly, with a fake clock, by the unit test TheTimerThreadUnloadsAtTheExpiryNotLater: a
  // wall-clock bound here would fail on a busy machine.
  // The runner process exits right after (it is told to stop, then reaped).
  EXPECT_TRUE(WaitFor([&] { return server.Children().empty(); }, std::chrono::seconds(30)));
}

TEST_F(ResidencyTest, KeepAliveZeroReleasesAtOnceAndForeverStays) {
  ServerProcess server(dir_, {{"RESIDENT_KEEP_ALIVE", "1s"}});
  Load(server.port(), "m1", "0");
  EXPECT_TRUE(Loaded(server.port()).empty());
  EXPECT_TRUE(server.Children().empty());
  Load(server.port(), "m2", "-1");
  auto ps = Get(server.port(), "/api/ps").json()["models"][0];
  EXPECT_EQ(ps["keep_alive"], "forever");
  EXPECT_GT(ps["expires_at"].get<std::string>(), "2200");  // far in the future
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(Loaded(server.port()), (std::set<std::string>{"m2:latest"}));  // the env default of 1s does not apply
}

TEST_F(ResidencyTest, ThreeModelsCompeteForABudgetThatFitsTwo) {
  // Each 20M model measures about 70 MB and is predicted at about 80 MB: 200 MB fits two.
  ServerProcess server(dir_, {{"RESIDENT_MEMORY_LIMIT", "200MB"}, {"RESIDENT_CONTEXT_LENGTH", "2048"}});
  Load(server.port(), "m1");
  Load(server.port(), "m2");
  EXPECT_EQ(Loaded(server.port()).size(), 2u);
  Load(server.port(), "m3");
  auto loaded = Loaded(server.port());
  EXPECT_EQ(loaded.size(), 2u);
  EXPECT_TRUE(loaded.count("m3:latest"));
  EXPECT_EQ(server.Children().size(), 2u);
  uint64_t total = 0;
  json ps = Get(server.port(), "/api/ps").json();
  for (auto& m : ps["models"]) total += m["size"].get<uint64_t>();
  EXPECT_LE(total, 200'000'000u);
  std::ifstream log(server.log_path());
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("to make room for m3:latest"), std::string::npos) << text;
}

TEST_F(ResidencyTest, APinnedModelIsNeverEvictedAndAModelTooBigFailsClearly) {
  std::string config = dir_ + "/resident.toml";
  std::ofstream(config) << "[models.m1]\npin = true\n";
  ServerProcess server(dir_, {{"RESIDENT_MEMORY_LIMIT", "200MB"}, {"RESIDENT_CONTEXT_LENGTH", "2048"}, {"RESIDENT_CONFIG", config}});
  Load(server.port(), "m1", "0");  // keep_alive 0 from a request still unloads a pinned model
  EXPECT_TRUE(Loaded(server.port()).empty());
  Load(server.port(), "m1");
  Load(server.port(), "m2");
  Load(server.port(), "m3");  // m2 goes, not the pinned m1 (which was used first)
  EXPECT_EQ(Loaded(server.port()), (std::set<std::string>{"m1:latest", "m3:latest"}));
  auto ps = Get(server.port(), "/api/ps").json()["models"];
  for (auto& m : ps) {
    if (m["name"] == "m1:latest") {
      EXPECT_EQ(m["pinned"], true);
    }
  }
  ServerProcess tiny_budget(dir_, {{"RESIDENT_MEMORY_LIMIT", "50MB"}});
  auto r = Post(tiny_budget.port(), "/api/generate", R"({"model":"m1","prompt":"hi"})");
  EXPECT_EQ(r.status, 500);  // not 503 ("busy, retry"): no retry can load it (Ollama answers 500)
  EXPECT_NE(r.json()["error"].get<std::string>().find("can never be loaded"), std::string::npos) << r.body;
  EXPECT_TRUE(tiny_budget.Children().empty());
}

TEST_F(ResidencyTest, AKeepAliveOfCenturiesIsReportedWithoutOverflow) {
  ServerProcess server(dir_);
  Load(server.port(), "m1", R"("2562047h")");  // finite (as in Ollama); now + it overflows int64 ns
  json ps = Get(server.port(), "/api/ps").json()["models"];
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0]["keep_alive"], "2562047h0m0s");
  EXPECT_EQ(ps[0]["expires_at"], "2262-04-11T23:47:16.854775807Z");  // saturated, not in the past
}

TEST_F(ResidencyTest, ALoadThatStallsFailsAfterTheLoadTimeoutAndLeavesNoRunner) {
  // 5 s: long enough for the next load (below) to make progress on a busy or instrumented machine.
  ServerProcess server(dir_, {{"RESIDENT_LOAD_TIMEOUT", "5s"}});
  // The warm spare is off in tests (test_env.cc): the only child is the runner this request starts.
  ASSERT_TRUE(server.Children().empty());
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::atomic<bool> answered{false};
    auto request = std::async(std::launch::async, [&] {
      auto r = Post(server.port(), "/api/generate", R"({"model":"m1","prompt":"hi","stream":false})");
      answered = true;
      return r;
    });
    // Freeze the runner as soon as it appears: it can report no more load progress.
    std::vector<pid_t> stopped;
    while (!answered && stopped.empty()) {
      for (pid_t p : server.Children()) {
        ::kill(p, SIGSTOP);
        stopped.push_back(p);
      }
    }
    HttpReply r = request.get();
    if (r.status == 200) {  // it loaded before it could be frozen: unload, try again
      for (pid_t p : stopped) ::kill(p, SIGCONT);
      Post(server.port(), "/api/generate", R"({"model":"m1","keep_alive":0})");
      continue;
    }
    EXPECT_EQ(r.status, 500) << r.body;
    EXPECT_NE(r.json()["error"].get<std::string>().find("made no progress for 5"), std::string::npos) << r.body;
    // 5 s without progress, then the runner is told to stop and, frozen, killed after 2 s.
    EXPECT_TRUE(server.Children().empty());
    EXPECT_TRUE(Loaded(server.port()).empty());
    Load(server.port(), "m1");  // the next request loads it
    EXPECT_EQ(Loaded(server.port()), (std::set<std::string>{"m1:latest"}));
    return;
  }
  FAIL() << "the runner loaded before it could be stopped, 5 times";
}

TEST_F(ResidencyTest, ABadPolicyFileStopsStartUpWithFileLineAndReason) {
  std::string config = dir_ + "/bad.toml";
  std::ofstream(config) << "[models.m1]\nkeep_alive = \"300\"\n";
  std::string cmd = std::string(RESIDENT_BINARY) + " serve --config " + config + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  int status = pclose(p);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find(config + ":2:"), std::string::npos) << out;
  EXPECT_NE(out.find("missing unit in duration"), std::string::npos) << out;
}

// Resident set of a process (VmRSS: anonymous, file-mapped and shared pages it holds), 0 if gone.
uint64_t ResidentBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      uint64_t kb = 0;
      in >> kb;
      return kb * 1024;
    }
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

// Runs alone (RUN_SERIAL) so that its figures are not shared with other tests' servers.
TEST(MemoryReturnTest, MemoryComesBackAfterAnUnload) {
  std::string dir = TestDir() + "/memory";
  fs::create_directories(dir);
  fs::create_symlink(SynthModel("200M", 7), dir + "/m.gguf");  // about 400 MB of weights
  ServerProcess server(dir);
  // What the server and every process it started hold. The whole machine's used memory is no
  // measure here: on a shared machine it moves by tens of MB with everything else running. The
  // model's weights are a mapped file, so while loaded they count in the runner's resident set;
  // after the unload they stay in the page cache only as reclaimable pages (a fast reload).
  auto tree = [&server] {
    uint64_t total = ResidentBytes(server.pid());
    for (pid_t child : server.Children()) total += ResidentBytes(child);
    return total;
  };
  // One load and unload first: the server's own first-use allocations (thread stacks, malloc
  // arenas) are not the model's.
  ASSERT_EQ(Post(server.port(), "/api/generate", R"({"model":"m","prompt":"hi","options":{"num_predict":2}})").status, 200);
  ASSERT_EQ(Post(server.port(), "/api/generate", R"({"model":"m","keep_alive":0})").status, 200);
  std::string report;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto before = tree();
    auto r = Post(server.port(), "/api/generate", R"({"model":"m","prompt":"hi","options":{"num_predict":2}})");
    ASSERT_EQ(r.status, 200);
    json ps = Get(server.port(), "/api/ps").json();
    uint64_t model_size = ps["models"][0]["size"];
    auto loaded = tree();
    ASSERT_EQ(Post(server.port(), "/api/generate", R"({"model":"m","keep_alive":0})").status, 200);
    ASSERT_TRUE(server.Children().empty());
    auto after = tree();
    report = "attempt " + std::to_string(attempt) + ": before " + std::to_string(before) + " loaded " +
             std::to_string(loaded) + " after " + std::to_string(after) + " model " + std::to_string(model_size);
    RecordProperty("residue_bytes_" + std::to_string(attempt),
                   std::to_string(static_cast<int64_t>(after) - static_cast<int64_t>(before)));
    // The measure sees the model (so the check below can fail)...
    EXPECT_GT(static_cast<double>(loaded - before), 0.5 * static_cast<double>(model_size)) << report;
    // ...and all of it comes back: no runner left, no growth of the server.
    EXPECT_LT(std::abs(static_cast<double>(after) - static_cast<double>(before)), 0.02 * static_cast<double>(model_size))
        << report;
  }
}

// The machine's used memory from /proc/meminfo, counted from the allocated side: anonymous pages
// of every process, shared memory (tmpfs, memfd), unreclaimable kernel slab, page tables and
// kernel stacks. Not MemTotal - MemAvailable: on this virtual machine the kernel lends freed pages
// to the host for a while (virtio free page reporting), so the free side moves by hundreds of MB
// for seconds after any large free, with nothing allocated (measured: MemFree 500 MB short with
// AnonPages, Cached and Slab back to their exact level).
int64_t MachineUsedBytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t used = 0;
  int found = 0;
  while (in >> key) {
    int64_t kb = 0;
    in >> kb;
    if (key == "AnonPages:" || key == "Shmem:" || key == "SUnreclaim:" || key == "PageTables:" ||
        key == "KernelStack:") {
      used += kb * 1024;
      ++found;
    }
    in.ignore(1 << 16, '\n');
  }
  return found == 5 ? used : -1;
}

// "Used" once it has settled: readings every 100 ms until a whole second of them lies within
// `spread` (at most 20 s), then their median (a runner's exit frees its memory over a few ms).
int64_t SettledMachineUsedBytes(int64_t spread) {
  std::vector<int64_t> window;
  for (int i = 0; i < 200; ++i) {
    window.push_back(MachineUsedBytes());
    if (window.size() > 10) window.erase(window.begin());
    if (window.size() == 10 && *std::max_element(window.begin(), window.end()) -
                                       *std::min_element(window.begin(), window.end()) <= spread) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::sort(window.begin(), window.end());
  return window[window.size() / 2];
}

// The issue's own measure: the whole machine's used memory from /proc/meminfo comes back to its
// level before the load, within 2% of the model's size. The model is loaded without mmap (1 GB of
// anonymous memory, so "used" sees all of it; a mapped model would sit in the page cache, which
// is not used memory). Runs alone (RUN_SERIAL); other processes on the machine still
// move "used", so a try may be repeated (one whose rise did not show the model, or whose memory
// did not come back): a real leak stays in every try.
TEST(MemoryReturnTest, TheMachinesUsedMemoryComesBackWithinTwoPercentOfTheModel) {
  std::string dir = TestDir() + "/memory-machine";
  fs::create_directories(dir);
  fs::create_symlink(SynthModel("500M", 8), dir + "/big.gguf");
  ServerProcess server(dir);
  const std::string load = R"({"model":"big","prompt":"hi","options":{"num_predict":2,"use_mmap":false}})";
  const std::string unload = R"({"model":"big","keep_alive":0})";
  // A first load and unload: the server's own first-use allocations are not the model's.
  ASSERT_EQ(Post(server.port(), "/api/generate", load).status, 200);
  ASSERT_EQ(Post(server.port(), "/api/generate", unload).status, 200);
  std::string report;
  bool returned = false, seen_once = false;
  for (int attempt = 0; attempt < 3 && !returned; ++attempt) {
    const int64_t spread = 4 << 20;
    int64_t before = SettledMachineUsedBytes(spread);
    ASSERT_EQ(Post(server.port(), "/api/generate", load).status, 200);
    json ps = Get(server.port(), "/api/ps").json();
    int64_t model_size = ps["models"][0]["size"];
    int64_t loaded = SettledMachineUsedBytes(spread);
    ASSERT_EQ(Post(server.port(), "/api/generate", unload).status, 200);
    ASSERT_TRUE(WaitFor([&] { return server.Children().empty(); }, std::chrono::seconds(30)));
    int64_t after = SettledMachineUsedBytes(spread);
    report += "attempt " + std::to_string(attempt) + ": used before " + std::to_string(before) + ", loaded " +
              std::to_string(loaded) + ", after " + std::to_string(after) + ", model " + std::to_string(model_size) + "\n";
    RecordProperty("machine_residue_bytes_" + std::to_string(attempt), std::to_string(after - before));
    // A try counts when the measure saw the model (so the check can fail: another process that
    // freed memory meanwhile hides it, and the try is made again)...
    const bool seen = static_cast<double>(loaded - before) > 0.8 * static_cast<double>(model_size);
    seen_once = seen_once || seen;
    // ...and it all came back.
    returned = seen && std::abs(static_cast<double>(after - before)) < 0.02 * static_cast<double>(model_size);
  }
  std::printf("%s", report.c_str());
  EXPECT_TRUE(seen_once) << "the machine's used memory never rose by the model's size while it was loaded\n" << report;
  EXPECT_TRUE(returned) << report;
}

}  // namespace
}  // namespace resident::testing
