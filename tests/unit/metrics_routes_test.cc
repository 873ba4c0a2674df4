// /metrics and /api/events formatting, over hand-made scheduler stats and events.
#include "api/metrics_routes.h"

#include <gtest/gtest.h>

#include <set>

namespace resident::api {
namespace {

using namespace std::chrono_literals;
using sched::ResidencyEvent;
using sched::UnloadReason;

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(MetricsRoutesTest, RendersEveryFamilyPerModelAndServerWide) {
  sched::ResidencyStats stats;
  stats.memory_budget = 200'000'000;
  stats.memory_in_use = 70'000'000;
  stats.loaded_models = 1;
  stats.max_loaded = 3;
  stats.queued_requests = 2;
  sched::ModelStats& m = stats.models["m1:latest"];
  m.loads = 2;
  m.load_seconds.Observe(0.3);
  m.load_seconds.Observe(1.5);
  m.requests = 5;
  m.cold_starts = 2;
  m.unloads[static_cast<size_t>(UnloadReason::kMemory)] = 1;
  m.unloads[static_cast<size_t>(UnloadReason::kExited)] = 1;
  m.resident_byte_seconds = 1.5e9;
  m.idle_byte_seconds = 0.5e9;
  m.loaded = true;
  m.predicted_bytes = 81'000'000;
  m.measured_bytes = 70'000'000;
  stats.models["m2:latest"];  // seen once, unloaded now

  HttpMetrics http;
  http.Observe("/api/generate", 200, 0.02);
  http.Observe("/api/generate", 404, 0.001);
  std::string text = RenderMetrics(stats, http.Snapshot());

  for (const char* family :
       {"resident_model_loads_total counter", "resident_model_load_failures_total counter",
        "resident_model_load_seconds histogram", "resident_model_requests_total counter",
        "resident_model_cold_starts_total counter", "resident_model_evictions_total counter",
        "resident_model_runner_exits_total counter", "resident_model_loaded gauge",
        "resident_model_predicted_bytes gauge", "resident_model_measured_bytes gauge",
        "resident_model_resident_byte_seconds_total counter", "resident_model_idle_byte_seconds_total counter",
        "resident_memory_budget_bytes gauge", "resident_memory_in_use_bytes gauge", "resident_models_loaded gauge",
        "resident_max_loaded_models gauge", "resident_queued_requests gauge",
        "resident_http_request_duration_seconds histogram"}) {
    EXPECT_TRUE(Has(text, std::string("# TYPE ") + family)) << family << "\n" << text;
  }
  EXPECT_TRUE(Has(text, R"(resident_model_loads_total{model="m1:latest"} 2)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_loads_total{model="m2:latest"} 0)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_load_seconds_bucket{model="m1:latest",le="0.5"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_load_seconds_bucket{model="m1:latest",le="2.5"} 2)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_load_seconds_count{model="m1:latest"} 2)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_requests_total{model="m1:latest"} 5)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_cold_starts_total{model="m1:latest"} 2)")) << text;
  for (const char* reason : {"expired", "count", "manual", "reload"}) {
    EXPECT_TRUE(Has(text, std::string(R"(resident_model_evictions_total{model="m1:latest",reason=")") + reason +
                              "\"} 0"))
        << reason;
  }
  EXPECT_TRUE(Has(text, R"(resident_model_evictions_total{model="m1:latest",reason="memory"} 1)")) << text;
  EXPECT_EQ(text.find("reason=\"exited\""), std::string::npos);  // runner exits have their own counter
  EXPECT_TRUE(Has(text, R"(resident_model_runner_exits_total{model="m1:latest"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_loaded{model="m1:latest"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_loaded{model="m2:latest"} 0)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_predicted_bytes{model="m1:latest"} 81000000)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_measured_bytes{model="m2:latest"} 0)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_resident_byte_seconds_total{model="m1:latest"} 1500000000)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_idle_byte_seconds_total{model="m1:latest"} 500000000)")) << text;
  EXPECT_TRUE(Has(text, "resident_memory_budget_bytes 200000000")) << text;
  EXPECT_TRUE(Has(text, "resident_memory_in_use_bytes 70000000")) << text;
  EXPECT_TRUE(Has(text, "resident_models_loaded 1")) << text;
  EXPECT_TRUE(Has(text, "resident_max_loaded_models 3")) << text;
  EXPECT_TRUE(Has(text, "resident_queued_requests 2")) << text;
  EXPECT_TRUE(Has(text, "resident_http_request_duration_seconds_bucket"
                        R"({route="/api/generate",status="2xx",le="0.025"} 1)"))
      << text;
  EXPECT_TRUE(Has(text, R"(resident_http_request_duration_seconds_count{route="/api/generate",status="4xx"} 1)"))
      << text;
}

TEST(MetricsRoutesTest, ThePromptCacheCountersAreShownWhenGiven) {
  sched::ResidencyStats stats;
  EXPECT_EQ(RenderMetrics(stats, {}).find("resident_prompt_cache"), std::string::npos);
  runner::PromptCacheCounters c;
  c.saves = 2;
  c.saved_bytes = 250'000'000;
  c.hits = 3;
  c.restored_tokens = 4500;
  c.restored_bytes = 370'000'000;
  c.evictions = 1;
  c.evicted_bytes = 120'000'000;
  c.dropped = 1;
  std::string text = RenderMetrics(stats, {}, &c);
  for (const char* line : {"resident_prompt_cache_saves_total 2", "resident_prompt_cache_saved_bytes_total 250000000",
                           "resident_prompt_cache_hits_total 3", "resident_prompt_cache_restored_tokens_total 4500",
                           "resident_prompt_cache_restored_bytes_total 370000000", "resident_prompt_cache_evictions_total 1",
                           "resident_prompt_cache_evicted_bytes_total 120000000", "resident_prompt_cache_dropped_total 1",
                           "# TYPE resident_prompt_cache_hits_total counter"}) {
    EXPECT_TRUE(Has(text, line)) << line << "\n" << text;
  }
}

TEST(MetricsRoutesTest, EveryGpuAndTheVramOfEachModelOnIt) {
  sched::ResidencyStats stats;
  EXPECT_EQ(RenderMetrics(stats, {}).find("resident_gpu"), std::string::npos);  // none on a CPU machine
  GpuMetrics a;
  a.device.index = 0;
  a.device.id = "GPU-aaa";
  a.device.name = "Fake GPU";
  a.device.total_bytes = 24'000'000'000;
  a.device.free_bytes = 14'000'000'000;
  a.model_vram = {{"big:latest", 8'000'000'000}, {"small:latest", 1'500'000'000}};
  GpuMetrics b = a;
  b.device.index = 1;
  b.device.id = "GPU-bbb";
  b.model_vram.clear();
  std::string text = RenderMetrics(stats, {}, nullptr, {}, {a, b});
  for (const char* line :
       {R"(resident_gpu_memory_total_bytes{gpu="0",id="GPU-aaa",name="Fake GPU"} 24000000000)",
        R"(resident_gpu_memory_free_bytes{gpu="1",id="GPU-bbb",name="Fake GPU"} 14000000000)",
        R"(resident_gpu_models_bytes{gpu="0",id="GPU-aaa",name="Fake GPU"} 9500000000)",
        R"(resident_gpu_models_bytes{gpu="1",id="GPU-bbb",name="Fake GPU"} 0)",
        R"(resident_model_vram_bytes{model="big:latest",gpu="0"} 8000000000)",
        "# TYPE resident_gpu_memory_free_bytes gauge"}) {
    EXPECT_TRUE(Has(text, line)) << line << "\n" << text;
  }
}

TEST(MetricsRoutesTest, RouteLabelsAreTemplatesNotPaths) {
  EXPECT_EQ(RouteLabel("POST", "/api/generate", true, {}), "/api/generate");
  EXPECT_EQ(RouteLabel("GET", "/v1/models/demo:latest", true, {{11, 11}}), "/v1/models/*");
  EXPECT_EQ(RouteLabel("GET", "/no/such/path", false, {}), "other");
  EXPECT_EQ(RouteLabel("OPTIONS", "/api/chat", false, {}), "*");
  EXPECT_EQ(RouteLabel("OPTIONS", "/anything/else", true, {}), "*");
}

TEST(MetricsRoutesTest, TheNumberOfRouteLabelsIsBounded) {
  HttpMetrics http;
  for (size_t i = 0; i < HttpMetrics::kMaxRoutes + 10; ++i) http.Observe("/r" + std::to_string(i), 200, 0.001);
  http.Observe("/r0", 500, 0.001);  // a known route keeps its label
  auto series = http.Snapshot();
  size_t other = 0;
  std::set<std::string> routes;
  for (const auto& s : series) {
    routes.insert(s.route);
    if (s.route == "other") other += s.seconds.count();
  }
  EXPECT_EQ(routes.size(), HttpMetrics::kMaxRoutes + 1);
  EXPECT_EQ(other, 10u);
  bool r0_500 = false;
  for (const auto& s : series) r0_500 |= s.route == "/r0" && s.status_class == "5xx";
  EXPECT_TRUE(r0_500);
}

TEST(MetricsRoutesTest, EventsCarryWhatAppliesToTheirType) {
  ResidencyEvent load;
  load.seq = 1;
  load.time = WallTime(std::chrono::seconds(1'700'000'000));
  load.type = ResidencyEvent::Type::kLoad;
  load.model = "m1:latest";
  load.duration = 1500ms;
  load.bytes = 70'000'000;
  load.predicted_bytes = 81'000'000;
  load.pid = 1234;
  // Keys in a fixed order (ordered_json compares in order): the way a person reads them.
  EXPECT_EQ(EventJson(load), nlohmann::ordered_json::parse(R"({"seq":1,"time":"2023-11-14T22:13:20.000000000Z",
      "type":"load","model":"m1:latest","duration_s":1.5,"bytes":70000000,"predicted_bytes":81000000,"pid":1234})"));

  ResidencyEvent evict;
  evict.seq = 2;
  evict.time = load.time;
  evict.type = ResidencyEvent::Type::kEvict;
  evict.model = "m1:latest";
  evict.reason = UnloadReason::kMemory;
  evict.bytes = 70'000'000;
  evict.idle = 2500ms;
  evict.for_model = "m3:latest";
  EXPECT_EQ(EventJson(evict), nlohmann::ordered_json::parse(R"({"seq":2,"time":"2023-11-14T22:13:20.000000000Z",
      "type":"evict","model":"m1:latest","reason":"memory","for_model":"m3:latest","bytes":70000000,"idle_s":2.5})"));

  ResidencyEvent expired = evict;
  expired.type = ResidencyEvent::Type::kUnload;
  expired.reason = UnloadReason::kExpired;
  expired.keep_alive = KeepAlive::Of(5min);
  expired.for_model.clear();
  auto j = EventJson(expired);
  EXPECT_EQ(j["reason"], "expired");
  EXPECT_EQ(j["keep_alive"], "5m0s");
  EXPECT_FALSE(j.contains("for_model"));

  ResidencyEvent failed;
  failed.type = ResidencyEvent::Type::kLoadFailed;
  failed.model = "bad:latest";
  failed.error = "not a GGUF file";
  j = EventJson(failed);
  EXPECT_EQ(j["type"], "load_failed");
  EXPECT_EQ(j["error"], "not a GGUF file");
  EXPECT_FALSE(j.contains("bytes"));
  EXPECT_FALSE(j.contains("reason"));
}

TEST(MetricsRoutesTest, SleepsWakesAndThePageCache) {
  sched::ResidencyStats stats;
  sched::ModelStats& m = stats.models["m1:latest"];
  m.sleeps[static_cast<size_t>(sched::SleepReason::kIdle)] = 3;
  m.sleeps[static_cast<size_t>(sched::SleepReason::kMemory)] = 1;
  m.wakes = 2;
  m.wake_seconds.Observe(0.12);
  m.sleeping = true;
  m.loaded = true;
  m.measured_bytes = 1'600'000'000;
  stats.models["m2:latest"];
  std::string text = RenderMetrics(stats, {}, nullptr, {{"m1:latest", 1'500'000'000, 1'600'000'000}, {"m3:latest", 0, 40}});
  for (const char* family : {"resident_model_sleeps_total counter", "resident_model_wakes_total counter",
                             "resident_model_wake_seconds histogram", "resident_model_sleeping gauge",
                             "resident_model_page_cache_bytes gauge", "resident_model_file_bytes gauge"}) {
    EXPECT_TRUE(Has(text, std::string("# TYPE ") + family)) << family << "\n" << text;
  }
  EXPECT_TRUE(Has(text, R"(resident_model_sleeps_total{model="m1:latest",reason="idle"} 3)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_sleeps_total{model="m1:latest",reason="memory"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_sleeps_total{model="m2:latest",reason="idle"} 0)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_wakes_total{model="m1:latest",reason="request"} 2)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_wake_seconds_count{model="m1:latest"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_sleeping{model="m1:latest"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_sleeping{model="m2:latest"} 0)")) << text;
  // Every model the catalog lists, loaded or not.
  EXPECT_TRUE(Has(text, R"(resident_model_page_cache_bytes{model="m1:latest"} 1500000000)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_page_cache_bytes{model="m3:latest"} 0)")) << text;
  EXPECT_TRUE(Has(text, R"(resident_model_file_bytes{model="m3:latest"} 40)")) << text;
  // Without page cache readings, no such family.
  EXPECT_EQ(RenderMetrics(stats, {}).find("resident_model_page_cache_bytes"), std::string::npos);
}

TEST(MetricsRoutesTest, SleepAndWakeEvents) {
  ResidencyEvent sleep;
  sleep.seq = 7;
  sleep.time = WallTime(std::chrono::seconds(1'700'000'000));
  sleep.type = ResidencyEvent::Type::kSleep;
  sleep.model = "m1:latest";
  sleep.sleep_reason = sched::SleepReason::kIdle;
  sleep.bytes = 1'600'000'000;
  sleep.awake_bytes = 1'800'000'000;
  sleep.idle = 120s;
  sleep.keep_alive = KeepAlive::Of(2min);
  sleep.pid = 42;
  EXPECT_EQ(EventJson(sleep), nlohmann::ordered_json::parse(R"({"seq":7,"time":"2023-11-14T22:13:20.000000000Z",
      "type":"sleep","model":"m1:latest","reason":"idle","bytes":1600000000,"awake_bytes":1800000000,
      "idle_s":120.0,"sleep_after":"2m0s","pid":42})"));
  EXPECT_EQ(sched::Describe(sleep), "put m1:latest to sleep (1.8 GB -> 1.6 GB, idle 2m0s) after sleep_after 2m0s");

  ResidencyEvent pressure = sleep;
  pressure.sleep_reason = sched::SleepReason::kMemory;
  pressure.keep_alive.reset();
  pressure.for_model = "m2:latest";
  auto j = EventJson(pressure);
  EXPECT_EQ(j["reason"], "memory");
  EXPECT_EQ(j["for_model"], "m2:latest");
  EXPECT_EQ(sched::Describe(pressure), "put m1:latest to sleep (1.8 GB -> 1.6 GB, idle 2m0s) to make room for m2:latest");

  ResidencyEvent wake;
  wake.seq = 8;
  wake.time = sleep.time;
  wake.type = ResidencyEvent::Type::kWake;
  wake.model = "m1:latest";
  wake.duration = 130ms;
  wake.bytes = 1'800'000'000;
  wake.asleep_bytes = 1'600'000'000;
  wake.idle = 300s;
  j = EventJson(wake);
  EXPECT_EQ(j["type"], "wake");
  EXPECT_EQ(j["reason"], "request");
  EXPECT_DOUBLE_EQ(j["duration_s"].get<double>(), 0.13);
  EXPECT_EQ(j["asleep_bytes"], 1'600'000'000);
  EXPECT_EQ(sched::Describe(wake), "woke m1:latest in 0.13 s (1.6 GB -> 1.8 GB)");
}

}  // namespace
}  // namespace resident::api
