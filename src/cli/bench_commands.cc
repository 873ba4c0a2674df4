// `resident bench simulate TRACE` and `resident bench replay TRACE`: what each keep_alive costs
// on a workload, in virtual time through the scheduler's own code, or live against a server.
#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>

#include "api/request_log.h"
#include "cli/command.h"
#include "cli/config.h"
#include "cli/residency_settings.h"
#include "cli/state_paths.h"
#include "core/bytes.h"
#include "core/keep_alive.h"
#include "sched/learner_state.h"
#include "sched/policy.h"
#include "store/model_store.h"
#include "sim/lower_bound.h"
#include "sim/replay.h"
#include "sim/simulator.h"
#include "sim/svg_plot.h"
#include "sim/trace.h"
#include "sim/trace_synth.h"
#include "sim/what_if.h"

namespace resident::cli {
namespace {

struct TraceArgs {
  std::string trace;
  uint64_t seed = 1;
  double start_minute = 0;
  double minutes = 0;
  size_t limit = 0;
  int prompt_tokens = 32;
  int output_tokens = 16;
};

void AddTraceOptions(CLI::App* cmd, TraceArgs& a) {
  cmd->add_option("trace", a.trace, "CSV timestamp_s,model,prompt_tokens,output_tokens, or an Azure *_inv.csv");
  cmd->add_option("--seed", a.seed, "Seed of the draw that spreads Azure invocations inside each minute")
      ->capture_default_str();
  cmd->add_option("--start-minute", a.start_minute, "Skip the trace before this minute")->capture_default_str();
  cmd->add_option("--minutes", a.minutes, "Take only this many minutes (0: all)")->capture_default_str();
  cmd->add_option("--limit", a.limit, "Take at most this many requests (0: all)")->capture_default_str();
  cmd->add_option("--prompt-tokens", a.prompt_tokens, "Azure traces: prompt tokens of each request")
      ->capture_default_str();
  cmd->add_option("--output-tokens", a.output_tokens, "Azure traces: output tokens of each request")
      ->capture_default_str();
}

Result<sim::Trace> ReadTrace(const TraceArgs& a) {
  if (a.trace.empty()) return Status::InvalidArgument("a trace file is needed");
  sim::TraceOptions o;
  o.seed = a.seed;
  o.azure_prompt_tokens = a.prompt_tokens;
  o.azure_output_tokens = a.output_tokens;
  auto trace = sim::LoadTrace(a.trace, o);
  if (!trace.ok()) return trace;
  if (a.start_minute > 0 || a.minutes > 0 || a.limit > 0) return sim::Slice(*trace, a.start_minute * 60, a.minutes, a.limit);
  return trace;
}

struct SimulateArgs {
  TraceArgs trace;
  std::vector<std::string> configs;
  std::vector<std::string> cold_start_costs;
  std::string learner;
  int max_loaded = -1;
  std::string memory_limit;
  std::string model_size = "1GB";
  double load_seconds = 0;
  double load_s_per_gb = 0.8;
  double prompt_tps = 200;
  double gen_tps = 20;
  std::string json_out;
  // --own: the server's own request log, with its measured model sizes and its settings.
  bool own = false;
  std::string request_log;
  std::string learner_state;
  std::string serve_config;
  double days = 7;
  size_t max_requests = 200'000;
  std::vector<std::string> measured;
  double sleep_fraction = 0.7;
  double wake_fraction = 0.2;  // sim::SetupDefaults says where it comes from
};

Result<sched::LearnerConfig> ParseLearnerSettings(const std::string& text) {
  sched::LearnerConfig c;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    pos = comma + 1;
    size_t eq = item.find('=');
    char* end = nullptr;
    double v = eq == std::string::npos ? 0 : std::strtod(item.c_str() + eq + 1, &end);
    if (eq == std::string::npos || end == item.c_str() + eq + 1 || *end != '\0' || !(v >= 0)) {
      return Status::InvalidArgument("--learner: \"" + item + "\" is not NAME=NUMBER");
    }
    std::string key = item.substr(0, eq);
    if (key == "prewarm") c.prewarm = v != 0;
    else if (key == "half_life") c.half_life_s = v;
    else if (key == "min_gaps") c.min_gaps = static_cast<size_t>(v);
    else if (key == "prewarm_cost") c.prewarm_cost = v;
    else if (key == "context") c.context_width = v;
    else if (key == "lead") c.prewarm_lead = v;
    else if (key == "min_prewarm") c.min_prewarm_s = v;
    else if (key == "tod") c.time_of_day_width_h = v;
    else if (key == "tod_floor") c.time_of_day_floor = v;
    else return Status::InvalidArgument("--learner: unknown setting \"" + key + "\"");
  }
  return c;
}

// What every simulation takes from the command line: the default model size, load, prompt and
// generation speeds, and what a model holds and costs asleep.
Result<sim::SetupDefaults> SetupDefaultsOf(const SimulateArgs& args) {
  sim::SetupDefaults d;
  auto size = ParseBytes(args.model_size);
  if (!size.ok()) return Status::InvalidArgument("--model-size: " + size.status().message());
  d.default_bytes = *size;
  d.load_s_per_gb = args.load_s_per_gb;
  d.prompt_tps = args.prompt_tps;
  d.gen_tps = args.gen_tps;
  d.sleep_fraction = args.sleep_fraction;
  d.wake_fraction = args.wake_fraction;
  return d;
}

int SimulateOwn(const SimulateArgs& args);

int Simulate(const SimulateArgs& args) {
  if (args.own) {
    if (!args.trace.trace.empty()) return Fail(Status::InvalidArgument("give a trace or --own, not both"));
    return SimulateOwn(args);
  }
  if (args.trace.trace.empty()) return Fail(Status::InvalidArgument("simulate needs a trace file, or --own"));
  auto trace = ReadTrace(args.trace);
  if (!trace.ok()) return Fail(trace.status());
  auto defaults = SetupDefaultsOf(args);
  if (!defaults.ok()) return Fail(defaults.status());
  sim::SetupDefaults d = *defaults;
  d.load_s = args.load_seconds;
  if (args.max_loaded >= 1) {
    d.max_loaded = args.max_loaded;
  } else {
    auto env = IntFromEnv("RESIDENT_MAX_LOADED_MODELS", "OLLAMA_MAX_LOADED_MODELS", 3, 1);
    if (!env.ok()) return Fail(env.status());
    d.max_loaded = *env;
  }
  if (!args.memory_limit.empty()) {
    auto b = ParseBytes(args.memory_limit);
    if (!b.ok()) return Fail(Status::InvalidArgument("--memory-limit: " + b.status().message()));
    d.memory_budget = *b;
  }
  std::vector<sim::SimPolicy> policies = sim::StandardPolicies();
  for (const auto& path : args.configs) {
    auto p = sched::LoadPolicyFile(path, KeepAlive::Of(kDefaultKeepAlive));
    if (!p.ok()) return Fail(p.status());
    policies.push_back({"config " + path, KeepAlive::Of(kDefaultKeepAlive), *p});
  }
  // More "auto" rows, one per cold start cost (the default one is among the standard rows).
  for (const auto& text : args.cold_start_costs) {
    auto c = sched::ParseColdStartCost(text);
    if (!c.ok()) return Fail(Status::InvalidArgument("--cold-start-cost " + text + ": " + c.status().message()));
    sim::SimPolicy auto_row{"auto cold_start_cost " + c->ToString(), KeepAlive::Auto(), std::nullopt};
    auto_row.cold_start_cost = *c;
    policies.push_back(auto_row);
  }
  if (!args.learner.empty()) {
    auto config = ParseLearnerSettings(args.learner);
    if (!config.ok()) return Fail(config.status());
    for (auto& p : policies) p.learner = *config;
  }
  sim::SimSetup setup = sim::MakeSetup(*trace, d);
  std::map<std::string, uint64_t> bytes_of;
  std::map<std::string, double> load_of;
  for (const auto& [name, p] : setup.models) {
    bytes_of[name] = p.bytes;
    load_of[name] = p.load_s;
  }

  const auto start = std::chrono::steady_clock::now();
  std::vector<sim::SimResult> rows;
  for (const auto& p : policies) {
    auto r = sim::Simulate(*trace, setup, p);
    if (!r.ok()) return Fail(r.status());
    rows.push_back(*r);
  }
  sim::LowerBound bound = sim::ComputeLowerBound(*trace, bytes_of, setup.service_s, load_of);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  uint64_t total_bytes = 0;
  for (const auto& [n, b] : bytes_of) total_bytes += b;
  std::printf("%s: %zu requests, %zu models (%s in all), %.0f s of trace; max %d loaded, budget %s%s\n",
              args.trace.trace.c_str(), trace->requests.size(), trace->models.size(),
              FormatBytes(total_bytes).c_str(), trace->duration_s, d.max_loaded,
              d.memory_budget ? FormatBytes(d.memory_budget).c_str() : "none",
              trace->format == "azure" ? "; sizes and service times from the _mem/_run files where present" : "");
  std::printf("%s", sim::FormatTable(rows, bound).c_str());
  std::printf("simulated %zu policies in %.2f s\n", policies.size(), took);
  if (!args.json_out.empty()) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : rows) {
      j.push_back({{"policy", r.label}, {"requests", r.requests}, {"cold", r.cold}, {"loads", r.loads},
                   {"waited_for_room", r.waited_for_room}, {"failed", r.failed}, {"idle_gb_s", r.idle_gbs},
                   {"resident_gb_s", r.resident_gbs}, {"peak_bytes", r.peak_bytes}, {"wall_s", r.wall_s},
                   {"bound_idle_gb_s", bound.IdleAt(r.loads)},
                   {"hindsight_idle_gb_s", bound.HindsightAt(r.loads)}, {"cold_by_model", r.cold_by_model},
                   {"loads_by_model", r.loads_by_model}, {"idle_gb_s_by_model", r.idle_gbs_by_model},
                   {"sleeps", r.sleeps}, {"wakes", r.wakes}});
    }
    nlohmann::json out{{"rows", j}, {"bound", {{"min_loads", bound.models}, {"idle_gb_s", bound.idle_gbs}}}};
    std::ofstream f(args.json_out);
    f << out.dump(1) << "\n";
    if (!f) return Fail(Status::Internal("cannot write " + args.json_out));
  }
  return 0;
}

