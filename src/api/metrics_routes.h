// What the server tells about itself while it runs:
//   GET /metrics      Prometheus text format 0.0.4: per model (label model="name:tag") loads,
//                     load seconds, cold starts, requests, predicted and measured bytes,
//                     resident and idle byte-seconds, evictions by reason, sleeps by reason
//                     and wakes, and for every model the catalog lists the bytes of its
//                     file in the page cache; server-wide the memory budget and use, loaded
//                     models, queued requests, request latency by route template and status
//                     class, and the prompt cache's saves, hits, restored tokens and bytes,
//                     evictions and dropped entries.
//   GET /api/events   {"events":[...]}: the scheduler's residency event log (the last 1000
//                     loads, failed loads, unloads and evictions, oldest first);
//                     ?since=SEQ: only the events after SEQ (each event carries its seq);
//                     ?stream=true: NDJSON, the events after `since` (default: none before
//                     the call), then each new one as it happens, until the client goes or the
//                     server stops; an empty line after 15 s without events checks the client
//                     is still there.
// The counting happens in the scheduler (sched/residency_stats.h, sched/event_log.h); this file
// only formats.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/http_util.h"
#include "core/histogram.h"
#include "sched/event_log.h"
#include "runner/prompt_cache_stats.h"
#include "sched/residency_stats.h"

namespace httplib {
class Server;
}

namespace resident::api {

// Request latencies by route template and status class. Thread-safe.
class HttpMetrics {
 public:
  // Distinct routes kept; requests on any further route count as route "other".
  static constexpr size_t kMaxRoutes = 64;

  struct Series {
    std::string route;         // "/api/generate", "/v1/models/*", "other"
    std::string status_class;  // "2xx", "4xx"...
    Histogram seconds;
  };

  void Observe(const std::string& route, int status, double seconds);
  // Every series, by route then status class.
  std::vector<Series> Snapshot() const;
  // Upper bounds of the latency histograms, in seconds: 5 ms … 300 s.
  static std::vector<double> Buckets();

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, Histogram> series_;  // guarded by mu_
};

// The route label of a request: the path with each part a route's regex captured replaced by
// "*" (so "/v1/models/demo:latest" is "/v1/models/*"); "other" when no route matched (unknown
// path, or answered by the pre-routing checks); "*" for every OPTIONS request (CORS preflights).
// `captures`: (offset, length) in `path` of each capture group of the matched route.
std::string RouteLabel(std::string_view method, std::string_view path, bool matched,
                       const std::vector<std::pair<size_t, size_t>>& captures);

// How much of a model's weights file is in the page cache (core/page_cache.h).
struct ModelPageCache {
  std::string model;  // "name:tag"
  uint64_t cached_bytes = 0;
  uint64_t file_bytes = 0;
};

// One GPU: the device as read now, and the VRAM each loaded model holds there.
struct GpuMetrics {
  GpuDevice device;
  std::map<std::string, uint64_t> model_vram;  // by model name
};

// The whole /metrics answer; the prompt cache's families only when `prompt_cache` is given (the
// cache is counted whether on or off: all zero when off); `page_cache`: every model the catalog
// lists, loaded or not; `gpus`: every device (none on a machine without one).
std::string RenderMetrics(const sched::ResidencyStats& stats, const std::vector<HttpMetrics::Series>& http,
                          const runner::PromptCacheCounters* prompt_cache = nullptr,
                          const std::vector<ModelPageCache>& page_cache = {}, const std::vector<GpuMetrics>& gpus = {});

// One event as /api/events writes it, keys in this order: seq, time (RFC 3339), type, model, and
// what applies of reason, for_model, error, duration_s, bytes, predicted_bytes, idle_s,
// keep_alive, pid.
nlohmann::ordered_json EventJson(const sched::ResidencyEvent& event);

// Adds GET /metrics and GET /api/events to `http`, and the server's logger (httplib has one),
// which times every request that NoteRequestStart() saw begin. `ctx` must outlive the server.
void RegisterMetricsRoutes(httplib::Server& http, ApiContext& ctx);

// Marks the start of the request the calling thread is about to route: call it first thing in
// the server's pre-routing handler (httplib has only one, and the server's own checks own it).
// Requests never marked (refused before routing) are not timed.
void NoteRequestStart(const ApiContext& ctx);

}  // namespace resident::api
