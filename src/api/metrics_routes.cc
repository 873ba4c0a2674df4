#include "api/metrics_routes.h"

#include <httplib.h>

#include <charconv>
#include <chrono>
#include <memory>
#include <optional>

#include "api/prometheus_text.h"
#include "api/request_log.h"
#include "core/clock.h"
#include "core/keep_alive.h"
#include "core/time_format.h"

namespace resident::api {
namespace {

using Type = PrometheusWriter::Type;
using sched::ModelStats;
using sched::UnloadReason;

double Num(uint64_t v) { return static_cast<double>(v); }

constexpr std::chrono::milliseconds kStreamWait{1000};      // how often a stream checks for a stop
constexpr std::chrono::milliseconds kStreamHeartbeat{15000};  // an empty line after this much silence

// The unload reasons /metrics reports as evictions; runner exits have their own counter.
constexpr UnloadReason kEvictionReasons[] = {UnloadReason::kExpired, UnloadReason::kMemory, UnloadReason::kCount,
                                             UnloadReason::kManual, UnloadReason::kReload};

// The request the calling (httplib worker) thread is serving: set before routing, taken by the
// logger once the response has been written (streamed answers included).
struct RequestStart {
  TimePoint at{};
  bool set = false;
};
thread_local RequestStart t_request_start;

// JSON text that keeps the keys in the order written (invalid UTF-8 replaced, never thrown).
std::string Dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// A per-model family: one sample per model.
void PerModel(PrometheusWriter& w, const sched::ResidencyStats& stats, std::string_view name, Type type,
              std::string_view help, double (*value)(const ModelStats&)) {
  w.Family(name, type, help);
  for (const auto& [model, m] : stats.models) w.Sample({{"model", model}}, value(m));
}

}  // namespace

std::vector<double> HttpMetrics::Buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
}

void HttpMetrics::Observe(const std::string& route, int status, double seconds) {
  std::string status_class = status >= 100 && status <= 599 ? std::to_string(status / 100) + "xx" : "other";
  std::lock_guard<std::mutex> lock(mu_);
  std::pair<std::string, std::string> key{route, status_class};
  auto it = series_.find(key);
  if (it == series_.end()) {
    size_t routes = 0;
    const std::string* last = nullptr;
    bool known = false;
    for (const auto& [k, h] : series_) {
      if (k.first == route) known = true;
      if (last == nullptr || *last != k.first) ++routes;
      last = &k.first;
    }
    if (!known && routes >= kMaxRoutes) key.first = "other";
    it = series_.try_emplace(key, Buckets()).first;
  }
  it->second.Observe(seconds);
}

std::vector<HttpMetrics::Series> HttpMetrics::Snapshot() const {
  std::vector<Series> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, h] : series_) out.push_back(Series{key.first, key.second, h});
  return out;
}

std::string RouteLabel(std::string_view method, std::string_view path, bool matched,
                       const std::vector<std::pair<size_t, size_t>>& captures) {
  if (method == "OPTIONS") return "*";
  if (!matched) return "other";
  std::string label;
  size_t at = 0;  // captures come in order and do not overlap
  for (const auto& [offset, length] : captures) {
    if (offset < at || offset > path.size()) continue;
    label.append(path.substr(at, offset - at));
    label.push_back('*');
    at = std::min(path.size(), offset + length);
  }
  label.append(path.substr(at));
  return label;
}

