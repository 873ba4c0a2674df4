// Integration tests: the real `resident serve` binary on a free loopback port, runner child
// processes and synthetic models.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/tiny.gguf");
  }
  std::string dir_;
};

json Generate(int port, const std::string& prompt, json options, bool stream = false) {
  json body{{"model", "tiny"}, {"prompt", prompt}, {"stream", stream}, {"options", std::move(options)}};
  auto r = Post(port, "/api/generate", body.dump());
  EXPECT_EQ(r.status, 200) << r.body;
  return stream ? json(r.lines()) : r.json();
}

TEST_F(ServerTest, GeneratesRealTextThroughARunnerProcess) {
  ServerProcess server(dir_);
  json reply = Generate(server.port(), "Once upon a time", {{"num_predict", 8}, {"seed", 3}});
  EXPECT_EQ(reply["model"], "tiny");
  EXPECT_EQ(reply["done"], true);
  EXPECT_EQ(reply["done_reason"], "length");
  EXPECT_EQ(reply["eval_count"], 8);
  EXPECT_GT(reply["response"].get<std::string>().size(), 0u);
  EXPECT_GT(reply["prompt_eval_count"].get<int>(), 3);
  EXPECT_GT(reply["load_duration"].get<int64_t>(), 0);
  EXPECT_GE(reply["total_duration"].get<int64_t>(), reply["load_duration"].get<int64_t>());
  EXPECT_FALSE(reply["context"].empty());
  // The model is in its own process, not the server's.
  auto children = server.Children();
  ASSERT_EQ(children.size(), 1u);
  auto ps = Get(server.port(), "/api/ps").json();
  ASSERT_EQ(ps["models"].size(), 1u);
  EXPECT_EQ(ps["models"][0]["name"], "tiny:latest");
  EXPECT_EQ(ps["models"][0]["size_vram"], 0);
  EXPECT_GT(ps["models"][0]["size"].get<uint64_t>(), 39'000'000u);
}

TEST_F(ServerTest, StreamsOneTokenPerLineAndFinishesWithStatistics) {
  ServerProcess server(dir_);
  json lines = Generate(server.port(), "hello", {{"num_predict", 5}, {"seed", 1}}, /*stream=*/true);
  ASSERT_GE(lines.size(), 2u);
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["done"], false);
    EXPECT_TRUE(lines[i].contains("response"));
  }
  EXPECT_EQ(lines.back()["done"], true);
  EXPECT_EQ(lines.back()["eval_count"], 5);
}

TEST_F(ServerTest, StopSequencesEndTheOutputBeforeTheStop) {
  ServerProcess server(dir_);
  json opts{{"num_predict", 40}, {"seed", 5}, {"temperature", 0}};
  std::string full = Generate(server.port(), "abc", opts)["response"];
  ASSERT_GT(full.size(), 10u);
  // A two-byte ASCII stop string from the second half (the text is gibberish with multi-byte
  // characters; cut only between ASCII bytes).
  size_t p = full.size() / 2;
  auto ascii = [&](size_t i) { return static_cast<unsigned char>(full[i]) < 0x80; };
  while (p + 1 < full.size() && !(ascii(p) && ascii(p + 1))) ++p;
  ASSERT_LT(p + 1, full.size()) << full;
  std::string stop = full.substr(p, 2);
  opts["stop"] = json::array({stop});
  json reply = Generate(server.port(), "abc", opts);
  EXPECT_EQ(reply["done_reason"], "stop");
  EXPECT_EQ(reply["response"].get<std::string>(), full.substr(0, full.find(stop)));
}

TEST_F(ServerTest, ChatUsesTheModelsTemplateAndEmbedReturnsUnitVectors) {
  ServerProcess server(dir_);
  json chat{{"model", "tiny"},
            {"messages", json::array({{{"role", "user"}, {"content", "hi"}}})},
            {"stream", false},
            {"options", {{"num_predict", 4}}}};
  auto r = Post(server.port(), "/api/chat", chat.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["message"]["role"], "assistant");
  EXPECT_EQ(r.json()["eval_count"], 4);
  // "[INST] hi [/INST]" and BOS are more tokens than "hi" alone.
  EXPECT_GT(r.json()["prompt_eval_count"].get<int>(), 5);

  auto e = Post(server.port(), "/api/embed", R"({"model":"tiny","input":["hello","world"]})");
  ASSERT_EQ(e.status, 200) << e.body;
  auto emb = e.json()["embeddings"];
  ASSERT_EQ(emb.size(), 2u);
  ASSERT_EQ(emb[0].size(), 256u);
  double norm = 0;
  for (double v : emb[0]) norm += v * v;
  EXPECT_NEAR(norm, 1.0, 1e-3);
  EXPECT_NE(emb[0], emb[1]);
}

