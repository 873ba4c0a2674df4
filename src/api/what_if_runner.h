// The dashboard's what-if, run when asked: `resident bench simulate --own --json -` in a child
// process (the same binary), whose standard output is the answer. A child, not a thread: the
// simulation's memory (its trace, one scheduler per setting) never lands in the server's heap,
// it runs at a lower CPU priority (nice 10) than requests, it is killed past its deadline, and it
// reads the server's settings the way `serve` does (it inherits the environment; the policy file
// is passed). One runs at a time; the answer is kept until the request log changes, and at least
// `min_age` (a busy server's log changes every second); `min_refresh` when a refresh is asked for
// or the answer had no requests yet.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/status.h"

namespace resident::api {

struct WhatIfOptions {
  // The command without the log's path and the measured sizes: {resident, "bench", "simulate",
  // "--own", "--json", "-", ...}. Empty: no what-if (the routes say so).
  std::vector<std::string> command;
  std::string request_log_path;  // empty: the log is off
  std::chrono::seconds timeout{120};
  std::chrono::seconds min_age{60};
  std::chrono::seconds min_refresh{5};
};

// What a child process printed and how it ended.
struct ChildOutput {
  int exit_code = -1;  // -1: killed (deadline) or signalled
  std::string out;     // stdout, at most max_output bytes
  std::string err;     // stderr, at most 64 KiB
};
// Runs argv[0] with these arguments, nice `niceness`, until it exits or `timeout` passes (then
// SIGKILL). Errors: kInternal when it cannot be started.
Result<ChildOutput> RunChild(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                             int niceness = 10, size_t max_output = 16u << 20);

class WhatIfRunner {
 public:
  WhatIfRunner(WhatIfOptions options, const Clock& clock);

  bool available() const { return !options_.command.empty() && !options_.request_log_path.empty(); }

  // The what-if's JSON, with "computed_at" (RFC 3339) and "cached" (true when it was not run for
  // this call) added. `extra_args`: more arguments for the child (the server's measured sizes:
  // --measured NAME=BYTES:LOAD_S). Blocks while another call runs it. Errors: kFailedPrecondition
  // when not available; kInternal with the child's last error line when it failed.
  Result<nlohmann::json> Get(const std::vector<std::string>& extra_args, bool refresh);

 private:
  // The request log's size and modification times (both files): changes when a line is written.
  std::string Fingerprint() const;

  const WhatIfOptions options_;
  const Clock& clock_;
  std::mutex run_mu_;              // one run at a time; guards the fields below
  nlohmann::json cached_;          // null: none yet
  std::string cached_fingerprint_;
  TimePoint cached_at_{};
};

}  // namespace resident::api