std::string RenderMetrics(const sched::ResidencyStats& stats, const std::vector<HttpMetrics::Series>& http,
                          const runner::PromptCacheCounters* prompt_cache,
                          const std::vector<ModelPageCache>& page_cache, const std::vector<GpuMetrics>& gpus) {
  PrometheusWriter w;
  PerModel(w, stats, "resident_model_loads_total", Type::kCounter, "Loads of the model that finished.",
           [](const ModelStats& m) { return Num(m.loads); });
  PerModel(w, stats, "resident_model_load_failures_total", Type::kCounter, "Loads of the model that failed.",
           [](const ModelStats& m) { return Num(m.load_failures); });
  w.Family("resident_model_load_seconds", Type::kHistogram, "How long the model's loads took, in seconds.");
  for (const auto& [model, m] : stats.models) w.Histogram({{"model", model}}, m.load_seconds);
  PerModel(w, stats, "resident_model_requests_total", Type::kCounter,
           "Requests that got the model (a lease on its runner).",
           [](const ModelStats& m) { return Num(m.requests); });
  PerModel(w, stats, "resident_model_cold_starts_total", Type::kCounter,
           "Requests that had to wait for the model to load (their own load or another request's).",
           [](const ModelStats& m) { return Num(m.cold_starts); });
  w.Family("resident_model_evictions_total", Type::kCounter,
           "Unloads of the model by reason: expired (keep_alive ran out), memory (room for another model "
           "within the memory budget), count (room within the maximum of loaded models), manual (keep_alive 0, "
           "a stop, a delete), reload (loaded again with other load options).");
  for (const auto& [model, m] : stats.models) {
    for (UnloadReason r : kEvictionReasons) {
      w.Sample({{"model", model}, {"reason", std::string(sched::ReasonName(r))}}, Num(m.unloads_for(r)));
    }
  }
  PerModel(w, stats, "resident_model_runner_exits_total", Type::kCounter,
           "Times the model's runner process was found gone (crashed or killed) and the model unloaded.",
           [](const ModelStats& m) { return Num(m.unloads_for(UnloadReason::kExited)); });
  PerModel(w, stats, "resident_model_prewarms_total", Type::kCounter,
           "Loads of the model ahead of a request that keep_alive \"auto\" predicted.",
           [](const ModelStats& m) { return Num(m.prewarms); });
  PerModel(w, stats, "resident_model_prewarm_hits_total", Type::kCounter,
           "Prewarms whose request found the model loaded.", [](const ModelStats& m) { return Num(m.prewarm_hits); });
  PerModel(w, stats, "resident_model_prewarm_misses_total", Type::kCounter,
           "Prewarms that served no request warm: the request came first, there was no room, or none came.",
           [](const ModelStats& m) { return Num(m.prewarm_misses); });
  PerModel(w, stats, "resident_model_loaded", Type::kGauge, "1 while the model is loaded, else 0.",
           [](const ModelStats& m) { return m.loaded ? 1.0 : 0.0; });
  w.Family("resident_model_sleeps_total", Type::kCounter,
           "Times the model was put to sleep (its context freed, its runner and weights kept) by reason: idle "
           "(sleep_after ran out), memory (room for another model within the memory budget, instead of an unload).");
  for (const auto& [model, m] : stats.models) {
    for (sched::SleepReason r : sched::kAllSleepReasons) {
      w.Sample({{"model", model}, {"reason", std::string(sched::SleepReasonName(r))}}, Num(m.sleeps_for(r)));
    }
  }
  w.Family("resident_model_wakes_total", Type::kCounter, "Times a request woke the sleeping model, by reason.");
  for (const auto& [model, m] : stats.models) w.Sample({{"model", model}, {"reason", "request"}}, Num(m.wakes));
  w.Family("resident_model_wake_seconds", Type::kHistogram, "How long the model's wakes took, in seconds.");
  for (const auto& [model, m] : stats.models) w.Histogram({{"model", model}}, m.wake_seconds);
  PerModel(w, stats, "resident_model_sleeping", Type::kGauge, "1 while the model is asleep, else 0.",
           [](const ModelStats& m) { return m.sleeping ? 1.0 : 0.0; });
  PerModel(w, stats, "resident_model_predicted_bytes", Type::kGauge,
           "The model's predicted memory footprint while it is loaded or loading, else 0.",
           [](const ModelStats& m) { return Num(m.predicted_bytes); });
  PerModel(w, stats, "resident_model_measured_bytes", Type::kGauge,
           "The model's measured resident memory while it is loaded (asleep: what it holds asleep; 0 until measured, "
           "and when unloaded).",
           [](const ModelStats& m) { return Num(m.measured_bytes); });
  PerModel(w, stats, "resident_model_resident_byte_seconds_total", Type::kCounter,
           "Memory held by the model times the time it was held (from the start of each load to its unload), "
           "in byte-seconds.",
           [](const ModelStats& m) { return m.resident_byte_seconds; });
  PerModel(w, stats, "resident_model_idle_byte_seconds_total", Type::kCounter,
           "The part of resident byte-seconds with no request using the model (loaded and idle).",
           [](const ModelStats& m) { return m.idle_byte_seconds; });

  if (!page_cache.empty()) {
    w.Family("resident_model_page_cache_bytes", Type::kGauge,
             "Bytes of the model's weights file in the page cache now (sampled with mincore; loaded or not).");
    for (const ModelPageCache& p : page_cache) w.Sample({{"model", p.model}}, Num(p.cached_bytes));
    w.Family("resident_model_file_bytes", Type::kGauge, "Bytes of the model's weights file.");
    for (const ModelPageCache& p : page_cache) w.Sample({{"model", p.model}}, Num(p.file_bytes));
  }

  if (!gpus.empty()) {
    auto labels = [](const GpuDevice& d) -> MetricLabels {
      return {{"gpu", std::to_string(d.index)}, {"id", d.id}, {"name", d.name}};
    };
    w.Family("resident_gpu_memory_total_bytes", Type::kGauge, "A GPU's memory.");
    for (const GpuMetrics& g : gpus) w.Sample(labels(g.device), Num(g.device.total_bytes));
    w.Family("resident_gpu_memory_free_bytes", Type::kGauge, "A GPU's free memory now, as the driver counts it.");
    for (const GpuMetrics& g : gpus) w.Sample(labels(g.device), Num(g.device.free_bytes));
    w.Family("resident_gpu_models_bytes", Type::kGauge, "The GPU memory resident's loaded models hold on a GPU.");
    for (const GpuMetrics& g : gpus) {
      uint64_t sum = 0;
      for (const auto& [model, bytes] : g.model_vram) sum += bytes;
      w.Sample(labels(g.device), Num(sum));
    }
    w.Family("resident_model_vram_bytes", Type::kGauge, "The GPU memory a loaded model holds, by device.");
    for (const GpuMetrics& g : gpus) {
      for (const auto& [model, bytes] : g.model_vram) {
        w.Sample({{"model", model}, {"gpu", std::to_string(g.device.index)}}, Num(bytes));
      }
    }
  }

  w.Family("resident_memory_budget_bytes", Type::kGauge, "The memory budget for loaded models (0: none).");
  w.Sample({}, Num(stats.memory_budget));
  w.Family("resident_memory_in_use_bytes", Type::kGauge,
           "Memory the loaded, loading and unloading models count against the budget.");
  w.Sample({}, Num(stats.memory_in_use));
  w.Family("resident_models_loaded", Type::kGauge, "Models loaded now.");
  w.Sample({}, stats.loaded_models);
  w.Family("resident_max_loaded_models", Type::kGauge, "The most models loaded at once.");
  w.Sample({}, stats.max_loaded);
  w.Family("resident_queued_requests", Type::kGauge,
           "Requests waiting for a model: for its load, a free slot, or room to load it.");
  w.Sample({}, stats.queued_requests);
  w.Family("resident_http_request_duration_seconds", Type::kHistogram,
           "HTTP requests by route template and status class, until the last byte of the answer, in seconds.");
  for (const auto& s : http) w.Histogram({{"route", s.route}, {"status", s.status_class}}, s.seconds);
  if (prompt_cache != nullptr) {
    const runner::PromptCacheCounters& c = *prompt_cache;
    auto counter = [&](const char* name, const char* help, uint64_t value) {
      w.Family(name, Type::kCounter, help);
      w.Sample({}, Num(value));
    };
    counter("resident_prompt_cache_saves_total", "Prompt prefixes saved to the prompt cache (before unloads).", c.saves);
    counter("resident_prompt_cache_saved_bytes_total", "Bytes of the prompt cache entries saved.", c.saved_bytes);
    counter("resident_prompt_cache_hits_total",
            "Requests whose prompt prefix was restored from the prompt cache instead of evaluated.", c.hits);
    counter("resident_prompt_cache_restored_tokens_total",
            "Prompt tokens that requests took from restored prompt cache entries.", c.restored_tokens);
    counter("resident_prompt_cache_restored_bytes_total", "Bytes of prompt cache state restored.", c.restored_bytes);
    counter("resident_prompt_cache_evictions_total",
            "Prompt cache entries removed, least recently used first, to keep the folder within its size.", c.evictions);
    counter("resident_prompt_cache_evicted_bytes_total", "Bytes of the prompt cache entries evicted.", c.evicted_bytes);
    counter("resident_prompt_cache_dropped_total",
            "Prompt cache entries found corrupt, cut short or made for another model or settings, and removed.", c.dropped);
  }
  return w.text();
}

