// /metrics and /api/events on the real server: loads, an eviction under a small memory budget
// and a stop show up with their reasons; an event stream follows and ends with the server.
#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "support/test_env.h"

namespace resident::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double Sample(const std::string& metrics, const std::string& series) { return MetricSample(metrics, series); }

std::string Trail(const json& events) {
  std::string out;
  for (const auto& e : events) {
    out += e.value("type", "?");
    out += ' ';
    out += e.value("model", "?");
    if (e.contains("reason")) out.append(" ").append(e.value("reason", ""));
    if (e.contains("for_model")) out.append(" for ").append(e.value("for_model", ""));
    out += "; ";
  }
  return out;
}

class ObservabilityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir() + "/observability-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
    for (int i = 1; i <= 3; ++i) {
      std::string link = dir_ + "/m" + std::to_string(i) + ".gguf";
      fs::remove(link);  // from an earlier --gtest_repeat round
      fs::create_symlink(SynthModel("20M", i), link);
    }
  }
  static void Generate(int port, const std::string& model) {
    auto r = Post(port, "/api/generate",
                  R"({"model":")" + model + R"(","prompt":"hi","stream":false,"options":{"num_predict":1}})");
    ASSERT_EQ(r.status, 200) << r.body;
  }
  std::string dir_;
};

TEST_F(ObservabilityTest, MetricsAndEventsShowLoadsEvictionsAndStopsWithTheirReasons) {
  // Each 20M model is predicted at about 80 MB and measures about 70 MB (context 2048; more under a
  // sanitizer): 200 MB holds two.
  ServerProcess server(dir_, {{"RESIDENT_MEMORY_LIMIT", "200MB"}, {"RESIDENT_CONTEXT_LENGTH", "2048"}});
  const int port = server.port();
  Generate(port, "m1");
  Generate(port, "m2");
  Generate(port, "m3");  // m1 or m2 goes to make room (the cheaper to reload per byte)
  json before_stop = Get(port, "/api/events").json()["events"];
  ASSERT_EQ(before_stop.size(), 4u) << before_stop.dump();
  const std::string gone = before_stop[2].value("model", "");  // evicted
  const std::string kept = gone == "m1:latest" ? "m2:latest" : "m1:latest";
  ASSERT_TRUE(gone == "m1:latest" || gone == "m2:latest") << before_stop.dump();
  ASSERT_EQ(Post(port, "/api/generate", R"({"model":")" + kept + R"(","keep_alive":0})").status, 200);  // a stop

  json events = Get(port, "/api/events").json()["events"];
  EXPECT_EQ(Trail(events), "load m1:latest; load m2:latest; evict " + gone + " memory for m3:latest; load m3:latest; " +
                               "unload " + kept + " manual; ");
  ASSERT_EQ(events.size(), 5u);
  const json& load = events[0];
  EXPECT_GT(load["duration_s"].get<double>(), 0);
  EXPECT_GT(load["bytes"].get<uint64_t>(), 10'000'000u);
  EXPECT_GT(load["predicted_bytes"].get<uint64_t>(), 10'000'000u);
  EXPECT_GT(load["pid"].get<int>(), 0);
  EXPECT_EQ(load["time"].get<std::string>().size(), std::string("2024-05-01T12:00:00.123456789Z").size());
  const json& evict = events[2];
  EXPECT_GT(evict["bytes"].get<uint64_t>(), 10'000'000u);
  EXPECT_GE(evict["idle_s"].get<double>(), 0);
  uint64_t evict_seq = evict["seq"];
  EXPECT_EQ(Trail(Get(port, "/api/events?since=" + std::to_string(evict_seq)).json()["events"]),
            "load m3:latest; unload " + kept + " manual; ");
  EXPECT_EQ(Get(port, "/api/events?since=x").status, 400);

  httplib::Client client("127.0.0.1", port);
  // A request is timed once its answer is written, just after the client has it: the server's
  // thread may not have recorded the last one yet.
  const std::string generate_count =
      R"(resident_http_request_duration_seconds_count{route="/api/generate",status="2xx"})";
  const std::string bad_events_count =
      R"(resident_http_request_duration_seconds_count{route="/api/events",status="4xx"})";
  auto timed = [&](const std::string& body) {
    return Sample(body, generate_count) >= 4 && Sample(body, bad_events_count) >= 1;
  };
  auto r = client.Get("/metrics");
  for (auto start = Clock::now(); r && !timed(r->body) && Clock::now() - start < std::chrono::seconds(60);) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r = client.Get("/metrics");
  }
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& m = r->body;
  EXPECT_NE(m.find("# TYPE resident_model_evictions_total counter\n"), std::string::npos) << m;
  EXPECT_NE(m.find("# HELP resident_model_load_seconds "), std::string::npos) << m;
  EXPECT_EQ(Sample(m, R"(resident_model_loads_total{model="m1:latest"})"), 1) << m;
  EXPECT_EQ(Sample(m, R"(resident_model_requests_total{model="m1:latest"})"), 1) << m;
  EXPECT_EQ(Sample(m, R"(resident_model_cold_starts_total{model="m1:latest"})"), 1) << m;
  EXPECT_EQ(Sample(m, R"(resident_model_load_seconds_count{model="m3:latest"})"), 1) << m;
  auto series = [](const std::string& name, const std::string& model, const std::string& reason = "") {
    return name + "{model=\"" + model + "\"" + (reason.empty() ? "" : ",reason=\"" + reason + "\"") + "}";
  };
  EXPECT_EQ(Sample(m, series("resident_model_evictions_total", gone, "memory")), 1) << m;
  EXPECT_EQ(Sample(m, series("resident_model_evictions_total", gone, "expired")), 0) << m;
  EXPECT_EQ(Sample(m, series("resident_model_evictions_total", kept, "manual")), 1) << m;
  EXPECT_EQ(Sample(m, series("resident_model_evictions_total", kept, "memory")), 0) << m;
  EXPECT_EQ(Sample(m, R"(resident_model_loaded{model="m3:latest"})"), 1) << m;
  EXPECT_EQ(Sample(m, series("resident_model_loaded", gone)), 0) << m;
  EXPECT_EQ(Sample(m, series("resident_model_measured_bytes", gone)), 0) << m;
  EXPECT_GT(Sample(m, R"(resident_model_measured_bytes{model="m3:latest"})"), 10e6) << m;
  double resident = Sample(m, series("resident_model_resident_byte_seconds_total", gone));
  double idle = Sample(m, series("resident_model_idle_byte_seconds_total", gone));
  EXPECT_GT(resident, 0) << m;
  EXPECT_GT(idle, 0) << m;
  EXPECT_LT(idle, resident) << m;
  EXPECT_EQ(Sample(m, "resident_memory_budget_bytes"), 200e6) << m;
  EXPECT_EQ(Sample(m, "resident_memory_in_use_bytes"), Sample(m, R"(resident_model_measured_bytes{model="m3:latest"})"))
      << m;
  EXPECT_EQ(Sample(m, "resident_models_loaded"), 1) << m;
  EXPECT_EQ(Sample(m, "resident_queued_requests"), 0) << m;
  EXPECT_EQ(Sample(m, generate_count), 4) << m;
  EXPECT_EQ(Sample(m, bad_events_count), 1) << m;

  std::ifstream log(server.log_path());
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("loaded m1:latest in "), std::string::npos) << text;
  EXPECT_NE(text.find(") to make room for m3:latest (needs "), std::string::npos) << text;
  EXPECT_NE(text.find("unloaded " + kept + " ("), std::string::npos) << text;
}

