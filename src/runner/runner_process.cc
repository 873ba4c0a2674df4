#include "runner/runner_process.h"

#include "core/bytes.h"
#include "core/system_info.h"
#include "runner/cpu_share.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>
#include <string>
#include <vector>

namespace resident::runner {
namespace {

// Runners are forked by one thread that lives as long as the server. A child's parent-death
// signal (PR_SET_PDEATHSIG, which kills a runner whose server died) follows the *thread* that
// forked it, not the process: forked from an HTTP worker, which ends after a minute without
// work, a loaded runner was killed with SIGKILL a minute after its load, for no reason a log
// could give.
class Forker {
 public:
  static Forker& Get() {
    static Forker* forker = new Forker;  // never destroyed: its thread outlives every caller
    return *forker;
  }
  template <typename F>
  auto Run(F fn) -> decltype(fn()) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      tasks_.emplace_back([&task] { task(); });
    }
    cv_.notify_one();
    return result.get();
  }

 private:
  Forker() { std::thread([this] { Loop(); }).detach(); }
  [[noreturn]] void Loop() {
    while (true) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !tasks_.empty(); });
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
};

using Clock = std::chrono::steady_clock;

std::string FormatSeconds(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g s", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

std::string DescribeWaitStatus(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* name = strsignal(sig);
    return "killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
  }
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  return "stopped";
}

// Waits for the child up to `grace`, then kills it. Returns the wait status.
int ReapWithin(pid_t pid, std::chrono::milliseconds grace) {
  int status = 0;
  auto deadline = Clock::now() + grace;
  while (true) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      CpuShare::ForServer().Forget(pid);
      return status;
    }
    if (r < 0 && errno != EINTR) return 0;  // already reaped elsewhere
    if (Clock::now() >= deadline) break;
    ::usleep(2000);
  }
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  CpuShare::ForServer().Forget(pid);
  return status;
}

bool IsTerminal(const Message& m) {
  return std::holds_alternative<DoneEvent>(m) || std::holds_alternative<ErrorEvent>(m) ||
         std::holds_alternative<EmbedResult>(m) || std::holds_alternative<TokenizeResult>(m) ||
         std::holds_alternative<HealthResult>(m) || std::holds_alternative<MemoryResult>(m) ||
         std::holds_alternative<PromptCacheReport>(m) || std::holds_alternative<SleepResult>(m) ||
         std::holds_alternative<WakeResult>(m);
}

uint64_t EventId(const Message& m) {
  return std::visit(
      [](const auto& e) -> uint64_t {
        if constexpr (requires { e.id; }) return e.id;
        else return 0;
      },
      m);
}

Status ErrorOf(const Message& m) {
  if (auto* e = std::get_if<ErrorEvent>(&m)) return Status(e->code, e->message);
  return Status::Internal("runner protocol: unexpected answer (type " + std::to_string(m.index()) + ")");
}

}  // namespace

std::string SelfExecutable() {
  // The running image itself, not the path it came from: if the binary is replaced while the
  // server runs (a rebuild, a package upgrade), runners still match the server's version.
  return "/proc/self/exe";
}

RunnerProcess::RunnerProcess(pid_t pid, int fd, std::string model_path, std::string name)
    : pid_(pid),
      fd_(fd),
      model_path_(std::move(model_path)),
      name_(name.empty() ? std::filesystem::path(model_path_).filename().string() : std::move(name)) {}

std::string RunnerProcess::Who() const { return "the runner for " + name_ + " (pid " + std::to_string(pid_) + ")"; }

