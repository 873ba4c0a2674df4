// Time behind an interface, so the scheduler is tested with a fake clock and never sleeps.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <type_traits>
#include <vector>

namespace resident {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

// A duration in seconds, with its fraction: for logs, JSON and metrics.
inline double ToSeconds(Duration d) { return std::chrono::duration<double>(d).count(); }

// t + d, saturating at the time point's range instead of overflowing (signed overflow is
// undefined behaviour). A keep_alive may be any duration up to 2^63-1 ns (about 292 years, as in
// Ollama, whose time.Time never overflows), while both clocks count nanoseconds in an int64 from
// an epoch in the past: "now + keep_alive" must saturate. A saturated monotonic time is never
// reached; a saturated wall time reads as 2262-04-11T23:47:16.854775807Z.
template <typename Clk>
std::chrono::time_point<Clk, Duration> SaturatingAdd(std::chrono::time_point<Clk, Duration> t, Duration d) {
  using Tp = std::chrono::time_point<Clk, Duration>;
  const Duration::rep a = t.time_since_epoch().count();
  Duration::rep sum;
  if (__builtin_add_overflow(a, d.count(), &sum)) return d > Duration::zero() ? Tp::max() : Tp::min();
  return Tp(Duration(sum));
}

// a - b, saturating at Duration's range.
template <typename Clk>
Duration SaturatingSub(std::chrono::time_point<Clk, Duration> a, std::chrono::time_point<Clk, Duration> b) {
  Duration::rep diff;
  if (__builtin_sub_overflow(a.time_since_epoch().count(), b.time_since_epoch().count(), &diff)) {
    return a > b ? Duration::max() : Duration::min();
  }
  return Duration(diff);
}

static_assert(std::is_same_v<WallTime::duration, Duration>, "SaturatingAdd assumes nanosecond clocks");

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;       // monotonic: timers and durations
  virtual WallTime WallNow() const = 0;    // for reporting (expires_at, created_at)
  // Converts a monotonic time to wall time, as reported to users. Saturates (see SaturatingAdd):
  // a monotonic time beyond the wall clock's range gives WallTime::max().
  WallTime ToWall(TimePoint t) const { return SaturatingAdd(WallNow(), SaturatingSub(t, Now())); }
  // Blocks on cv (lock held on entry and on return) until it is notified or this clock reaches
  // `deadline`. Returns false when the deadline has passed, true when woken before it (spurious
  // wake-ups included). Any deadline is valid, TimePoint::max() included (never times out).
  virtual bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         TimePoint deadline) const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  WallTime WallNow() const override { return std::chrono::system_clock::now(); }
  bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) const override {
    if (deadline == TimePoint::max()) {
      cv.wait(lock);
      return true;
    }
    // wait_until on the steady clock itself: no now() + duration that could overflow.
    return cv.wait_until(lock, deadline) == std::cv_status::no_timeout && Now() < deadline;
  }
};

// A clock that moves only when told to. Thread-safe. WaitUntil blocks until Advance() reaches
// the deadline (or a notification), so a thread that waits on this clock (the scheduler's timer
// thread) is driven by the test, which can then await it with AwaitWaiter(): no sleeping.
// Advance() must not run concurrently with destroying an object that waits on this clock.
class FakeClock final : public Clock {
 public:
  TimePoint Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  WallTime WallNow() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return SaturatingAdd(wall_, now_ - TimePoint());
  }
  void Advance(Duration d) {
    std::vector<Waiter> waiters;
    {
      std::lock_guard<std::mutex> lock(mu_);
      now_ = SaturatingAdd(now_, d);
      waiters = waiters_;
    }
    // Under the waiter's own mutex: it is either not yet registered (and will see the new time)
    // or inside cv.wait (and gets this notification). The clock's mutex is not held here: the
    // waiter takes it while holding its own.
    for (const Waiter& w : waiters) {
      std::lock_guard<std::mutex> lock(*w.mu);
      w.cv->notify_all();
    }
  }
  bool WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 TimePoint deadline) const override {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (now_ >= deadline) return false;
      waiters_.push_back({lock.mutex(), &cv, now_});
      waiter_cv_.notify_all();
    }
    cv.wait(lock);
    std::lock_guard<std::mutex> g(mu_);
    for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
      if (it->cv == &cv && it->mu == lock.mutex()) {
        waiters_.erase(it);
        break;
      }
    }
    return now_ < deadline;
  }
  // Blocks until some thread waits in WaitUntil having seen the current time: after Advance(),
  // a timer thread has then woken, done what the new time asked of it, and gone back to sleep.
  void AwaitWaiter() const {
    std::unique_lock<std::mutex> lock(mu_);
    waiter_cv_.wait(lock, [&] {
      return std::any_of(waiters_.begin(), waiters_.end(), [&](const Waiter& w) { return w.since == now_; });
    });
  }

 private:
  struct Waiter {
    std::mutex* mu;
    std::condition_variable* cv;
    TimePoint since;  // the time it saw when it began to wait
  };
  mutable std::mutex mu_;
  mutable std::condition_variable waiter_cv_;
  mutable std::vector<Waiter> waiters_;  // guarded by mu_
  TimePoint now_{std::chrono::hours(1)};
  WallTime wall_{std::chrono::seconds(1'700'000'000)};
};

}  // namespace resident
