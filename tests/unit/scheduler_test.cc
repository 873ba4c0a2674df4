// Scheduler tests with a fake clock and fake runners: no processes, no sleeping.
#include "sched/scheduler.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/requests.h"
#include "core/keep_alive.h"
#include "core/time_format.h"
#include "support/fake_runners.h"

namespace resident::sched {
namespace {

using namespace std::chrono_literals;

using resident::testing::FakeFactory;

ModelSpec Spec(const std::string& path) {
  ModelSpec s;
  s.name = path;
  s.load.model_path = path;
  return s;
}

class SchedulerTest : public ::testing::Test {
 protected:
  Scheduler::Options Opts(int max_loaded = 3) {
    Scheduler::Options o;
    o.max_loaded = max_loaded;
    o.timer_thread = false;
    return o;
  }
  void WaitQueued(Scheduler& s, int n) {
    while (s.QueuedRequests() < n) std::this_thread::yield();
  }
  FakeClock clock_;
  FakeFactory factory_;
};

TEST_F(SchedulerTest, ConcurrentRequestsLoadAModelOnce) {
  Scheduler s(Opts(), factory_, clock_);
  factory_.gated = true;
  std::vector<std::future<bool>> results;
  for (int i = 0; i < 4; ++i) {
    results.push_back(std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), std::nullopt).ok(); }));
  }
  factory_.WaitForStarts(1);
  WaitQueued(s, 4);
  factory_.Open();
  for (auto& r : results) EXPECT_TRUE(r.get());
  EXPECT_EQ(factory_.starts, 1);
}

TEST_F(SchedulerTest, AFailedLoadReachesEveryWaiterAndLeavesNothingLoaded) {
  Scheduler s(Opts(), factory_, clock_);
  factory_.gated = true;
  factory_.failing = "bad";
  std::vector<std::future<Status>> results;
  for (int i = 0; i < 3; ++i) {
    results.push_back(std::async(std::launch::async, [&] { return s.Acquire(Spec("bad"), std::nullopt).status(); }));
  }
  factory_.WaitForStarts(1);
  WaitQueued(s, 3);
  factory_.Open();
  for (auto& r : results) {
    Status st = r.get();
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(st.message(), "bad file bad");
  }
  EXPECT_EQ(factory_.starts, 1);
  EXPECT_TRUE(s.Snapshot().empty());
}

TEST_F(SchedulerTest, TimerStartsWhenTheLastLeaseIsDroppedAndExpires) {
  Scheduler s(Opts(), factory_, clock_);
  {
    auto lease = s.Acquire(Spec("a"), KeepAlive::Of(Duration(5min)));
    ASSERT_TRUE(lease.ok());
    clock_.Advance(10min);  // time in use does not count
    s.Tick();
    ASSERT_EQ(s.Snapshot().size(), 1u);
    EXPECT_FALSE(s.Snapshot()[0].expires_at.has_value());
  }
  ASSERT_TRUE(s.Snapshot()[0].expires_at.has_value());
  EXPECT_EQ(*s.Snapshot()[0].expires_at, clock_.WallNow() + 5min);
  clock_.Advance(4min + 59s);
  s.Tick();
  EXPECT_EQ(s.Snapshot().size(), 1u);
  clock_.Advance(1s);
  s.Tick();
  EXPECT_TRUE(s.Snapshot().empty());
  EXPECT_EQ(factory_.closes, 1);
}

TEST_F(SchedulerTest, ANewRequestCancelsTheTimer) {
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(Duration(1min))).ok());
  clock_.Advance(50s);
  {
    auto lease = s.Acquire(Spec("a"), std::nullopt);
    clock_.Advance(5min);
    s.Tick();
    EXPECT_EQ(s.Snapshot().size(), 1u);
  }
  clock_.Advance(59s);
  s.Tick();
  EXPECT_EQ(s.Snapshot().size(), 1u);  // the timer restarted from the end of the last request
  clock_.Advance(1s);
  s.Tick();
  EXPECT_TRUE(s.Snapshot().empty());
}

TEST_F(SchedulerTest, KeepAliveZeroUnloadsWhenTheLastLeaseDrops) {
  Scheduler s(Opts(), factory_, clock_);
  auto first = s.Acquire(Spec("a"), KeepAlive::Of(Duration(5min)));
  ASSERT_TRUE(first.ok());
  first->Release();
  auto second = s.Acquire(Spec("a"), KeepAlive::Of(Duration::zero()));
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(factory_.closes, 0);
  second->Release();
  EXPECT_EQ(factory_.closes, 1);
  EXPECT_TRUE(s.Snapshot().empty());
}

TEST_F(SchedulerTest, ARequestWithoutKeepAliveKeepsTheModelsDuration) {
  Scheduler::Options o = Opts();
  o.default_keep_alive = KeepAlive::Of(5min);
  Scheduler s(o, factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Forever()).ok());
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  EXPECT_TRUE(s.Snapshot()[0].keep_alive.forever);
  clock_.Advance(1000h);
  s.Tick();
  EXPECT_EQ(s.Snapshot().size(), 1u);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(Duration(2min))).ok());  // a request with keep_alive overwrites it
  EXPECT_EQ(s.Snapshot()[0].keep_alive, KeepAlive::Of(Duration(2min)));
}