namespace {

// The environment of a runner: the server's, with glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES
// when asked for (kept after any tunables already set), and `library_dir` first in
// LD_LIBRARY_PATH when given (llama.cpp's CUDA build, docs/gpu.md).
std::vector<std::string> RunnerEnvironment(bool huge_pages, const std::string& library_dir) {
  std::vector<std::string> env;
  bool tunables = false, library_path = false;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string var(*e);
    if (!library_dir.empty() && var.rfind("LD_LIBRARY_PATH=", 0) == 0) {
      const std::string rest = var.substr(std::strlen("LD_LIBRARY_PATH="));
      var = "LD_LIBRARY_PATH=" + library_dir + (rest.empty() ? "" : ":" + rest);
      library_path = true;
    }
    if (huge_pages && var.rfind("GLIBC_TUNABLES=", 0) == 0) {
      var += (var.size() > std::strlen("GLIBC_TUNABLES=") ? ":" : "") + std::string("glibc.malloc.hugetlb=1");
      tunables = true;
    }
    env.push_back(std::move(var));
  }
  if (huge_pages && !tunables) env.push_back("GLIBC_TUNABLES=glibc.malloc.hugetlb=1");
  if (!library_dir.empty() && !library_path) env.push_back("LD_LIBRARY_PATH=" + library_dir);
  // With a GPU the backends start only once the load request says which device the runner may
  // see (runner_main.cc, Engine::Load).
  if (!library_dir.empty()) env.push_back("RESIDENT_RUNNER_DEFER_BACKENDS=1");
  return env;
}

}  // namespace

Result<SpawnedRunner> RunnerProcess::Spawn(const std::string& executable, bool huge_pages,
                                           const std::string& library_dir) {
  return Forker::Get().Run(
      [&executable, huge_pages, &library_dir] { return SpawnHere(executable, huge_pages, library_dir); });
}

Result<SpawnedRunner> RunnerProcess::SpawnHere(const std::string& executable, bool huge_pages,
                                               const std::string& library_dir) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
    return Status::Internal(std::string("socketpair failed: ") + std::strerror(errno));
  }
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::string exe = executable;
  std::string fd_arg = "3";
  const int share_fd = CpuShare::ForServer().fd();
  const char* argv[] = {exe.c_str(), "runner", "--fd", fd_arg.c_str(), share_fd >= 0 ? "--cpu-share-fd" : nullptr, "4", nullptr};
  const std::vector<std::string> env_strings = RunnerEnvironment(huge_pages, library_dir);
  std::vector<const char*> envp;
  for (const std::string& e : env_strings) envp.push_back(e.c_str());
  envp.push_back(nullptr);
  // Closed by the child's exec (or its exit): Spawn returns once the child is the runner, not a
  // copy of this server. Until then its memory is this process's, and a cap measured on it (the
  // load's, Start) would count the server's pages as the runner's.
  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    ::close(sv[0]);
    ::close(sv[1]);
    return Status::Internal(std::string("pipe failed: ") + std::strerror(errno));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(sv[0]);
    ::close(sv[1]);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
    return Status::Internal(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(0);
    // Out of the way first (either may be 3 or 4 already), then into place; dup2's copies do
    // not carry FD_CLOEXEC.
    int sock = ::fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    int share = share_fd >= 0 ? ::fcntl(share_fd, F_DUPFD_CLOEXEC, 10) : -1;
    int exec_done = ::fcntl(exec_pipe[1], F_DUPFD_CLOEXEC, 10);
    ::dup2(sock, 3);
    if (share >= 0) ::dup2(share, 4);
    ::dup3(exec_done, 5, O_CLOEXEC);
    ::syscall(SYS_close_range, 6u, ~0u, 0u);  // no listening socket or client fd leaks in
    ::signal(SIGPIPE, SIG_IGN);
    ::execve(exe.c_str(), const_cast<char* const*>(argv), const_cast<char* const*>(envp.data()));
    const int error = errno;
    (void)!::write(5, &error, sizeof error);
    ::_exit(127);
  }
  ::close(sv[1]);
  ::close(exec_pipe[1]);
  int exec_error = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &exec_error, sizeof exec_error);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof exec_error)) {
    ::close(sv[0]);
    ReapWithin(pid, std::chrono::milliseconds(1000));
    return Status::Internal("could not start a runner (" + exe + "): " + std::strerror(exec_error));
  }
  return SpawnedRunner{pid, sv[0]};
}

