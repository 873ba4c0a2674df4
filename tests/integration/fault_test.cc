// Fault tests with the real binaries: runners that hang or die, model files that change under a
// loaded model, a full disk, clients that leave, signals mid-load, hostile GGUF files. In every
// case only the faulty request (or runner) is lost and the server serves the next request.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <thread>
#include <vector>

#include "store/gguf_synth.h"
#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/tiny.gguf");
  }
  std::string dir_;
};

int EvalCount(int port, const std::string& model = "tiny") {
  json body{{"model", model}, {"prompt", "hi"}, {"stream", false}, {"options", {{"num_predict", 2}}}};
  auto r = Post(port, "/api/generate", body.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  return r.status == 200 ? r.json().value("eval_count", -1) : -1;
}

// Streams a long generation; calls `at_first_bytes` once some output has arrived. Returns the
// whole body (NDJSON lines).
std::string StreamLong(int port, const std::function<void()>& at_first_bytes) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(std::chrono::minutes(2));
  std::string body;
  bool fired = false;
  httplib::Request r;
  r.method = "POST";
  r.path = "/api/generate";
  r.body = json{{"model", "tiny"}, {"prompt", "go"}, {"options", {{"num_predict", 100000}, {"num_ctx", 8192}}}}.dump();
  r.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    body.append(data, n);
    if (!fired && body.size() > 300) {
      fired = true;
      at_first_bytes();
    }
    return true;
  };
  auto res = client.send(r);
  EXPECT_TRUE(res);
  return body;
}

bool ProcessGone(pid_t pid) {
  return WaitFor([&] { return ::kill(pid, 0) != 0; }, std::chrono::seconds(30));  // a busy sanitizer build is slow
}

TEST_F(FaultTest, AHungRunnerIsKilledByTheHealthCheckAndTheModelLoadsAgain) {
  // 2 s: short, but a runner on a busy machine (a sanitizer build) is not taken for a hung one.
  ServerProcess server(dir_, {{"RESIDENT_HEALTH_TIMEOUT", "2s"}});
  pid_t runner = 0;
  Clock::time_point stopped;
  std::string body = StreamLong(server.port(), [&] {
    auto kids = server.Children();
    ASSERT_EQ(kids.size(), 1u);
    runner = kids[0];
    ::kill(runner, SIGSTOP);  // frozen: it neither computes nor answers
    stopped = Clock::now();
  });
  auto noticed = Clock::now() - stopped;
  ASSERT_NE(runner, 0);
  HttpReply reply{200, body};
  json last = reply.lines().back();
  ASSERT_TRUE(last.contains("error")) << last.dump();
  EXPECT_NE(last["error"].get<std::string>().find("stopped answering"), std::string::npos) << last.dump();
  EXPECT_LT(noticed, std::chrono::seconds(20));  // timeout 2 s, checked every 250 ms (loose: a busy machine)
  EXPECT_TRUE(ProcessGone(runner));
  EXPECT_EQ(EvalCount(server.port()), 2);  // a new runner
  RecordProperty("hang_noticed_ms",
                 std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(noticed).count()));
}

TEST_F(FaultTest, AnIdleRunnerThatHangsIsReplacedOnTheNextRequest) {
  ServerProcess server(dir_, {{"RESIDENT_HEALTH_TIMEOUT", "1500ms"}});
  ASSERT_EQ(EvalCount(server.port()), 2);
  auto kids = server.Children();
  ASSERT_EQ(kids.size(), 1u);
  ::kill(kids[0], SIGSTOP);
  EXPECT_TRUE(ProcessGone(kids[0]));
  // It leaves /api/ps (and the memory budget) by itself, before any request asks for it.
  EXPECT_TRUE(WaitFor([&] { return Get(server.port(), "/api/ps").json()["models"].empty(); }, std::chrono::seconds(30)));
  // The log says it was killed, and why (it said the runner "had exited").
  const std::string killed = "unloaded tiny:latest";
  ASSERT_TRUE(WaitForLog(server, killed, 1, std::chrono::seconds(30)));
  std::ifstream log(server.log_path());
  std::string line, unload_line;
  while (std::getline(log, line)) {
    if (line.find(killed) != std::string::npos) unload_line = line;
  }
  EXPECT_NE(unload_line.find("the runner for tiny:latest (pid " + std::to_string(kids[0]) +
                             ") stopped answering (no health answer in 1.5 s) and was killed"),
            std::string::npos)
      << unload_line;
  EXPECT_EQ(CountInLog(server, "had exited"), 0);
  EXPECT_EQ(EvalCount(server.port()), 2);
}

