#include "api/ui_routes.h"

#include <fmt/format.h>
#include <httplib.h>

#include <charconv>
#include <cmath>
#include <cstring>

#include "api/ui_assets.h"  // generated from src/api/ui/ (cmake/embed_assets.cmake)
#include "core/time_format.h"
#include "sched/residency_stats.h"

namespace resident::api {
namespace {

using nlohmann::json;

double UnixSeconds(WallTime t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }

// The page runs no inline script or style and talks to this server only.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const ui_assets::Asset* FindAsset(std::string_view path) {
  if (path == "/ui" || path == "/ui/") path = "/ui/dashboard.html";
  for (const auto& a : ui_assets::kAssets) {
    if (path == a.path) return &a;
  }
  return nullptr;
}

void ServeAsset(const httplib::Request& req, httplib::Response& res) {
  const ui_assets::Asset* a = FindAsset(req.path);
  if (a == nullptr) {
    res.status = 404;
    return;
  }
  res.status = 200;
  res.set_header("Content-Security-Policy", kContentSecurityPolicy);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("Cache-Control", "no-cache");  // a new binary serves a new page at once
  res.set_content(reinterpret_cast<const char*>(a->data), a->size, a->content_type);
}

// ?name=<a number>; fallback when absent. False (and a 400 sent) when present and not a number.
bool NumberParam(const httplib::Request& req, httplib::Response& res, const char* name, double* out) {
  if (!req.has_param(name)) return true;
  std::string v = req.get_param_value(name);
  double d = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
  if (ec != std::errc() || end != v.data() + v.size() || !std::isfinite(d)) {
    SendError(res, Status::InvalidArgument(std::string(name) + " must be a number"));
    return false;
  }
  *out = d;
  return true;
}

void HandleHistory(const DashboardOptions& o, const httplib::Request& req, httplib::Response& res, const Clock& clock) {
  double since = -1;
  if (!NumberParam(req, res, "since", &since)) return;
  json samples = json::array();
  if (o.history != nullptr) {
    WallTime after = since < 0 ? WallTime::min()
                               : WallTime(std::chrono::duration_cast<Duration>(std::chrono::duration<double>(since)));
    for (const auto& s : o.history->Since(after)) {
      json models = json::object();
      for (const auto& [name, bytes] : s.models) models[name] = bytes;
      samples.push_back(json{{"t", UnixSeconds(s.time)}, {"budget", s.budget}, {"in_use", s.in_use}, {"models", models}});
    }
  }
  const double span = o.history != nullptr ? ToSeconds(o.history->span()) : 0;
  SendJson(res, json{{"period_s", std::chrono::duration<double>(o.sample_period).count()},
                     {"span_s", span},
                     {"now", UnixSeconds(clock.WallNow())},
                     {"samples", samples}});
}

void HandleStats(ApiContext& ctx, httplib::Response& res) {
  const sched::ResidencyStats stats = ctx.scheduler.Stats();
  json models = json::object();
  for (const auto& [name, m] : stats.models) {
    json unloads = json::object();
    for (sched::UnloadReason r : sched::kAllUnloadReasons) unloads[std::string(sched::ReasonName(r))] = m.unloads_for(r);
    models[name] = json{{"requests", m.requests},
                        {"cold_starts", m.cold_starts},
                        {"loads", m.loads},
                        {"load_failures", m.load_failures},
                        {"load_seconds_sum", m.load_seconds.sum()},
                        {"prewarms", m.prewarms},
                        {"prewarm_hits", m.prewarm_hits},
                        {"prewarm_misses", m.prewarm_misses},
                        {"resident_gb_s", m.resident_byte_seconds / 1e9},
                        {"idle_gb_s", m.idle_byte_seconds / 1e9},
                        {"unloads", unloads},
                        {"loaded", m.loaded},
                        {"predicted_bytes", m.predicted_bytes},
                        {"measured_bytes", m.measured_bytes},
                        {"queued_requests", m.queued_requests}};
  }
  SendJson(res, json{{"now", UnixSeconds(ctx.clock.WallNow())},
                     {"memory_budget", stats.memory_budget},
                     {"memory_in_use", stats.memory_in_use},
                     {"loaded_models", stats.loaded_models},
                     {"max_loaded", stats.max_loaded},
                     {"queued_requests", stats.queued_requests},
                     {"request_log", ctx.request_log != nullptr},
                     {"models", models}});
}

void HandleWhatIf(ApiContext& ctx, WhatIfRunner& runner, const httplib::Request& req, httplib::Response& res) {
  const bool refresh = req.has_param("refresh") && req.get_param_value("refresh") != "0" &&
                       req.get_param_value("refresh") != "false";
  // What the server measured of each model (its learner's histories, kept for every model), over
  // the saved file the child would read.
  std::vector<std::string> args;
  for (const auto& [name, h] : ctx.scheduler.Histories()) {
    if (h.bytes == 0 || name.find('=') != std::string::npos) continue;
    args.push_back("--measured");
    args.push_back(fmt::format("{}={}:{}", name, h.bytes, h.load_s));
  }
  auto j = runner.Get(args, refresh);
  if (!j.ok()) {
    if (j.status().code() == StatusCode::kFailedPrecondition) {
      return SendJson(res, json{{"available", false}, {"advice", j.status().message()}, {"rows", json::array()}});
    }
    return SendError(res, j.status());
  }
  (*j)["available"] = true;
  SendJson(res, *j);
}

}  // namespace

bool IsUiAssetPath(std::string_view path) { return FindAsset(path) != nullptr; }

void RegisterUiRoutes(httplib::Server& http, ApiContext& ctx, const DashboardOptions& options) {
  // Shared with the handlers, which httplib keeps as long as the server.
  auto dashboard = std::make_shared<DashboardOptions>(options);
  auto runner = std::make_shared<WhatIfRunner>(options.what_if, ctx.clock);
  http.Get("/ui", ServeAsset);
  http.Get(R"(/ui/[a-z_]*\.?[a-z]*)", ServeAsset);
  http.Get("/api/residency/history", [&ctx, dashboard](const httplib::Request& req, httplib::Response& res) {
    HandleHistory(*dashboard, req, res, ctx.clock);
  });
  http.Get("/api/residency/stats", [&ctx](const httplib::Request&, httplib::Response& res) { HandleStats(ctx, res); });
  http.Get("/api/residency/what-if", [&ctx, runner](const httplib::Request& req, httplib::Response& res) {
    HandleWhatIf(ctx, *runner, req, res);
  });
}

}  // namespace resident::api