void RunnerProcess::Discard(SpawnedRunner spawned) {
  if (spawned.fd >= 0) ::close(spawned.fd);  // the runner reads end of stream and exits
  if (spawned.pid > 0) ReapWithin(spawned.pid, std::chrono::milliseconds(1000));
}

Result<std::unique_ptr<RunnerProcess>> RunnerProcess::Start(const Options& options, const LoadRequest& requested,
                                                            const std::function<void(float)>& progress,
                                                            std::optional<SpawnedRunner> spare) {
  LoadRequest request = requested;
  request.memory_margin_bytes = options.min_memory_margin;
  request.template_timeout_ms =
      (options.health_timeout.count() > 0 ? options.health_timeout : kDefaultTemplateTimeout).count();
  request.prompt_cache_dir = options.prompt_cache_max_bytes > 0 ? options.prompt_cache_dir : "";
  request.prompt_cache_max_bytes = request.prompt_cache_dir.empty() ? 0 : options.prompt_cache_max_bytes;
  request.may_sleep = options.may_sleep;
  if (!spare) {
    auto spawned = Spawn(options.executable, options.huge_pages, options.library_dir);
    if (!spawned.ok()) return spawned.status();
    spare = *spawned;
  }
  const pid_t pid = spare->pid;
  std::unique_ptr<RunnerProcess> proc(new RunnerProcess(pid, spare->fd, request.model_path, request.model_name));
  proc->prompt_stats_ = options.prompt_cache_stats;
  const MemoryCap load_cap = CapWhileLoading(request.predicted_bytes, options.min_memory_margin);

  // Messages name the model as users do, not by its file (a store's blob path, sha256-...).
  const std::string shown = "model \"" + proc->name_ + "\"";
  if (Status st = WriteFrame(proc->fd_, request); !st.ok()) {
    proc->Close();
    return Status::Unavailable("could not start the runner for " + shown + ": " + st.message());
  }
  FrameReader reader(proc->fd_);
  auto stall_deadline = Clock::now() + options.load_timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(stall_deadline - Clock::now());
    if (options.load_timeout.count() > 0 && left.count() <= 0) {
      proc->Close();
      return Status::DeadlineExceeded("loading " + shown + " made no progress for " + FormatSeconds(options.load_timeout));
    }
    if (load_cap.enabled()) {
      const uint64_t rss = ProcessRssBytes(pid);
      if (rss > load_cap.bytes()) {
        std::string why = proc->Who() + " used " + FormatBytes(rss) + " of memory while loading, more than its cap of " +
                          load_cap.Describe() +
                          ", and was killed (raise RESIDENT_MEMORY_MARGIN if the prediction is wrong for this model)";
        ::kill(pid, SIGKILL);
        proc->Close();
        return Status::FailedPrecondition(why);
      }
    }
    // Without a cap the poll waits for the runner's next word (or the stall deadline); with one
    // it wakes every kMemorySampleEvery to look at its memory.
    int wait_ms = options.load_timeout.count() > 0 ? static_cast<int>(left.count()) : -1;
    if (load_cap.enabled()) {
      const int sample_ms = static_cast<int>(kMemorySampleEvery.count());
      wait_ms = wait_ms < 0 ? sample_ms : std::min(wait_ms, sample_ms);
    }
    pollfd pfd{proc->fd_, POLLIN, 0};
    int pr = ::poll(&pfd, 1, wait_ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) continue;
    auto msg = reader.Next();
    if (!msg.ok()) {
      int status = ReapWithin(pid, std::chrono::milliseconds(2000));
      {
        std::lock_guard<std::mutex> lock(proc->mu_);
        proc->reaped_ = true;
      }
      proc->Close();
      return Status::Unavailable("the runner for " + shown + " stopped while loading: " + DescribeWaitStatus(status));
    }
    if (auto* p = std::get_if<LoadProgressEvent>(&*msg)) {
      stall_deadline = Clock::now() + options.load_timeout;
      if (progress) progress(p->progress);
    } else if (auto* loaded = std::get_if<LoadedEvent>(&*msg)) {
      proc->facts_ = loaded->facts;
      break;
    } else if (auto* failed = std::get_if<LoadFailedEvent>(&*msg)) {
      proc->Close();
      return Status(failed->code, failed->message);
    } else if (auto* report = std::get_if<PromptCacheReport>(&*msg)) {
      proc->NotePromptCache(*report);
    }
  }
  proc->cap_ = CapOnceLoaded(request.predicted_bytes, proc->facts_.rss_bytes, proc->facts_.n_batch,
                             proc->facts_.n_vocab, options.min_memory_margin);
  proc->sampled_rss_ = proc->facts_.rss_bytes;
  // Only a loaded runner saves its prompts when closed (one that failed to load has none, and
  // nothing would read its answer).
  proc->prompt_cache_on_ = !request.prompt_cache_dir.empty();
  proc->prompt_save_timeout_ = options.prompt_save_timeout;
  proc->reader_ = std::thread([p = proc.get()] { p->ReadLoop(); });
  if (options.health_timeout.count() > 0 || proc->cap_.enabled()) {
    proc->watcher_ = std::thread([p = proc.get(), t = options.health_timeout] { p->WatchLoop(t); });
  }
  return proc;
}