TEST_F(FaultTest, SigtermDuringALoadExitsPromptlyAndLeavesNoRunner) {
  ServerProcess server(dir_);
  pid_t runner = 0;
  std::thread client([&] { Post(server.port(), "/api/generate", R"({"model":"tiny","prompt":"hi"})"); });
  // Freeze the runner as soon as it exists: the load cannot finish.
  const auto spot_deadline = Clock::now() + std::chrono::seconds(60);
  while (runner == 0 && Clock::now() < spot_deadline) {
    auto kids = server.Children();
    if (!kids.empty()) {
      runner = kids[0];
      ::kill(runner, SIGSTOP);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ASSERT_NE(runner, 0);
  auto start = Clock::now();
  int status = server.Terminate();
  client.join();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // Without the fix the server waited for a load that never ends; a sanitizer build on a busy
  // machine takes a few seconds to stop, so the bound is loose.
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(30));
  EXPECT_TRUE(ProcessGone(runner));
}

TEST_F(FaultTest, AModelFileDeletedWhileLoadedKeepsServingUntilUnloaded) {
  fs::copy_file(SynthModel("20M", 2), dir_ + "/doomed.gguf");
  ServerProcess server(dir_);
  ASSERT_EQ(EvalCount(server.port(), "doomed"), 2);
  fs::remove(dir_ + "/doomed.gguf");
  // The loaded runner maps the weights: the open file lives on.
  auto r = Post(server.port(), "/api/generate", R"({"model":"doomed","prompt":"hi","stream":false,"options":{"num_predict":2}})");
  EXPECT_TRUE(r.status == 200 || r.status == 404) << r.body;
  // It can still be unloaded by name, as `resident stop doomed` does.
  auto unload = Post(server.port(), "/api/generate", R"({"model":"doomed","keep_alive":0})");
  EXPECT_EQ(unload.status, 200) << unload.body;
  EXPECT_TRUE(Get(server.port(), "/api/ps").json()["models"].empty());
  auto gone = Post(server.port(), "/api/generate", R"({"model":"doomed","prompt":"hi"})");
  EXPECT_EQ(gone.status, 404) << gone.body;
  EXPECT_EQ(EvalCount(server.port()), 2);
}

TEST_F(FaultTest, AModelFileReplacedWhileLoadedIsReloadedFromTheNewFile) {
  fs::copy_file(SynthModel("20M", 2), dir_ + "/swap.gguf");
  ServerProcess server(dir_);
  auto first = Post(server.port(), "/api/generate",
                    R"({"model":"swap","prompt":"hi","stream":false,"options":{"num_predict":8,"seed":1,"temperature":0}})");
  ASSERT_EQ(first.status, 200) << first.body;
  pid_t old_runner = server.Children().at(0);
  // Replace it the way an editor or a download does: a new file renamed over the old name.
  fs::copy_file(SynthModel("20M", 3), dir_ + "/swap.tmp");
  fs::rename(dir_ + "/swap.tmp", dir_ + "/swap.gguf");
  auto second = Post(server.port(), "/api/generate",
                     R"({"model":"swap","prompt":"hi","stream":false,"options":{"num_predict":8,"seed":1,"temperature":0}})");
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_NE(first.json()["response"], second.json()["response"]);  // other weights, other text
  EXPECT_TRUE(ProcessGone(old_runner));
  EXPECT_EQ(server.Children().size(), 1u);
}

TEST_F(FaultTest, AFullDiskDuringCreateLeavesNoPartialBlobOrManifest) {
  std::string store = dir_ + "/store";
  fs::create_directories(store);
  if (::mount("tmpfs", store.c_str(), "tmpfs", 0, "size=8m") != 0) {
    GTEST_SKIP() << "cannot mount a small tmpfs to fill (" << std::strerror(errno) << "); needs root";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{store};
  {
    ServerProcess server(dir_, {{"RESIDENT_MODELS", store}});
    json create{{"model", "big"}, {"modelfile", "FROM " + SynthModel("20M", 1)}};  // ~40 MB into 8 MB
    auto r = Post(server.port(), "/api/create", create.dump());
    std::string error = r.status == 200 ? r.lines().back().value("error", "") : r.json().value("error", "");
    EXPECT_NE(error.find("No space left on device"), std::string::npos) << r.status << " " << r.body;
    EXPECT_EQ(Get(server.port(), "/api/tags").json()["models"].size(), 1u);  // only tiny, from the folder
    EXPECT_EQ(EvalCount(server.port()), 2);
  }
  std::vector<std::string> left;
  for (const auto& e : fs::recursive_directory_iterator(store)) {
    // <store>/.lock is the store's inter-process lock (store/store_lock.h), not a partial write.
    if (e.is_regular_file() && e.path().filename() != ".lock") left.push_back(e.path().string());
  }
  EXPECT_TRUE(left.empty()) << "left behind: " << left.front();
}

TEST_F(FaultTest, AClientThatLeavesMidStreamFreesTheSlotWithinATokenOrTwo) {
  ServerProcess server(dir_);
  ASSERT_EQ(EvalCount(server.port()), 2);
  // Baseline on this machine now: a short request on the idle model, and the time of one token.
  auto t0 = Clock::now();
  auto probe = Post(server.port(), "/api/generate",
                    R"({"model":"tiny","prompt":"hi","stream":false,"options":{"num_predict":16}})");
  auto idle_request = Clock::now() - t0;
  ASSERT_EQ(probe.status, 200);
  auto token = std::chrono::nanoseconds(probe.json()["eval_duration"].get<int64_t>() / 16);
  Clock::time_point left;
  {
    httplib::Client client("127.0.0.1", server.port());
    int chunks = 0;
    httplib::Request r;
    r.method = "POST";
    r.path = "/api/generate";
    r.body = json{{"model", "tiny"}, {"prompt", "go"}, {"options", {{"num_predict", 100000}}}}.dump();
    r.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 20; };
    client.send(r);
    left = Clock::now();
  }
  auto next = Post(server.port(), "/api/generate",
                   R"({"model":"tiny","prompt":"hi","stream":false,"options":{"num_predict":16}})");
  ASSERT_EQ(next.status, 200);
  // What the abandoned generation still cost the next request.
  auto freed = Clock::now() - left - idle_request;
  auto ms = [](auto d) { return static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()); };
  RecordProperty("slot_freed_after_disconnect_ms", std::to_string(ms(freed)));
  std::printf("slot freed %lld ms after the client left (one token takes %lld ms, an idle request %lld ms)\n",
              ms(freed), ms(token), ms(idle_request));
  // A generation that ran on would take 100,000 tokens; the slot must come back long before that
  // (the disconnect is seen at the next write). The bound is loose on purpose: a busy machine
  // stretches the time but not the order of magnitude.
  EXPECT_LT(freed, std::chrono::seconds(2) + 2000 * token);
}

