// resident: the command-line entry point. Subcommands: serve, run, synth, and the hidden
// `runner` that the server starts for each loaded model.
#include <CLI/CLI.hpp>
#include <httplib.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/server.h"
#include "cli/config.h"
#include "core/bytes.h"
#include "core/keep_alive.h"
#include "runner/runner_main.h"
#include "runner/runner_process.h"
#include "sched/scheduler.h"
#include "store/gguf_synth.h"
#include "store/model_catalog.h"

namespace resident::cli {
namespace {

std::string HomeDir() {
  const char* h = std::getenv("HOME");
  return h ? h : "/tmp";
}

std::string DefaultModelsDir() {
  if (auto v = EnvFirst({"RESIDENT_GGUF_DIR"})) return *v;
  return HomeDir() + "/.resident/gguf";
}

int Fail(const Status& st) {
  std::fprintf(stderr, "Error: %s\n", st.message().c_str());
  return 1;
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

struct RunArgs {
  std::string model;
  std::string prompt;
  bool raw = false;
  bool verbose = false;
};

int Run(RunArgs args) {
  auto host = HostFromEnv();
  if (!host.ok()) return Fail(host.status());
  if (args.prompt.empty() && !isatty(STDIN_FILENO)) {
    args.prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  if (args.prompt.empty()) {
    return Fail(Status::InvalidArgument("give a prompt: resident run MODEL \"prompt\" (or pipe one on stdin)"));
  }
  std::string connect_host = host->host == "0.0.0.0" ? "127.0.0.1" : host->host;
  httplib::Client client(connect_host, host->port);
  client.set_read_timeout(std::chrono::hours(1));
  nlohmann::json body{{"model", args.model}, {"prompt", args.prompt}, {"stream", true}, {"raw", args.raw}};
  std::string buffer, error;
  nlohmann::json final_chunk;
  int status = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/api/generate";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buffer.append(data, n);
    size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      auto j = nlohmann::json::parse(buffer.substr(0, nl), nullptr, false);
      buffer.erase(0, nl + 1);
      if (j.is_discarded()) continue;
      if (j.contains("error")) {
        error = j["error"].get<std::string>();
      } else if (j.contains("response")) {
        std::fputs(j["response"].get<std::string>().c_str(), stdout);
        std::fflush(stdout);
      }
      if (j.value("done", false)) final_chunk = j;
    }
    return true;
  };
  auto res = client.send(req);
  if (!res) {
    return Fail(Status::Unavailable("could not connect to resident at " + connect_host + ":" +
                                    std::to_string(host->port) + " (is `resident serve` running?)"));
  }
  status = res->status;
  if (status != 200) {
    auto j = nlohmann::json::parse(buffer, nullptr, false);
    return Fail(Status::Internal(!j.is_discarded() && j.contains("error") ? j["error"].get<std::string>()
                                                                           : "HTTP " + std::to_string(status)));
  }
  std::fputc('\n', stdout);
  if (!error.empty()) return Fail(Status::Internal(error));
  if (args.verbose && final_chunk.is_object()) {
    auto secs = [&](const char* k) { return final_chunk.value(k, int64_t{0}) / 1e9; };
    double eval = secs("eval_duration");
    std::fprintf(stderr, "total duration:       %.3fs\nload duration:        %.3fs\n", secs("total_duration"),
                 secs("load_duration"));
    std::fprintf(stderr, "prompt eval count:    %d token(s)\neval count:           %d token(s)\n",
                 final_chunk.value("prompt_eval_count", 0), final_chunk.value("eval_count", 0));
    if (eval > 0) std::fprintf(stderr, "eval rate:            %.2f tokens/s\n", final_chunk.value("eval_count", 0) / eval);
  }
  return 0;
}

struct SynthArgs {
  std::string out;
  std::string params = "20M";
  uint64_t seed = 42;
  std::string vocab = "llama-spm";
  std::string type = "f16";
  std::string chat_template;
};

int Synth(const SynthArgs& args) {
  auto params = ParseCount(args.params);
  if (!params.ok()) return Fail(params.status());
  SynthOptions o;
  o.out_path = args.out;
  o.params = *params;
  o.seed = args.seed;
  o.vocab = args.vocab;
  o.vocab_dir = EnvFirst({"RESIDENT_VOCAB_DIR"}).value_or(RESIDENT_VOCAB_DIR);
  o.chat_template = args.chat_template;
  if (args.type == "f16") o.type = SynthOptions::Type::kF16;
  else if (args.type == "q8_0") o.type = SynthOptions::Type::kQ8_0;
  else return Fail(Status::InvalidArgument("--type must be f16 or q8_0"));
  bool tty = isatty(STDERR_FILENO);
  o.progress = [&](uint64_t done, uint64_t total) {
    if (tty) std::fprintf(stderr, "\rwriting %s / %s", FormatBytes(done).c_str(), FormatBytes(total).c_str());
  };
  auto shape = WriteSyntheticModel(o);
  if (tty) std::fputc('\n', stderr);
  if (!shape.ok()) return Fail(shape.status());
  std::printf("wrote %s: %s parameters (n_embd %u, %u layers, n_ff %u, vocab %u), %s\n", args.out.c_str(),
              FormatCount(shape->n_params).c_str(),
              shape->n_embd, shape->n_layer, shape->n_ff, shape->n_vocab,
              FormatBytes(std::filesystem::file_size(args.out)).c_str());
  return 0;
}

}  // namespace
}  // namespace resident::cli