// A model's measured size and load time: NAME=BYTES:LOAD_S (BYTES as ParseBytes reads it).
Status ParseMeasured(const std::string& text, std::map<std::string, sim::ModelParams>* out) {
  size_t eq = text.rfind('=');
  size_t colon = text.rfind(':');
  if (eq == std::string::npos || colon == std::string::npos || colon < eq) {
    return Status::InvalidArgument("--measured \"" + text + "\": expected NAME=BYTES:LOAD_SECONDS");
  }
  auto bytes = ParseBytes(text.substr(eq + 1, colon - eq - 1));
  char* end = nullptr;
  std::string load = text.substr(colon + 1);
  double load_s = std::strtod(load.c_str(), &end);
  if (!bytes.ok() || end == load.c_str() || *end != '\0' || !(load_s >= 0)) {
    return Status::InvalidArgument("--measured \"" + text + "\": expected NAME=BYTES:LOAD_SECONDS");
  }
  (*out)[text.substr(0, eq)] = sim::ModelParams{*bytes, load_s};
  return Status::Ok();
}

// `bench simulate --own`: the request log through the simulator with each model's measured size
// and load time (the learner state `serve` saves: residency-history; --measured over it), under
// the standard keep_alive settings and the server's own (read as `serve` reads them), and which
// one would have cost least.
int SimulateOwn(const SimulateArgs& args) {
  if (args.json_out == "-") {
    // Standard output is the JSON alone (the server's what-if reads it): log lines go to stderr.
    auto logger = spdlog::stderr_color_mt("stderr");
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::set_default_logger(logger);
  }
  const std::string store_root = store::StoreRootFromEnv(HomeDir());
  const std::string log_path = args.request_log.empty() ? RequestLogPath(store_root) : args.request_log;
  if (log_path.empty()) return Fail(Status::InvalidArgument("RESIDENT_REQUEST_LOG=off: no request log to read"));
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto log = api::ReadRequestLog(log_path, args.days > 0 ? now - args.days * 86400 : 0, args.max_requests);
  if (!log.ok() && log.status().code() != StatusCode::kNotFound) return Fail(log.status());
  if (!log.ok() || log->entries.empty()) {  // nothing recorded yet: nothing to simulate, not an error
    const std::string advice =
        "No requests recorded yet in " + log_path +
        (log.ok() ? std::string(" (within the last ") + fmt::format("{:g}", args.days) + " days)" : std::string()) +
        ": once some have been served, this says which keep_alive would have cost least.";
    if (args.json_out == "-") {
      nlohmann::json out{{"request_log", log_path}, {"requests", 0}, {"rows", nlohmann::json::array()},
                         {"advice", advice}};
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::printf("%s\n", advice.c_str());
    }
    return 0;
  }
  auto settings = LoadResidencySettings(args.serve_config);
  if (!settings.ok()) return Fail(settings.status());
  const sched::Scheduler::Options& so = settings->scheduler;

  // The trace: times from the first request; it ends now (what stays loaded after the last
  // request counts until now).
  sim::Trace trace;
  trace.format = "csv";
  const double first = log->entries.empty() ? now : log->entries.front().timestamp_s;
  for (const auto& e : log->entries) {
    trace.requests.push_back({e.timestamp_s - first, e.model, e.prompt_tokens, e.output_tokens});
    if (std::find(trace.models.begin(), trace.models.end(), e.model) == trace.models.end()) {
      trace.models.push_back(e.model);
    }
  }
  trace.duration_s = std::max(0.0, now - first);

  // Each model's measured size and load time.
  std::map<std::string, sim::ModelParams> measured;
  const std::string learner_path = args.learner_state.empty() ? LearnerStatePath(store_root) : args.learner_state;
  std::string sizes_from = "none measured";
  if (!learner_path.empty()) {
    auto histories = sched::LoadLearnerState(learner_path);
    if (histories.ok()) {
      for (const auto& [name, h] : *histories) {
        if (h.bytes > 0) measured[name] = sim::ModelParams{h.bytes, h.load_s};
      }
      sizes_from = learner_path;
    } else if (histories.status().code() != StatusCode::kNotFound) {
      std::fprintf(stderr, "ignoring %s: %s\n", learner_path.c_str(), histories.status().message().c_str());
    }
  }
  for (const auto& m : args.measured) {
    if (Status st = ParseMeasured(m, &measured); !st.ok()) return Fail(st);
  }
  auto defaults = SetupDefaultsOf(args);
  if (!defaults.ok()) return Fail(defaults.status());
  sim::SetupDefaults d = *defaults;
  d.max_loaded = args.max_loaded >= 1 ? args.max_loaded : so.max_loaded;
  d.memory_budget = so.memory_budget;
  if (!args.memory_limit.empty()) {
    auto b = ParseBytes(args.memory_limit);
    if (!b.ok()) return Fail(Status::InvalidArgument("--memory-limit: " + b.status().message()));
    d.memory_budget = *b;
  }
  sim::SimSetup setup = sim::MakeSetup(trace, d);
  std::vector<std::string> assumed;
  for (auto& [name, p] : setup.models) {
    auto m = measured.find(name);
    if (m != measured.end()) {
      p.bytes = m->second.bytes;
      p.load_s = std::max(0.01, m->second.load_s);
    } else {
      assumed.push_back(name);
    }
  }

  const sched::Policy policy = so.policy.value_or(sched::Policy{});
  const KeepAlive current_keep = policy.default_keep_alive;
  sim::SimPolicy current{"yours (keep_alive " + sim::KeepAliveSetting(current_keep) +
                             (settings->config_path.empty() ? "" : ", " + settings->config_path) + ")",
                         current_keep, so.policy};
  current.cold_start_cost = so.cold_start_cost;
  current.learner = so.learner;
  std::map<std::string, double> cold_start_s;
  for (const auto& [name, p] : setup.models) {
    sched::ColdStartCost c = so.policy ? so.policy->ColdStartCostFor(name) : so.cold_start_cost;
    cold_start_s[name] = c.SecondsFor(p.load_s, p.bytes);
  }
  auto w = sim::RunWhatIf(trace, setup, current, cold_start_s);
  if (!w.ok()) return Fail(w.status());
  w->current.setting = sim::KeepAliveSetting(current_keep);
  const sched::ColdStartCost shown = so.policy ? so.policy->cold_start_cost : so.cold_start_cost;
  sim::Advise(*w, shown.ToString());

  if (args.json_out == "-" || !args.json_out.empty()) {
    auto row_json = [](const sim::WhatIfRow& r, const char* kind) {
      return nlohmann::json{{"label", r.label},
                            {"setting", r.setting},
                            {"kind", kind},
                            {"requests", r.result.requests},
                            {"cold", r.result.cold},
                            {"loads", r.result.loads},
                            {"waited_for_room", r.result.waited_for_room},
                            {"failed", r.result.failed},
                            {"idle_gb_s", r.result.idle_gbs},
                            {"resident_gb_s", r.result.resident_gbs},
                            {"cost_gb_s", r.cost_gbs}};
    };
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : w->rows) {
      nlohmann::json j = row_json(r, r.fixed ? "fixed" : "auto");
      j["vs_current"] = sim::CompareToCurrent(r, w->current);
      rows.push_back(std::move(j));
    }
    // The bound's curve, at most 60 points (denser where it falls fastest, at few loads).
    nlohmann::json bound = nlohmann::json::array();
    const int lo = w->bound.models, hi = w->bound.busy_periods;
    int last = -1;
    for (int k = 0; k <= 60 && hi >= lo; ++k) {
      double f = k / 60.0;
      int c = lo + static_cast<int>(std::llround((hi - lo) * f * f));
      if (c == last) continue;
      last = c;
      bound.push_back({c, w->bound.IdleAt(c)});
    }
    nlohmann::json models = nlohmann::json::array();
    for (const auto& [name, p] : setup.models) {
      bool m = std::find(assumed.begin(), assumed.end(), name) == assumed.end();
      models.push_back({{"name", name}, {"bytes", p.bytes}, {"load_s", p.load_s}, {"measured", m}});
    }
    nlohmann::json out{{"request_log", log_path},
                       {"requests", trace.requests.size()},
                       {"skipped_lines", log->skipped},
                       {"left_out", log->older},
                       {"from", first},
                       {"to", now},
                       {"days", args.days},
                       {"max_requests", args.max_requests},
                       {"models", models},
                       {"sizes_from", sizes_from},
                       {"max_loaded", d.max_loaded},
                       {"memory_budget", d.memory_budget},
                       {"cold_start_cost", shown.ToString()},
                       {"rows", rows},
                       {"current", row_json(w->current, "current")},
                       {"best", w->best >= 0 ? w->rows[static_cast<size_t>(w->best)].label : w->current.label},
                       {"bound", bound},
                       {"advice", w->advice},
                       {"wall_s", w->wall_s}};
    if (args.json_out == "-") {
      std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      return 0;
    }
    std::ofstream f(args.json_out);
    f << out.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!f) return Fail(Status::Internal("cannot write " + args.json_out));
  }

  uint64_t total_bytes = 0;
  for (const auto& [n, p] : setup.models) total_bytes += p.bytes;
  std::printf("%s: %zu requests over %.1f hours (the last %g days, at most %zu requests), %zu models (%s in all); "
              "max %d loaded, budget %s\n",
              log_path.c_str(), trace.requests.size(), trace.duration_s / 3600, args.days, args.max_requests,
              trace.models.size(), FormatBytes(total_bytes).c_str(), d.max_loaded,
              d.memory_budget ? FormatBytes(d.memory_budget).c_str() : "none");
  std::printf("sizes and load times measured by the server (%s)%s\n", sizes_from.c_str(),
              assumed.empty() ? "" : fmt::format("; assumed for {} model(s) never measured: {} and {:.1f} s/GB",
                                                 assumed.size(), FormatBytes(d.default_bytes), d.load_s_per_gb)
                                         .c_str());
  if (log->skipped) std::printf("(%zu lines of the log skipped: torn or not a request)\n", log->skipped);
  std::vector<sim::SimResult> table;
  for (const auto& r : w->rows) table.push_back(r.result);
  table.push_back(w->current.result);
  std::printf("%s", sim::FormatTable(table, w->bound).c_str());
  std::printf("\n");
  for (const auto& r : w->rows) std::printf("  %s\n", sim::CompareToCurrent(r, w->current).c_str());
  std::printf("\n%s\n", w->advice.c_str());
  return 0;
}

