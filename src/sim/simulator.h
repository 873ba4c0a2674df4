// `resident bench simulate`: a trace through the scheduler's own policy code in virtual time.
//
// Design: one thread drives the real sched::Scheduler (timer thread off) with a FakeClock and
// fake runners, in a discrete-event loop over arrivals and completions:
//   - before each event the clock moves to each of the scheduler's own timers in turn
//     (Scheduler::NextTimer: keep_alive expiries, prewarms) and Tick() performs them, so unloads
//     and prewarm loads happen at their exact times;
//   - an arrival calls Scheduler::Acquire; a load happens inside it (or inside Tick, for a
//     prewarm) through the fake RunnerFactory, which advances the FakeClock by the model's load
//     time (so the scheduler measures that load time and uses it, for its eviction cost and
//     for "auto"). Events that fell inside the load are handled at the load's end: the model
//     they target was not delayed in reality (an approximation of at most one load time for
//     other models; never counted as cold);
//   - a completion (arrival + wait + service time) releases the request's Lease;
//   - num_parallel is unlimited, so Acquire never waits for a slot. Acquire would also wait
//     when a load needs room and every loaded model is busy; that can never end in a single
//     thread, so the simulator first asks the scheduler's own decision (Scheduler::Probe) and
//     holds such a request until a completion frees room. These are counted as
//     `waited_for_room` (and are cold starts too).
// A request is cold when its Acquire loaded the model, or when it arrived while its model was
// still loading (it shared that load, a prewarm's included) — what the live server reports as
// load_duration > 0. Loads count prewarms.
// Memory is counted from the start of a load to the unload; idle = loaded with no request. With
// a policy file's sleep_after, models sleep and wake through the same scheduler code: asleep a
// model counts at its sleeping size (SetupDefaults::sleep_fraction of its bytes), and a wake
// advances the clock by its wake time (wake_fraction of its load time); wakes are not cold starts.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/keep_alive.h"
#include "core/status.h"
#include "sched/learner.h"
#include "sched/policy.h"
#include "sim/lower_bound.h"
#include "sim/trace.h"

namespace resident::sim {

struct ModelParams {
  uint64_t bytes = 0;
  double load_s = 0;
  // Sleeping (a policy file's sleep_after): what it holds asleep, and how long a wake takes.
  uint64_t sleep_bytes = 0;
  double wake_s = 0;
};

struct SimSetup {
  int max_loaded = 3;
  uint64_t memory_budget = 0;                 // 0: none
  std::map<std::string, ModelParams> models;  // every model in the trace
  std::vector<double> service_s;              // per request (same order as trace.requests)
};

// One row: a keep_alive for every request's model (requests carry none), or a policy file.
struct SimPolicy {
  std::string label;
  KeepAlive default_keep_alive;               // Of(0), a duration, Forever() or Auto()
  std::optional<sched::Policy> policy;
  sched::ColdStartCost cold_start_cost;       // for Auto() without a policy
  sched::LearnerConfig learner;
};

struct SimResult {
  std::string label;
  int requests = 0;
  int cold = 0;               // requests that waited for a load
  int loads = 0;
  int waited_for_room = 0;    // would have blocked in Acquire until another request finished
  int failed = 0;             // Acquire errors (e.g. a model above the budget)
  double resident_gbs = 0;    // GB × seconds loaded
  double idle_gbs = 0;        // GB × seconds loaded with no request
  uint64_t peak_bytes = 0;
  double wall_s = 0;          // how long the simulation took
  std::map<std::string, int> cold_by_model;
  std::map<std::string, int> loads_by_model;
  std::map<std::string, double> idle_gbs_by_model;
  int sleeps = 0;             // models put to sleep (a policy file's sleep_after)
  int wakes = 0;              // requests that woke a sleeping model (not cold: no load)
};

// Sizes: the trace's hints, else `default_bytes`; load time: load_s if > 0, else
// load_s_per_gb × size (at least 0.05 s). Service time: the trace's hint for the model, else
// prompt_tokens / prompt_tps + output_tokens / gen_tps.
struct SetupDefaults {
  uint64_t default_bytes = 1'000'000'000;
  double load_s = 0;
  double load_s_per_gb = 0.8;
  double prompt_tps = 200;
  double gen_tps = 20;
  int max_loaded = 3;
  uint64_t memory_budget = 0;
  // Sleeping: a sleeping model holds this share of its bytes (its weights), and a wake takes this
  // share of its load time: the first request after it faulting its context's pages in again
  // (bench/cold_start, 800M model: first token 0.233 s woken, 0.052 s warm, 0.933 s cold, so a
  // wake's extra time is 0.2 of a cold start's).
  double sleep_fraction = 0.7;
  double wake_fraction = 0.2;
};
SimSetup MakeSetup(const Trace& trace, const SetupDefaults& defaults);

Result<SimResult> Simulate(const Trace& trace, const SimSetup& setup, const SimPolicy& policy);

// The default comparison: keep_alive 0, 1m, 5m, 10m, 30m, forever, auto.
std::vector<SimPolicy> StandardPolicies();

// The table printed by `resident bench simulate`.
std::string FormatTable(const std::vector<SimResult>& rows, const LowerBound& bound);

}  // namespace resident::sim
