// What-if on the user's own traffic: the trace of their requests (the server's request log)
// through the simulator under the standard keep_alive settings and their own, against the offline
// bound, and a sentence that says which setting would have cost least and what to change.
//
// "Cost" weighs memory against latency with the cold start cost the server already uses for
// keep_alive "auto" (sched::ColdStartCost, `cold_start_cost`): a row costs its idle GB·s plus,
// for every cold start of a model, that model's cold start cost in seconds × its size in GB
// (with the default "15m,300x", a cold start of a 4 GB model that loads in 2 s is worth
// 900 s × 4 GB = 3600 GB·s of idle memory). So the cheapest row is the one "auto" itself aims
// for; raising cold_start_cost favours settings with fewer cold starts.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "sim/lower_bound.h"
#include "sim/simulator.h"
#include "sim/trace.h"

namespace resident::sim {

struct WhatIfRow {
  std::string label;    // "keep_alive 5m", "keep_alive auto", "yours (keep_alive 5m)"
  std::string setting;  // its keep_alive as RESIDENT_KEEP_ALIVE takes it ("5m", "auto"); yours: the default
  bool fixed = false;   // a fixed keep_alive (on the fixed curve)
  SimResult result;
  double cost_gbs = 0;  // idle GB·s + cold starts priced by their cold start cost
};

struct WhatIf {
  std::vector<WhatIfRow> rows;  // the standard settings: 0, 1m, 5m, 10m, 30m, forever, auto
  WhatIfRow current;            // the server's own settings
  LowerBound bound;
  int best = -1;                // index in rows of the cheapest, -1: the current setting is
  std::string advice;           // one or two sentences
  double wall_s = 0;
};

// Runs `current` and the standard policies over the trace. cold_start_s: each model's cold start
// cost in seconds (see above; a model without one counts 900 s). Errors: the simulator's.
Result<WhatIf> RunWhatIf(const Trace& trace, const SimSetup& setup, const SimPolicy& current,
                         const std::map<std::string, double>& cold_start_s);

// A keep_alive as RESIDENT_KEEP_ALIVE takes it, short: "5m", "1h30m", "0", "-1" (forever), "auto".
std::string KeepAliveSetting(const KeepAlive& k);

// The cost of one row (see above).
double CostGbs(const SimResult& r, const SimSetup& setup, const std::map<std::string, double>& cold_start_s);

// "keep_alive auto: 41% less idle memory than yours (12.3 vs 20.8 GB·s), 3 more cold starts (15 vs 12)".
std::string CompareToCurrent(const WhatIfRow& row, const WhatIfRow& current);

// Which row is cheapest and the sentence that says so: "keep_alive auto would have cost least on
// these 1,234 requests: 41% less idle memory than yours (12.3 vs 20.8 GB·s), 3 more cold starts
// (15 vs 12), where yours is keep_alive 5m (...). Set RESIDENT_KEEP_ALIVE=auto." Fills
// what_if.best and what_if.advice. `cold_start_cost`: how a cold start was priced ("15m0s,300x").
void Advise(WhatIf& what_if, const std::string& cold_start_cost);

}  // namespace resident::sim
