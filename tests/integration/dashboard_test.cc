// The dashboard's server side on the real binary: the page served without the key while every
// data call needs it, the request log written per request (and nothing else), the memory
// history, the per-model stats, the what-if (a child `bench simulate --own`), and
// `bench simulate --own` from the command line. The page itself is driven by a real browser in
// tests/clients/dashboard.test.mjs.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "support/test_env.h"

namespace resident::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kKey = "dashboard-test-key";

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int Lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestCaseDir();
    models_ = dir_ + "/models";
    fs::create_directories(models_);
    for (int i = 1; i <= 2; ++i) {
      std::string link = models_ + "/m" + std::to_string(i) + ".gguf";
      fs::remove(link);
      fs::create_symlink(SynthModel("20M", i), link);
    }
    log_ = dir_ + "/request-log.csv";
    fs::remove(log_);
    fs::remove(dir_ + "/request-log.1.csv");
  }
  // A GET with the key.
  static httplib::Result Call(int port, const std::string& path, bool with_key = true) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(180, 0);
    httplib::Headers h;
    if (with_key) h.emplace("Authorization", std::string("Bearer ") + kKey);
    return c.Get(path.c_str(), h);
  }
  static void Generate(int port, const std::string& model) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(300, 0);
    auto r = c.Post("/api/generate", {{"Authorization", std::string("Bearer ") + kKey}},
                    R"({"model":")" + model + R"(","prompt":"hi","stream":false,"options":{"num_predict":3}})",
                    "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
  }
  std::string dir_, models_, log_;
};

TEST_F(DashboardTest, PageWithoutTheKeyDataWithItAndEveryRequestLoggedPrivately) {
  // 120 MB holds one 20M model (about 70 MB measured, 80 predicted), not two.
  ServerProcess server(models_, {{"RESIDENT_API_KEY", kKey},
                                 {"RESIDENT_MEMORY_LIMIT", "120MB"},
                                 {"RESIDENT_REQUEST_LOG", log_}});
  const int port = server.port();
  ASSERT_TRUE(WaitForLog(server, "dashboard: http://127.0.0.1:" + std::to_string(port) + "/ui"));

  // The page and its assets need no key; they carry no data.
  auto page = Call(port, "/ui", false);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_EQ(page->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(page->body.find("<title>resident"), std::string::npos);
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("connect-src 'self'"), std::string::npos);
  for (const char* asset : {"/ui/dashboard.js", "/ui/dashboard.css", "/ui/"}) {
    auto a = Call(port, asset, false);
    ASSERT_TRUE(a);
    EXPECT_EQ(a->status, 200) << asset;
  }
  EXPECT_EQ(Call(port, "/ui/nothing.js", false)->status, 401) << "only the page's own files go without the key";
  EXPECT_EQ(Call(port, "/", false)->body, "resident is running");
  for (const char* data : {"/api/residency/history", "/api/residency/stats", "/api/residency/what-if", "/api/ps"}) {
    EXPECT_EQ(Call(port, data, false)->status, 401) << data;
  }

  Generate(port, "m1");
  Generate(port, "m2");  // evicts m1: the budget holds one
  ASSERT_TRUE(WaitFor([&] { return Lines(Slurp(log_)) >= 3; }));  // the header and two lines

  // The request log: the header, then time, model, tokens. No prompt, no address.
  const std::string text = Slurp(log_);
  std::istringstream lines(text);
  std::string header, l1, l2;
  std::getline(lines, header);
  std::getline(lines, l1);
  std::getline(lines, l2);
  EXPECT_EQ(header, "timestamp_s,model,prompt_tokens,output_tokens");
  EXPECT_NE(l1.find(",m1:latest,"), std::string::npos) << text;
  EXPECT_NE(l2.find(",m2:latest,"), std::string::npos) << text;
  EXPECT_TRUE(l1.ends_with(",3")) << "3 tokens generated: " << l1;
  EXPECT_EQ(text.find("hi"), std::string::npos) << "no prompt text";
  EXPECT_EQ(text.find("127.0.0.1"), std::string::npos) << "no client address";
  EXPECT_EQ(fs::status(log_).permissions() & (fs::perms::group_all | fs::perms::others_all), fs::perms::none);
  // Calls that use no model are not requests of the log.
  EXPECT_EQ(Call(port, "/api/tags")->status, 200);

  // Stats: per model, as /metrics counts them.
  auto stats = Call(port, "/api/residency/stats");
  ASSERT_TRUE(stats);
  ASSERT_EQ(stats->status, 200) << stats->body;
  json s = json::parse(stats->body);
  EXPECT_EQ(s["memory_budget"], 120'000'000u);
  EXPECT_EQ(s["models"]["m1:latest"]["requests"], 1);
  EXPECT_EQ(s["models"]["m1:latest"]["cold_starts"], 1);
  EXPECT_EQ(s["models"]["m1:latest"]["unloads"]["memory"], 1);
  EXPECT_GT(s["models"]["m1:latest"]["resident_gb_s"].get<double>(), 0);
  EXPECT_EQ(s["models"]["m2:latest"]["loaded"], true);

  // History: samples every 2 s; one with m2 in it comes.
  json samples;
  ASSERT_TRUE(WaitFor([&] {
    auto h = Call(port, "/api/residency/history");
    if (!h || h->status != 200) return false;
    samples = json::parse(h->body)["samples"];
    return !samples.empty() && samples.back()["models"].contains("m2:latest");
  }));
  EXPECT_EQ(samples.back()["budget"], 120'000'000u);
  EXPECT_GT(samples.back()["models"]["m2:latest"].get<uint64_t>(), 10'000'000u);
  const double last_t = samples.back()["t"].get<double>();
  auto newer = Call(port, "/api/residency/history?since=" + std::to_string(last_t + 3600));
  ASSERT_TRUE(newer);
  EXPECT_TRUE(json::parse(newer->body)["samples"].empty());
  EXPECT_EQ(Call(port, "/api/residency/history?since=abc")->status, 400);

  // What-if: the request log through the simulator in a child process, cached.
  auto w = Call(port, "/api/residency/what-if");
  ASSERT_TRUE(w);
  ASSERT_EQ(w->status, 200) << w->body;
  json what_if = json::parse(w->body);
  EXPECT_EQ(what_if["available"], true);
  EXPECT_EQ(what_if["requests"], 2);
  EXPECT_EQ(what_if["rows"].size(), 7u);
  EXPECT_EQ(what_if["current"]["label"], "yours (keep_alive 5m)");
  EXPECT_EQ(what_if["memory_budget"], 120'000'000u);
  for (const auto& m : what_if["models"]) EXPECT_TRUE(m["measured"].get<bool>()) << m.dump();
  EXPECT_NE(what_if["advice"].get<std::string>().find("would have cost least"), std::string::npos) << what_if.dump();
  EXPECT_EQ(what_if["cached"], false);
  auto again = Call(port, "/api/residency/what-if");
  ASSERT_TRUE(again);
  EXPECT_EQ(json::parse(again->body)["cached"], true);
}

