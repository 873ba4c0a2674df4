#include <CLI/CLI.hpp>
#include <httplib.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/config.h"

namespace resident::cli {
namespace {

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

}  // namespace

void AddClientCommands(CLI::App& app, CommandAction& chosen) {
  auto args = std::make_shared<RunArgs>();
  auto* run = app.add_subcommand("run", "Generate text from a model through the running server");
  run->add_option("model", args->model, "Model name")->required();
  run->add_option("prompt", args->prompt, "Prompt (read from stdin when omitted and piped)");
  run->add_flag("--raw", args->raw, "Send the prompt without the model's chat template");
  run->add_flag("--verbose", args->verbose, "Print timings after the response");
  run->callback([&chosen, args] { chosen = [args] { return Run(*args); }; });
}

}  // namespace resident::cli
