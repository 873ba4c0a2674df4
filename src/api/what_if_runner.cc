#include "api/what_if_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "api/request_log.h"
#include "core/time_format.h"

extern char** environ;

namespace resident::api {
namespace {

std::string StatPart(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "-";
  return std::to_string(st.st_size) + "@" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

std::string LastLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

}  // namespace

Result<ChildOutput> RunChild(const std::vector<std::string>& argv, std::chrono::milliseconds timeout, int niceness,
                             size_t max_output) {
  if (argv.empty()) return Status::Internal("no command to run");
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return Status::Internal(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return Status::Internal(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  // The server blocks SIGINT/SIGTERM in every thread (sigwait): the child starts with none blocked.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return Status::Internal("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(pid), niceness);

  ChildOutput result;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  bool killed = false;
  char buf[65536];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    int n = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      std::string& into = i == 0 ? result.out : result.err;
      const size_t cap = i == 0 ? max_output : 64u << 10;
      if (into.size() < cap) into.append(buf, std::min(static_cast<size_t>(got), cap - into.size()));
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = !killed && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (killed) result.err += "\nstopped after " + std::to_string(timeout.count() / 1000) + " s";
  return result;
}

WhatIfRunner::WhatIfRunner(WhatIfOptions options, const Clock& clock) : options_(std::move(options)), clock_(clock) {}

std::string WhatIfRunner::Fingerprint() const {
  return StatPart(options_.request_log_path) + "|" + StatPart(RotatedRequestLogPath(options_.request_log_path));
}

Result<nlohmann::json> WhatIfRunner::Get(const std::vector<std::string>& extra_args, bool refresh) {
  if (!available()) {
    return Status::FailedPrecondition(options_.request_log_path.empty()
                                          ? "the request log is off (RESIDENT_REQUEST_LOG=off): nothing to simulate"
                                          : "the what-if is not available in this server");
  }
  std::lock_guard<std::mutex> lock(run_mu_);
  const TimePoint now = clock_.Now();
  const std::string fingerprint = Fingerprint();
  if (!cached_.is_null()) {
    // Run again only when the log changed, and not more often than min_age (min_refresh when asked
    // to, or when the last answer had no requests yet).
    const auto age = now - cached_at_;
    const bool had_none = cached_.value("requests", 0) == 0;
    const bool fresh_enough = fingerprint == cached_fingerprint_ ||
                              age < (refresh || had_none ? options_.min_refresh : options_.min_age);
    if (fresh_enough) {
      nlohmann::json j = cached_;
      j["cached"] = true;
      return j;
    }
  }
  std::vector<std::string> argv = options_.command;
  argv.push_back("--request-log");
  argv.push_back(options_.request_log_path);
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  auto child = RunChild(argv, std::chrono::duration_cast<std::chrono::milliseconds>(options_.timeout));
  if (!child.ok()) return child.status();
  if (child->exit_code != 0) {
    return Status::Internal("the what-if simulation failed: " + LastLine(child->err));
  }
  nlohmann::json j = nlohmann::json::parse(child->out, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Internal("the what-if simulation gave no JSON");
  j["computed_at"] = FormatRfc3339(clock_.WallNow());
  cached_ = j;
  cached_fingerprint_ = fingerprint;
  cached_at_ = now;
  j["cached"] = false;
  return j;
}

}  // namespace resident::api
