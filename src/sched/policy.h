// Residency policy: how long each model stays loaded and which ones are never evicted, from
// one TOML file (RESIDENT_CONFIG or `resident serve --config FILE`):
//
//   min_keep_alive = "1m"        # clamp what requests (and entries below) ask for
//   max_keep_alive = "2h"        # also caps "forever"
//   memory_limit   = "12GiB"     # the memory budget (RESIDENT_MEMORY_LIMIT wins)
//
//   [models."llama3.2"]          # a model name, matched as requests' names are (store/model_name.h):
//                                # "llama3.2", "llama3.2:latest", "library/llama3.2" and
//                                # "registry.ollama.ai/library/llama3.2:latest" are one model
//   keep_alive = "24h"           # its default when a request gives none
//   pin = true                   # never evicted to make room; only a stop or keep_alive 0 unloads it
//
//   [models.big-coder]
//   keep_alive = 0               # release at once after each request
//
//   keep_alive = "auto"          # (top level) the default for models without an entry
//   cold_start_cost = "300x"     # (top level or per model) for "auto": what one cold start is worth
//   [models.coder]
//   keep_alive = "auto"          # the learner decides, from this model's own traffic
//   preload = true               # loaded at start-up, and again whenever its runner dies
//
//   sleep_after = "10m"          # (top level or per model) idle this long, a model's context (KV
//                                # cache, compute buffers) is freed and its runner and weights kept;
//                                # the next request wakes it. Unset: models never sleep. A negative
//                                # value: no timer, but memory pressure may put it to sleep instead
//                                # of unloading it. RESIDENT_SLEEP_AFTER wins over the top level.
//
// keep_alive values take the API's forms: a number of seconds (negative = forever) or a
// duration string ("5m", "1h30m", "-1m" = forever), or "auto" (sched/learner.h).
//
// Precedence for a request's keep_alive: the request's own, else the model's entry, else the
// global default (RESIDENT_KEEP_ALIVE, else the file's keep_alive, else OLLAMA_KEEP_ALIVE, else
// 5m); then the clamp. A request without keep_alive that reaches a loaded model keeps the model's
// current duration (Ollama's rule). An explicit unload (keep_alive 0 with an empty prompt,
// `resident stop`) is never clamped. For "auto", the clamps bound the learner's keep times.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "core/keep_alive.h"
#include "core/status.h"

namespace resident::sched {

// For keep_alive "auto": what one cold start of a model is worth, as time the model may sit idle
// in memory instead (so in idle memory: that time × the model's size). Any of: a multiple of the
// model's measured load time ("300x": a model that loads in 4 s may idle 20 minutes to save one
// cold start), a duration ("15m"), an amount of idle memory × time whatever the model ("500GBs"),
// or several of these comma-separated, the largest counting. The default, "15m,300x": at least 15
// minutes, more for models slow to load. Larger values turn "auto" towards latency (fewer cold
// starts, more memory held), smaller towards memory.
struct ColdStartCost {
  std::optional<double> load_time_multiple = 300;
  std::optional<Duration> idle = std::chrono::minutes(15);
  std::optional<double> gb_seconds;

  // The worth in seconds of idle of a model of `bytes` that loads in `load_s`.
  double SecondsFor(double load_s, uint64_t bytes) const;
  std::string ToString() const;  // as parsed: "15m0s,300x"
};
// Errors: kInvalidArgument.
Result<ColdStartCost> ParseColdStartCost(std::string_view text);

struct ModelPolicy {
  std::optional<KeepAlive> keep_alive;
  bool pin = false;
  bool preload = false;
  std::optional<ColdStartCost> cold_start_cost;
  std::optional<KeepAlive> sleep_after;  // unset: the policy's sleep_after
};

struct Policy {
  KeepAlive default_keep_alive = KeepAlive::Of(kDefaultKeepAlive);
  std::optional<KeepAlive> min_keep_alive;
  std::optional<KeepAlive> max_keep_alive;
  std::optional<uint64_t> memory_limit;
  ColdStartCost cold_start_cost;
  // The file's own top-level keep_alive (what default_keep_alive was set from, unless
  // RESIDENT_KEEP_ALIVE won): kept for reports.
  std::optional<KeepAlive> file_keep_alive;
  std::map<std::string, ModelPolicy> models;  // by PolicyModelKey ("llama3.2:latest", "ns/m:tag")
  // How long a model stays idle before it sleeps (nullopt: never; forever: only under memory
  // pressure). The file's top level, or RESIDENT_SLEEP_AFTER, which wins over it.
  std::optional<KeepAlive> sleep_after;

  // The entry for a model, if the file has one.
  const ModelPolicy* Find(std::string_view model_name) const;
  bool Pinned(std::string_view model_name) const;
  ColdStartCost ColdStartCostFor(std::string_view model_name) const;
  // The model's entry, else the global default; clamped.
  KeepAlive DefaultFor(std::string_view model_name) const;
  // The model's entry's sleep_after, else the global one; nullopt: the model never sleeps.
  std::optional<KeepAlive> SleepAfterFor(std::string_view model_name) const;
  // min_keep_alive <= k <= max_keep_alive (forever counts as the largest value).
  KeepAlive Clamp(KeepAlive k) const;
};

// The form policy entries are keyed and looked up by: the model name parsed as the store parses
// it (store::ParseModelName) and shown as it shows it, with the default host and namespace
// dropped: "Llama3.2", "library/llama3.2" and "registry.ollama.ai/library/llama3.2:latest" ->
// "llama3.2:latest". A string that is not a model name is only lowercased.
std::string PolicyModelKey(std::string_view model_name);

// Parses a policy file. `default_keep_alive` is the global default unless the file has a
// top-level keep_alive and `env_default_wins` is false (RESIDENT_KEEP_ALIVE set wins over the file).
// Errors: kInvalidArgument "FILE:LINE:COL: reason" for TOML syntax errors, unknown keys, values
// of the wrong type, bad durations, a [models."X"] whose X is not a model name, and two entries
// for one model; kNotFound for a missing file.
Result<Policy> LoadPolicyFile(const std::string& path, KeepAlive default_keep_alive, bool env_default_wins = false);
// The same from text (tests); `source` names it in errors.
Result<Policy> ParsePolicy(std::string_view text, const std::string& source, KeepAlive default_keep_alive,
                           bool env_default_wins = false);

}  // namespace resident::sched