struct ReplayArgs {
  TraceArgs trace;
  double speed = 1;
  std::string model_map;
  std::string json_out = "replay.json";
  std::string svg_out = "replay.svg";
};

int Replay(const ReplayArgs& args) {
  auto trace = ReadTrace(args.trace);
  if (!trace.ok()) return Fail(trace.status());
  auto hp = HostFromEnv();
  if (!hp.ok()) return Fail(hp.status());
  sim::ReplayOptions o;
  o.host = hp->host == "0.0.0.0" ? "127.0.0.1" : hp->host;
  o.port = hp->port;
  o.api_key = ApiKeyFromEnv().value_or("");
  o.speed = args.speed;
  o.progress = isatty(STDERR_FILENO);
  auto server_models = sim::ServerModels(o.host, o.port, o.api_key);
  if (!server_models.ok()) return Fail(server_models.status());
  auto map = sim::MapModels(trace->models, args.model_map, *server_models);
  if (!map.ok()) return Fail(map.status());
  o.model_map = *map;
  std::fprintf(stderr, "replaying %zu requests over %.0f s (speed %g) against %s:%d\n", trace->requests.size(),
               trace->duration_s / o.speed, o.speed, o.host.c_str(), o.port);
  auto r = sim::Replay(*trace, o);
  if (!r.ok()) return Fail(r.status());
  std::printf("%s", sim::FormatReplaySummary(*r).c_str());
  if (!args.json_out.empty()) {
    std::ofstream f(args.json_out);
    f << sim::ReplayToJson(*r, o).dump(1) << "\n";
    if (!f) return Fail(Status::Internal("cannot write " + args.json_out));
    std::printf("wrote %s\n", args.json_out.c_str());
  }
  if (!args.svg_out.empty()) {
    std::ofstream f(args.svg_out);
    f << sim::ResidentMemorySvg(r->samples, r->marks, "resident memory: " + args.trace.trace);
    if (!f) return Fail(Status::Internal("cannot write " + args.svg_out));
    std::printf("wrote %s\n", args.svg_out.c_str());
  }
  return r->failed ? 1 : 0;
}

