// The dashboard: one page served by resident itself at GET /ui (its script and style at
// /ui/dashboard.js and /ui/dashboard.css, compiled into the binary from src/api/ui/: nothing is
// fetched from elsewhere, the charts are SVG written by the script), and the data it polls:
//
//   GET /api/residency/history[?since=UNIX_S]  the memory history (sched/residency_history.h):
//       {"period_s","span_s","now","samples":[{"t","budget","in_use","models":{"name":bytes}}]}
//   GET /api/residency/stats     per model: requests, cold starts, loads, GB·s resident and idle,
//       unloads by reason, queued requests; server-wide: budget, in use, queued (the numbers of
//       /metrics, as JSON)
//   GET /api/residency/what-if[?refresh=1]  the what-if on the request log (api/what_if_runner.h):
//       the fixed keep_alive rows, auto, the current setting, the offline bound and the advice
//
// The page also reads /api/ps and /api/events. It needs the API key (when one is set) for every
// data call and asks for it; the page itself is served without it (ApiServer::Admit). It costs the
// server nothing while closed; open, it polls every 2 s.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "api/http_util.h"
#include "api/what_if_runner.h"
#include "sched/residency_history.h"

namespace httplib {
class Server;
}

namespace resident::api {

struct DashboardOptions {
  const sched::ResidencyHistory* history = nullptr;  // null: the history answers no samples
  std::chrono::milliseconds sample_period{2000};     // how often `history` is sampled
  WhatIfOptions what_if;                             // command empty: no what-if
};

// True for the page's own paths (/ui, /ui/, /ui/dashboard.js, /ui/dashboard.css).
bool IsUiAssetPath(std::string_view path);

// Adds the page and its data routes to `http`. `ctx` must outlive the server.
void RegisterUiRoutes(httplib::Server& http, ApiContext& ctx, const DashboardOptions& options);

}  // namespace resident::api
