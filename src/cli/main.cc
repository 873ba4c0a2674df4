// resident: the command-line entry point. Each subcommand lives in its own file (command.h).
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "cli/command.h"

int main(int argc, char** argv) {
  using namespace resident::cli;
  CLI::App app{"resident: a local LLM server that speaks Ollama's API and manages model residency"};
  app.set_version_flag("-v,--version", std::string("resident version ") + RESIDENT_VERSION);
  app.require_subcommand(1);
  CommandAction chosen;
  AddServeCommand(app, chosen);
  AddClientCommands(app, chosen);
  AddModelCommands(app, chosen);
  AddSynthCommand(app, chosen);
  AddRunnerCommand(app, chosen);
  AddBenchCommands(app, chosen);
  AddClusterCommands(app, chosen);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  return chosen ? chosen() : 1;
}
