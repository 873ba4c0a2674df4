// Sleeping (sleep_after) in the scheduler, with a fake clock and fake runners: no processes, no
// sleeping threads. A model idle for its sleep_after frees its context and keeps its runner; the
// next request wakes it; keep_alive still unloads it; memory pressure puts idle models to sleep
// instead of unloading them when that frees enough; the budget counts a sleeping model at what it
// holds asleep.
#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <map>
#include <string>

#include "core/keep_alive.h"
#include "sched/policy.h"
#include "sched/scheduler.h"
#include "support/fake_runners.h"

namespace resident::sched {
namespace {

using namespace std::chrono_literals;
using resident::testing::FakeFactory;

constexpr uint64_t kMB = 1000 * 1000;

ModelSpec Spec(const std::string& path) {
  ModelSpec s;
  s.name = path;
  s.load.model_path = path;
  return s;
}

class SchedulerSleepTest : public ::testing::Test {
 protected:
  SchedulerSleepTest() { factory_.clock = &clock_; }
  // Models sleep after `sleep_after`; footprints are predicted from factory_.sizes.
  Scheduler::Options Opts(std::optional<KeepAlive> sleep_after, uint64_t budget = 0) {
    Scheduler::Options o;
    o.timer_thread = false;
    o.default_sleep_after = sleep_after;
    o.memory_budget = budget;
    o.predictor = [this](const ModelSpec& spec) -> Result<uint64_t> {
      auto it = factory_.sizes.find(spec.load.model_path);
      return it == factory_.sizes.end() ? uint64_t{1000} : it->second;
    };
    return o;
  }
  // Uses the model once with this keep_alive and releases it.
  void Use(Scheduler& s, const std::string& path, KeepAlive keep_alive = KeepAlive::Of(5min)) {
    auto lease = s.Acquire(Spec(path), keep_alive);
    ASSERT_TRUE(lease.ok()) << lease.status().message();
  }
  const LoadedModel* Find(const std::vector<LoadedModel>& models, const std::string& name) {
    for (const LoadedModel& m : models) {
      if (m.name == name) return &m;
    }
    return nullptr;
  }
  std::vector<ResidencyEvent> Events(const Scheduler& s, ResidencyEvent::Type type) {
    std::vector<ResidencyEvent> out;
    for (const ResidencyEvent& e : s.events().Since(0)) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }
  FakeClock clock_;
  FakeFactory factory_;
};

TEST_F(SchedulerSleepTest, AModelSleepsOnceIdleForItsSleepAfterAndARequestWakesIt) {
  factory_.sizes["a"] = 1000;
  factory_.asleep_sizes["a"] = 100;
  factory_.wake_time["a"] = 2s;
  Scheduler s(Opts(KeepAlive::Of(1min)), factory_, clock_);
  Use(s, "a");
  EXPECT_EQ(s.NextTimer(), clock_.Now() + 1min);  // the sleep comes before the expiry (5m)
  clock_.Advance(59s);
  s.Tick();
  ASSERT_EQ(s.Snapshot().size(), 1u);
  EXPECT_FALSE(s.Snapshot()[0].sleeping);
  ASSERT_TRUE(s.Snapshot()[0].sleeps_at.has_value());
  clock_.Advance(1s);
  s.Tick();
  ASSERT_EQ(s.Snapshot().size(), 1u);
  LoadedModel m = s.Snapshot()[0];
  EXPECT_TRUE(m.sleeping);
  EXPECT_EQ(m.sleeping_bytes, 100u);
  EXPECT_EQ(m.measured_bytes, 1000u);  // what it held awake
  EXPECT_FALSE(m.sleeps_at.has_value());
  EXPECT_EQ(s.MemoryInUse(), 100u);  // the budget counts what it holds asleep
  EXPECT_EQ(factory_.runners["a"]->sleeps, 1);
  EXPECT_EQ(factory_.closes, 0);  // the runner lives on

  // The next request wakes it: its load_duration is the wake.
  {
    auto lease = s.Acquire(Spec("a"), std::nullopt);
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(lease->load_duration(), 2s);
    EXPECT_EQ(factory_.runners["a"]->wakes, 1);
    EXPECT_EQ(factory_.starts, 1);  // no load
    EXPECT_FALSE(s.Snapshot()[0].sleeping);
    EXPECT_EQ(s.MemoryInUse(), 1000u);
  }
  ResidencyStats stats = s.Stats();
  EXPECT_EQ(stats.models["a"].sleeps_for(SleepReason::kIdle), 1u);
  EXPECT_EQ(stats.models["a"].wakes, 1u);
  EXPECT_EQ(stats.models["a"].cold_starts, 1u);  // its first load only: a wake is no cold start
  EXPECT_EQ(stats.models["a"].wake_seconds.count(), 1u);
  auto sleeps = Events(s, ResidencyEvent::Type::kSleep);
  ASSERT_EQ(sleeps.size(), 1u);
  EXPECT_EQ(sleeps[0].sleep_reason, SleepReason::kIdle);
  EXPECT_EQ(sleeps[0].bytes, 100u);
  EXPECT_EQ(sleeps[0].awake_bytes, 1000u);
  auto wakes = Events(s, ResidencyEvent::Type::kWake);
  ASSERT_EQ(wakes.size(), 1u);
  EXPECT_EQ(wakes[0].duration, 2s);
  EXPECT_EQ(wakes[0].asleep_bytes, 100u);
}

TEST_F(SchedulerSleepTest, ARequestRestartsTheSleepTimer) {
  Scheduler s(Opts(KeepAlive::Of(1min)), factory_, clock_);
  Use(s, "a");
  clock_.Advance(50s);
  {
    auto lease = s.Acquire(Spec("a"), std::nullopt);
    ASSERT_TRUE(lease.ok());
    clock_.Advance(10min);  // in use: no sleep
    s.Tick();
    EXPECT_FALSE(s.Snapshot()[0].sleeping);
  }
  clock_.Advance(59s);
  s.Tick();
  EXPECT_FALSE(s.Snapshot()[0].sleeping);
  clock_.Advance(1s);
  s.Tick();
  EXPECT_TRUE(s.Snapshot()[0].sleeping);
}

TEST_F(SchedulerSleepTest, KeepAliveStillUnloadsASleepingModel) {
  Scheduler s(Opts(KeepAlive::Of(1min)), factory_, clock_);
  Use(s, "a", KeepAlive::Of(5min));
  clock_.Advance(1min);
  s.Tick();
  ASSERT_TRUE(s.Snapshot()[0].sleeping);
  EXPECT_EQ(s.NextTimer(), clock_.Now() + 4min);
  clock_.Advance(4min);
  s.Tick();
  EXPECT_TRUE(s.Snapshot().empty());
  EXPECT_EQ(factory_.closes, 1);
  auto unloads = Events(s, ResidencyEvent::Type::kUnload);
  ASSERT_EQ(unloads.size(), 1u);
  EXPECT_EQ(unloads[0].reason, UnloadReason::kExpired);
  EXPECT_EQ(unloads[0].bytes, 100u);  // what it held asleep was freed
  EXPECT_EQ(s.MemoryInUse(), 0u);
}

TEST_F(SchedulerSleepTest, KeepAliveShorterThanSleepAfterUnloadsFirst) {
  Scheduler s(Opts(KeepAlive::Of(10min)), factory_, clock_);
  Use(s, "a", KeepAlive::Of(5min));
  clock_.Advance(5min);
  s.Tick();
  EXPECT_TRUE(s.Snapshot().empty());
  EXPECT_TRUE(Events(s, ResidencyEvent::Type::kSleep).empty()) << "it never slept (its runner is gone: ask the event log)";
}

TEST_F(SchedulerSleepTest, WithoutSleepAfterNothingSleeps) {
  Scheduler s(Opts(std::nullopt), factory_, clock_);
  Use(s, "a", KeepAlive::Forever());
  EXPECT_EQ(s.NextTimer(), TimePoint::max());
  clock_.Advance(24h);
  s.Tick();
  ASSERT_EQ(s.Snapshot().size(), 1u);
  EXPECT_FALSE(s.Snapshot()[0].sleeping);
  EXPECT_EQ(factory_.last->sleeps, 0);
}

TEST_F(SchedulerSleepTest, SleepAfterZeroSleepsAsSoonAsIdle) {
  Scheduler s(Opts(KeepAlive::Of(Duration::zero())), factory_, clock_);
  Use(s, "a");
  EXPECT_EQ(s.NextTimer(), clock_.Now());
  s.Tick();
  EXPECT_TRUE(s.Snapshot()[0].sleeping);
}

TEST_F(SchedulerSleepTest, ThePolicyFilesEntryDecidesPerModel) {
  auto policy = ParsePolicy("sleep_after = \"10m\"\n[models.a]\nsleep_after = \"1m\"\n[models.b]\nkeep_alive = \"1h\"\n",
                            "p.toml", KeepAlive::Of(5min));
  ASSERT_TRUE(policy.ok()) << policy.status().message();
  Scheduler::Options o = Opts(std::nullopt);
  o.policy = *policy;
  Scheduler s(o, factory_, clock_);
  Use(s, "a:latest", KeepAlive::Of(1h));
  Use(s, "b:latest", KeepAlive::Of(1h));
  clock_.Advance(1min);
  s.Tick();
  auto models = s.Snapshot();
  ASSERT_NE(Find(models, "a:latest"), nullptr);
  EXPECT_TRUE(Find(models, "a:latest")->sleeping);
  EXPECT_FALSE(Find(models, "b:latest")->sleeping);
  clock_.Advance(9min);
  s.Tick();
  EXPECT_TRUE(Find(s.Snapshot(), "b:latest")->sleeping);  // the top level's 10m
}

TEST_F(SchedulerSleepTest, MemoryPressurePutsAnIdleModelToSleepInsteadOfUnloadingIt) {
  factory_.sizes = {{"a", 100 * kMB}, {"b", 120 * kMB}};
  factory_.weights["a"] = 40 * kMB;  // expected asleep: 40 MB + the process (24 MiB)
  factory_.asleep_sizes["a"] = 50 * kMB;
  // A negative sleep_after: no timer, but pressure may put models to sleep.
  Scheduler s(Opts(KeepAlive::Forever(), 200 * kMB), factory_, clock_);
  Use(s, "a");
  EXPECT_EQ(s.NextTimer(), clock_.Now() + 5min);  // its expiry: no sleep timer
  Use(s, "b");
  auto models = s.Snapshot();
  ASSERT_EQ(models.size(), 2u);
  EXPECT_TRUE(Find(models, "a")->sleeping);
  EXPECT_FALSE(Find(models, "b")->sleeping);
  EXPECT_EQ(factory_.closes, 0);
  EXPECT_EQ(s.MemoryInUse(), 170 * kMB);
  auto sleeps = Events(s, ResidencyEvent::Type::kSleep);
  ASSERT_EQ(sleeps.size(), 1u);
  EXPECT_EQ(sleeps[0].sleep_reason, SleepReason::kMemory);
  EXPECT_EQ(sleeps[0].for_model, "b");
  EXPECT_TRUE(Events(s, ResidencyEvent::Type::kEvict).empty());
  EXPECT_EQ(s.Stats().models["a"].sleeps_for(SleepReason::kMemory), 1u);
}

TEST_F(SchedulerSleepTest, MemoryPressureUnloadsWhenSleepingFreesTooLittle) {
  factory_.sizes = {{"a", 100 * kMB}, {"b", 120 * kMB}};
  factory_.weights["a"] = 70 * kMB;  // expected asleep 95 MB: frees 5 MB, not enough
  Scheduler s(Opts(KeepAlive::Forever(), 200 * kMB), factory_, clock_);
  Use(s, "a");
  Use(s, "b");
  auto models = s.Snapshot();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name, "b");
  EXPECT_TRUE(Events(s, ResidencyEvent::Type::kSleep).empty()) << "a was evicted, never put to sleep";
  auto evictions = Events(s, ResidencyEvent::Type::kEvict);
  ASSERT_EQ(evictions.size(), 1u);
  EXPECT_EQ(evictions[0].reason, UnloadReason::kMemory);
}

TEST_F(SchedulerSleepTest, WithoutSleepAfterMemoryPressureEvictsAsBefore) {
  factory_.sizes = {{"a", 100 * kMB}, {"b", 120 * kMB}};
  factory_.weights["a"] = 10 * kMB;
  Scheduler s(Opts(std::nullopt, 200 * kMB), factory_, clock_);
  Use(s, "a");
  Use(s, "b");
  ASSERT_EQ(s.Snapshot().size(), 1u);
  EXPECT_TRUE(Events(s, ResidencyEvent::Type::kSleep).empty()) << "a was evicted, never put to sleep";
  EXPECT_EQ(Events(s, ResidencyEvent::Type::kEvict).size(), 1u);
}

TEST_F(SchedulerSleepTest, TheBudgetCountsASleepingModelAtItsSleepingBytes) {
  factory_.sizes = {{"a", 100 * kMB}, {"b", 180 * kMB}};
  factory_.asleep_sizes["a"] = 20 * kMB;
  Scheduler s(Opts(KeepAlive::Of(1min), 200 * kMB), factory_, clock_);
  Use(s, "a");
  clock_.Advance(1min);
  s.Tick();
  ASSERT_TRUE(s.Snapshot()[0].sleeping);
  EXPECT_EQ(s.MemoryInUse(), 20 * kMB);
  Use(s, "b");  // 20 + 180 fits: nothing goes
  EXPECT_EQ(s.Snapshot().size(), 2u);
  EXPECT_EQ(s.MemoryInUse(), 200 * kMB);
  EXPECT_TRUE(Events(s, ResidencyEvent::Type::kEvict).empty());
  EXPECT_EQ(s.Stats().memory_in_use, 200 * kMB);
  EXPECT_EQ(s.Stats().models["a"].measured_bytes, 20 * kMB);
  EXPECT_TRUE(s.Stats().models["a"].sleeping);
}

TEST_F(SchedulerSleepTest, AWakeMakesRoomLikeALoad) {
  factory_.sizes = {{"a", 100 * kMB}, {"b", 180 * kMB}};
  factory_.asleep_sizes = {{"a", 20 * kMB}, {"b", 150 * kMB}};
  factory_.weights["b"] = 150 * kMB;  // b asleep frees too little: it is unloaded for a's wake
  Scheduler s(Opts(KeepAlive::Of(1min), 200 * kMB), factory_, clock_);
  Use(s, "a");
  clock_.Advance(1min);
  s.Tick();
  Use(s, "b");
  ASSERT_EQ(s.MemoryInUse(), 200 * kMB);
  auto lease = s.Acquire(Spec("a"), std::nullopt);
  ASSERT_TRUE(lease.ok());
  auto models = s.Snapshot();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name, "a");
  EXPECT_FALSE(models[0].sleeping);
  EXPECT_EQ(factory_.runners["a"]->wakes, 1);
  auto evictions = Events(s, ResidencyEvent::Type::kEvict);
  ASSERT_EQ(evictions.size(), 1u);
  EXPECT_EQ(evictions[0].model, "b");
  EXPECT_EQ(evictions[0].for_model, "a");
}

