// How subcommands are registered: each command file adds its subcommands to the app and, when
// one of them is chosen on the command line, stores the action to run in `chosen`.
#pragma once

#include <functional>
#include <string>

#include "core/status.h"

namespace CLI {
class App;
}

namespace resident::cli {

using CommandAction = std::function<int()>;

void AddServeCommand(CLI::App& app, CommandAction& chosen);     // serve_command.cc
void AddClientCommands(CLI::App& app, CommandAction& chosen);   // client_commands.cc: run...
void AddModelCommands(CLI::App& app, CommandAction& chosen);    // model_commands.cc: list, show, create, cp, rm
void AddSynthCommand(CLI::App& app, CommandAction& chosen);     // synth_command.cc
void AddRunnerCommand(CLI::App& app, CommandAction& chosen);    // runner_command.cc (hidden)
void AddBenchCommands(CLI::App& app, CommandAction& chosen);    // bench_commands.cc: bench simulate, bench replay
void AddClusterCommands(CLI::App& app, CommandAction& chosen);  // cluster_command.cc: cluster haproxy

// Prints "Error: <message>" to stderr and returns the exit code 1.
int Fail(const Status& status);

// $HOME, or /tmp when unset.
std::string HomeDir();

}  // namespace resident::cli
