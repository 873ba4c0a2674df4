#include <CLI/CLI.hpp>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <thread>

#include "api/server.h"
#include "cli/command.h"
#include "cli/config.h"
#include "cli/gpu_settings.h"
#include "cli/http_settings.h"
#include "cli/prompt_cache_settings.h"
#include "cli/residency_settings.h"
#include "cli/state_paths.h"
#include "sched/footprint.h"
#include "core/bytes.h"
#include "core/keep_alive.h"
#include "runner/prompt_cache.h"
#include "core/page_cache.h"
#include "runner/runner_process.h"
#include "sched/learner_state.h"
#include "sched/residency_history.h"
#include "sched/scheduler.h"
#include "store/composite_catalog.h"
#include "store/model_catalog.h"
#include "store/model_store.h"

namespace resident::cli {
namespace {

std::string DefaultModelsDir() {
  if (auto v = EnvFirst({"RESIDENT_GGUF_DIR"})) return *v;
  return HomeDir() + "/.resident/gguf";
}

// Saves the learner's state every 30 s when it changed, and once more at Stop().
class LearnerSaver {
 public:
  LearnerSaver(const sched::Scheduler& scheduler, std::string path) : scheduler_(scheduler), path_(std::move(path)) {
    if (!path_.empty()) thread_ = std::thread([this] { Loop(); });
  }
  ~LearnerSaver() { Stop(); }
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    SaveIfChanged();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(30), [&] { return stop_; })) {
      lock.unlock();
      SaveIfChanged();
      lock.lock();
    }
  }
  void SaveIfChanged() {
    if (path_.empty()) return;
    uint64_t version = scheduler_.history_version();
    if (version == saved_version_) return;
    if (Status st = sched::SaveLearnerState(path_, scheduler_.Histories()); !st.ok()) {
      spdlog::warn("cannot save the residency history: {}", st.message());
      return;
    }
    saved_version_ = version;
  }

  const sched::Scheduler& scheduler_;
  const std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t saved_version_ = 0;
  std::thread thread_;
};

struct ServeArgs {
  std::string config;  // policy file (RESIDENT_CONFIG)
  std::string models_dir;
  std::string ollama_models;
};

// The server's HTTP workers allocate from at most two malloc arenas. glibc gives threads up to
// 8 per core, and each arena keeps what a large request body was parsed into after it is freed:
// 8 clients at once sending 4 MB bodies left the server 400 MB larger for good (malloc_trim
// after each large body gives back less from arenas other than the main one). A user's own
// MALLOC_ARENA_MAX (or glibc.malloc.arena_max tunable) wins.
void LimitMallocArenas() {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr ||
      (tunables != nullptr && std::string_view(tunables).find("glibc.malloc.arena_max") != std::string_view::npos)) {
    return;
  }
  ::mallopt(M_ARENA_MAX, 2);
}