TEST_F(ServerTest, LoadAndUnloadWithAnEmptyPrompt) {
  ServerProcess server(dir_);
  auto load = Post(server.port(), "/api/generate", R"({"model":"tiny"})");
  ASSERT_EQ(load.status, 200) << load.body;
  EXPECT_EQ(load.json()["done_reason"], "load");
  EXPECT_EQ(server.Children().size(), 1u);
  auto unload = Post(server.port(), "/api/generate", R"({"model":"tiny","keep_alive":0})");
  ASSERT_EQ(unload.status, 200);
  EXPECT_EQ(unload.json()["done_reason"], "unload");
  EXPECT_TRUE(server.Children().empty());  // the runner process is gone: its memory returned
  EXPECT_TRUE(Get(server.port(), "/api/ps").json()["models"].empty());
  auto missing = Post(server.port(), "/api/generate", R"({"model":"nope","keep_alive":0})");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.json()["error"], "model 'nope' not found");
}

TEST_F(ServerTest, RunnerKilledMidGenerationFailsOnlyThatRequest) {
  ServerProcess server(dir_);
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(std::chrono::minutes(2));
  std::string body;
  bool killed = false;
  json req{{"model", "tiny"}, {"prompt", "go"}, {"options", {{"num_predict", 100000}, {"num_ctx", 4096}}}};
  httplib::Request r;
  r.method = "POST";
  r.path = "/api/generate";
  r.body = req.dump();
  r.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    body.append(data, n);
    if (!killed && body.size() > 500) {
      auto kids = server.Children();
      EXPECT_EQ(kids.size(), 1u);
      for (pid_t p : kids) ::kill(p, SIGKILL);
      killed = true;
    }
    return true;
  };
  auto res = client.send(r);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);  // streaming had begun: the error is the last line
  ASSERT_TRUE(killed);
  HttpReply reply{200, body};
  json last = reply.lines().back();
  ASSERT_TRUE(last.contains("error")) << last.dump();
  EXPECT_NE(last["error"].get<std::string>().find("killed by signal 9"), std::string::npos) << last.dump();
  EXPECT_TRUE(server.alive());
  // The next request loads the model again in a new runner.
  json again = Generate(server.port(), "hello", {{"num_predict", 3}});
  EXPECT_EQ(again["eval_count"], 3);
}

TEST_F(ServerTest, ClientGoingAwayStopsTheGeneration) {
  ServerProcess server(dir_);
  ASSERT_EQ(Post(server.port(), "/api/generate", R"({"model":"tiny"})").status, 200);
  // What a short request takes on this machine now (a sanitizer build is many times slower).
  auto ref_start = std::chrono::steady_clock::now();
  ASSERT_EQ(Generate(server.port(), "hi", {{"num_predict", 2}})["eval_count"], 2);
  const auto short_request = std::chrono::steady_clock::now() - ref_start;
  {
    httplib::Client client("127.0.0.1", server.port());
    int chunks = 0;
    httplib::Request r;
    r.method = "POST";
    r.path = "/api/generate";
    r.body = json{{"model", "tiny"}, {"prompt", "go"}, {"options", {{"num_predict", 100000}}}}.dump();
    r.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 5; };
    client.send(r);  // returns once the receiver refuses more: the connection closes
  }
  // The runner is free again at once: a short request does not wait for 100,000 tokens.
  auto start = std::chrono::steady_clock::now();
  json reply = Generate(server.port(), "hi", {{"num_predict", 2}});
  EXPECT_EQ(reply["eval_count"], 2);
  // 100,000 tokens would take thousands of short requests' time; the bound is loose on purpose.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10) + 50 * short_request);
}