RunnerProcess::~RunnerProcess() { Close(); }

void RunnerProcess::ReadLoop() {
  FrameReader reader(fd_);
  while (true) {
    auto msg = reader.Next();
    if (!msg.ok()) {
      if (closed_.load()) {
        MarkDead("the runner was stopped");
      } else {
        MarkDead(msg.status().code() == StatusCode::kUnavailable ? DeathReason()
                                                                  : "runner protocol error: " + msg.status().message());
      }
      return;
    }
    uint64_t id = EventId(*msg);
    if (auto* report = std::get_if<PromptCacheReport>(&*msg); report != nullptr && id == 0) {
      NotePromptCache(*report);  // unasked: a restore, entries found broken
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;  // an answer nobody waits for any more
    if (IsTerminal(*msg)) it->second->finished = true;
    it->second->events.push_back(std::move(*msg));
    cv_.notify_all();
  }
}

void RunnerProcess::WatchLoop(std::chrono::milliseconds timeout) {
  const auto ask_every =
      std::clamp(timeout / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(5000));
  const auto tick = cap_.enabled() && timeout.count() > 0 ? std::min(ask_every, kMemorySampleEvery)
                    : cap_.enabled()                      ? kMemorySampleEvery
                                                          : ask_every;
  uint64_t asked_id = 0;  // the health question outstanding (0: none)
  std::shared_ptr<Pending> asked;
  Clock::time_point asked_at{}, next_ask = Clock::now() + ask_every;
  std::chrono::milliseconds stalled{0};
  std::string doing;
  std::unique_lock<std::mutex> lock(watch_mu_);
  while (!watch_cv_.wait_for(lock, tick, [&] { return watch_stop_; })) {
    lock.unlock();
    RunnerReading reading;
    if (cap_.enabled()) {
      reading.rss = ProcessRssBytes(pid_);
      if (reading.rss > 0) sampled_rss_ = reading.rss;
    }
    bool gone = false;
    if (timeout.count() > 0) {
      const auto now = Clock::now();
      if (!asked && now >= next_ask) {
        HealthRequest h{NextId()};
        auto pending = Send(h.id, h);
        if (pending.ok()) {
          asked = *pending;
          asked_id = h.id;
          // The wait is counted from when the question went out: a large request written
          // before it (write_mu_) is not the runner's silence.
          asked_at = Clock::now();
        } else {
          gone = true;  // died on its own (the reader says why) or stopped
        }
      }
      if (asked) {
        if (auto answer = TryNextEvent(asked_id, asked)) {
          if (auto* h = std::get_if<HealthResult>(&*answer)) {
            stalled = std::chrono::milliseconds(h->busy ? h->stalled_ms : 0);
            doing = h->doing;
          }
          asked.reset();
          next_ask = now + ask_every;
        } else if (dead_) {
          gone = true;
        } else {
          reading.unanswered = std::chrono::duration_cast<std::chrono::milliseconds>(now - asked_at);
        }
      }
      reading.stalled = stalled;
    }
    const RunnerVerdict verdict = gone ? RunnerVerdict::kFine : JudgeRunner(reading, cap_, timeout);
    lock.lock();
    if (watch_stop_ || gone || dead_) break;
    if (verdict != RunnerVerdict::kFine) {
      Kill(Verdict(verdict, reading, timeout, doing));
      break;
    }
  }
  if (asked) Forget(asked_id);
}

std::string RunnerProcess::Verdict(RunnerVerdict verdict, const RunnerReading& reading,
                                   std::chrono::milliseconds timeout, const std::string& doing) const {
  switch (verdict) {
    case RunnerVerdict::kOverCap:
      return Who() + " used " + FormatBytes(reading.rss) + " of memory, more than its cap of " + cap_.Describe() +
             ", and was killed";
    case RunnerVerdict::kNotAnswering:
      return Who() + " stopped answering (no health answer in " + FormatSeconds(timeout) + ") and was killed";
    case RunnerVerdict::kNoProgress:
      return Who() + " made no progress for " + FormatSeconds(reading.stalled) +
             (doing.empty() ? std::string() : " while " + doing) +
             " and was killed (a request that is stuck cannot be cancelled)";
    case RunnerVerdict::kFine:
      break;
  }
  return {};
}

void RunnerProcess::Kill(const std::string& why) {
  std::lock_guard<std::mutex> state(mu_);
  if (reaped_) return;
  if (death_.empty()) death_ = why;
  ::kill(pid_, SIGKILL);  // not yet reaped, so the pid is still this child's
}

std::string RunnerProcess::DeathReason() {
  int status = 0;
  bool reap = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reap = !reaped_;
    reaped_ = true;
  }
  if (reap) {
    status = ReapWithin(pid_, std::chrono::milliseconds(1000));
    std::lock_guard<std::mutex> lock(mu_);
    wait_status_ = status;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == kExitMemoryCap) {
    return Who() + " reached its memory cap of " + cap_.Describe() +
           " (an allocation beyond it failed) and stopped";
  }
  return Who() + " stopped unexpectedly: " + DescribeWaitStatus(status);
}