TEST_F(SchedulerSleepTest, AFailedWakeLoadsTheModelAfresh) {
  Scheduler s(Opts(KeepAlive::Of(1min)), factory_, clock_);
  Use(s, "a");
  clock_.Advance(1min);
  s.Tick();
  ASSERT_TRUE(s.Snapshot()[0].sleeping);
  factory_.runners["a"]->wake_fails = true;
  auto lease = s.Acquire(Spec("a"), std::nullopt);
  ASSERT_TRUE(lease.ok()) << lease.status().message();
  EXPECT_EQ(factory_.starts, 2);
  EXPECT_EQ(factory_.closes, 1);
  EXPECT_FALSE(s.Snapshot()[0].sleeping);
  EXPECT_EQ(s.Stats().models["a"].cold_starts, 2u);
}

TEST_F(SchedulerSleepTest, AStopUnloadsASleepingModel) {
  Scheduler s(Opts(KeepAlive::Of(1min)), factory_, clock_);
  Use(s, "a");
  clock_.Advance(1min);
  s.Tick();
  ASSERT_TRUE(s.Snapshot()[0].sleeping);
  s.Unload("a");
  EXPECT_TRUE(s.Snapshot().empty());
  EXPECT_EQ(factory_.closes, 1);
}

TEST_F(SchedulerSleepTest, ADeadSleepingRunnerIsReaped) {
  Scheduler s(Opts(KeepAlive::Of(1min)), factory_, clock_);
  Use(s, "a", KeepAlive::Forever());
  clock_.Advance(1min);
  s.Tick();
  ASSERT_TRUE(s.Snapshot()[0].sleeping);
  factory_.runners["a"]->death = "killed by signal 9";
  factory_.runners["a"]->alive_ = false;
  s.Tick();
  EXPECT_TRUE(s.Snapshot().empty());
  auto unloads = Events(s, ResidencyEvent::Type::kUnload);
  ASSERT_EQ(unloads.size(), 1u);
  EXPECT_EQ(unloads[0].reason, UnloadReason::kExited);
}