TEST_F(SchedulerTest, AFreshLoadWithoutKeepAliveUsesTheDefault) {
  Scheduler::Options o = Opts();
  o.default_keep_alive = KeepAlive::Of(30s);
  Scheduler s(o, factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  EXPECT_EQ(s.Snapshot()[0].keep_alive, KeepAlive::Of(Duration(30s)));
}

TEST_F(SchedulerTest, TheLeastRecentlyUsedIdleModelMakesRoom) {
  Scheduler s(Opts(/*max_loaded=*/2), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  clock_.Advance(1s);
  ASSERT_TRUE(s.Acquire(Spec("b"), std::nullopt).ok());
  clock_.Advance(1s);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());  // a is now the most recent
  clock_.Advance(1s);
  ASSERT_TRUE(s.Acquire(Spec("c"), std::nullopt).ok());
  std::set<std::string> loaded;
  for (auto& m : s.Snapshot()) loaded.insert(m.path);
  EXPECT_EQ(loaded, (std::set<std::string>{"a", "c"}));
}

TEST_F(SchedulerTest, ABusyModelIsNeverEvictedTheNewLoadWaits) {
  Scheduler s(Opts(/*max_loaded=*/1), factory_, clock_);
  auto busy = s.Acquire(Spec("a"), std::nullopt);
  ASSERT_TRUE(busy.ok());
  auto waiter = std::async(std::launch::async, [&] { return s.Acquire(Spec("b"), std::nullopt).ok(); });
  WaitQueued(s, 1);
  EXPECT_EQ(factory_.starts, 1);
  EXPECT_EQ(factory_.closes, 0);
  busy->Release();
  EXPECT_TRUE(waiter.get());
  EXPECT_EQ(factory_.starts, 2);
  EXPECT_EQ(factory_.closes, 1);
}

TEST_F(SchedulerTest, NumParallelLimitsRequestsPerModel) {
  Scheduler s(Opts(), factory_, clock_);  // num_parallel 1
  auto first = s.Acquire(Spec("a"), std::nullopt);
  ASSERT_TRUE(first.ok());
  std::atomic<bool> got{false};
  auto second = std::async(std::launch::async, [&] {
    auto l = s.Acquire(Spec("a"), std::nullopt);
    got = true;
    return l.ok();
  });
  WaitQueued(s, 1);
  EXPECT_FALSE(got);
  first->Release();
  EXPECT_TRUE(second.get());
}

// Issue 20: requests queued by clients that had gone still ran when their turn came.
TEST_F(SchedulerTest, AStoppedWaitForASlotEndsCancelledAndTheRequestNeverRuns) {
  Scheduler s(Opts(), factory_, clock_);  // num_parallel 1
  auto busy = s.Acquire(Spec("a"), std::nullopt);
  ASSERT_TRUE(busy.ok());
  std::stop_source gone;
  auto waiter = std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), std::nullopt, gone.get_token()); });
  WaitQueued(s, 1);
  gone.request_stop();
  auto r = waiter.get();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled);
  EXPECT_NE(r.status().message().find("the client went away"), std::string::npos) << r.status().message();
  EXPECT_EQ(s.QueuedRequests(), 0);
  EXPECT_EQ(s.Stats().models.at("a").requests, 1u);  // only the busy one
  // A stop before the call: cancelled at once, counted nowhere.
  std::stop_source early;
  early.request_stop();
  EXPECT_EQ(s.Acquire(Spec("a"), std::nullopt, early.get_token()).status().code(), StatusCode::kCancelled);
  busy->Release();
  EXPECT_TRUE(s.Acquire(Spec("a"), std::nullopt, std::stop_source().get_token()).ok());
  EXPECT_EQ(s.Stats().models.at("a").requests, 2u);
}

TEST_F(SchedulerTest, AStoppedWaitForAnotherRequestsLoadEndsButTheLoadGoesOn) {
  Scheduler s(Opts(), factory_, clock_);
  factory_.gated = true;
  auto loader = std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), std::nullopt).ok(); });
  factory_.WaitForStarts(1);
  std::stop_source gone;
  auto waiter = std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), std::nullopt, gone.get_token()); });
  WaitQueued(s, 2);
  gone.request_stop();
  EXPECT_EQ(waiter.get().status().code(), StatusCode::kCancelled);
  factory_.Open();
  EXPECT_TRUE(loader.get());
  EXPECT_EQ(s.Stats().models.at("a").requests, 1u);
  EXPECT_EQ(s.QueuedRequests(), 0);
}

// A request that started the load itself finishes it and takes the lease: the model is loaded
// and idle afterwards (its keep-alive timer runs), not left loaded with nobody to release it.
TEST_F(SchedulerTest, AStoppedRequestThatLoadsTheModelTakesTheLease) {
  Scheduler s(Opts(), factory_, clock_);
  factory_.gated = true;
  std::stop_source gone;
  auto loader = std::async(std::launch::async,
                           [&] { return s.Acquire(Spec("a"), KeepAlive::Of(Duration(1min)), gone.get_token()); });
  factory_.WaitForStarts(1);
  gone.request_stop();
  factory_.Open();
  auto lease = loader.get();
  ASSERT_TRUE(lease.ok());
  lease->Release();
  ASSERT_EQ(s.Snapshot().size(), 1u);
  EXPECT_TRUE(s.Snapshot()[0].expires_at.has_value());
}

TEST_F(SchedulerTest, AFullQueueAnswersServerBusy) {
  Scheduler::Options o = Opts();
  o.max_queue = 1;
  Scheduler s(o, factory_, clock_);
  factory_.gated = true;
  auto waiting = std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), std::nullopt).ok(); });
  factory_.WaitForStarts(1);
  auto refused = s.Acquire(Spec("a"), std::nullopt);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.status().message(), "server busy, please try again.  maximum pending requests exceeded");
  factory_.Open();
  EXPECT_TRUE(waiting.get());
}

TEST_F(SchedulerTest, ADeadRunnerIsReplacedOnTheNextRequest) {
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  factory_.last->alive_ = false;
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  EXPECT_EQ(factory_.starts, 2);
}

TEST_F(SchedulerTest, ChangedLoadOptionsReloadTheModel) {
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  ModelSpec bigger = Spec("a");
  bigger.load.n_ctx = 8192;
  ASSERT_TRUE(s.Acquire(bigger, std::nullopt).ok());
  EXPECT_EQ(factory_.starts, 2);
  EXPECT_EQ(factory_.closes, 1);
  EXPECT_EQ(s.Snapshot().size(), 1u);
}

TEST_F(SchedulerTest, UnloadWaitsForTheRequestInFlight) {
  Scheduler s(Opts(), factory_, clock_);
  auto lease = s.Acquire(Spec("a"), std::nullopt);
  ASSERT_TRUE(lease.ok());
  auto unload = std::async(std::launch::async, [&] { s.Unload("a"); });
  EXPECT_EQ(unload.wait_for(0s), std::future_status::timeout);
  EXPECT_EQ(factory_.closes, 0);
  lease->Release();
  unload.get();
  EXPECT_EQ(factory_.closes, 1);
  EXPECT_TRUE(s.Snapshot().empty());
}