std::string RunnerProcess::exit_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dead_ ? death_ : std::string();
}

void RunnerProcess::MarkDead(const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  if (death_.empty()) death_ = why;  // the first reason is the true one
  dead_ = true;
  cv_.notify_all();
}

Result<std::shared_ptr<RunnerProcess::Pending>> RunnerProcess::Send(uint64_t id, const Message& request) {
  auto pending = std::make_shared<Pending>();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (dead_) return Status::Unavailable(death_);
    pending_[id] = pending;
  }
  Status st;
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    st = WriteFrame(fd_, request);
  }
  if (!st.ok()) {
    Forget(id);
    std::lock_guard<std::mutex> lock(mu_);
    return Status::Unavailable(death_.empty() ? "the runner is gone: " + st.message() : death_);
  }
  return pending;
}

Result<Message> RunnerProcess::NextEvent(uint64_t id, const std::shared_ptr<Pending>& pending,
                                         Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  auto ready = [&] { return !pending->events.empty() || dead_; };
  if (deadline == Clock::time_point::max()) {
    cv_.wait(lock, ready);
  } else if (!cv_.wait_until(lock, deadline, ready)) {
    pending_.erase(id);
    return Status::DeadlineExceeded("the runner did not answer in time");
  }
  if (!pending->events.empty()) {
    Message m = std::move(pending->events.front());
    pending->events.pop_front();
    if (pending->events.empty() && pending->finished) pending_.erase(id);
    return m;
  }
  pending_.erase(id);
  return Status::Unavailable(death_);
}