int Serve(const ServeArgs& args) {
  LimitMallocArenas();
  // Signals are taken by one thread with sigwait; every other thread blocks them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Every connection is a file descriptor: take the hard limit on open files, not the soft one
  // (often 1024), so RESIDENT_MAX_CONNECTIONS is what bounds them. Runners start with the same.
  if (rlimit files{}; getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }

  auto host = HostFromEnv();
  if (!host.ok()) return Fail(host.status());
  auto settings = LoadResidencySettings(args.config);
  if (!settings.ok()) return Fail(settings.status());
  const sched::Scheduler::Options& so = settings->scheduler;

  // Models come from resident's own store (writable), an Ollama store (read-only, optional)
  // and a plain folder of .gguf files (read-only), searched in that order.
  std::string models_dir = args.models_dir.empty() ? DefaultModelsDir() : args.models_dir;
  std::string store_root = store::StoreRootFromEnv(HomeDir());
  std::error_code ec;
  std::filesystem::create_directories(store_root, ec);
  if (ec) return Fail(Status::Internal("cannot create the model store " + store_root + ": " + ec.message()));
  store::ModelStore own_store(store_root, /*read_only=*/false, "store");
  std::string ollama_root = args.ollama_models;
  if (ollama_root.empty()) ollama_root = EnvFirst({"RESIDENT_OLLAMA_MODELS"}).value_or("");
  store::ModelStore ollama_store(ollama_root, /*read_only=*/true, "ollama");
  store::GgufFolderCatalog folder(models_dir);
  std::vector<const store::ModelCatalog*> sources{&own_store};
  if (!ollama_root.empty()) sources.push_back(&ollama_store);
  sources.push_back(&folder);
  store::CompositeCatalog catalog(sources);

  auto prompt_cache = PromptCacheSettingsFromEnv(HomeDir());
  if (!prompt_cache.ok()) return Fail(prompt_cache.status());
  runner::PromptCacheStats prompt_cache_stats;
  if (prompt_cache->on()) {
    if (Status st = runner::CreatePromptCacheDir(prompt_cache->dir); !st.ok()) {
      spdlog::warn("prompt cache off: {} (set RESIDENT_PROMPT_CACHE)", st.message());
      *prompt_cache = PromptCacheSettings{};
    } else {
      spdlog::info("prompt cache: {} (at most {}; RESIDENT_PROMPT_CACHE=off turns it off)", prompt_cache->dir,
                   FormatBytes(prompt_cache->max_bytes));
    }
  }

  SystemClock clock;
  // How much of each model file is in the page cache: the reload time of the eviction cost, and
  // /api/tags, `resident list` and /metrics.
  PageCacheTracker page_cache;
  sched::Scheduler::Options scheduler_options = so;
  scheduler_options.page_cache_fraction = [&page_cache](const std::string& path) { return page_cache.Fraction(path); };
  runner::RunnerProcess::Options runner_options{runner::SelfExecutable(), settings->load_timeout, settings->health_timeout,
                                                settings->memory_margin, settings->huge_pages};
  runner_options.may_sleep = settings->may_sleep;
  runner_options.prompt_cache_dir = prompt_cache->dir;
  runner_options.prompt_cache_max_bytes = prompt_cache->max_bytes;
  runner_options.prompt_cache_stats = &prompt_cache_stats;
  // GPUs (docs/gpu.md): found through NVML; with llama.cpp's CUDA build, models are placed on them.
  auto gpus = GpuSettingsFromEnv();
  if (!gpus.ok()) return Fail(gpus.status());
  runner_options.library_dir = gpus->library_dir;
  if (gpus->use) {
    scheduler_options.gpus = gpus->discovery.get();
    scheduler_options.gpu_planner = sched::MakeGgufGpuPlanner();
    scheduler_options.gpu_margin_bytes = gpus->margin_bytes;
  }
  runner::ProcessRunnerFactory factory(runner_options, settings->spare_runner);
  sched::Scheduler scheduler(scheduler_options, factory, clock);

  // One line per model request, next to the store (what `bench simulate --own` and the
  // dashboard's what-if read); RESIDENT_REQUEST_LOG=off: none.
  auto log_options = RequestLogOptionsFromEnv(store_root);
  if (!log_options.ok()) return Fail(log_options.status());
  std::unique_ptr<api::RequestLog> request_log;
  if (log_options->has_value()) request_log = std::make_unique<api::RequestLog>(**log_options, clock);
  // Memory per model every 2 s over the last hour, for the dashboard's chart.
  sched::ResidencyHistory history;
  sched::HistorySampler sampler(scheduler, clock, history);

  api::ApiServer::Options ao;
  ao.request_log = request_log.get();
  ao.dashboard.history = &history;
  ao.dashboard.sample_period = sampler.period();
  ao.dashboard.what_if.command = {runner::SelfExecutable(), "bench", "simulate", "--own", "--json", "-"};
  if (!settings->config_path.empty()) {
    ao.dashboard.what_if.command.push_back("--serve-config");
    ao.dashboard.what_if.command.push_back(settings->config_path);
  }
  ao.dashboard.what_if.request_log_path = request_log ? request_log->path() : "";
  ao.host = host->host;
  ao.port = host->port;
  ao.defaults.num_ctx = settings->num_ctx;
  ao.store = &own_store;
  ao.prompt_cache_stats = &prompt_cache_stats;
  ao.page_cache = &page_cache;
  ao.gpus = gpus->discovery.get();
  if (Status st = ApplyHttpSettingsFromEnv(ConnectionsForScheduler(so), &ao); !st.ok()) return Fail(st);
  api::ApiServer server(ao, scheduler, catalog, clock);
  if (Status st = server.Bind(); !st.ok()) return Fail(st);

  // What keep_alive "auto" learned survives restarts: a small file next to the store.
  std::string learner_path = LearnerStatePath(store_root);
  if (!learner_path.empty()) {
    auto saved = sched::LoadLearnerState(learner_path);
    if (saved.ok()) {
      scheduler.RestoreHistories(*saved);
      spdlog::info("residency history of {} models from {}", saved->size(), learner_path);
    } else if (saved.status().code() != StatusCode::kNotFound) {
      spdlog::warn("ignoring the residency history {}: {}", learner_path, saved.status().message());
    }
  }
  LearnerSaver saver(scheduler, learner_path);
  for (const std::string& name : settings->preload) {
    if (Status st = server.Preload(name); !st.ok()) spdlog::warn("cannot preload {}: {}", name, st.message());
    else spdlog::info("preloading {}", name);
  }

  // On SIGINT/SIGTERM: stop accepting, then unload every runner. Requests in flight end at once
  // (a streaming client gets a last error line) instead of holding the exit for minutes.
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server.Stop();
    factory.AbortLoads();  // a load in progress is not waited for
    scheduler.Shutdown();
  });

  // The dashboard's address as a browser on this machine reaches it.
  const bool any_address = ao.host == "0.0.0.0" || ao.host == "::" || ao.host.empty();
  const std::string ui_host = any_address ? "127.0.0.1" : ao.host.find(':') != std::string::npos ? "[" + ao.host + "]" : ao.host;
  spdlog::info("resident {} listening on http://{}:{} (dashboard: http://{}:{}/ui; models: store {}{}, folder {}; "
               "keep_alive {})",
               RESIDENT_VERSION, ao.host, server.port(), ui_host, server.port(), store_root,
               ollama_root.empty() ? "" : ", Ollama store " + ollama_root + " (read-only)", models_dir,
               so.policy->default_keep_alive.ToString());
  spdlog::info("request log: {}", request_log ? request_log->path() + " (timestamp_s,model,prompt_tokens,output_tokens; "
                                                    "RESIDENT_REQUEST_LOG=off turns it off)"
                                              : std::string("off"));
  spdlog::info("memory budget {} ({}), at most {} models{}", FormatBytes(so.memory_budget), settings->budget_source,
               so.max_loaded, settings->config_path.empty() ? "" : ", policy from " + settings->config_path);
  if (so.policy->sleep_after) {
    spdlog::info("idle models sleep after {} (their context freed, runner and weights kept)",
                 so.policy->sleep_after->ToString());
  }
  if (settings->huge_pages) spdlog::info("runners allocate their contexts in transparent huge pages");
  if (gpus->warn) spdlog::warn("{}", gpus->summary);
  else spdlog::info("{}", gpus->summary);
  if (!server.loopback_only() && ao.api_key.empty()) {
    spdlog::warn("listening on {}:{}, which other machines can reach, without an API key: anyone who can "
                 "connect can run and manage models. Set RESIDENT_API_KEY, or listen on 127.0.0.1 "
                 "(RESIDENT_HOST=127.0.0.1:{})",
                 ao.host, server.port(), server.port());
  }
  spdlog::info("HTTP limits: {} connections at once (+{} waiting), idle timeout {} ms, body {}, headers {}{}",
               ao.limits.max_connections, ao.limits.max_queued, ao.limits.idle_timeout.count(),
               FormatBytes(ao.max_body_bytes), FormatBytes(ao.limits.max_header_bytes),
               ao.api_key.empty() ? "" : "; API key required");
  server.Serve();
  signal_thread.join();
  saver.Stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, CommandAction& chosen) {
  auto args = std::make_shared<ServeArgs>();
  auto* serve = app.add_subcommand("serve", "Start the server (RESIDENT_HOST, default 127.0.0.1:11434)");
  serve->add_option("--config", args->config,
                    "Residency policy file (TOML: per-model keep_alive and pin, min/max_keep_alive, "
                    "memory_limit); default $RESIDENT_CONFIG");
  serve->add_option("--models-dir", args->models_dir,
                    "Folder of .gguf files, each served as a model named after its file "
                    "(default $RESIDENT_GGUF_DIR or ~/.resident/gguf), read-only");
  serve->add_option("--ollama-models", args->ollama_models,
                    "An Ollama model store to serve read-only, e.g. ~/.ollama/models "
                    "(default $RESIDENT_OLLAMA_MODELS; none when unset). resident's own store is "
                    "$RESIDENT_MODELS (default ~/.resident/models)");
  serve->callback([&chosen, args] { chosen = [args] { return Serve(*args); }; });
}

}  // namespace resident::cli