TEST_F(SchedulerTest, ShutdownClosesEveryRunnerAndRefusesNewRequests) {
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  ASSERT_TRUE(s.Acquire(Spec("b"), std::nullopt).ok());
  s.Shutdown();
  EXPECT_EQ(factory_.closes, 2);
  EXPECT_EQ(s.Acquire(Spec("a"), std::nullopt).status().code(), StatusCode::kUnavailable);
}


// ---- memory budget, eviction cost, policy ------------------------------------------------------

class BudgetTest : public SchedulerTest {
 protected:
  // Models a, b, c of 400, 400 and 300 bytes predicted and measured; a budget of 1000.
  Scheduler::Options Budget(uint64_t budget = 1000) {
    Scheduler::Options o = Opts(/*max_loaded=*/10);
    o.memory_budget = budget;
    factory_.sizes = {{"a", 400}, {"b", 400}, {"c", 300}, {"huge", 5000}};
    o.predictor = [this](const ModelSpec& spec) -> Result<uint64_t> {
      auto it = factory_.sizes.find(spec.load.model_path);
      if (it == factory_.sizes.end()) return Status::NotFound("no such file " + spec.load.model_path);
      return it->second;
    };
    return o;
  }
  std::set<std::string> Loaded(const Scheduler& s) {
    std::set<std::string> out;
    for (auto& m : s.Snapshot()) out.insert(m.path);
    return out;
  }
};

TEST_F(BudgetTest, ThreeModelsForABudgetOfTwo) {
  Scheduler s(Budget(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  clock_.Advance(1min);
  ASSERT_TRUE(s.Acquire(Spec("b"), std::nullopt).ok());
  EXPECT_EQ(s.MemoryInUse(), 800u);
  clock_.Advance(1min);
  ASSERT_TRUE(s.Acquire(Spec("c"), std::nullopt).ok());  // 800 + 300 > 1000: one must go
  EXPECT_EQ(Loaded(s), (std::set<std::string>{"b", "c"}));  // a: idle longest, same reload cost
  EXPECT_LE(s.MemoryInUse(), 1000u);
}

TEST_F(BudgetTest, TheVictimIsTheCheapestToReloadPerByteNotJustTheOldest) {
  Scheduler s(Budget(), factory_, clock_);
  // a takes 10 s to load (the fake clock moves while its runner starts); b loads at once.
  factory_.gated = true;
  auto slow = std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), std::nullopt).ok(); });
  factory_.WaitForStarts(1);
  clock_.Advance(10s);
  factory_.Open();
  ASSERT_TRUE(slow.get());
  clock_.Advance(1min);
  ASSERT_TRUE(s.Acquire(Spec("b"), std::nullopt).ok());
  clock_.Advance(1min);
  // a is the least recently used, but reloading it costs 10 s: b goes instead.
  ASSERT_TRUE(s.Acquire(Spec("c"), std::nullopt).ok());
  EXPECT_EQ(Loaded(s), (std::set<std::string>{"a", "c"}));
  for (auto& m : s.Snapshot()) {
    if (m.path == "a") {
      EXPECT_EQ(m.load_duration, Duration(10s));
    }
  }
}

TEST_F(BudgetTest, LeastRecentlyUsedBreaksEqualCosts) {
  Scheduler s(Budget(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  clock_.Advance(1min);
  ASSERT_TRUE(s.Acquire(Spec("b"), std::nullopt).ok());
  clock_.Advance(1min);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());  // a is fresh again
  clock_.Advance(1min);
  ASSERT_TRUE(s.Acquire(Spec("c"), std::nullopt).ok());
  EXPECT_EQ(Loaded(s), (std::set<std::string>{"a", "c"}));
}

TEST_F(BudgetTest, AModelThatCanNeverFitFailsAtOnce) {
  Scheduler s(Budget(), factory_, clock_);
  auto r = s.Acquire(Spec("huge"), std::nullopt);
  ASSERT_FALSE(r.ok());
  // Not kResourceExhausted (HTTP 503, "busy, retry"): no retry can help (500, as in Ollama).
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("can never be loaded"), std::string::npos) << r.status().message();
  EXPECT_EQ(factory_.starts, 0);  // no runner was started
}

TEST_F(BudgetTest, APredictionErrorFailsTheRequestBeforeAnyLoad) {
  Scheduler s(Budget(), factory_, clock_);
  auto r = s.Acquire(Spec("missing"), std::nullopt);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(factory_.starts, 0);
}

TEST_F(BudgetTest, BusyModelsAreNotEvictedTheLoadWaitsForOneToBeIdle) {
  Scheduler s(Budget(), factory_, clock_);
  auto a = s.Acquire(Spec("a"), std::nullopt);
  auto b = s.Acquire(Spec("b"), std::nullopt);
  ASSERT_TRUE(a.ok() && b.ok());
  auto c = std::async(std::launch::async, [&] { return s.Acquire(Spec("c"), std::nullopt).ok(); });
  WaitQueued(s, 1);
  EXPECT_EQ(factory_.closes, 0);
  b->Release();
  EXPECT_TRUE(c.get());
  EXPECT_EQ(Loaded(s), (std::set<std::string>{"a", "c"}));
}

TEST_F(BudgetTest, AModelWithQueuedRequestsIsNotEvicted) {
  Scheduler::Options o = Budget();
  Scheduler s(o, factory_, clock_);
  auto a = s.Acquire(Spec("a"), std::nullopt);  // a busy: the next request for a queues
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(s.Acquire(Spec("b"), std::nullopt).ok());
  clock_.Advance(1h);  // b idle a long time
  auto queued_for_a = std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), std::nullopt).ok(); });
  WaitQueued(s, 1);
  a->Release();  // a idle, but a request is queued for it: only b may go
  EXPECT_TRUE(queued_for_a.get());
  ASSERT_TRUE(s.Acquire(Spec("c"), std::nullopt).ok());
  EXPECT_EQ(Loaded(s), (std::set<std::string>{"a", "c"}));
}