std::optional<Message> RunnerProcess::TryNextEvent(uint64_t id, const std::shared_ptr<Pending>& pending) {
  std::lock_guard<std::mutex> lock(mu_);
  if (pending->events.empty()) return std::nullopt;
  Message m = std::move(pending->events.front());
  pending->events.pop_front();
  if (pending->events.empty() && pending->finished) pending_.erase(id);
  return m;
}

void RunnerProcess::Forget(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  pending_.erase(id);
}

void RunnerProcess::SendCancel(uint64_t id) {
  std::lock_guard<std::mutex> lock(write_mu_);
  (void)WriteFrame(fd_, CancelRequest{id});  // a dead runner is noticed by the reader
}

Result<DoneEvent> RunnerProcess::Generate(const GenerateRequest& request,
                                          const std::function<bool(std::string_view)>& on_text, std::stop_token stop) {
  return GenerateEvents(request, [&](const TokenEvent& t) { return t.text.empty() || on_text(t.text); }, stop);
}

Result<DoneEvent> RunnerProcess::GenerateEvents(const GenerateRequest& request,
                                                const std::function<bool(const TokenEvent&)>& on_event,
                                                std::stop_token stop) {
  WorkInFlight counted(working_);
  GenerateRequest r = request;
  r.id = NextId();
  auto pending = Send(r.id, r);
  if (!pending.ok()) return pending.status();
  std::atomic<bool> cancelled{false};
  auto cancel = [&] {
    if (!cancelled.exchange(true)) SendCancel(r.id);
  };
  // Runs on the thread that requests the stop (at once if it already was), after the request
  // was sent: the runner then knows the id.
  std::stop_callback on_stop(stop, cancel);
  while (true) {
    auto ev = NextEvent(r.id, *pending, Clock::time_point::max());
    if (!ev.ok()) return ev.status();
    if (auto* t = std::get_if<TokenEvent>(&*ev)) {
      if (!cancelled.load() && !on_event(*t)) cancel();
    } else if (auto* d = std::get_if<DoneEvent>(&*ev)) {
      if (cancelled.load()) return Status::Cancelled("request cancelled");
      return std::move(*d);
    } else {
      return ErrorOf(*ev);
    }
  }
}

Result<EmbedResult> RunnerProcess::Embed(const EmbedRequest& request, std::stop_token stop) {
  WorkInFlight counted(working_);
  EmbedRequest r = request;
  r.id = NextId();
  auto pending = Send(r.id, r);
  if (!pending.ok()) return pending.status();
  std::stop_callback on_stop(stop, [&] { SendCancel(r.id); });
  auto ev = NextEvent(r.id, *pending, Clock::time_point::max());
  if (!ev.ok()) return ev.status();
  if (auto* e = std::get_if<EmbedResult>(&*ev)) return std::move(*e);
  return ErrorOf(*ev);
}

Result<std::vector<int32_t>> RunnerProcess::Tokenize(std::string_view text, bool add_special) {
  TokenizeRequest r{NextId(), std::string(text), add_special};
  auto pending = Send(r.id, r);
  if (!pending.ok()) return pending.status();
  auto ev = NextEvent(r.id, *pending, Clock::time_point::max());
  if (!ev.ok()) return ev.status();
  if (auto* t = std::get_if<TokenizeResult>(&*ev)) return std::move(t->tokens);
  return ErrorOf(*ev);
}

Result<MemoryResult> RunnerProcess::Memory() {
  MemoryRequest r{NextId()};
  auto pending = Send(r.id, r);
  if (!pending.ok()) return pending.status();
  auto ev = NextEvent(r.id, *pending, Clock::now() + std::chrono::seconds(5));
  if (!ev.ok()) return ev.status();
  if (auto* m = std::get_if<MemoryResult>(&*ev)) return *m;
  return ErrorOf(*ev);
}