TEST_F(ServerTest, BadModelFilesGiveClearErrorsAndTheServerLivesOn) {
  WriteTruncatedCopy(SynthModel("20M", 1), dir_ + "/truncated.gguf", 4'000'000);
  {
    std::ofstream(dir_ + "/notgguf.gguf") << "this is not a model, just text that is long enough to read";
  }
  ServerProcess server(dir_);
  auto t = Post(server.port(), "/api/generate", R"({"model":"truncated","prompt":"hi"})");
  EXPECT_EQ(t.status, 400) << t.body;
  EXPECT_NE(t.json()["error"].get<std::string>().find("truncated"), std::string::npos) << t.body;
  auto n = Post(server.port(), "/api/generate", R"({"model":"notgguf","prompt":"hi"})");
  EXPECT_EQ(n.status, 400) << n.body;
  EXPECT_NE(n.json()["error"].get<std::string>().find("not a GGUF"), std::string::npos) << n.body;
  auto m = Post(server.port(), "/api/generate", R"({"model":"missing","prompt":"hi"})");
  EXPECT_EQ(m.status, 404);
  EXPECT_EQ(m.json()["error"], "model \"missing\" not found, try pulling it first");
  EXPECT_TRUE(server.Children().empty());  // failed runners are gone
  EXPECT_EQ(Generate(server.port(), "hi", {{"num_predict", 2}})["eval_count"], 2);
}

TEST_F(ServerTest, BadRequestsGetFourHundreds) {
  ServerProcess server(dir_);
  EXPECT_EQ(Post(server.port(), "/api/generate", "{not json").status, 400);
  EXPECT_EQ(Post(server.port(), "/api/generate", R"({"prompt":"x"})").json()["error"], "model is required");
  auto ka = Post(server.port(), "/api/generate", R"({"model":"nope","prompt":"x","keep_alive":"300"})");
  EXPECT_EQ(ka.status, 400);
  EXPECT_EQ(ka.json()["error"], "time: missing unit in duration \"300\"");
  EXPECT_EQ(Post(server.port(), "/api/generate", R"({"model":"tiny","prompt":"x","options":{"num_ctx":-5}})").status, 400);
  EXPECT_EQ(Post(server.port(), "/api/generate", R"({"model":"../../etc/passwd","prompt":"x"})").status, 400);
  EXPECT_EQ(Post(server.port(), "/api/generate", "{\"model\":\"tiny\",\"prompt\":\"\xff\xfe\"}").status, 400);
  EXPECT_TRUE(server.alive());
}

TEST_F(ServerTest, ASpareRunnerWaitsInReserveAndServesTheNextColdStart) {
  ServerProcess server(dir_, {{"RESIDENT_SPARE_RUNNER", "1"}});
  auto wait_children = [&](size_t n) {
    WaitFor([&] { return server.Children().size() == n; }, std::chrono::seconds(30));
    return server.Children().size();
  };
  ASSERT_EQ(wait_children(1), 1u);  // the spare, a second after start
  pid_t spare = server.Children()[0];
  EXPECT_EQ(Generate(server.port(), "hi", {{"num_predict", 2}})["eval_count"], 2);
  auto kids = server.Children();
  EXPECT_NE(std::find(kids.begin(), kids.end(), spare), kids.end());  // the spare became the runner
  EXPECT_EQ(wait_children(2), 2u);  // and a new spare was started
  // A spare that died is replaced by a fresh process; the load still works.
  ASSERT_EQ(Post(server.port(), "/api/generate", R"({"model":"tiny","keep_alive":0})").status, 200);
  for (pid_t p : server.Children()) ::kill(p, SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Generate(server.port(), "hi", {{"num_predict", 2}})["eval_count"], 2);
  int status = server.Terminate();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// CPU time (user + system, in clock ticks) that process `pid` has used so far.
long CpuTicks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
  std::string skip;
  for (int i = 3; i < 14; ++i) fields >> skip;  // state ... cmajflt
  long utime = 0, stime = 0;
  fields >> utime >> stime;
  return utime + stime;
}