// Prints the trace as the request CSV (an Azure trace with its invocations drawn inside each
// minute), so other tools replay exactly the requests simulate and replay use.
int PrintTrace(const TraceArgs& a) {
  auto trace = ReadTrace(a);
  if (!trace.ok()) return Fail(trace.status());
  std::printf("timestamp_s,model,prompt_tokens,output_tokens\n");
  for (const auto& r : trace->requests) {
    std::printf("%.3f,%s,%d,%d\n", r.t, r.model.c_str(), r.prompt_tokens, r.output_tokens);
  }
  return 0;
}

int MakeTrace(const sim::SynthTraceOptions& o) {
  auto trace = sim::SynthesizeTrace(o);
  if (!trace.ok()) return Fail(trace.status());
  std::printf("# resident bench make-trace --shape %s --seed %llu --hours %g\n", o.shape.c_str(),
              static_cast<unsigned long long>(o.seed), o.hours);
  std::printf("timestamp_s,model,prompt_tokens,output_tokens\n");
  for (const auto& r : trace->requests) {
    std::printf("%.3f,%s,%d,%d\n", r.t, r.model.c_str(), r.prompt_tokens, r.output_tokens);
  }
  return 0;
}

}  // namespace

void AddBenchCommands(CLI::App& app, CommandAction& chosen) {
  auto* bench = app.add_subcommand("bench", "Price keep_alive settings on a workload trace");
  bench->require_subcommand(1);

  auto sa = std::make_shared<SimulateArgs>();
  auto* sim = bench->add_subcommand(
      "simulate", "Run a trace through the scheduler's policy in virtual time: keep_alive 0, 1m, 5m, 10m, 30m, "
                  "forever, auto and any --config, against the offline lower bound");
  AddTraceOptions(sim, sa->trace);
  sim->add_option("--config", sa->configs, "A policy file to compare as well (repeatable)");
  sim->add_option("--learner", sa->learner,
                  "Settings of the auto rows' learner, for tuning: prewarm=0|1, half_life=SECONDS, min_gaps=N, "
                  "prewarm_cost=FRACTION, context=WIDTH, lead=MULTIPLE, min_prewarm=SECONDS (comma-separated)");
  sim->add_option("--cold-start-cost", sa->cold_start_costs,
                  "One more keep_alive auto row with this cold start cost, e.g. 100x or 10m (repeatable)");
  sim->add_option("--max-loaded", sa->max_loaded, "Models loaded at once (default: RESIDENT_MAX_LOADED_MODELS or 3)");
  sim->add_option("--memory-limit", sa->memory_limit, "Memory budget, e.g. 12GiB (default: none)");
  sim->add_option("--model-size", sa->model_size, "Size of each model the trace gives none for")->capture_default_str();
  sim->add_option("--load-seconds", sa->load_seconds, "Load time of every model (default: --load-s-per-gb x size)");
  sim->add_option("--load-s-per-gb", sa->load_s_per_gb, "Load seconds per GB of model")->capture_default_str();
  sim->add_option("--prompt-tps", sa->prompt_tps, "Prompt tokens/s (service time when the trace gives none)")
      ->capture_default_str();
  sim->add_option("--gen-tps", sa->gen_tps, "Generated tokens/s (service time when the trace gives none)")
      ->capture_default_str();
  sim->add_option("--json", sa->json_out, "Also write the rows as JSON to this file (with --own, - : only JSON, to stdout)");
  sim->add_flag("--own", sa->own,
                "Simulate the server's own traffic: its request log (RESIDENT_REQUEST_LOG, default next to the store), "
                "each model's measured size and load time (its residency-history), and its settings as serve reads them");
  sim->add_option("--request-log", sa->request_log, "--own: the request log to read");
  sim->add_option("--learner-state", sa->learner_state, "--own: the residency-history file with the measured sizes");
  sim->add_option("--serve-config", sa->serve_config, "--own: the policy file serve runs with (default $RESIDENT_CONFIG)");
  sim->add_option("--days", sa->days, "--own: only the last this many days of the log (0: all)")->capture_default_str();
  sim->add_option("--max-requests", sa->max_requests, "--own: at most this many of the newest requests (0: all)")
      ->capture_default_str();
  sim->add_option("--measured", sa->measured,
                  "--own: a model's measured size and load time, NAME=BYTES:LOAD_SECONDS (repeatable)");
  sim->add_option("--sleep-fraction", sa->sleep_fraction,
                  "A --config with sleep_after: the share of its bytes a model holds asleep")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  sim->add_option("--wake-fraction", sa->wake_fraction,
                  "A --config with sleep_after: a wake's time as a share of the model's load time")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  sim->callback([&chosen, sa] { chosen = [sa] { return Simulate(*sa); }; });

  auto ra = std::make_shared<ReplayArgs>();
  auto* rep = bench->add_subcommand("replay", "Replay a trace against the running server (RESIDENT_HOST) and "
                                              "measure cold starts, TTFT and resident memory");
  AddTraceOptions(rep, ra->trace);
  rep->add_option("--speed", ra->speed, "Compress time: 10 replays ten times faster")->capture_default_str();
  rep->add_option("--model-map", ra->model_map,
                  "trace=server model pairs, comma-separated (default: round-robin over /api/tags)");
  rep->add_option("--json", ra->json_out, "Result file (empty: none)")->capture_default_str();
  rep->add_option("--svg", ra->svg_out, "Resident memory over time (empty: none)")->capture_default_str();
  rep->callback([&chosen, ra] { chosen = [ra] { return Replay(*ra); }; });

  auto ta = std::make_shared<TraceArgs>();
  auto* tr = bench->add_subcommand("trace", "Print a trace as timestamp_s,model,prompt_tokens,output_tokens lines "
                                            "(the requests simulate and replay would use)");
  AddTraceOptions(tr, *ta);
  tr->callback([&chosen, ta] { chosen = [ta] { return PrintTrace(*ta); }; });

  auto ma = std::make_shared<sim::SynthTraceOptions>();
  auto* mk = bench->add_subcommand("make-trace", "Print a synthetic request CSV of a known shape: periodic, bursty, "
                                                 "diurnal, longtail, rare, changing or mixed");
  mk->add_option("--shape", ma->shape, "The traffic's shape")->capture_default_str();
  mk->add_option("--seed", ma->seed, "Seed of the random draw (same seed, same trace)")->capture_default_str();
  mk->add_option("--hours", ma->hours, "Length of the trace")->capture_default_str();
  mk->callback([&chosen, ma] { chosen = [ma] { return MakeTrace(*ma); }; });
}

}  // namespace resident::cli
