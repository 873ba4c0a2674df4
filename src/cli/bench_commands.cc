// `resident bench simulate TRACE` and `resident bench replay TRACE`: what each keep_alive costs
// on a workload, in virtual time through the scheduler's own code, or live against a server.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>

#include "cli/command.h"
#include "cli/config.h"
#include "core/bytes.h"
#include "core/keep_alive.h"
#include "sched/policy.h"
#include "sim/lower_bound.h"
#include "sim/replay.h"
#include "sim/simulator.h"
#include "sim/svg_plot.h"
#include "sim/trace.h"
#include "sim/trace_synth.h"

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
  cmd->add_option("trace", a.trace, "CSV timestamp_s,model,prompt_tokens,output_tokens, or an Azure *_inv.csv")
      ->required();
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
  double sleep_fraction = 0.7;
  double wake_fraction = 0.3;
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
    else return Status::InvalidArgument("--learner: unknown setting \"" + key + "\"");
  }
  return c;
}

int Simulate(const SimulateArgs& args) {
  auto trace = ReadTrace(args.trace);
  if (!trace.ok()) return Fail(trace.status());
  sim::SetupDefaults d;
  auto size = ParseBytes(args.model_size);
  if (!size.ok()) return Fail(Status::InvalidArgument("--model-size: " + size.status().message()));
  d.default_bytes = *size;
  d.load_s = args.load_seconds;
  d.load_s_per_gb = args.load_s_per_gb;
  d.prompt_tps = args.prompt_tps;
  d.gen_tps = args.gen_tps;
  d.sleep_fraction = args.sleep_fraction;
  d.wake_fraction = args.wake_fraction;
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
                   {"bound_idle_gb_s", bound.IdleAt(r.loads)}, {"cold_by_model", r.cold_by_model},
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
  sim->add_option("--json", sa->json_out, "Also write the rows as JSON to this file");
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