TEST_F(SchedulerSleepTest, RequestsArrivingTogetherShareOneWake) {
  factory_.wake_time["a"] = 1s;
  Scheduler::Options o = Opts(KeepAlive::Of(1min));
  o.num_parallel = 4;
  Scheduler s(o, factory_, clock_);
  Use(s, "a");
  clock_.Advance(1min);
  s.Tick();
  ASSERT_TRUE(s.Snapshot()[0].sleeping);
  std::vector<std::future<bool>> results;
  for (int i = 0; i < 3; ++i) {
    results.push_back(std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), std::nullopt).ok(); }));
  }
  for (auto& r : results) EXPECT_TRUE(r.get());
  EXPECT_EQ(factory_.runners["a"]->wakes, 1);
  EXPECT_EQ(factory_.starts, 1);
}

// Page cache (core/page_cache.h): the eviction cost's reload time is the measured load time plus
// the file's bytes that were cached at the load and are not now, read back at disk speed.
class PageCacheCostTest : public SchedulerSleepTest {
 protected:
  Scheduler::Options Opts2() {
    Scheduler::Options o = Opts(std::nullopt);
    o.max_loaded = 2;
    o.disk_read_bytes_per_s = 250e6;
    o.page_cache_fraction = [this](const std::string& path) -> std::optional<double> {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = cached_.find(path);
      if (it == cached_.end()) return std::nullopt;
      return it->second;
    };
    return o;
  }
  void SetCached(const std::string& path, double fraction) {
    std::lock_guard<std::mutex> lock(mu_);
    cached_[path] = fraction;
  }
  std::mutex mu_;
  std::map<std::string, double> cached_;
};

TEST_F(PageCacheCostTest, AModelWhoseFileLeftThePageCacheCostsMoreToEvict) {
  for (const char* path : {"a", "b", "c"}) {
    factory_.load_time[path] = 1s;
    factory_.weights[path] = 500 * kMB;  // its file: 2 s to read back at 250 MB/s
    SetCached(path, 1.0);
  }
  // Both files cached: a, idle longest, goes first (the default order).
  {
    Scheduler s(Opts2(), factory_, clock_);
    Use(s, "a");
    Use(s, "b");
    Use(s, "c");
    auto evictions = Events(s, ResidencyEvent::Type::kEvict);
    ASSERT_EQ(evictions.size(), 1u);
    EXPECT_EQ(evictions[0].model, "a");
  }
  // a's file left the page cache since its load: reloading it costs 2 s more, so b goes.
  {
    Scheduler s(Opts2(), factory_, clock_);
    Use(s, "a");
    Use(s, "b");
    SetCached("a", 0.0);
    Use(s, "c");
    auto evictions = Events(s, ResidencyEvent::Type::kEvict);
    ASSERT_EQ(evictions.size(), 1u);
    EXPECT_EQ(evictions[0].model, "b");
  }
}

}  // namespace
}  // namespace resident::sched
