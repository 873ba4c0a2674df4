// The runner child process: `resident runner --fd N [--cpu-share-fd M]` (hidden subcommand). It reads a LoadRequest
// from the socket on fd N, loads the model, answers LoadedEvent (or LoadFailedEvent), then serves
// requests until the socket closes or a ShutdownRequest arrives. It exits when the server dies
// (end of stream, and PR_SET_PDEATHSIG set by the parent), so no runner outlives its server.
#pragma once

namespace resident::runner {

// `cpu_share_fd` (-1: none) is the server's CpuShare page (cpu_share.h). Returns the process exit code.
int RunnerMain(int fd, int cpu_share_fd);

}  // namespace resident::runner