// Found in the server log: every cancelled request left four untimestamped llama.cpp error
// lines ("graph_compute: ... failed", "llama_decode: failed to decode, ret = 2"). A client that
// goes away is normal: the log says so once, in resident's own format, and llama.cpp's abort
// noise is not there.
TEST_F(FaultTest, AClientThatLeavesIsLoggedOnceWithoutLlamaCppErrors) {
  ServerProcess server(dir_);
  ASSERT_EQ(EvalCount(server.port()), 2);
  const int leaving = 3;
  for (int i = 0; i < leaving; ++i) {
    httplib::Client client("127.0.0.1", server.port());
    int chunks = 0;
    httplib::Request r;
    r.method = "POST";
    r.path = "/api/generate";
    r.body = json{{"model", "tiny"}, {"prompt", "go"}, {"options", {{"num_predict", 100000}}}}.dump();
    r.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 20; };
    client.send(r);
  }
  // Once the next request is served, every cancelled generation has ended; its log line is
  // written by the request's own thread, which a busy machine can hold back a little longer.
  ASSERT_EQ(EvalCount(server.port()), 2);
  ASSERT_TRUE(WaitForLog(server, "the client went away", leaving, std::chrono::seconds(60)));
  std::ifstream in(server.log_path());
  std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(log.find("failed to decode"), std::string::npos) << log;
  EXPECT_EQ(log.find("graph_compute"), std::string::npos) << log;
  int lines = 0;
  for (size_t at = 0; (at = log.find("the client went away", at)) != std::string::npos; ++at) ++lines;
  EXPECT_EQ(lines, leaving) << log;
  // resident's format: a timestamp and a level first.
  size_t line_start = log.rfind('\n', log.find("the client went away"));
  std::string line = log.substr(line_start == std::string::npos ? 0 : line_start + 1);
  line = line.substr(0, line.find('\n'));
  EXPECT_NE(line.find(" info "), std::string::npos) << line;
  EXPECT_TRUE(line.size() > 4 && std::isdigit(static_cast<unsigned char>(line[0])) && line[4] == '-') << line;
  EXPECT_NE(line.find("tiny"), std::string::npos) << line;
}