nlohmann::ordered_json EventJson(const sched::ResidencyEvent& e) {
  using T = sched::ResidencyEvent::Type;
  nlohmann::ordered_json j{
      {"seq", e.seq}, {"time", FormatRfc3339(e.time)}, {"type", sched::TypeName(e.type)}, {"model", e.model}};
  if (e.reason) j["reason"] = std::string(sched::ReasonName(*e.reason));
  if (e.sleep_reason) j["reason"] = std::string(sched::SleepReasonName(*e.sleep_reason));
  if (e.type == T::kWake) j["reason"] = "request";
  if (!e.for_model.empty()) j["for_model"] = e.for_model;
  if (!e.error.empty()) j["error"] = e.error;
  if (e.type == T::kLoad || e.type == T::kLoadFailed) j["duration_s"] = ToSeconds(e.duration);
  if (e.type != T::kLoadFailed && e.type != T::kPrewarmHit && e.type != T::kPrewarmMiss) j["bytes"] = e.bytes;
  if (e.type == T::kWake) j["duration_s"] = ToSeconds(e.duration);
  if (e.type == T::kSleep) j["awake_bytes"] = e.awake_bytes;
  if (e.type == T::kWake) j["asleep_bytes"] = e.asleep_bytes;
  if (e.type == T::kLoad || e.type == T::kLoadFailed) j["predicted_bytes"] = e.predicted_bytes;
  if (e.idle) j["idle_s"] = ToSeconds(*e.idle);
  if (e.keep_alive) j[e.type == T::kSleep ? "sleep_after" : "keep_alive"] = e.keep_alive->ToString();
  if (e.pid != 0) j["pid"] = e.pid;
  if (!e.origin.empty()) j["origin"] = e.origin;
  if (!e.explanation.empty()) j["explanation"] = e.explanation;
  return j;
}