TEST_F(ServerTest, AnIdleRunnerUsesNoCpu) {
  // ggml's worker threads spin for a while after each decode, waiting for the next one; the
  // runner puts them to sleep as soon as its last request is done, and wakes them for the next.
  ServerProcess server(dir_);
  ASSERT_EQ(Generate(server.port(), "hi", {{"num_predict", 8}})["eval_count"], 8);
  auto kids = server.Children();
  ASSERT_EQ(kids.size(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const long before = CpuTicks(kids[0]);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  const long used = CpuTicks(kids[0]) - before;
  // One spinning worker alone would burn about 600 ms; the margin is for a sanitizer build's own
  // threads and a runner held back from pausing its pool on a busy machine.
  EXPECT_LE(used * 1000 / sysconf(_SC_CLK_TCK), 120) << "ms of CPU in 600 ms while idle";
  EXPECT_EQ(Generate(server.port(), "hi", {{"num_predict", 8}})["eval_count"], 8) << "and it still works";
}

TEST_F(ServerTest, SigtermDuringALongGenerationExitsPromptly) {
  ServerProcess server(dir_);
  std::thread client([&] {
    Post(server.port(), "/api/generate",
         R"({"model":"tiny","prompt":"go","options":{"num_predict":100000,"num_ctx":8192}})");
  });
  while (server.Children().empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // generating now
  auto start = std::chrono::steady_clock::now();
  int status = server.Terminate();
  client.join();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // 100000 tokens take minutes; a sanitizer build on a busy machine takes seconds to stop.
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

TEST_F(ServerTest, RunnersStillStartAfterTheBinaryIsReplaced) {
  std::string copy = dir_ + "/resident-copy";
  fs::copy_file(RESIDENT_BINARY, copy);
  fs::permissions(copy, fs::perms::owner_all);
  ServerProcess server(dir_, {}, copy);
  fs::remove(copy);  // as a rebuild or an upgrade does: the path no longer names the running image
  EXPECT_EQ(Generate(server.port(), "hi", {{"num_predict", 2}})["eval_count"], 2);
}

TEST_F(ServerTest, SigtermUnloadsEveryRunnerAndExits) {
  ServerProcess server(dir_);
  ASSERT_EQ(Post(server.port(), "/api/generate", R"({"model":"tiny"})").status, 200);
  auto kids = server.Children();
  ASSERT_EQ(kids.size(), 1u);
  int status = server.Terminate();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_NE(::kill(kids[0], 0), 0);  // the runner is gone too
}

// `resident ps` prints `ollama ps`'s columns: NAME, ID, SIZE, PROCESSOR, CONTEXT, UNTIL.
TEST_F(ServerTest, PsPrintsOllamasColumns) {
  ServerProcess server(dir_);
  const int port = server.port();
  CliRun empty = RunCli(port, "ps");
  ASSERT_EQ(empty.code, 0) << empty.out;
  EXPECT_EQ(empty.out, "NAME    ID    SIZE    PROCESSOR    CONTEXT    UNTIL\n");

  ASSERT_EQ(Post(port, "/api/generate", R"({"model":"tiny","keep_alive":"10m"})").status, 200);
  CliRun loaded = RunCli(port, "ps");
  ASSERT_EQ(loaded.code, 0) << loaded.out;
  std::istringstream lines(loaded.out);
  std::string header, row, more;
  std::getline(lines, header);
  std::getline(lines, row);
  EXPECT_FALSE(std::getline(lines, more)) << loaded.out;
  // Columns start where their headers do.
  std::vector<std::string> names = {"NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"};
  std::vector<size_t> at;
  for (const auto& n : names) at.push_back(header.find(n));
  for (size_t i = 0; i < at.size(); ++i) {
    ASSERT_NE(at[i], std::string::npos) << header;
    if (i > 0) {
      ASSERT_GT(at[i], at[i - 1]) << header;
    }
  }
  auto cell = [&](size_t i) {
    std::string c = row.substr(at[i], i + 1 < at.size() ? at[i + 1] - at[i] : std::string::npos);
    return c.substr(0, c.find_last_not_of(' ') + 1);
  };
  json ps = Get(port, "/api/ps").json()["models"][0];
  EXPECT_EQ(cell(0), "tiny:latest") << loaded.out;
  EXPECT_EQ(cell(1), ps["digest"].get<std::string>().substr(0, 12)) << loaded.out;  // none for a folder's model
  EXPECT_NE(cell(2).find(" MB"), std::string::npos) << loaded.out;
  EXPECT_EQ(cell(3), "100% CPU") << loaded.out;
  EXPECT_EQ(cell(4), "4096") << loaded.out;  // Ollama's default context
  const std::string until = cell(5);  // 10m ahead, read a moment later: "9 minutes from now"
  const std::string from_now = " minutes from now";
  EXPECT_TRUE(until.size() > from_now.size() && until.substr(until.size() - from_now.size()) == from_now)
      << loaded.out;

  ASSERT_EQ(Post(port, "/api/generate", R"({"model":"tiny","keep_alive":-1})").status, 200);
  CliRun forever = RunCli(port, "ps");
  EXPECT_NE(forever.out.find("    Forever\n"), std::string::npos) << forever.out;
}

}  // namespace
}  // namespace resident::testing
