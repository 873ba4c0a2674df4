#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "runner/runner_main.h"

namespace resident::cli {

void AddRunnerCommand(CLI::App& app, CommandAction& chosen) {
  auto fd = std::make_shared<int>(-1);
  auto* runner = app.add_subcommand("runner", "");
  runner->group("");  // hidden: started by the server for each loaded model
  runner->add_option("--fd", *fd, "Socket to the server")->required();
  runner->callback([&chosen, fd] { chosen = [fd] { return runner::RunnerMain(*fd); }; });
}

}  // namespace resident::cli
