// The residency learner behind keep_alive "auto": from one model's own history of idle gaps, how
// long to keep it loaded after a request, whether to unload it at once and load it again ahead of
// the next request (prewarm), and how likely it is to be used again soon (for eviction).
//
// Pure: every function here is a function of the history it is given, the time it is given and
// the cost model. The scheduler records arrivals and idle starts into a UsageHistory per model,
// asks Plan() when a model goes idle, and persists the histories (learner_state.h).
//
// The model: after a request ends, the model sits idle for a gap g until the next request. A
// plan costs, per gap, the seconds the model stays loaded with nothing to do, plus W seconds for
// every cold start (W = CostModel::cold_start_s: what one cold start is worth in idle time of this
// model), plus V for every prewarm load (V = prewarm_cost × W: a load ahead of time is not free;
// it uses the disk and the CPU and, under the offline bound's accounting, a load). Two kinds:
//   - keep K: loaded until K after the request ends. g <= K: idle g. g > K: idle K, a cold start.
//   - prewarm (P, K): unloaded at once, loaded again so as to be ready P after the end, kept K
//     more. g < P: a cold start. P <= g <= P + K: idle g - P and V, warm. g > P + K: idle K, V
//     and a cold start.
// Plan() evaluates both kinds on the recorded gaps, each weighted by its recency (weights halve
// every `half_life_s`, and by how near the time of day at which each began is to now), and
// returns the cheapest. A model with few gaps of its own borrows from what is typical (the
// `prior`: the gaps of every model, each model counting alike) as if the prior were `min_gaps`
// gaps; with no prior either, it keeps the model for W (the break-even of ski rental: never worse
// than twice the best choice in hindsight).
// Shapes of traffic this covers: steady use (short gaps: keep just past them), bursts (keep past
// the gaps inside a burst, then go), periodic jobs (gaps cluster at the period: unload, prewarm
// before it), rare models (long gaps: go at once), patterns that change (old gaps fade), diurnal
// traffic (gaps that began at the same hour of past days weigh more: nights are not office hours).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace resident::sched {

// What is known of one model's use. Times are wall-clock seconds (Unix time), so that a history
// survives a restart.
struct UsageHistory {
  struct Gap {
    double end_s = 0;      // when the gap ended (a request arrived)
    double seconds = 0;    // how long the model had been idle
    double prev_s = -1;    // the gap before it (-1: none)
  };
  static constexpr size_t kMaxGaps = 1024;
  std::deque<Gap> gaps;               // oldest first, at most kMaxGaps
  std::optional<double> idle_since;   // no request in flight since then (unset: in use, or never used)
  uint64_t requests = 0;              // arrivals recorded
  // The model's last measured size and load time (the cost model's inputs while it is unloaded).
  uint64_t bytes = 0;
  double load_s = 0;

  // A request arrived at `now`: ends the idle gap, if the model was idle.
  void Arrive(double now_s);
  // The last request in flight ended at `now`.
  void Idle(double now_s);
};

struct LearnerConfig {
  double half_life_s = 6 * 3600;  // a gap's weight halves every this many seconds of age
  size_t min_gaps = 4;            // below: keep for W
  bool prewarm = true;            // consider prewarm plans
  double min_prewarm_s = 30;      // prewarm only for gaps longer than this (and than 3 load times)
  double prewarm_cost = 0.5;       // V / W: what a prewarm load costs, as a fraction of a cold start
  double min_prewarm_share = 0.3;  // a prewarm's window holds at least this share of the gaps' weight
  double min_prewarm_gain = 0.1;   // and costs at least this fraction less than the best keep plan
  double prewarm_lead = 1.2;      // a prewarm starts this many load times before the ready time
  // Gaps follow the gap before them (a burst's gaps are short, a quiet spell's long): a recorded
  // gap counts less the more its own previous gap differs from the latest one, by a factor
  // exp(-|log2 difference| / context_width). 0 (the default): every gap counts alike. Measured on
  // synthetic traces of seven shapes (bench/README.md), weighting by context cost more, through
  // the fewer gaps each plan rests on, than it gained on traffic that changes.
  double context_width = 0;
  // Traffic follows the time of day (office hours busy, nights quiet): a recorded gap counts
  // more the closer the hour at which it began is to the hour of the plan, by a factor
  // floor + (1 - floor) × exp(-d² / 2w²), d the distance in hours around the clock (UTC), w
  // this width. 0: the time of day is not used.
  double time_of_day_width_h = 2;
  double time_of_day_floor = 0.25;
};

// The bucket of the latest gap that plans depend on (log2 of its seconds), for caching plans.
int ContextBucket(const UsageHistory& history);

struct CostModel {
  double cold_start_s = 300;  // W: one cold start is worth this many seconds of the model idle
  double load_s = 1;          // how long a load takes (prewarms start this much ahead)
  double min_keep_s = 0;      // the policy file's clamps on keep times (prewarm plans need 0)
  double max_keep_s = -1;     // < 0: none
};

struct ResidencyPlan {
  enum class Kind { kKeep, kPrewarm };
  Kind kind = Kind::kKeep;
  double keep_s = 0;              // kKeep: loaded this long after the request ends (infinity: forever)
  double prewarm_ready_s = 0;     // kPrewarm: ready this long after the request ends...
  double prewarm_keep_s = 0;      // ...and kept this long more
  double expected_cost_s = 0;     // per gap, in seconds of idle (for tests and reports)
  size_t gaps = 0;                // gaps the plan was made from
  std::string reason;             // e.g. "auto: 94% of this model's recent gaps are under 3m10s"
};

// The typical gaps of many models: each model's latest gaps (at most kPerModel), each weighing
// 1 / (its count), so that every model counts alike. A value; the scheduler rebuilds it.
struct PriorGaps {
  static constexpr size_t kPerModel = 32;
  std::vector<std::pair<double, double>> gaps;  // (seconds, weight)
  double total_weight = 0;                      // the number of models in it
  void Add(const UsageHistory& history);
};

ResidencyPlan Plan(const UsageHistory& history, double now_s, const LearnerConfig& config, const CostModel& cost,
                   const PriorGaps* prior = nullptr);

// The probability that the model, idle for `idle_s` now, is asked for within `horizon_s` more
// seconds, from its recent gaps (recency-weighted as in Plan). nullopt without history.
std::optional<double> ReuseProbability(const UsageHistory& history, double now_s, double idle_s, double horizon_s,
                                       const LearnerConfig& config);

// A duration in seconds as the reasons write it: "45s", "3m10s", "2h5m".
std::string FormatSeconds(double seconds);

}  // namespace resident::sched
