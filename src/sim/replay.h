// `resident bench replay`: drives a running server (Ollama's API) with a trace in real time
// (compressed by `speed`) and measures what residency cost.
//
// Each trace request becomes POST /api/generate (streaming) for the mapped server model with a
// prompt of about prompt_tokens words and options.num_predict = output_tokens; it is sent at
// t / speed seconds after the start, on its own thread, whatever the earlier ones are doing.
// A sampler thread reads GET /api/ps every 100 ms: resident bytes per model (`size`), integrated
// over time into GB·s resident, and GB·s idle for the part where no request of the replay was in
// flight for that model. A request is cold when the server's load_duration > 50 ms, or when a
// /api/ps sample taken after the model's previous request had finished, with none in flight
// since, showed the model unloaded.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "sim/trace.h"

namespace resident::sim {

struct ReplayOptions {
  std::string host = "127.0.0.1";
  int port = 11434;
  std::string api_key;                         // sent as "Authorization: Bearer" when set
  double speed = 1.0;                          // 10: ten times faster than the trace
  std::map<std::string, std::string> model_map;  // trace model -> server model
  double cold_load_s = 0.05;
  double sample_every_s = 0.1;
  bool progress = false;                       // a progress bar on stderr
};

struct ReplayRequest {
  double t_trace = 0;      // the trace's time
  double t_sent = 0;       // seconds since the replay began
  std::string model;       // the server's model
  bool ok = false;
  std::string error;
  bool cold = false;
  double load_s = 0;       // the server's load_duration
  double ttft_s = 0;       // first streamed token (or the final line when none)
  double total_s = 0;
};

struct PsSample {
  double t = 0;
  std::map<std::string, uint64_t> bytes;  // resident models and their size
};

struct ResidencyMark {
  double t = 0;
  std::string model;
  bool load = true;        // false: unload
};

struct ReplayResult {
  std::vector<ReplayRequest> requests;
  std::vector<PsSample> samples;
  std::vector<ResidencyMark> marks;
  int ok = 0, failed = 0, cold = 0;
  double ttft_warm_p50 = 0, ttft_warm_p99 = 0, ttft_cold_p50 = 0, ttft_cold_p99 = 0;
  double resident_gbs = 0, idle_gbs = 0;
  uint64_t peak_bytes = 0;
  double duration_s = 0;
};

// The server's models (GET /api/tags), names as it writes them. api_key: as in ReplayOptions.
Result<std::vector<std::string>> ServerModels(const std::string& host, int port, const std::string& api_key = "");

// trace model -> server model: `--model-map a=x,b=y` entries first; every other trace model goes
// round-robin over `server_models` in the trace's order. Errors: nothing to map to.
Result<std::map<std::string, std::string>> MapModels(const std::vector<std::string>& trace_models,
                                                     const std::string& model_map_flag,
                                                     const std::vector<std::string>& server_models);

Result<ReplayResult> Replay(const Trace& trace, const ReplayOptions& options);

nlohmann::json ReplayToJson(const ReplayResult& result, const ReplayOptions& options);
// The summary printed at the end.
std::string FormatReplaySummary(const ReplayResult& result);

}  // namespace resident::sim
