#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "runner/runner_main.h"

namespace resident::cli {

void AddRunnerCommand(CLI::App& app, CommandAction& chosen) {
  auto fd = std::make_shared<int>(-1);
  auto share_fd = std::make_shared<int>(-1);
  auto* runner = app.add_subcommand("runner", "");
  runner->group("");  // hidden: started by the server for each loaded model
  runner->add_option("--fd", *fd, "Socket to the server")->required();
  runner->add_option("--cpu-share-fd", *share_fd, "Page shared by the server's runners");
  runner->callback([&chosen, fd, share_fd] { chosen = [fd, share_fd] { return runner::RunnerMain(*fd, *share_fd); }; });
}

}  // namespace resident::cli
