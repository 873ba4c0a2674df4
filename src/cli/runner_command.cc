#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "runner/runner_main.h"
#include "runner/template_sandbox.h"

namespace resident::cli {

void AddRunnerCommand(CLI::App& app, CommandAction& chosen) {
  auto fd = std::make_shared<int>(-1);
  auto share_fd = std::make_shared<int>(-1);
  auto sandbox = std::make_shared<bool>(false);
  auto* runner = app.add_subcommand("runner", "");
  runner->group("");  // hidden: started by the server for each loaded model
  runner->add_option("--fd", *fd, "Socket to the server")->required();
  runner->add_option("--cpu-share-fd", *share_fd, "Page shared by the server's runners");
  runner->add_flag("--template-sandbox", *sandbox, "Render chat templates for the runner that started this one");
  runner->callback([&chosen, fd, share_fd, sandbox] {
    chosen = [fd, share_fd, sandbox] {
      return *sandbox ? runner::TemplateSandboxMain(*fd) : runner::RunnerMain(*fd, *share_fd);
    };
  });
}

}  // namespace resident::cli