TEST_F(DashboardTest, RequestLogOffRecordsNothingAndTheWhatIfSaysSo) {
  ServerProcess server(models_, {{"RESIDENT_REQUEST_LOG", "off"}});
  const int port = server.port();
  ASSERT_TRUE(WaitForLog(server, "request log: off"));
  Generate(port, "m1");
  auto w = Call(port, "/api/residency/what-if");
  ASSERT_TRUE(w);
  ASSERT_EQ(w->status, 200);
  json j = json::parse(w->body);
  EXPECT_EQ(j["available"], false);
  EXPECT_NE(j["advice"].get<std::string>().find("RESIDENT_REQUEST_LOG=off"), std::string::npos);
  EXPECT_FALSE(fs::exists(log_));
}

TEST_F(DashboardTest, BenchSimulateOwnReadsTheLogWithMeasuredSizes) {
  // A log written by hand (two models, a request every 10 minutes for two hours) and the sizes
  // the server would have measured.
  {
    std::ofstream f(log_);
    f << "timestamp_s,model,prompt_tokens,output_tokens\n";
    const double now = static_cast<double>(std::time(nullptr));
    for (int i = 0; i < 12; ++i) f << fmt::format("{:.3f},a:latest,20,10\n", now - 7200 + i * 600);
    f << fmt::format("{:.3f},b:latest,20,1\n", now - 3600);
    f << "1800000000.000,b:lat";  // a torn last line
  }
  CliRun run = RunCli(0, "bench simulate --own --request-log " + log_ +
                             " --measured a:latest=2GB:3 --measured b:latest=500MB:1 --memory-limit 100GB",
                      {{"RESIDENT_KEEP_ALIVE", "1m"}, {"RESIDENT_LEARNER_STATE", "off"}});
  ASSERT_EQ(run.code, 0) << run.out;
  EXPECT_NE(run.out.find("13 requests"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("1 lines of the log skipped"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find("yours (keep_alive 1m)"), std::string::npos) << run.out;
  // A request every 10 minutes kept for 1 minute: every one is a cold start; keeping a 2 GB model
  // 10 minutes (1200 GB·s) costs less than a cold start (15 minutes: 1800 GB·s).
  EXPECT_NE(run.out.find("would have cost least"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("Set RESIDENT_KEEP_ALIVE=1m"), std::string::npos) << run.out;

  CliRun json_run = RunCli(0, "bench simulate --own --json - --request-log " + log_ + " --measured a:latest=2GB:3",
                           {{"RESIDENT_LEARNER_STATE", "off"}});
  ASSERT_EQ(json_run.code, 0) << json_run.out;
  json j = json::parse(json_run.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << json_run.out;
  EXPECT_EQ(j["requests"], 13);
  EXPECT_EQ(j["skipped_lines"], 1);
  bool b_assumed = false;
  for (const auto& m : j["models"]) {
    if (m["name"] == "b:latest") b_assumed = !m["measured"].get<bool>();
  }
  EXPECT_TRUE(b_assumed) << j["models"].dump();
  EXPECT_FALSE(j["bound"].empty());
}

}  // namespace
}  // namespace resident::testing