void NoteRequestStart(const ApiContext& ctx) {
  t_request_start.at = ctx.clock.Now();
  t_request_start.set = true;
}

namespace {

void HandleEvents(ApiContext& ctx, const httplib::Request& req, httplib::Response& res) {
  const sched::EventLog& log = ctx.scheduler.events();
  std::optional<uint64_t> since;
  if (req.has_param("since")) {
    std::string v = req.get_param_value("since");
    uint64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size()) {
      return SendError(res, Status::InvalidArgument("since must be an event's seq (a whole number)"));
    }
    since = n;
  }
  bool stream = false;
  if (req.has_param("stream")) {
    std::string v = req.get_param_value("stream");
    if (v != "true" && v != "false" && v != "1" && v != "0") {
      return SendError(res, Status::InvalidArgument("stream must be true or false"));
    }
    stream = v == "true" || v == "1";
  }
  if (!stream) {
    nlohmann::ordered_json events = nlohmann::ordered_json::array();
    for (const auto& e : log.Since(since.value_or(0))) events.push_back(EventJson(e));
    res.status = 200;
    res.set_content(Dump(nlohmann::ordered_json{{"events", events}}), "application/json; charset=utf-8");
    return;
  }
  // httplib calls the provider again and again until it calls done() or the server stops (it
  // checks between calls), so each call waits at most kStreamWait for new events.
  struct Cursor {
    uint64_t seq;
    TimePoint last_write;
  };
  auto cursor = std::make_shared<Cursor>(Cursor{since.value_or(log.last_seq()), ctx.clock.Now()});
  res.set_chunked_content_provider("application/x-ndjson", [&ctx, &log, cursor](size_t, httplib::DataSink& sink) {
    for (const auto& e : log.WaitSince(cursor->seq, kStreamWait)) {
      std::string line = Dump(EventJson(e)) + "\n";
      if (!sink.write(line.data(), line.size())) return false;
      cursor->seq = e.seq;
      cursor->last_write = ctx.clock.Now();
    }
    if (log.closed() && log.last_seq() <= cursor->seq) {
      sink.done();  // the scheduler has shut down: nothing more will happen
      return true;
    }
    if (ctx.clock.Now() - cursor->last_write >= kStreamHeartbeat) {
      if (!sink.write("\n", 1)) return false;  // a client that went away fails here or at the next one
      cursor->last_write = ctx.clock.Now();
    }
    return true;
  });
}

}  // namespace