TEST_F(BudgetTest, PinnedModelsStayAndOthersGo) {
  Scheduler::Options o = Budget();
  o.policy = Policy{};
  o.policy->models[PolicyModelKey("a")].pin = true;
  Scheduler s(o, factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  clock_.Advance(1h);
  ASSERT_TRUE(s.Acquire(Spec("b"), std::nullopt).ok());
  ASSERT_TRUE(s.Acquire(Spec("c"), std::nullopt).ok());  // a idle for an hour, but pinned
  EXPECT_EQ(Loaded(s), (std::set<std::string>{"a", "c"}));
  EXPECT_TRUE(s.Snapshot().back().pinned || s.Snapshot().front().pinned);
  clock_.Advance(1000h);
  s.Tick();
  EXPECT_TRUE(Loaded(s).count("a"));  // never expires
  s.Unload("a");                      // an explicit stop unloads it
  EXPECT_FALSE(Loaded(s).count("a"));
}

TEST_F(BudgetTest, PinnedModelsThatLeaveNoRoomGiveAClearError) {
  Scheduler::Options o = Budget(700);
  o.policy = Policy{};
  o.policy->models[PolicyModelKey("a")].pin = true;
  Scheduler s(o, factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  auto r = s.Acquire(Spec("b"), std::nullopt);  // 400 + 400 > 700 and a is pinned
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("pinned"), std::string::npos);
}

TEST_F(BudgetTest, MeasuredMemoryReplacesThePrediction) {
  Scheduler::Options o = Budget();
  o.predictor = [](const ModelSpec&) -> Result<uint64_t> { return 900; };  // pessimistic
  Scheduler s(o, factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  auto m = s.Snapshot()[0];
  EXPECT_EQ(m.predicted_bytes, 900u);
  EXPECT_EQ(m.measured_bytes, 400u);
  EXPECT_EQ(s.MemoryInUse(), 400u);
}

TEST_F(BudgetTest, ARunnerIsToldItsPredictionAndCountsAsItGrows) {
  Scheduler s(Budget(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  ASSERT_EQ(factory_.requests.size(), 1u);
  EXPECT_EQ(factory_.requests[0].predicted_bytes, 400u);  // its memory cap starts from this
  EXPECT_EQ(factory_.requests[0].model_name, "a");
  EXPECT_EQ(s.MemoryInUse(), 400u);
  factory_.runners["a"]->sampled_rss_ = 700;  // its watchdog saw it grow (up to its cap)
  s.Tick();                                    // as every decision does, it takes the sample in
  EXPECT_EQ(s.MemoryInUse(), 700u);
  EXPECT_EQ(s.Snapshot()[0].measured_bytes, 700u);
  factory_.runners["a"]->sampled_rss_ = 500;  // a smaller sample does not lower the figure
  s.Tick();
  EXPECT_EQ(s.MemoryInUse(), 700u);
  clock_.Advance(1min);
  ASSERT_TRUE(s.Acquire(Spec("c"), std::nullopt).ok());  // 700 + 300 fits
  clock_.Advance(1min);
  ASSERT_TRUE(s.Acquire(Spec("b"), std::nullopt).ok());  // 1000 + 400 does not: a goes
  EXPECT_EQ(Loaded(s), (std::set<std::string>{"b", "c"}));
  EXPECT_LE(s.MemoryInUse(), 1000u);
}

TEST_F(SchedulerTest, PolicyEntriesAndClampsDecideTheKeepAlive) {
  Scheduler::Options o = Opts();
  o.policy = Policy{};
  o.policy->default_keep_alive = KeepAlive::Of(5min);
  o.policy->models[PolicyModelKey("chat")].keep_alive = KeepAlive::Of(24h);
  o.policy->models[PolicyModelKey("rare")].keep_alive = KeepAlive::Of(Duration::zero());
  o.policy->max_keep_alive = KeepAlive::Of(12h);
  o.policy->min_keep_alive = KeepAlive::Of(10s);
  Scheduler s(o, factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("chat:latest"), std::nullopt).ok());
  EXPECT_EQ(s.Snapshot()[0].keep_alive, KeepAlive::Of(Duration(12h)));  // 24h entry clamped to the max
  ASSERT_TRUE(s.Acquire(Spec("chat:latest"), KeepAlive::Forever()).ok());
  EXPECT_EQ(s.Snapshot()[0].keep_alive, KeepAlive::Of(Duration(12h)));  // forever clamped too
  ASSERT_TRUE(s.Acquire(Spec("other:latest"), KeepAlive::Of(Duration(1s))).ok());
  for (auto& m : s.Snapshot()) {
    if (m.name == "other:latest") {
      EXPECT_EQ(m.keep_alive, KeepAlive::Of(Duration(10s)));  // raised to the min
    }
  }
  ASSERT_TRUE(s.Acquire(Spec("rare:latest"), std::nullopt).ok());
  for (auto& m : s.Snapshot()) {
    if (m.name == "rare:latest") {
      EXPECT_EQ(m.keep_alive, KeepAlive::Of(Duration(10s)));  // its 0 raised to the min
    }
  }
}

TEST_F(SchedulerTest, WithoutClampsAnEntryOfZeroReleasesAtOnce) {
  Scheduler::Options o = Opts();
  o.policy = Policy{};
  o.policy->models[PolicyModelKey("rare")].keep_alive = KeepAlive::Of(Duration::zero());
  Scheduler s(o, factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("rare:latest"), std::nullopt).ok());
  EXPECT_TRUE(s.Snapshot().empty());
  EXPECT_EQ(factory_.closes, 1);
}

TEST_F(SchedulerTest, ARequestForAModelBeingEvictedWaitsAndLoadsItAgain) {
  Scheduler s(Opts(/*max_loaded=*/1), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  // b's load evicts a; while b loads (gated), a request for a arrives.
  factory_.gated = true;
  auto b = std::async(std::launch::async, [&] { return s.Acquire(Spec("b"), std::nullopt); });
  factory_.WaitForStarts(2);
  EXPECT_EQ(factory_.closes, 1);  // a is already gone
  auto a = std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), std::nullopt).ok(); });
  WaitQueued(s, 2);
  factory_.Open();
  auto b_lease = b.get();
  ASSERT_TRUE(b_lease.ok());
  EXPECT_EQ(a.wait_for(0s), std::future_status::timeout);  // b is busy: a cannot evict it yet
  b_lease->Release();
  EXPECT_TRUE(a.get());
  EXPECT_EQ(factory_.starts, 3);
  EXPECT_EQ(s.Snapshot().size(), 1u);
}