Status RunnerProcess::Health(std::chrono::milliseconds timeout) {
  HealthRequest r{NextId()};
  auto pending = Send(r.id, r);
  if (!pending.ok()) return pending.status();
  auto ev = NextEvent(r.id, *pending, Clock::now() + timeout);
  if (!ev.ok()) return ev.status();
  if (std::holds_alternative<HealthResult>(*ev)) return Status::Ok();
  return ErrorOf(*ev);
}

Status RunnerProcess::SavePromptCache(std::chrono::milliseconds timeout) {
  if (!prompt_cache_on_) return Status::Ok();
  SavePromptRequest r{NextId()};
  auto pending = Send(r.id, r);
  if (!pending.ok()) return pending.status();
  auto ev = NextEvent(r.id, *pending, Clock::now() + timeout);
  if (!ev.ok()) return ev.status();
  if (auto* report = std::get_if<PromptCacheReport>(&*ev)) {
    NotePromptCache(*report);
    return Status::Ok();
  }
  return ErrorOf(*ev);
}

Result<SleepResult> RunnerProcess::Sleep() {
  SleepRequest r{NextId()};
  auto pending = Send(r.id, r);
  if (!pending.ok()) return pending.status();
  // No deadline of its own: a runner that hangs is the watchdog's to kill.
  auto ev = NextEvent(r.id, *pending, Clock::time_point::max());
  if (!ev.ok()) return ev.status();
  if (auto* m = std::get_if<SleepResult>(&*ev)) {
    if (m->rss_bytes > 0) sampled_rss_ = m->rss_bytes;  // the latest sample predates the sleep
    spdlog::info("{}: asleep, its context {} ({} of private memory left)", name_,
                 m->in_place ? "kept and its pages given back" : "freed", FormatBytes(m->rss_anon_bytes));
    return *m;
  }
  return ErrorOf(*ev);
}

void RunnerProcess::NotePromptCache(const PromptCacheReport& report) const {
  if (prompt_stats_ != nullptr) prompt_stats_->Add(report);
  for (const std::string& note : report.notes) spdlog::info("{}: prompt cache: {}", name_, note);
  for (const std::string& warning : report.warnings) spdlog::warn("{}: prompt cache: {}", name_, warning);
}

Result<WakeResult> RunnerProcess::Wake() {
  WakeRequest r{NextId()};
  auto pending = Send(r.id, r);
  if (!pending.ok()) return pending.status();
  auto ev = NextEvent(r.id, *pending, Clock::time_point::max());
  if (!ev.ok()) return ev.status();
  if (auto* w = std::get_if<WakeResult>(&*ev)) return *w;
  return ErrorOf(*ev);
}

void RunnerProcess::Close() {
  // Before an unload, the prompt prefixes the runner holds go to the prompt cache: only when it is
  // idle, so that a server stopping with requests in flight does not wait for them.
  if (prompt_cache_on_ && !closed_.load() && !dead_.load() && working_.load() == 0 &&
      reader_.get_id() != std::this_thread::get_id()) {
    if (Status st = SavePromptCache(prompt_save_timeout_); !st.ok()) {
      spdlog::warn("{}: prompt cache: not saved before the unload: {}", name_, st.message());
    }
  }
  if (closed_.exchange(true)) {
    if (reader_.joinable() && reader_.get_id() != std::this_thread::get_id()) reader_.join();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(watch_mu_);
    watch_stop_ = true;
  }
  watch_cv_.notify_all();
  bool reap = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    reap = !reaped_;
    reaped_ = true;
  }
  if (reap) {
    {
      std::lock_guard<std::mutex> lock(write_mu_);
      (void)WriteFrame(fd_, ShutdownRequest{});
    }
    int status = ReapWithin(pid_, std::chrono::milliseconds(2000));
    std::lock_guard<std::mutex> lock(mu_);
    wait_status_ = status;
  }
  ::shutdown(fd_, SHUT_RDWR);
  if (reader_.joinable()) reader_.join();
  if (watcher_.joinable()) watcher_.join();  // before the fd it writes to is closed
  ::close(fd_);
  MarkDead("the runner was stopped");
}