TEST_F(ObservabilityTest, AnEventStreamFollowsNewEventsAndEndsWhenTheServerStops) {
  ServerProcess server(dir_);
  std::mutex mu;
  std::condition_variable cv;
  std::string received;
  bool ended = false;
  std::thread reader([&] {
    httplib::Client c("127.0.0.1", server.port());
    c.set_read_timeout(std::chrono::seconds(60));
    c.Get("/api/events?stream=true&since=0", [&](const char* data, size_t n) {
      std::lock_guard<std::mutex> lock(mu);
      received.append(data, n);
      cv.notify_all();
      return true;
    });
    std::lock_guard<std::mutex> lock(mu);
    ended = true;
    cv.notify_all();
  });
  Generate(server.port(), "m1");
  {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return received.find('\n') != std::string::npos; }));
    json first = json::parse(received.substr(0, received.find('\n')), nullptr, false);
    EXPECT_EQ(first["type"], "load") << received;
    EXPECT_EQ(first["model"], "m1:latest") << received;
    EXPECT_FALSE(ended);  // still open
  }
  auto stop_started = Clock::now();
  int status = server.Terminate();
  auto took = Clock::now() - stop_started;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_LT(took, std::chrono::seconds(30)) << "an open event stream held the server";  // until killed, without the fix
  {
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return ended; }));
  }
  reader.join();
}

}  // namespace
}  // namespace resident::testing
