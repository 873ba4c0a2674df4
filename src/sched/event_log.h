// The residency event log: every load, failed load, unload and eviction, with its reason,
// duration and bytes. The scheduler appends; readers (GET /api/events) take the events after a
// sequence number, or wait for new ones. Bounded: the oldest events are dropped.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/keep_alive.h"
#include "sched/residency_stats.h"

namespace resident::sched {

struct ResidencyEvent {
  enum class Type {
    kLoad,        // a model finished loading
    kLoadFailed,  // a load failed (error)
    kUnload,      // unloaded: expired, manual, reload, exited
    kEvict,       // unloaded to make room for another model: memory, count
    kPrewarmHit,  // the request a prewarm was for found the model loaded
    kPrewarmMiss, // a prewarm did not serve a request warm (see `explanation`)
    kSleep,       // a model was put to sleep (its context freed; sleep_reason)
    kWake,        // a request woke a sleeping model (duration: how long the wake took)
  };
  uint64_t seq = 0;  // set by EventLog::Append: 1, 2, 3...
  WallTime time{};
  Type type = Type::kLoad;
  std::string model;
  std::optional<UnloadReason> reason;  // unload, evict
  std::string error;                   // load_failed
  Duration duration{0};                // load, load_failed: how long the load took
  uint64_t bytes = 0;                  // load: measured (0: not measured); unload, evict: bytes freed
  uint64_t predicted_bytes = 0;        // load, load_failed
  std::optional<Duration> idle;        // unload, evict: since its last request ended
  std::optional<KeepAlive> keep_alive; // unload (expired): the keep_alive that ran out
  std::string for_model;               // evict: the model it made room for
  pid_t pid = 0;                       // load: the runner process
  std::string origin;                  // load: "" (a request), "prewarm" or "preload"
  std::string explanation;             // why, when "auto" decided (the learner's reason), a miss's cause, or
                                       // why a runner is gone (kExited: its ModelRunner::exit_reason)
  // Sleeping. sleep: `bytes` is what it holds asleep (measured), `awake_bytes` what it held before,
  // `keep_alive` its sleep_after (idle), `for_model` the model it made room for (memory);
  // wake: `bytes` is what it holds awake, `asleep_bytes` what it held asleep.
  std::optional<SleepReason> sleep_reason;
  uint64_t awake_bytes = 0;
  uint64_t asleep_bytes = 0;
};

// "load", "load_failed", "unload", "evict", "prewarm_hit", "prewarm_miss", "sleep", "wake".
const char* TypeName(ResidencyEvent::Type type);

// The event as one line for the server log, e.g.
//   loaded a:latest in 2.31 s (1.6 GB measured, predicted 1.5 GB, pid 4242)
//   unloaded b:latest (1.6 GB, idle 4m0s) to make room for a:latest
//   unloaded a:latest (1.6 GB, expired after keep_alive 5m0s)
//   put a:latest to sleep (1.6 GB -> 912 MB, idle 10m0s after sleep_after 10m0s)
//   woke a:latest in 0.13 s (912 MB -> 1.6 GB)
std::string Describe(const ResidencyEvent& event);

// Thread-safe.
class EventLog {
 public:
  explicit EventLog(size_t capacity = 1000);

  // Stores the event with the next sequence number (returned) and wakes every waiter. When full,
  // the oldest event is dropped.
  uint64_t Append(ResidencyEvent event);

  // The events with seq > since still kept, oldest first. since = 0: all of them.
  std::vector<ResidencyEvent> Since(uint64_t since) const;

  // Like Since, but when there is none yet, blocks (real time, not the scheduler's clock) until
  // one is appended, the log is closed, or `timeout` passes; then returns what there is
  // (possibly nothing).
  std::vector<ResidencyEvent> WaitSince(uint64_t since, std::chrono::milliseconds timeout) const;

  // The sequence number of the newest event (0: none yet).
  uint64_t last_seq() const;

  // Wakes every waiter for good: the server is stopping. Appends still work.
  void Close();
  bool closed() const;

 private:
  std::vector<ResidencyEvent> SinceLocked(uint64_t since) const;

  const size_t capacity_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::deque<ResidencyEvent> events_;  // guarded by mu_; consecutive seqs, oldest first
  uint64_t next_seq_ = 1;              // guarded by mu_
  bool closed_ = false;                // guarded by mu_
};

}  // namespace resident::sched
