#include <CLI/CLI.hpp>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <thread>

#include "api/server.h"
#include "cli/command.h"
#include "cli/config.h"
#include "core/keep_alive.h"
#include "runner/runner_process.h"
#include "sched/scheduler.h"
#include "store/model_catalog.h"

namespace resident::cli {
namespace {

std::string DefaultModelsDir() {
  if (auto v = EnvFirst({"RESIDENT_GGUF_DIR"})) return *v;
  return HomeDir() + "/.resident/gguf";
}

struct ServeArgs {
  std::string models_dir;
};

int Serve(const ServeArgs& args) {
  // Signals are taken by one thread with sigwait; every other thread blocks them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto host = HostFromEnv();
  if (!host.ok()) return Fail(host.status());
  std::string warning;
  KeepAlive keep_alive = DefaultKeepAliveFromEnv(&warning);
  if (!warning.empty()) spdlog::warn("{}", warning);

  sched::Scheduler::Options so;
  auto max_loaded = IntFromEnv("RESIDENT_MAX_LOADED_MODELS", "OLLAMA_MAX_LOADED_MODELS", 3, 0);
  auto num_parallel = IntFromEnv("RESIDENT_NUM_PARALLEL", "OLLAMA_NUM_PARALLEL", 1, 1);
  auto max_queue = IntFromEnv("RESIDENT_MAX_QUEUE", "OLLAMA_MAX_QUEUE", 512, 1);
  auto num_ctx = IntFromEnv("RESIDENT_CONTEXT_LENGTH", "OLLAMA_CONTEXT_LENGTH", 2048, 1);
  for (const auto* r : {&max_loaded, &num_parallel, &max_queue, &num_ctx}) {
    if (!r->ok()) return Fail(r->status());
  }
  so.max_loaded = *max_loaded == 0 ? 3 : *max_loaded;
  so.num_parallel = *num_parallel;
  so.max_queue = *max_queue;
  so.default_keep_alive = keep_alive.forever ? sched::kForever : keep_alive.duration;

  std::string models_dir = args.models_dir.empty() ? DefaultModelsDir() : args.models_dir;
  std::error_code ec;
  std::filesystem::create_directories(models_dir, ec);
  store::GgufFolderCatalog catalog(models_dir);

  SystemClock clock;
  runner::ProcessRunnerFactory factory(runner::RunnerProcess::Options{runner::SelfExecutable()});
  sched::Scheduler scheduler(so, factory, clock);

  api::ApiServer::Options ao;
  ao.host = host->host;
  ao.port = host->port;
  ao.defaults.num_ctx = *num_ctx;
  api::ApiServer server(ao, scheduler, catalog, clock);
  if (Status st = server.Bind(); !st.ok()) return Fail(st);

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server.Stop();
  });
  signal_thread.detach();

  spdlog::info("resident {} listening on http://{}:{} (models from {}, keep_alive {})", RESIDENT_VERSION,
               ao.host, server.port(), models_dir, keep_alive.ToString());
  server.Serve();
  scheduler.Shutdown();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

void AddServeCommand(CLI::App& app, CommandAction& chosen) {
  auto args = std::make_shared<ServeArgs>();
  auto* serve = app.add_subcommand("serve", "Start the server (RESIDENT_HOST, default 127.0.0.1:11434)");
  serve->add_option("--models-dir", args->models_dir,
                    "Folder of .gguf files, each served as a model named after its file "
                    "(default $RESIDENT_GGUF_DIR or ~/.resident/gguf)");
  serve->callback([&chosen, args] { chosen = [args] { return Serve(*args); }; });
}

}  // namespace resident::cli
