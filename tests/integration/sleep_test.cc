// Sleeping with real runners (sleep_after): an idle model frees its context and keeps its runner,
// /api/ps and `resident ps` say it sleeps and what it still holds (measured), the next request
// wakes it and is answered, and keep_alive still unloads it. And how much of each model file is
// in the page cache: /api/tags, `resident list`, /metrics.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "runner/runner_limits.h"  // RESIDENT_UNDER_SANITIZER
#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

class SleepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    fs::create_symlink(SynthModel("20M", 1), dir_ + "/m1.gguf");
  }
  // A 1-token generation with a context of 8192 tokens (a KV cache worth freeing).
  static json Generate(int port, const std::string& keep_alive_json = "") {
    std::string body = R"({"model":"m1","prompt":"hi","stream":false,"options":{"num_predict":1,"num_ctx":8192})";
    if (!keep_alive_json.empty()) body += R"(,"keep_alive":)" + keep_alive_json;
    auto r = Post(port, "/api/generate", body + "}");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json();
  }
  // A seeded 24-token generation at the same context: its text.
  static std::string SeededText(int port) {
    auto r = Post(port, "/api/generate",
                  R"({"model":"m1","prompt":"hi","stream":false,"options":{"num_predict":24,"num_ctx":8192,"seed":7}})");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json().value("response", "");
  }
  // m1 in /api/ps (null when it is not listed).
  static json Ps(int port) {
    json ps = Get(port, "/api/ps").json();
    for (const auto& m : ps["models"]) {
      if (m["name"] == "m1:latest") return m;
    }
    return nullptr;
  }
  static json Events(int port) { return Get(port, "/api/events").json()["events"]; }
  // A process's environment, one variable per line.
  static std::string Environment(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
    std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    for (char& c : env) c = c == '\0' ? '\n' : c;
    return env;
  }
  static int CountEvents(int port, const std::string& type) {
    int n = 0;
    for (const auto& e : Events(port)) n += e["type"] == type ? 1 : 0;
    return n;
  }
  std::string dir_;
};

TEST_F(SleepTest, AnIdleModelSleepsHoldingLessAndTheNextRequestWakesIt) {
  // 5 s: the model must still be awake when ps is read right after a request, on a busy machine too.
  ServerProcess server(dir_, {{"RESIDENT_SLEEP_AFTER", "5s"}, {"RESIDENT_SPARE_RUNNER", "0"}});
  const int port = server.port();
  const std::string before = SeededText(port);
  json awake = Ps(port);
  ASSERT_TRUE(awake.is_object());
  EXPECT_EQ(awake["state"], "loaded");
  EXPECT_EQ(awake["sleep_after"], "5s");
  const uint64_t awake_size = awake["size"].get<uint64_t>();
  ASSERT_EQ(server.Children().size(), 1u);
  const pid_t runner = server.Children()[0];
  // Models may sleep: the runner asks for transparent huge pages (its wakes create contexts again).
  EXPECT_NE(Environment(runner).find("GLIBC_TUNABLES=glibc.malloc.hugetlb=1"), std::string::npos);

  ASSERT_TRUE(WaitFor([&] { return Ps(port).value("state", "") == "sleeping"; }, std::chrono::seconds(60)));
  json asleep = Ps(port);
  const uint64_t asleep_size = asleep["size"].get<uint64_t>();
  EXPECT_GT(asleep_size, 0u);
  EXPECT_EQ(asleep["size_measured"].get<uint64_t>(), asleep_size);
#ifndef RESIDENT_UNDER_SANITIZER  // a sanitizer's allocator keeps freed memory (its quarantine)
  EXPECT_LT(asleep_size, awake_size) << "asleep it should hold less than awake (its KV cache is freed)";
  EXPECT_GE(asleep["size_awake"].get<uint64_t>(), asleep_size);
#endif
  // It slept in place: the context kept, its pages handed back.
  EXPECT_TRUE(WaitForLog(server, "m1:latest: asleep, its context kept and its pages given back"));
  // The same runner process lives on.
  ASSERT_EQ(server.Children().size(), 1u);
  EXPECT_EQ(server.Children()[0], runner);
  // `resident ps` adds a STATE column while a model sleeps.
  CliRun ps = RunCli(port, "ps");
  EXPECT_EQ(ps.code, 0) << ps.out;
  EXPECT_NE(ps.out.find("STATE"), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("sleeping"), std::string::npos) << ps.out;

  // The next request wakes it and is answered; its load_duration is the wake.
  json answer = Generate(port);
  EXPECT_EQ(answer["done"], true);
  EXPECT_GT(answer.value("load_duration", 0), 0);
  EXPECT_EQ(Ps(port)["state"], "loaded");
  EXPECT_EQ(server.Children()[0], runner);  // woken, not loaded again
  EXPECT_EQ(CountEvents(port, "load"), 1);
  EXPECT_GE(CountEvents(port, "sleep"), 1);
  EXPECT_EQ(CountEvents(port, "wake"), 1);
  std::string metrics = Get(port, "/metrics").body;
  EXPECT_GE(MetricSample(metrics, R"(resident_model_sleeps_total{model="m1:latest",reason="idle"})"), 1);
  EXPECT_EQ(MetricSample(metrics, R"(resident_model_wakes_total{model="m1:latest",reason="request"})"), 1);
  EXPECT_TRUE(WaitForLog(server, "put m1:latest to sleep"));
  EXPECT_TRUE(WaitForLog(server, "woke m1:latest in"));
  // Woken in place, the model answers a seeded request as it did before it slept: its KV cache
  // and buffers read back as zero pages, as a new context's cleared ones.
  EXPECT_EQ(SeededText(port), before);
}

