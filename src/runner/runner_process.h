// RunnerProcess: the server's handle on one runner child process (`resident runner --fd 3`),
// speaking the runner protocol over a socketpair. A crash, abort() or kill of the child fails the
// requests in flight with kUnavailable and a message naming the signal; the server lives on.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "runner/model_runner.h"
#include "runner/prompt_cache_stats.h"
#include "runner/runner_limits.h"

namespace resident::runner {

// A runner process that has started (executable mapped, libraries linked, llama.cpp backends
// loaded) and waits for its load request on `fd`.
struct SpawnedRunner {
  pid_t pid = -1;
  int fd = -1;
};

class RunnerProcess final : public ModelRunner {
 public:
  struct Options {
    std::string executable;                          // the resident binary
    std::chrono::milliseconds load_timeout{300000};  // a stall timer, reset by load progress
    // A loaded runner must answer a health check within this time (asked every quarter of it,
    // at most every 5 s), or it is taken as hung; one whose busy worker goes this long without
    // progress is stuck (runner_limits.h). Either is killed and its requests fail with a message
    // saying so. It is also the deadline of a chat template's render (template_sandbox.h).
    // 0: no health checks (and renders get kDefaultTemplateTimeout).
    std::chrono::milliseconds health_timeout{20000};
    // The least margin of a runner's memory cap above its predicted footprint (runner_limits.h).
    uint64_t min_memory_margin = kDefaultMinMemoryMargin;
    // Runners ask for transparent huge pages for their large allocations (glibc's
    // glibc.malloc.hugetlb=1 tunable in their environment: malloc madvises its mmapped chunks,
    // i.e. the KV cache and compute buffers, MADV_HUGEPAGE). Creating a context then faults 2 MiB
    // pages instead of 4 KiB ones. No effect where the kernel's THP mode is "never".
    bool huge_pages = false;
    // Models may be put to sleep (a sleep_after is set): runners sleep in place (Engine::Sleep).
    bool may_sleep = false;
    // Searched first for llama.cpp's libraries (LD_LIBRARY_PATH): the CUDA build's folder on a
    // machine with a GPU (docs/gpu.md); empty: the build's own (its RUNPATH).
    std::string library_dir;
    // The prompt cache (prompt_cache.h): its folder (empty: off) and size, given to every runner,
    // and where its reports are counted (not owned; nullptr: not counted). Close saves the idle
    // runner's prompt prefixes there before it stops the runner, waiting up to prompt_save_timeout.
    std::string prompt_cache_dir;
    uint64_t prompt_cache_max_bytes = 0;
    PromptCacheStats* prompt_cache_stats = nullptr;
    std::chrono::milliseconds prompt_save_timeout{60000};
  };
  static constexpr std::chrono::milliseconds kDefaultTemplateTimeout{20000};

  // Spawns the child, sends the load request and waits for the model to load. Errors: the load
  // failure as the runner reported it (kNotFound, kInvalidArgument...), kDeadlineExceeded when
  // the load stalled longer than load_timeout, kUnavailable when the child died while loading,
  // kFailedPrecondition when it used more memory than its cap while loading (the request's
  // predicted_bytes; 0: no cap) and was killed.
  // `spare`: a process started earlier with Spawn, used instead of starting one now.
  static Result<std::unique_ptr<RunnerProcess>> Start(const Options& options, const LoadRequest& request,
                                                      const std::function<void(float)>& progress,
                                                      std::optional<SpawnedRunner> spare = std::nullopt);
  // Starts a runner process that waits for a load request (`huge_pages`: see Options), forked by
  // a thread that lives as long as this process (its parent-death signal follows that thread).
  // Errors: kInternal when fork fails.
  static Result<SpawnedRunner> Spawn(const std::string& executable, bool huge_pages = false,
                                     const std::string& library_dir = "");
  // Ends a spawned runner that will not be used.
  static void Discard(SpawnedRunner spawned);
  ~RunnerProcess() override;

  Result<DoneEvent> Generate(const GenerateRequest& request, const std::function<bool(std::string_view)>& on_text,
                             std::stop_token stop) override;
  Result<DoneEvent> GenerateEvents(const GenerateRequest& request, const std::function<bool(const TokenEvent&)>& on_event,
                                   std::stop_token stop) override;
  Result<EmbedResult> Embed(const EmbedRequest& request, std::stop_token stop) override;
  Result<std::vector<int32_t>> Tokenize(std::string_view text, bool add_special) override;
  Result<MemoryResult> Memory() override;
  Status Health(std::chrono::milliseconds timeout) override;
  uint64_t SampledRssBytes() const override { return sampled_rss_.load(); }
  // The cap the watchdog holds the runner to (disabled without a prediction).
  const MemoryCap& memory_cap() const { return cap_; }

  const ModelFacts& facts() const override { return facts_; }
  pid_t pid() const override { return pid_; }
  bool alive() const override { return !dead_.load(); }
  std::string exit_reason() const override;
  // Saves the prompt cache (when on and the runner is alive and idle), then stops the runner.
  void Close() override;
  Status SavePromptCache(std::chrono::milliseconds timeout) override;
  Result<SleepResult> Sleep() override;
  Result<WakeResult> Wake() override;

 private:
  // Spawn's work, on the calling thread.
  static Result<SpawnedRunner> SpawnHere(const std::string& executable, bool huge_pages,
                                         const std::string& library_dir);
  struct Pending {
    std::deque<Message> events;  // guarded by RunnerProcess::mu_
    bool finished = false;       // guarded by mu_: a terminal event arrived
  };