ProcessRunnerFactory::ProcessRunnerFactory(RunnerProcess::Options options, bool keep_spare)
    : options_(std::move(options)), keep_spare_(keep_spare) {
  if (keep_spare_) {
    want_spare_ = true;
    refill_ = std::thread([this] { RefillLoop(); });
  }
}

ProcessRunnerFactory::~ProcessRunnerFactory() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (refill_.joinable()) refill_.join();
  if (spare_) RunnerProcess::Discard(*std::exchange(spare_, std::nullopt));
}

void ProcessRunnerFactory::RefillLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait(lock, [&] { return stopping_ || (want_spare_ && !spare_); });
    if (stopping_) break;
    // Starting a runner costs a core for a moment (exec, loading the backends): let the load
    // that used the last spare finish its first request, then wait for a quiet moment (no load
    // and no runner computing), so that the new process competes with nobody. A server that is
    // never quiet gets its spare after kSpareMaxWait all the same.
    if (cv_.wait_for(lock, kSpareDelay, [&] { return stopping_; })) break;
    const auto give_up = std::chrono::steady_clock::now() + kSpareMaxWait;
    while (!stopping_ && !SpareMayStart(loading_.size(), CpuShare::ForServer().BusyRunners()) &&
           std::chrono::steady_clock::now() < give_up) {
      cv_.wait_for(lock, kSpareQuietPoll);
    }
    if (stopping_) break;
    lock.unlock();
    auto spawned = RunnerProcess::Spawn(options_.executable, options_.huge_pages, options_.library_dir);
    lock.lock();
    if (spawned.ok()) {
      spare_ = *spawned;
    } else {
      want_spare_ = false;  // fork failing now will fail again; loads spawn their own
    }
  }
}

Result<std::unique_ptr<ModelRunner>> ProcessRunnerFactory::Start(const LoadRequest& request,
                                                                 const std::function<void(float)>& progress) {
  auto start_once = [&](std::optional<SpawnedRunner> spawned) -> Result<std::unique_ptr<RunnerProcess>> {
    if (!spawned) {
      auto fresh = RunnerProcess::Spawn(options_.executable, options_.huge_pages, options_.library_dir);
      if (!fresh.ok()) return fresh.status();
      spawned = *fresh;
    }
    // A pidfd names this very process even after it is reaped, so AbortLoads can never signal
    // a stranger that reused the pid.
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, spawned->pid, 0));
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (aborted_) {
        if (pidfd >= 0) ::close(pidfd);
        RunnerProcess::Discard(*spawned);
        return Status::Unavailable("the server is shutting down");
      }
      loading_[spawned->pid] = pidfd;
    }
    const pid_t pid = spawned->pid;
    auto proc = RunnerProcess::Start(options_, request, progress, spawned);
    bool aborted = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      loading_.erase(pid);
      aborted = aborted_;
    }
    if (pidfd >= 0) ::close(pidfd);
    if (aborted && !proc.ok()) return Status::Unavailable("the server is shutting down");
    return proc;
  };
  std::optional<SpawnedRunner> spare;
  {
    std::lock_guard<std::mutex> lock(mu_);
    spare = std::exchange(spare_, std::nullopt);
  }
  cv_.notify_all();  // refill
  bool used_spare = spare.has_value();
  auto proc = start_once(spare);
  if (!proc.ok() && used_spare && proc.status().code() == StatusCode::kUnavailable) {
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_) return proc.status();
  }
  if (!proc.ok() && used_spare && proc.status().code() == StatusCode::kUnavailable) {
    proc = start_once(std::nullopt);  // the spare had died: start afresh
  }
  if (!proc.ok()) return proc.status();
  return std::unique_ptr<ModelRunner>(std::move(proc).value());
}

void ProcessRunnerFactory::AbortLoads() {
  std::lock_guard<std::mutex> lock(mu_);
  aborted_ = true;
  for (const auto& [pid, pidfd] : loading_) {
    if (pidfd >= 0) ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  }
}

}  // namespace resident::runner