TEST_F(SleepTest, AModelThatNeverDecodedSleepsByFreeingItsContextAndWakesAnswering) {
  // Loaded without a prompt, the engine has not seen which buffers its graphs use: it frees the
  // context to sleep, and creates it again at the wake.
  ServerProcess server(dir_, {{"RESIDENT_SLEEP_AFTER", "1s"}, {"RESIDENT_SPARE_RUNNER", "0"}});
  const int port = server.port();
  auto load = Post(port, "/api/generate", R"({"model":"m1","options":{"num_ctx":8192}})");
  ASSERT_EQ(load.status, 200) << load.body;
  ASSERT_TRUE(WaitFor([&] { return Ps(port).value("state", "") == "sleeping"; }, std::chrono::seconds(60)));
  EXPECT_TRUE(WaitForLog(server, "m1:latest: asleep, its context freed"));
  const std::string woken = SeededText(port);
  EXPECT_FALSE(woken.empty());
  EXPECT_EQ(CountEvents(port, "wake"), 1);
  // It sleeps again, now in place, and still answers the same.
  ASSERT_TRUE(WaitFor([&] { return Ps(port).value("state", "") == "sleeping"; }, std::chrono::seconds(60)));
  EXPECT_TRUE(WaitForLog(server, "m1:latest: asleep, its context kept"));
  EXPECT_EQ(SeededText(port), woken);
}

TEST_F(SleepTest, KeepAliveStillUnloadsASleepingModel) {
  ServerProcess server(dir_, {{"RESIDENT_SLEEP_AFTER", "0"}});
  const int port = server.port();
  Generate(port, R"("3s")");
  ASSERT_TRUE(WaitFor([&] {
    json m = Ps(port);
    return m.is_null() || m.value("state", "") == "sleeping";
  }, std::chrono::seconds(60)));
  ASSERT_TRUE(WaitFor([&] { return Ps(port).is_null(); }, std::chrono::seconds(60)));
  ASSERT_TRUE(WaitFor([&] { return server.Children().empty(); }, std::chrono::seconds(30)));
  bool expired = false;
  for (const auto& e : Events(port)) expired |= e["type"] == "unload" && e["reason"] == "expired";
  EXPECT_TRUE(expired) << Events(port).dump();
  EXPECT_EQ(CountEvents(port, "sleep"), 1);
}

TEST_F(SleepTest, WithoutSleepAfterModelsStayLoadedAndPsIsOllamas) {
  ServerProcess server(dir_);
  const int port = server.port();
  Generate(port);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  json m = Ps(port);
  ASSERT_TRUE(m.is_object());
  EXPECT_EQ(m["state"], "loaded");
  EXPECT_FALSE(m.contains("sleep_after"));
  ASSERT_EQ(server.Children().size(), 1u);
  EXPECT_EQ(Environment(server.Children()[0]).find("glibc.malloc.hugetlb"), std::string::npos);
  EXPECT_EQ(CountEvents(port, "sleep"), 0);
  CliRun ps = RunCli(port, "ps");
  EXPECT_EQ(ps.code, 0);
  EXPECT_EQ(ps.out.find("STATE"), std::string::npos) << ps.out;
  EXPECT_EQ(ps.out.rfind("NAME", 0), 0u) << ps.out;
}

TEST_F(SleepTest, TagsListAndMetricsSayHowMuchOfEachFileIsInThePageCache) {
  // Read the file whole: its pages are in the page cache now.
  {
    std::ifstream in(dir_ + "/m1.gguf", std::ios::binary);
    std::vector<char> buf(1 << 20);
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    }
  }
  ServerProcess server(dir_);
  const int port = server.port();
  json tags = Get(port, "/api/tags").json();
  ASSERT_EQ(tags["models"].size(), 1u);
  const json& details = tags["models"][0]["details"];
  ASSERT_TRUE(details.contains("page_cache_bytes")) << tags.dump();
  const uint64_t file_bytes = fs::file_size(fs::canonical(dir_ + "/m1.gguf"));
  EXPECT_GE(details["page_cache_bytes"].get<uint64_t>(), file_bytes * 9 / 10);
  EXPECT_LE(details["page_cache_bytes"].get<uint64_t>(), file_bytes);
  EXPECT_GE(details["page_cache_fraction"].get<double>(), 0.9);

  CliRun list = RunCli(port, "list");
  EXPECT_EQ(list.code, 0) << list.out;
  EXPECT_NE(list.out.find("CACHED"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("%"), std::string::npos) << list.out;

  std::string metrics = Get(port, "/metrics").body;
  EXPECT_GE(MetricSample(metrics, R"(resident_model_page_cache_bytes{model="m1:latest"})"),
            static_cast<double>(file_bytes) * 0.9);
  EXPECT_EQ(MetricSample(metrics, R"(resident_model_file_bytes{model="m1:latest"})"), static_cast<double>(file_bytes));
}

}  // namespace
}  // namespace resident::testing
