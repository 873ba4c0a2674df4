// Workload traces for `resident bench simulate` and `resident bench replay`.
//
// Two formats are read:
//
// 1. A request CSV, one request a line:
//        timestamp_s,model,prompt_tokens,output_tokens
//    A header line is allowed (detected by a non-numeric first field); lines may come in any
//    order (they are sorted by time); `#` starts a comment line.
//
// 2. The Azure Functions 2019 per-minute format (the public trace's *_inv.csv files):
//        HashFunction,HashApp,HashOwner,minute_1,...,minute_1440
//    Each function becomes one model, named "fn-" + the first 8 hex digits of its hash. The n
//    invocations counted in minute m are spread inside [60(m-1), 60m) seconds by a SEEDED
//    UNIFORM RANDOM DRAW (std::mt19937_64 seeded with `seed`; each time uniform in the minute),
//    so the same seed always gives the same trace. Azure has no token counts: every request gets
//    `azure_prompt_tokens` and `azure_output_tokens`.
//    Next to an `X_inv.csv` file, `X_run.csv` (execution time per function, ms) and `X_mem.csv`
//    (allocated memory per app, MB) are read when present: they give each model's service time
//    and memory size (LoadSidecars).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace resident::sim {

struct TraceRequest {
  double t = 0;            // seconds from the start of the trace
  std::string model;
  int prompt_tokens = 0;
  int output_tokens = 0;
};

// What the trace files say about a model (Azure sidecars); zero when unknown.
struct ModelHints {
  double service_s = 0;    // mean execution time of one request
  uint64_t bytes = 0;      // memory while loaded
};

struct Trace {
  std::vector<TraceRequest> requests;  // sorted by t
  double duration_s = 0;               // the trace's own length (Azure: whole minutes), >= last t
  std::vector<std::string> models;     // in order of first appearance in the file
  std::map<std::string, ModelHints> hints;
  std::string format;                  // "csv" or "azure"
};

struct TraceOptions {
  uint64_t seed = 1;
  int azure_prompt_tokens = 32;
  int azure_output_tokens = 16;
};

// Parses either format (the Azure one is recognized by its "HashFunction" header).
// Errors: kNotFound for a missing file, kInvalidArgument "FILE:LINE: reason".
Result<Trace> LoadTrace(const std::string& path, const TraceOptions& options = {});
Result<Trace> ParseTrace(const std::string& text, const std::string& source, const TraceOptions& options = {});

// For an Azure trace read from DIR/X_inv.csv: reads DIR/X_run.csv and DIR/X_mem.csv if present
// and fills trace.hints. Missing files are not errors; malformed ones are.
Status LoadSidecars(const std::string& inv_path, Trace& trace);

// The part of the trace in [from_s, from_s + minutes*60) with at most `limit` requests
// (0: no limit; minutes <= 0: to the end), times shifted so that it starts at 0.
Trace Slice(const Trace& trace, double from_s, double minutes, size_t limit);

}  // namespace resident::sim
