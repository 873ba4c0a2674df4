// The HTTP server's safety settings for `resident serve`, from the environment.
#pragma once

#include "api/server.h"
#include "core/status.h"
#include "sched/scheduler.h"

namespace resident::cli {

// Connections served at once when RESIDENT_MAX_CONNECTIONS is unset: every request the scheduler
// holds (max_queue waiting, max_loaded × num_parallel running) plus kSpareConnections for the
// rest (/api/ps, /metrics, event streams, idle keep-alive connections), so that the scheduler's
// queue, not the HTTP layer, is the limit, as in Ollama.
inline constexpr size_t kSpareConnections = 64;
size_t ConnectionsForScheduler(const sched::Scheduler::Options& scheduler);

// Fills the API key, allowed origins and limits of `options` from:
//   RESIDENT_API_KEY                          bearer token every request but GET / must carry
//   RESIDENT_ORIGINS, else OLLAMA_ORIGINS     comma-separated extra CORS origins ("*" wildcards)
//   RESIDENT_MAX_BODY         (default 32MiB) request body limit, bytes with units
//   RESIDENT_MAX_HEADER       (default 64KiB) request line + headers limit
//   RESIDENT_MAX_CONNECTIONS  (default `default_connections`) connections served at once; as
//                                             many more may wait for a worker
//   RESIDENT_IDLE_TIMEOUT     (default 10s)   Go duration or seconds; > 0
// Errors: kInvalidArgument naming the variable and its value.
Status ApplyHttpSettingsFromEnv(size_t default_connections, api::ApiServer::Options* options);

}  // namespace resident::cli