TEST_F(SchedulerTest, ARequestAsTheTimerFiresLoadsTheModelAgainCleanly) {
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(Duration(1min))).ok());
  clock_.Advance(1min);
  std::thread ticker([&] { s.Tick(); });
  auto lease = s.Acquire(Spec("a"), std::nullopt);
  ticker.join();
  ASSERT_TRUE(lease.ok());
  EXPECT_TRUE(lease->runner().alive());  // either the old runner (timer lost) or a new one
  EXPECT_EQ(s.Snapshot().size(), 1u);
}

// ---- residency counters and events ---------------------------------------------------------------

const ModelStats& StatsOf(const ResidencyStats& stats, const std::string& model) {
  static const ModelStats kNone;
  auto it = stats.models.find(model);
  return it == stats.models.end() ? kNone : it->second;
}

std::vector<std::string> EventTrail(const Scheduler& s) {
  std::vector<std::string> out;
  for (const auto& e : s.events().Since(0)) {
    std::string line = std::string(TypeName(e.type)) + " " + e.model;
    if (e.reason) line += " " + std::string(ReasonName(*e.reason));
    if (!e.for_model.empty()) line += " for " + e.for_model;
    out.push_back(line);
  }
  return out;
}

TEST_F(SchedulerTest, ByteSecondsAreExactAcrossLoadUseIdleAndEviction) {
  Scheduler s(Opts(/*max_loaded=*/1), factory_, clock_);  // each runner measures 1000 bytes
  {
    auto lease = s.Acquire(Spec("a"), KeepAlive::Of(Duration(1h)));
    ASSERT_TRUE(lease.ok());
    clock_.Advance(10s);  // in use: resident, not idle
  }
  clock_.Advance(20s);  // idle
  auto mid = s.Stats();  // the open interval counts up to now
  EXPECT_DOUBLE_EQ(StatsOf(mid, "a").resident_byte_seconds, 1000.0 * 30);
  EXPECT_DOUBLE_EQ(StatsOf(mid, "a").idle_byte_seconds, 1000.0 * 20);
  EXPECT_TRUE(StatsOf(mid, "a").loaded);
  EXPECT_EQ(StatsOf(mid, "a").measured_bytes, 1000u);
  {
    auto lease = s.Acquire(Spec("a"), std::nullopt);  // warm
    ASSERT_TRUE(lease.ok());
    clock_.Advance(5s);
  }
  clock_.Advance(7s);
  ASSERT_TRUE(s.Acquire(Spec("b"), std::nullopt).ok());  // max_loaded 1: a goes
  clock_.Advance(1h);  // a's counters stop at its unload
  auto after = s.Stats();
  const ModelStats& a = StatsOf(after, "a");
  EXPECT_DOUBLE_EQ(a.resident_byte_seconds, 1000.0 * (10 + 20 + 5 + 7));
  EXPECT_DOUBLE_EQ(a.idle_byte_seconds, 1000.0 * (20 + 7));
  EXPECT_FALSE(a.loaded);
  EXPECT_EQ(a.measured_bytes, 0u);
  EXPECT_EQ(a.loads, 1u);
  EXPECT_EQ(a.requests, 2u);
  EXPECT_EQ(a.cold_starts, 1u);
  EXPECT_EQ(a.unloads_for(UnloadReason::kCount), 1u);
  const ModelStats& b = StatsOf(after, "b");
  EXPECT_DOUBLE_EQ(b.resident_byte_seconds, 1000.0 * 3600);  // released at once: idle all along
  EXPECT_DOUBLE_EQ(b.idle_byte_seconds, 1000.0 * 3600);
  EXPECT_EQ(after.loaded_models, 1);
  EXPECT_EQ(after.memory_in_use, 1000u);
}

TEST_F(BudgetTest, ALoadCountsItsPredictionUntilMeasuredAndIsNeverIdle) {
  Scheduler::Options o = Budget();
  o.predictor = [](const ModelSpec&) -> Result<uint64_t> { return 900; };  // measured: 400
  Scheduler s(o, factory_, clock_);
  factory_.gated = true;
  auto load = std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), KeepAlive::Of(Duration(1min))).ok(); });
  factory_.WaitForStarts(1);
  clock_.Advance(10s);  // loading: 900 predicted bytes held, nobody idle
  auto loading = s.Stats();
  EXPECT_DOUBLE_EQ(StatsOf(loading, "a").resident_byte_seconds, 900.0 * 10);
  EXPECT_DOUBLE_EQ(StatsOf(loading, "a").idle_byte_seconds, 0);
  EXPECT_FALSE(StatsOf(loading, "a").loaded);
  EXPECT_EQ(StatsOf(loading, "a").predicted_bytes, 900u);
  factory_.Open();
  ASSERT_TRUE(load.get());
  clock_.Advance(1min);  // idle at 400 measured bytes until it expires
  s.Tick();
  auto stats = s.Stats();
  const ModelStats& a = StatsOf(stats, "a");
  EXPECT_DOUBLE_EQ(a.resident_byte_seconds, 900.0 * 10 + 400.0 * 60);
  EXPECT_DOUBLE_EQ(a.idle_byte_seconds, 400.0 * 60);
  EXPECT_EQ(a.load_seconds.count(), 1u);
  EXPECT_DOUBLE_EQ(a.load_seconds.sum(), 10.0);
  EXPECT_EQ(a.unloads_for(UnloadReason::kExpired), 1u);
  EXPECT_EQ(stats.memory_in_use, 0u);
  EXPECT_EQ(stats.memory_budget, 1000u);

  auto events = s.events().Since(0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, ResidencyEvent::Type::kLoad);
  EXPECT_EQ(events[0].duration, Duration(10s));
  EXPECT_EQ(events[0].bytes, 400u);
  EXPECT_EQ(events[0].predicted_bytes, 900u);
  EXPECT_EQ(Describe(events[0]), "loaded a in 10.00 s (400 B measured, predicted 900 B, pid 100)");
  EXPECT_EQ(events[1].type, ResidencyEvent::Type::kUnload);
  EXPECT_EQ(events[1].reason, UnloadReason::kExpired);
  EXPECT_EQ(events[1].keep_alive, KeepAlive::Of(Duration(1min)));
  EXPECT_EQ(events[1].idle, Duration(1min));
  EXPECT_EQ(events[1].bytes, 400u);
  EXPECT_EQ(events[1].time, clock_.WallNow());
  EXPECT_EQ(Describe(events[1]), "unloaded a (400 B, expired after keep_alive 1m0s)");
}

