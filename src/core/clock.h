// Time behind an interface, so the scheduler is tested with a fake clock and never sleeps.
#pragma once

#include <chrono>
#include <mutex>

namespace resident {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;       // monotonic: timers and durations
  virtual WallTime WallNow() const = 0;    // for reporting (expires_at, created_at)
  // Converts a monotonic time to wall time, as reported to users.
  WallTime ToWall(TimePoint t) const {
    return WallNow() + std::chrono::duration_cast<WallTime::duration>(t - Now());
  }
};

class SystemClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  WallTime WallNow() const override { return std::chrono::system_clock::now(); }
};

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  TimePoint Now() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  WallTime WallNow() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return wall_ + std::chrono::duration_cast<WallTime::duration>(now_ - TimePoint());
  }
  void Advance(Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  TimePoint now_{std::chrono::hours(1)};
  WallTime wall_{std::chrono::seconds(1'700'000'000)};
};

}  // namespace resident
