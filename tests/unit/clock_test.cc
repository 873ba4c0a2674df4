#include "core/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>

#include "core/time_format.h"

namespace resident {
namespace {

using namespace std::chrono_literals;

TEST(Clock, SaturatingAddStopsAtTheEndsOfTheRange) {
  const TimePoint t{1h};
  EXPECT_EQ(SaturatingAdd(t, 1s), TimePoint(1h + 1s));
  EXPECT_EQ(SaturatingAdd(t, Duration::max()), TimePoint::max());
  EXPECT_EQ(SaturatingAdd(t, Duration::max() - 1h), TimePoint::max());  // exactly the end
  EXPECT_EQ(SaturatingAdd(t, Duration::max() - 1h - 1ns), TimePoint::max() - 1ns);
  EXPECT_EQ(SaturatingAdd(TimePoint(-1h), Duration::min()), TimePoint::min());
  EXPECT_EQ(SaturatingAdd(TimePoint::max(), -1ns), TimePoint::max() - 1ns);
  // A wall time today plus 292 years is past the system clock's end (2262): it saturates.
  const WallTime today{std::chrono::seconds(1'700'000'000)};
  EXPECT_EQ(FormatRfc3339(SaturatingAdd(today, Duration::max() - 1ns)), "2262-04-11T23:47:16.854775807Z");
  EXPECT_EQ(SaturatingSub(TimePoint::max(), TimePoint::min()), Duration::max());
  EXPECT_EQ(SaturatingSub(TimePoint::min(), TimePoint::max()), Duration::min());
  EXPECT_EQ(SaturatingSub(TimePoint(2h), TimePoint(1h)), Duration(1h));
}

TEST(Clock, ToWallSaturatesInsteadOfOverflowing) {
  FakeClock clock;
  EXPECT_EQ(clock.ToWall(clock.Now() + 5min), clock.WallNow() + 5min);
  EXPECT_EQ(clock.ToWall(TimePoint::max()), WallTime::max());
  SystemClock system;
  EXPECT_EQ(system.ToWall(TimePoint::max()), WallTime::max());
}

TEST(Clock, FakeClockWaitUntilWakesWhenAdvancedToTheDeadline) {
  FakeClock clock;
  std::mutex mu;
  std::condition_variable cv;
  const TimePoint deadline = clock.Now() + 10s;
  auto waiter = std::async(std::launch::async, [&] {
    std::unique_lock<std::mutex> lock(mu);
    while (clock.WaitUntil(cv, lock, deadline)) {
    }
    return clock.Now();
  });
  clock.AwaitWaiter();
  clock.Advance(9s);  // wakes it early: it waits again
  clock.AwaitWaiter();
  EXPECT_EQ(waiter.wait_for(0s), std::future_status::timeout);
  clock.Advance(1s);
  EXPECT_EQ(waiter.get(), deadline);
  // A deadline already passed returns at once.
  std::unique_lock<std::mutex> lock(mu);
  EXPECT_FALSE(clock.WaitUntil(cv, lock, deadline));
}

TEST(Clock, SystemClockWaitUntilTimesOut) {
  SystemClock clock;
  std::mutex mu;
  std::condition_variable cv;
  std::unique_lock<std::mutex> lock(mu);
  const TimePoint deadline = clock.Now() + 1ms;
  while (clock.WaitUntil(cv, lock, deadline)) {
  }
  EXPECT_GE(clock.Now(), deadline);
}

}  // namespace
}  // namespace resident