TEST_F(BudgetTest, EvictionsForMemoryNameTheModelTheyMakeRoomFor) {
  Scheduler s(Budget(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  clock_.Advance(1min);
  ASSERT_TRUE(s.Acquire(Spec("b"), std::nullopt).ok());
  clock_.Advance(1min);
  ASSERT_TRUE(s.Acquire(Spec("c"), std::nullopt).ok());  // 800 + 300 > 1000: a goes
  EXPECT_EQ(EventTrail(s), (std::vector<std::string>{"load a", "load b", "evict a memory for c", "load c"}));
  auto evict = s.events().Since(2).front();
  EXPECT_EQ(evict.idle, Duration(2min));
  EXPECT_EQ(evict.bytes, 400u);
  EXPECT_EQ(Describe(evict), "unloaded a (400 B, idle 2m0s) to make room for c");
  EXPECT_EQ(StatsOf(s.Stats(), "a").unloads_for(UnloadReason::kMemory), 1u);
}

TEST_F(SchedulerTest, EveryUnloadIsCountedWithItsReason) {
  Scheduler s(Opts(/*max_loaded=*/1), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(Duration(1min))).ok());
  clock_.Advance(1min);
  s.Tick();                                                 // expired
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(Duration::zero())).ok());  // manual: keep_alive 0
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  s.Unload("a");                                            // manual: a stop
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  ModelSpec bigger = Spec("a");
  bigger.load.n_ctx = 8192;
  ASSERT_TRUE(s.Acquire(bigger, std::nullopt).ok());        // reload
  factory_.last->alive_ = false;
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());      // exited (and reloaded)
  ASSERT_TRUE(s.Acquire(Spec("b"), std::nullopt).ok());      // count: max_loaded 1
  EXPECT_EQ(EventTrail(s), (std::vector<std::string>{
                               "load a", "unload a expired", "load a", "unload a manual", "load a",
                               "unload a manual", "load a", "unload a reload", "load a", "unload a exited",
                               "load a", "evict a count for b", "load b"}));
  const ModelStats a = StatsOf(s.Stats(), "a");  // a copy: Stats() returns a temporary
  EXPECT_EQ(a.loads, 6u);
  EXPECT_EQ(a.requests, 6u);
  EXPECT_EQ(a.cold_starts, 6u);
  EXPECT_EQ(a.unloads_for(UnloadReason::kExpired), 1u);
  EXPECT_EQ(a.unloads_for(UnloadReason::kManual), 2u);
  EXPECT_EQ(a.unloads_for(UnloadReason::kReload), 1u);
  EXPECT_EQ(a.unloads_for(UnloadReason::kExited), 1u);
  EXPECT_EQ(a.unloads_for(UnloadReason::kCount), 1u);
  EXPECT_EQ(a.unloads_for(UnloadReason::kMemory), 0u);
}

TEST_F(SchedulerTest, RequestsThatWaitedForALoadAreColdStartsAndFailedLoadsAreRecorded) {
  Scheduler s(Opts(), factory_, clock_);
  factory_.gated = true;
  std::vector<std::future<bool>> results;
  for (int i = 0; i < 3; ++i) {
    results.push_back(std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), std::nullopt).ok(); }));
  }
  factory_.WaitForStarts(1);
  WaitQueued(s, 3);
  EXPECT_EQ(s.Stats().queued_requests, 3);
  factory_.Open();
  for (auto& r : results) EXPECT_TRUE(r.get());
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());  // warm
  auto a = StatsOf(s.Stats(), "a");
  EXPECT_EQ(a.requests, 4u);
  EXPECT_EQ(a.cold_starts, 3u);
  EXPECT_EQ(a.loads, 1u);

  factory_.failing = "bad";
  ASSERT_FALSE(s.Acquire(Spec("bad"), std::nullopt).ok());
  EXPECT_EQ(StatsOf(s.Stats(), "bad").load_failures, 1u);
  EXPECT_EQ(StatsOf(s.Stats(), "bad").loads, 0u);
  auto last = s.events().Since(s.events().last_seq() - 1);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].type, ResidencyEvent::Type::kLoadFailed);
  EXPECT_EQ(last[0].error, "bad file bad");
  EXPECT_EQ(Describe(last[0]), "loading bad failed after 0.00 s: bad file bad");
}

TEST_F(SchedulerTest, TheEventLogKeepsTheNewestEventsAndShutdownClosesIt) {
  Scheduler::Options o = Opts();
  o.event_log_capacity = 2;
  Scheduler s(o, factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(Duration::zero())).ok());  // load, unload
  ASSERT_TRUE(s.Acquire(Spec("b"), KeepAlive::Of(Duration::zero())).ok());  // load, unload
  auto kept = s.events().Since(0);
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept[0].seq, 3u);
  EXPECT_EQ(kept[1].seq, 4u);
  EXPECT_FALSE(s.events().closed());
  s.Shutdown();
  EXPECT_TRUE(s.events().closed());
}

}  // namespace
}  // namespace resident::sched