int main(int argc, char** argv) {
  using namespace resident::cli;
  CLI::App app{"resident: a local LLM server that speaks Ollama's API and manages model residency"};
  app.set_version_flag("-v,--version", std::string("resident version ") + RESIDENT_VERSION);
  app.require_subcommand(1);

  ServeArgs serve_args;
  auto* serve = app.add_subcommand("serve", "Start the server (RESIDENT_HOST, default 127.0.0.1:11434)");
  serve->add_option("--models-dir", serve_args.models_dir,
                    "Folder of .gguf files, each served as a model named after its file "
                    "(default $RESIDENT_GGUF_DIR or ~/.resident/gguf)");

  RunArgs run_args;
  auto* run = app.add_subcommand("run", "Generate text from a model through the running server");
  run->add_option("model", run_args.model, "Model name")->required();
  run->add_option("prompt", run_args.prompt, "Prompt (read from stdin when omitted and piped)");
  run->add_flag("--raw", run_args.raw, "Send the prompt without the model's chat template");
  run->add_flag("--verbose", run_args.verbose, "Print timings after the response");

  SynthArgs synth_args;
  auto* synth = app.add_subcommand("synth", "Write a random-weight llama GGUF on a real tokenizer");
  synth->add_option("out", synth_args.out, "Output .gguf path")->required();
  synth->add_option("--params", synth_args.params, "Parameter count, e.g. 20M, 800M, 1G")->capture_default_str();
  synth->add_option("--seed", synth_args.seed, "Random seed (same seed, same file)")->capture_default_str();
  synth->add_option("--vocab", synth_args.vocab, "Tokenizer: llama-spm, llama-bpe, qwen2, phi-3... or a path")
      ->capture_default_str();
  synth->add_option("--type", synth_args.type, "Weight type: f16 or q8_0")->capture_default_str();
  synth->add_option("--chat-template", synth_args.chat_template,
                    "llama2, llama3, chatml, none, a Jinja template or a file (default: the vocab's own)");

  int runner_fd = -1;
  auto* runner = app.add_subcommand("runner", "");  // hidden: empty description
  runner->group("");
  runner->add_option("--fd", runner_fd, "Socket to the server")->required();

  CLI11_PARSE(app, argc, argv);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  if (*serve) return Serve(serve_args);
  if (*run) return Run(run_args);
  if (*synth) return Synth(synth_args);
  if (*runner) return resident::runner::RunnerMain(runner_fd);
  return 1;
}