void RegisterMetricsRoutes(httplib::Server& http, ApiContext& ctx) {
  // Shared by the logger and the /metrics handler, which httplib keeps as long as the server.
  auto http_metrics = std::make_shared<HttpMetrics>();
  http.Get("/metrics", [&ctx, http_metrics](const httplib::Request&, httplib::Response& res) {
    res.status = 200;
    const runner::PromptCacheCounters prompt_cache =
        ctx.prompt_cache_stats != nullptr ? ctx.prompt_cache_stats->Snapshot() : runner::PromptCacheCounters{};
    std::vector<ModelPageCache> page_cache;
    if (ctx.page_cache != nullptr) {
      for (const store::ModelEntry& e : ctx.catalog.List()) {
        if (auto r = ctx.page_cache->Get(e.path)) page_cache.push_back({e.name, r->cached_bytes, r->file_bytes});
      }
    }
    std::vector<GpuMetrics> gpus;
    if (ctx.gpus != nullptr) {
      for (const GpuDevice& d : ctx.gpus->Devices()) gpus.push_back({d, {}});
      for (const sched::LoadedModel& m : ctx.scheduler.Snapshot()) {
        for (GpuMetrics& g : gpus) {
          if (m.gpu == g.device.index && m.vram_bytes > 0) g.model_vram[m.name] += m.vram_bytes;
        }
      }
    }
    res.set_content(RenderMetrics(ctx.scheduler.Stats(), http_metrics->Snapshot(),
                                  ctx.prompt_cache_stats != nullptr ? &prompt_cache : nullptr, page_cache, gpus),
                    kPrometheusContentType);
  });
  http.Get("/api/events", [&ctx](const httplib::Request& req, httplib::Response& res) { HandleEvents(ctx, req, res); });
  http.set_logger([&ctx, http_metrics](const httplib::Request& req, const httplib::Response& res) {
    EndRequestRecord(ctx.request_log);  // the answer is written: the request log's line (api/request_log.h)
    if (!t_request_start.set) return;  // not seen before routing (e.g. a request too large to read)
    t_request_start.set = false;
    std::vector<std::pair<size_t, size_t>> captures;
    for (size_t i = 1; i < req.matches.size(); ++i) {
      captures.emplace_back(static_cast<size_t>(req.matches.position(i)), static_cast<size_t>(req.matches.length(i)));
    }
    http_metrics->Observe(RouteLabel(req.method, req.path, !req.matches.empty(), captures), res.status,
                          ToSeconds(ctx.clock.Now() - t_request_start.at));
  });
}

}  // namespace resident::api