namespace resident::sched {
namespace {

TEST_F(SchedulerTest, AnIdleRunnerThatDiedLeavesAtTheNextTick) {
  Scheduler s(Opts(), factory_, clock_);
  {
    auto lease = s.Acquire(Spec("a"), KeepAlive::Of(std::chrono::duration_cast<Duration>(std::chrono::hours(1))));
    ASSERT_TRUE(lease.ok());
  }
  ASSERT_EQ(s.Snapshot().size(), 1u);
  const std::string why = "the runner for a:latest (pid 1) stopped answering (no health answer in 20 s) and was killed";
  factory_.last->death = why;
  factory_.last->alive_ = false;  // killed by its health check while idle
  s.Tick();                       // long before its keep_alive ends
  EXPECT_TRUE(s.Snapshot().empty());
  EXPECT_EQ(s.MemoryInUse(), 0u);
  auto events = s.events().Since(0);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().reason, UnloadReason::kExited);
  // The log line says it was killed and why, not that it "had exited".
  EXPECT_EQ(events.back().explanation, why);
  EXPECT_NE(Describe(events.back()).find(why), std::string::npos) << Describe(events.back());
}

}  // namespace
}  // namespace resident::sched

// ---- keep_alive at the edge of the clock's range, the timer thread, stops, reloads ------------

namespace resident::sched {
namespace {

// The keep_alive a request reaches the scheduler with (as the API passes it).
KeepAlive RequestKeepAlive(KeepAliveInput in) {
  Result<KeepAlive> k = ParseKeepAlive(in);
  EXPECT_TRUE(k.ok()) << k.status().ToString();
  return *k;
}
KeepAliveInput KeepAliveText(std::string s) { return {KeepAliveInput::Kind::kString, 0, std::move(s)}; }
KeepAliveInput KeepAliveNumber(double n) { return {KeepAliveInput::Kind::kNumber, n, ""}; }

// Waits (without sleeping) for a condition another thread makes true; fails after 10 s instead of
// hanging when it never does.
template <typename F>
bool Eventually(F done) {
  auto give_up = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST_F(SchedulerTest, AKeepAliveBeyondTheClocksRangeSaturatesAndNeverExpires) {
  // Each is a finite duration of about 292 years (as in Ollama): now + it overflows an int64 of
  // nanoseconds. It must saturate (no undefined behaviour; UBSan checks it), not wrap into the past.
  for (const KeepAliveInput& in : {KeepAliveText("9223372036854775806ns"), KeepAliveText("2562047h"),
                                   KeepAliveNumber(9.2e9)}) {
    SCOPED_TRACE(in.text.empty() ? "9.2e9" : in.text);
    FakeClock clock;
    FakeFactory factory;
    Scheduler s(Opts(), factory, clock);
    const KeepAlive d = RequestKeepAlive(in);
    ASSERT_FALSE(d.forever);
    ASSERT_TRUE(s.Acquire(Spec("a"), d).ok());  // released at once: its timer starts
    ASSERT_EQ(s.Snapshot().size(), 1u);
    LoadedModel m = s.Snapshot()[0];
    EXPECT_FALSE(m.keep_alive.forever);
    EXPECT_EQ(m.keep_alive, d);
    ASSERT_TRUE(m.expires_at.has_value());
    EXPECT_GT(*m.expires_at, clock.WallNow() + std::chrono::hours(24 * 365 * 200));  // far away, not past
    EXPECT_EQ(FormatRfc3339(*m.expires_at), "2262-04-11T23:47:16.854775807Z");  // the wall clock's end
    clock.Advance(std::chrono::hours(24 * 365 * 100));
    s.Tick();
    EXPECT_EQ(s.Snapshot().size(), 1u);
  }
}

TEST_F(SchedulerTest, TheTimerThreadUnloadsAtTheExpiryNotLater) {
  // The real timer thread, driven by the fake clock: it sleeps until the earliest expiry and
  // unloads then (not at its next once-a-second look); AwaitWaiter() returns once it has acted on
  // the clock's new time and sleeps again.
  Scheduler::Options o = Opts();
  o.timer_thread = true;
  Scheduler s(o, factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(Duration(2s + 50ms))).ok());  // released at once
  ASSERT_TRUE(s.Acquire(Spec("b"), KeepAlive::Of(Duration(1h))).ok());
  clock_.AwaitWaiter();
  clock_.Advance(2s + 49ms);
  clock_.AwaitWaiter();
  EXPECT_EQ(s.Snapshot().size(), 2u);
  clock_.Advance(1ms);  // a's expiry, to the nanosecond
  clock_.AwaitWaiter();
  ASSERT_EQ(s.Snapshot().size(), 1u);
  EXPECT_EQ(s.Snapshot()[0].path, "b");
  EXPECT_EQ(factory_.closes, 1);
  // A keep_alive at the end of the clock's range: the timer computes no overflowing deadline.
  ASSERT_TRUE(s.Acquire(Spec("c"), KeepAlive::Of(Duration::max() - Duration(1))).ok());
  clock_.AwaitWaiter();
  clock_.Advance(1h);  // b expires, c does not
  clock_.AwaitWaiter();
  ASSERT_EQ(s.Snapshot().size(), 1u);
  EXPECT_EQ(s.Snapshot()[0].path, "c");
  clock_.Advance(std::chrono::hours(24 * 365 * 100));
  clock_.AwaitWaiter();
  EXPECT_EQ(s.Snapshot().size(), 1u);
}

TEST_F(SchedulerTest, AStopIsStickyAgainstTheKeepAliveOfARequestInFlight) {
  Scheduler::Options o = Opts();
  o.num_parallel = 2;
  Scheduler s(o, factory_, clock_);
  auto first = s.Acquire(Spec("a"), KeepAlive::Of(Duration(5min)));
  ASSERT_TRUE(first.ok());
  auto unload = std::async(std::launch::async, [&] { s.Unload("a"); });
  ASSERT_TRUE(Eventually([&] { return s.Snapshot()[0].keep_alive == KeepAlive::Of(Duration::zero()); }));  // stop seen
  // A request that reaches the model before the stop completes is served; its keep_alive of an
  // hour does not cancel the stop (it used to, and the stop then waited an hour).
  auto second = s.Acquire(Spec("a"), KeepAlive::Of(Duration(1h)));
  ASSERT_TRUE(second.ok());
  first->Release();
  EXPECT_EQ(unload.wait_for(0s), std::future_status::timeout);  // the second request still runs
  second->Release();
  const bool stopped = unload.wait_for(10s) == std::future_status::ready;
  EXPECT_TRUE(stopped) << "the stop waited for the keep_alive of a later request";
  if (!stopped) s.Shutdown();  // let the future finish
  EXPECT_EQ(factory_.closes, 1);
  EXPECT_TRUE(s.Snapshot().empty());
  // A request after the stop loads the model anew.
  ASSERT_TRUE(s.Acquire(Spec("a"), std::nullopt).ok());
  EXPECT_EQ(factory_.starts, 2);
}

TEST_F(SchedulerTest, AStopDoesNotWaitForTheNextLoadOfTheSameModel) {
  Scheduler s(Opts(), factory_, clock_);
  auto first = s.Acquire(Spec("a"), std::nullopt);
  ASSERT_TRUE(first.ok());
  auto unload = std::async(std::launch::async, [&] { s.Unload("a"); });
  ASSERT_TRUE(Eventually([&] { return s.Snapshot()[0].keep_alive == KeepAlive::Of(Duration::zero()); }));
  // A request queued for a slot; when the stop unloads the model, it loads it again, and that
  // load hangs (gated). The stop is done with the entry it was asked about and must return.
  factory_.gated = true;
  auto next = std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), std::nullopt).ok(); });
  WaitQueued(s, 1);
  first->Release();
  factory_.WaitForStarts(2);  // the next load has begun, under the same path
  const bool stopped = unload.wait_for(10s) == std::future_status::ready;
  EXPECT_TRUE(stopped) << "the stop waited for the new load of the same model";
  factory_.Open();
  EXPECT_TRUE(next.get());
  if (!stopped) s.Shutdown();
  EXPECT_EQ(factory_.closes, 1);
}