  RunnerProcess(pid_t pid, int fd, std::string model_path, std::string name);
  void ReadLoop();
  // The watchdog: samples the runner's resident memory every kMemorySampleEvery (with a cap) and
  // asks for a health answer every quarter of `timeout` (when not 0), without waiting for it;
  // kills the runner as JudgeRunner says.
  void WatchLoop(std::chrono::milliseconds timeout);
  // Kills the runner, unless already reaped, with `why` as the reason its requests fail with.
  void Kill(const std::string& why);
  // The reason for each verdict but kFine.
  std::string Verdict(RunnerVerdict verdict, const RunnerReading& reading, std::chrono::milliseconds timeout,
                      const std::string& doing) const;
  std::string Who() const;  // "the runner for t1:latest (pid 123)"
  void MarkDead(const std::string& why);
  std::string DeathReason();
  uint64_t NextId() { return next_id_.fetch_add(1); }
  // Registers a pending request and sends it. On failure the pending entry is removed.
  Result<std::shared_ptr<Pending>> Send(uint64_t id, const Message& request);
  // Waits for the next event of a pending request. Errors: kUnavailable (with the reason) when
  // the runner died, kDeadlineExceeded when the deadline passed.
  Result<Message> NextEvent(uint64_t id, const std::shared_ptr<Pending>& pending,
                            std::chrono::steady_clock::time_point deadline);
  // The next event if one is there (nullopt: none yet, or the runner died).
  std::optional<Message> TryNextEvent(uint64_t id, const std::shared_ptr<Pending>& pending);
  void Forget(uint64_t id);
  // Asks the runner to stop request `id` (it answers kCancelled, or ends it if it was done).
  void SendCancel(uint64_t id);
  // Counts a prompt cache report and logs its lines.
  void NotePromptCache(const PromptCacheReport& report) const;

  const pid_t pid_;
  const int fd_;
  const std::string model_path_;
  const std::string name_;  // the model's name for messages (the file's name when none was given)
  ModelFacts facts_;  // constant after Start
  MemoryCap cap_;     // constant after Start
  std::atomic<uint64_t> sampled_rss_{0};
  bool prompt_cache_on_ = false;                   // constant after Start
  std::chrono::milliseconds prompt_save_timeout_{0};  // constant after Start
  PromptCacheStats* prompt_stats_ = nullptr;       // constant after Start (not owned)
  // Generations and embeddings in flight (Close saves the prompt cache only when there are none).
  std::atomic<int> working_{0};
  struct WorkInFlight {
    std::atomic<int>& n;
    explicit WorkInFlight(std::atomic<int>& count) : n(count) { ++n; }
    ~WorkInFlight() { --n; }
  };

  std::mutex write_mu_;  // serializes frames on fd_
  std::thread reader_;
  std::thread watcher_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool watch_stop_ = false;  // guarded by watch_mu_
  std::atomic<uint64_t> next_id_{1};
  std::atomic<bool> dead_{false};
  std::atomic<bool> closed_{false};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, std::shared_ptr<Pending>> pending_;  // guarded by mu_
  std::string death_;                                      // guarded by mu_
  bool reaped_ = false;                                    // guarded by mu_
  int wait_status_ = 0;                                    // guarded by mu_
};

// When a used spare runner is replaced: kSpareDelay after it was used, at a quiet moment
// (SpareMayStart, checked every kSpareQuietPoll), or after kSpareMaxWait more if the server is
// never quiet.
inline constexpr std::chrono::milliseconds kSpareDelay{1000};
inline constexpr std::chrono::milliseconds kSpareQuietPoll{50};
inline constexpr std::chrono::milliseconds kSpareMaxWait{10000};
// Quiet: no load in progress and no runner computing.
inline bool SpareMayStart(size_t loads_in_progress, int busy_runners) {
  return loads_in_progress == 0 && busy_runners == 0;
}

// Starts runner processes. With keep_spare, one started process always waits in reserve, so a
// cold start skips exec, dynamic linking and backend loading (tens of milliseconds); it costs
// one idle process of about 15 MB. A used spare is replaced in the background (see kSpareDelay).
class ProcessRunnerFactory final : public RunnerFactory {
 public:
  explicit ProcessRunnerFactory(RunnerProcess::Options options, bool keep_spare = false);
  ~ProcessRunnerFactory() override;
  Result<std::unique_ptr<ModelRunner>> Start(const LoadRequest& request,
                                             const std::function<void(float)>& progress) override;
  // Kills every runner still loading (their Start fails with kUnavailable) and makes later
  // Starts fail at once: the server is stopping and will not wait for a load to finish.
  void AbortLoads();

 private:
  void RefillLoop();

  const RunnerProcess::Options options_;
  const bool keep_spare_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<SpawnedRunner> spare_;  // guarded by mu_
  bool want_spare_ = false;             // guarded by mu_
  bool stopping_ = false;               // guarded by mu_
  bool aborted_ = false;                // guarded by mu_: AbortLoads was called
  std::map<pid_t, int> loading_;        // guarded by mu_: runners loading now -> their pidfd
  std::thread refill_;
};

// The executable to start runners from: the running image (/proc/self/exe).
std::string SelfExecutable();

}  // namespace resident::runner