// A GGUF header with hostile fields; everything else valid.
struct HostileGguf {
  uint64_t n_tensors = 1;
  uint64_t n_kv = 1;
  uint64_t key_length = 20;  // of "general.architecture"
  uint64_t string_length = 5;
  uint64_t dims_n = 1;
  uint64_t dim0 = 16;
  uint64_t tensor_offset = 0;
};

void WriteHostileGguf(const std::string& path, const HostileGguf& h) {
  std::ofstream out(path, std::ios::binary);
  auto u32 = [&](uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  auto u64 = [&](uint64_t v) { out.write(reinterpret_cast<const char*>(&v), 8); };
  out.write("GGUF", 4);
  u32(3);
  u64(h.n_tensors);
  u64(h.n_kv);
  u64(h.key_length);
  out.write("general.architecture", 20);
  u32(8);  // string
  u64(h.string_length);
  out.write("llama", 5);
  u64(11);
  out.write("token_embd.weight", 11);
  u32(static_cast<uint32_t>(h.dims_n));
  u64(h.dim0);
  u32(0);  // F32
  u64(h.tensor_offset);
  std::string pad(64, '\0');
  out.write(pad.data(), static_cast<std::streamsize>(pad.size()));
}

TEST_F(FaultTest, HostileGgufFilesFailCleanlyAndTheServerLivesOn) {
  const std::vector<std::pair<std::string, HostileGguf>> cases = {
      {"huge-tensor-count", {.n_tensors = 1ull << 62}},
      {"huge-kv-count", {.n_kv = 1ull << 62}},
      {"huge-key", {.key_length = 1ull << 62}},
      {"huge-string", {.string_length = 1ull << 40}},
      {"many-dims", {.dims_n = 1u << 30}},
      {"huge-dim", {.dim0 = 1ull << 62}},
      {"offset-past-the-end", {.tensor_offset = 1ull << 40}},
      {"plain-but-tiny", {}},
  };
  for (const auto& [name, h] : cases) WriteHostileGguf(dir_ + "/" + name + ".gguf", h);
  ServerProcess server(dir_);
  for (const auto& [name, h] : cases) {
    auto r = Post(server.port(), "/api/generate", json{{"model", name}, {"prompt", "hi"}}.dump());
    EXPECT_GE(r.status, 400) << name << ": " << r.body;
    EXPECT_LT(r.status, 600) << name;
    EXPECT_FALSE(r.json().value("error", "").empty()) << name << ": " << r.body;
    auto show = Post(server.port(), "/api/show", json{{"model", name}}.dump());
    EXPECT_NE(show.status, 0) << name;  // the server answered
    ASSERT_TRUE(server.alive()) << name;
  }
  EXPECT_TRUE(server.Children().empty());
  EXPECT_EQ(Get(server.port(), "/api/tags").status, 200);
  EXPECT_EQ(EvalCount(server.port()), 2);
}

// Issue 20, item 8: hyperparameters llama.cpp aborts on or computes NaN from, in files dropped in
// a models folder (served read-only). Every request for one fails at once with a message naming
// the model and the key, and no runner starts (one did, and aborted, on every request: a NaN
// epsilon is a GGML_ASSERT); /api/create refuses the same files with a 400.
TEST_F(FaultTest, HostileHyperparametersFailTheirRequestsBeforeAnyRunnerStarts) {
  struct Hostile {
    std::string name;
    decltype(SynthOptions::metadata) metadata;
    std::string says;
  };
  const std::vector<Hostile> files = {
      {"eps-nan", {{"llama.attention.layer_norm_rms_epsilon", std::numeric_limits<float>::quiet_NaN()}},
       "llama.attention.layer_norm_rms_epsilon is nan: an epsilon must be a finite number above 0"},
      {"rope-tiny", {{"llama.rope.freq_base", 1e-45f}}, "llama.rope.freq_base is "},
      {"blocks-huge", {{"llama.block_count", 2147483648u}},
       "llama.block_count is 2147483648: the file holds tensors for "},
      {"tokenizer-bert", {{"tokenizer.ggml.model", std::string("bert")}}, "tokenizer.ggml.model is \"bert\""},
      {"tokenizer-unknown", {{"tokenizer.ggml.model", std::string("gpt3")}},
       "tokenizer.ggml.model is \"gpt3\": not a tokenizer llama.cpp knows"},
  };
  for (const Hostile& f : files) {
    SynthOptions o;
    o.out_path = dir_ + "/" + f.name + ".gguf";
    o.params = 3'000'000;
    o.vocab_dir = RESIDENT_VOCAB_DIR;
    o.threads = 2;
    o.metadata = f.metadata;
    ASSERT_TRUE(WriteSyntheticModel(o).ok()) << f.name;
  }
  ServerProcess server(dir_);
  const int port = server.port();
  for (const Hostile& f : files) {
    const std::string refused = "model \"" + f.name + ":latest\" cannot be loaded: " + f.says;
    auto g = Post(port, "/api/generate", json{{"model", f.name}, {"prompt", "hi"}, {"stream", false}}.dump());
    EXPECT_EQ(g.status, 400) << f.name << ": " << g.body;
    EXPECT_NE(g.json().value("error", "").find(refused), std::string::npos) << g.body;
    auto e = Post(port, "/api/embed", json{{"model", f.name}, {"input", "hi"}}.dump());
    EXPECT_EQ(e.status, 400) << f.name << ": " << e.body;
    EXPECT_NE(e.json().value("error", "").find(refused), std::string::npos) << e.body;
    auto c = Post(port, "/api/create", json{{"model", "c-" + f.name}, {"from", dir_ + "/" + f.name + ".gguf"}}.dump());
    EXPECT_EQ(c.status, 400) << f.name << ": " << c.body;
    EXPECT_NE(c.json().value("error", "").find("cannot create \"c-" + f.name + "\": " + dir_ + "/" + f.name +
                                               ".gguf cannot be loaded: " + f.says),
              std::string::npos)
        << c.body;
    ASSERT_TRUE(server.alive()) << f.name;
    EXPECT_TRUE(server.Children().empty()) << f.name << ": a runner was started";
  }
  EXPECT_EQ(CountInLog(server, "GGML_ASSERT"), 0);
  EXPECT_EQ(EvalCount(port), 2);  // the sane model beside them
}

// Issue 20, item 8: a model whose hyperparameters are sane but whose outputs are NaN (NaN norm
// weights, as a rope base of 1e-45 made them) is an error naming the model: never a 200 with
// every embedding null, never one token repeated.
TEST_F(FaultTest, NaNOutputsAreAnErrorNamingTheModel) {
  SynthOptions o;
  o.out_path = dir_ + "/nan.gguf";
  o.params = 3'000'000;
  o.vocab_dir = RESIDENT_VOCAB_DIR;
  o.threads = 2;
  o.norm_weight = std::numeric_limits<float>::quiet_NaN();
  ASSERT_TRUE(WriteSyntheticModel(o).ok());
  ServerProcess server(dir_);
  const int port = server.port();
  auto e = Post(port, "/api/embed", json{{"model", "nan"}, {"input", {"hello", "world"}}}.dump());
  EXPECT_EQ(e.status, 500) << e.body;
  EXPECT_EQ(e.json().value("error", ""),
            "model \"nan:latest\" computed an embedding with NaN or infinite values: its weights or hyperparameters "
            "are broken");
  const std::string logits = "model \"nan:latest\" computed NaN or infinite logits";
  auto g = Post(port, "/api/generate",
                json{{"model", "nan"}, {"prompt", "hi"}, {"stream", false}, {"options", {{"num_predict", 8}}}}.dump());
  EXPECT_EQ(g.status, 500) << g.body;
  EXPECT_NE(g.json().value("error", "").find(logits), std::string::npos) << g.body;
  auto c = Post(port, "/api/chat",
                json{{"model", "nan"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"stream", false}}.dump());
  EXPECT_EQ(c.status, 500) << c.body;
  EXPECT_NE(c.json().value("error", "").find(logits), std::string::npos) << c.body;
  // Streamed: the error ends the stream (no text came before it).
  auto s = Post(port, "/api/generate", json{{"model", "nan"}, {"prompt", "hi"}, {"options", {{"num_predict", 8}}}}.dump());
  if (s.status == 200) {
    auto lines = s.lines();
    ASSERT_FALSE(lines.empty()) << s.body;
    EXPECT_NE(lines.back().value("error", "").find(logits), std::string::npos) << s.body;
    for (const json& l : lines) EXPECT_EQ(l.value("response", ""), "") << s.body;
  } else {
    EXPECT_EQ(s.status, 500) << s.body;
    EXPECT_NE(s.json().value("error", "").find(logits), std::string::npos) << s.body;
  }
  ASSERT_TRUE(server.alive());
  EXPECT_EQ(EvalCount(port), 2);  // the sane model beside it
}

}  // namespace
}  // namespace resident::testing