TEST_F(SchedulerTest, AStopDuringTheLoadServesTheWaitingRequestThenUnloads) {
  Scheduler s(Opts(), factory_, clock_);
  factory_.gated = true;
  auto request = std::async(std::launch::async, [&] {
    auto lease = s.Acquire(Spec("a"), KeepAlive::Of(Duration(1h)));  // its keep_alive does not undo the stop
    return lease.ok();
  });
  factory_.WaitForStarts(1);
  auto unload = std::async(std::launch::async, [&] { s.Unload("a"); });
  // The stop cannot be observed before the load ends; open the gate once it had a chance to run.
  std::this_thread::yield();
  factory_.Open();
  EXPECT_TRUE(request.get());
  unload.get();
  EXPECT_TRUE(s.Snapshot().empty());
}

// Load-time options reload the model, but never under a request that holds it: the request with
// the new options waits for the lease to be dropped.
TEST_F(SchedulerTest, AChangedLoadOptionReloadsOnlyAfterTheLeaseIsReleased) {
  const std::vector<std::pair<const char*, std::function<void(runner::LoadRequest&)>>> changes = {
      {"num_batch", [](runner::LoadRequest& l) { l.n_batch = 256; }},
      {"num_thread", [](runner::LoadRequest& l) { l.n_threads = 3; }},
      {"use_mmap", [](runner::LoadRequest& l) { l.use_mmap = false; }},
      {"num_ctx", [](runner::LoadRequest& l) { l.n_ctx = 8192; }},
      {"num_gpu", [](runner::LoadRequest& l) { l.n_gpu_layers = 0; }},
  };
  for (const auto& [name, change] : changes) {
    SCOPED_TRACE(name);
    FakeClock clock;
    FakeFactory factory;
    Scheduler s(Opts(), factory, clock);
    auto held = s.Acquire(Spec("a"), std::nullopt);
    ASSERT_TRUE(held.ok());
    ModelSpec changed = Spec("a");
    change(changed.load);
    auto reload = std::async(std::launch::async, [&] { return s.Acquire(changed, std::nullopt).ok(); });
    WaitQueued(s, 1);
    EXPECT_EQ(reload.wait_for(0s), std::future_status::timeout);
    EXPECT_EQ(factory.starts, 1);
    EXPECT_EQ(factory.closes, 0);  // the runner under the lease stays
    held->Release();
    EXPECT_TRUE(reload.get());
    EXPECT_EQ(factory.starts, 2);
    EXPECT_EQ(factory.closes, 1);
    ASSERT_EQ(s.Snapshot().size(), 1u);
  }
}

TEST_F(SchedulerTest, SamplingOptionsNeverReloadLoadOptionsDo) {
  // The options objects of requests, decoded as the API decodes them.
  auto spec_for = [](const char* options_json) {
    auto o = api::DecodeOptionsJson(nlohmann::json::parse(options_json), api::RequestDefaults{});
    EXPECT_TRUE(o.ok()) << o.status().ToString();
    ModelSpec spec = Spec("a");
    spec.load = o->load;
    spec.load.model_path = "a";
    return spec;
  };
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(spec_for("{}"), std::nullopt).ok());
  for (const char* sampling :
       {R"({"temperature":0.1})", R"({"top_k":3,"top_p":0.5,"min_p":0.1})", R"({"seed":42,"num_predict":5})",
        R"({"stop":["x"],"repeat_penalty":1.5,"repeat_last_n":8})",
        R"({"presence_penalty":1,"frequency_penalty":1})"}) {
    SCOPED_TRACE(sampling);
    ASSERT_TRUE(s.Acquire(spec_for(sampling), std::nullopt).ok());
    EXPECT_EQ(factory_.starts, 1);
  }
  ASSERT_TRUE(s.Acquire(spec_for(R"({"num_batch":256,"temperature":0.1})"), std::nullopt).ok());
  EXPECT_EQ(factory_.starts, 2);
  EXPECT_EQ(factory_.closes, 1);
}

}  // namespace
}  // namespace resident::sched
