// The scheduler's residency decisions (sched/decision.h) as tables: a view of the loaded models,
// the limits and what is asked, and the decision expected. No threads, no clock, no runners.
#include "sched/decision.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/bytes.h"

namespace resident::sched {
namespace {

using namespace std::chrono_literals;
using Kind = Decision::Kind;
using Wait = Decision::Wait;

// A model in the view, built up: M("a").Busy().Pinned().
struct M : ModelView {
  explicit M(std::string_view k, uint64_t b = 100) {
    key = k;
    bytes = b;
  }
  M& Loading() {
    loading = true;
    return *this;
  }
  M& Dead() {
    alive = false;
    return *this;
  }
  M& Refs(int n) {
    refs = n;
    return *this;
  }
  M& Queued(int n) {
    queued = n;
    return *this;
  }
  M& Pin() {
    pinned = true;
    return *this;
  }
  M& UsedAt(int s) {
    last_used = TimePoint() + std::chrono::seconds(s);
    return *this;
  }
  M& ExpiresAt(int s) {
    expires_at = TimePoint() + std::chrono::seconds(s);
    return *this;
  }
  // Sleeping: asleep holding `bytes`, `awake` when awake.
  M& Asleep(uint64_t awake) {
    sleeping = true;
    may_sleep = true;
    awake_bytes = awake;
    asleep_bytes = bytes;
    return *this;
  }
  // Awake with a sleep_after: expected to hold `asleep` once asleep.
  M& MaySleep(uint64_t asleep) {
    may_sleep = true;
    asleep_bytes = asleep;
    awake_bytes = bytes;
    return *this;
  }
  M& SleepsAt(int s) {
    sleep_at = TimePoint() + std::chrono::seconds(s);
    return *this;
  }
  M& ChangingTier() {
    changing_tier = true;
    return *this;
  }
  // On GPU `g`, holding `v` bytes of its VRAM.
  M& Gpu(int g, uint64_t v) {
    gpu = g;
    vram_bytes = v;
    return *this;
  }
};

Limits L(int max_loaded, uint64_t budget = 0, int num_parallel = 1, int max_queue = 512) {
  return Limits{max_loaded, num_parallel, max_queue, budget};
}

// What the scheduler is doing besides the models in the map.
struct Busy {
  bool loading = false;
  int unloading = 0;
  uint64_t unloading_bytes = 0;
  bool shutdown = false;
  int waiting = 0;
};

// Eviction costs by key (1.0 when not listed).
using Costs = std::map<std::string, double>;

SchedulerView View(std::vector<ModelView> models, Busy busy = {}, Costs costs = {}) {
  SchedulerView v;
  v.models = std::move(models);
  v.loading = busy.loading;
  v.unloading = busy.unloading;
  v.unloading_bytes = busy.unloading_bytes;
  v.shutdown = busy.shutdown;
  v.waiting = busy.waiting;
  v.eviction_cost = [costs](const ModelView& m) {
    auto it = costs.find(std::string(m.key));
    return it == costs.end() ? 1.0 : it->second;
  };
  return v;
}

std::string Describe(const std::vector<Eviction>& victims) {
  std::string out;
  for (const Eviction& e : victims) out += e.key + ":" + std::string(ReasonName(e.reason)) + " ";
  return out;
}

struct Expect {
  Kind kind = Kind::kWait;
  Wait waiting_for = Wait::kNone;
  std::vector<Eviction> unload;
  StatusCode code = StatusCode::kOk;
  std::string message;  // exact, when not empty
  std::vector<SleepOrder> sleep;
};

std::string Describe(const std::vector<SleepOrder>& orders) {
  std::string out;
  for (const SleepOrder& o : orders) out += o.key + ":" + std::string(SleepReasonName(o.reason)) + " ";
  return out;
}

void Check(const Decision& d, const Expect& e) {
  EXPECT_EQ(static_cast<int>(d.kind), static_cast<int>(e.kind));
  EXPECT_EQ(static_cast<int>(d.waiting_for), static_cast<int>(e.waiting_for));
  EXPECT_EQ(Describe(d.unload), Describe(e.unload));
  EXPECT_EQ(Describe(d.sleep), Describe(e.sleep));
  EXPECT_EQ(d.error.code(), e.code) << d.error.message();
  if (!e.message.empty()) {
    EXPECT_EQ(d.error.message(), e.message);
  }
  if (e.kind != Kind::kFail) {
    EXPECT_TRUE(d.error.ok()) << d.error.message();
  }
}

Expect Lease() { return {Kind::kLease}; }
Expect Load() { return {Kind::kLoad}; }
Expect Predict() { return {Kind::kPredict}; }
Expect WaitFor(Wait w) { return {Kind::kWait, w}; }
Expect Unload(std::vector<Eviction> v) { return {Kind::kUnload, Wait::kNone, std::move(v)}; }
Expect Fail(StatusCode code, std::string message = "") {
  return {Kind::kFail, Wait::kNone, {}, code, std::move(message)};
}

Expect Wake() { return {Kind::kWake}; }
Expect Sleep(std::vector<SleepOrder> v) {
  Expect e{Kind::kSleep};
  e.sleep = std::move(v);
  return e;
}

AcquireAsk Ask(std::string_view key, std::optional<uint64_t> predicted = std::nullopt) {
  AcquireAsk a;
  a.key = key;
  a.name = key;
  a.predicted = predicted;
  return a;
}
AcquireAsk Other(AcquireAsk a) {  // other load options, or another file under the same path
  a.matches_loaded = false;
  return a;
}
AcquireAsk Arriving(AcquireAsk a) {
  a.arriving = true;
  return a;
}

struct AcquireCase {
  const char* name;
  SchedulerView view;
  Limits limits;
  AcquireAsk ask;
  Expect expect;
};

TEST(DecideAcquire, Table) {
  const std::string too_big = "model \"big\" needs about " + FormatBytes(2000) + " but the memory budget is " +
                              FormatBytes(1000) + " (RESIDENT_MEMORY_LIMIT): it can never be loaded";
  const std::string pinned_full = "model \"c\" needs about " + FormatBytes(300) +
                                  " and does not fit next to the pinned models within the memory budget of " +
                                  FormatBytes(1000);
  const AcquireCase cases[] = {
      // A model in the map.
      {"a loaded idle model: lease", View({M("a")}), L(3), Ask("a"), Lease()},
      {"a free slot of num_parallel: lease", View({M("a").Refs(1)}), L(3, 0, 2), Ask("a"), Lease()},
      {"every slot taken: wait for a slot", View({M("a").Refs(2)}), L(3, 0, 2), Ask("a"), WaitFor(Wait::kSlot)},
      {"still loading: wait for the load", View({M("a").Loading()}), L(3), Ask("a"), WaitFor(Wait::kLoad)},
      {"loading with other options: still wait for the load", View({M("a").Loading()}), L(3), Other(Ask("a")),
       WaitFor(Wait::kLoad)},
      {"a dead idle runner: unload it (exited)", View({M("a").Dead()}), L(3), Ask("a"),
       Unload({{"a", UnloadReason::kExited}})},
      {"a dead runner still leased: wait for its slot", View({M("a").Dead().Refs(1)}), L(3), Ask("a"),
       WaitFor(Wait::kSlot)},
      {"other options, idle: unload to reload", View({M("a")}), L(3), Other(Ask("a")),
       Unload({{"a", UnloadReason::kReload}})},
      {"other options, busy: wait to reload", View({M("a").Refs(1)}), L(3, 0, 4), Other(Ask("a")),
       WaitFor(Wait::kReload)},
      {"a loaded model needs no prediction, even over the budget", View({M("a", 5000)}), L(3, 1000), Ask("a"),
       Lease()},
      {"a loaded model is leased while another loads", View({M("a"), M("b").Loading()}, {.loading = true}), L(3),
       Ask("a"), Lease()},

      // A model not in the map.
      {"not predicted yet: predict first", View({}), L(3, 1000), Ask("x"), Predict()},
      {"not predicted, even when a load runs", View({}, {.loading = true}), L(3), Ask("x"), Predict()},
      {"fits: load", View({M("a", 400)}), L(3, 1000), Ask("b", 600), Load()},
      {"no budget: any size loads", View({M("a", 1ull << 40)}), L(3), Ask("b", 1ull << 40), Load()},
      {"above the whole budget: fail for good", View({}), L(3, 1000), Ask("big", 2000),
       Fail(StatusCode::kFailedPrecondition, too_big)},
      {"above the whole budget fails even while a load runs", View({}, {.loading = true}), L(3, 1000),
       Ask("big", 2000), Fail(StatusCode::kFailedPrecondition, too_big)},
      {"a load running: wait", View({}, {.loading = true}), L(3), Ask("x", 10), WaitFor(Wait::kOtherLoad)},
      {"an unload running: wait", View({}, {.unloading = 1, .unloading_bytes = 10}), L(3), Ask("x", 10),
       WaitFor(Wait::kOtherLoad)},
      {"exactly the budget: load", View({M("a", 400)}), L(3, 1000), Ask("b", 600), Load()},

      // Eviction.
      {"count: the cheapest goes", View({M("a"), M("b"), M("c")}, {}, {{"a", 2}, {"b", 0.5}, {"c", 3}}), L(3),
       Ask("d", 1), Unload({{"b", UnloadReason::kCount}})},
      {"equal costs: the least recently used goes",
       View({M("a").UsedAt(30), M("b").UsedAt(10), M("c").UsedAt(20)}), L(3), Ask("d", 1),
       Unload({{"b", UnloadReason::kCount}})},
      {"cost before recency", View({M("a").UsedAt(10), M("b").UsedAt(20)}, {}, {{"a", 2}, {"b", 1}}), L(2),
       Ask("c", 1), Unload({{"b", UnloadReason::kCount}})},
      {"memory: one victim is enough", View({M("a", 400), M("b", 400)}, {}, {{"a", 2}, {"b", 1}}), L(10, 1000),
       Ask("c", 300), Unload({{"b", UnloadReason::kMemory}})},
      {"memory: victims until it fits, cheapest first",
       View({M("a", 400), M("b", 400), M("c", 100)}, {}, {{"a", 1}, {"b", 2}, {"c", 3}}), L(10, 1000),
       Ask("d", 900), Unload({{"a", UnloadReason::kMemory}, {"b", UnloadReason::kMemory}})},
      {"never pinned, busy, queued or loading, whatever their cost",
       View({M("p").Pin(), M("busy").Refs(1), M("q").Queued(1), M("l").Loading(), M("x")}, {.loading = false},
            {{"p", 0}, {"busy", 0}, {"q", 0}, {"l", 0}, {"x", 100}}),
       L(5), Ask("y", 1), Unload({{"x", UnloadReason::kCount}})},
      {"pinned stay, others make room within the budget", View({M("p", 600).Pin(), M("x", 300)}, {}, {{"p", 0}}),
       L(10, 1000), Ask("c", 300), Unload({{"x", UnloadReason::kMemory}})},
      {"nothing evictable: wait for room", View({M("busy").Refs(1), M("q").Queued(2), M("l").Loading()}), L(3),
       Ask("x", 1), WaitFor(Wait::kRoom)},
      {"evictable models that cannot make room: wait",
       View({M("busy", 800).Refs(1), M("x", 100)}), L(10, 1000), Ask("c", 300), WaitFor(Wait::kRoom)},
      {"only pinned models fill max_loaded: fail", View({M("p1").Pin(), M("p2").Pin()}), L(2), Ask("c", 1),
       Fail(StatusCode::kFailedPrecondition)},
      {"pinned models leave no memory: fail", View({M("p", 800).Pin(), M("x", 100)}), L(10, 1000), Ask("c", 300),
       Fail(StatusCode::kFailedPrecondition, pinned_full)},

      // Queue and shutdown.
      {"a full queue on arrival: server busy", View({M("a")}, {.waiting = 2}), L(3, 0, 1, 2), Arriving(Ask("a")),
       Fail(StatusCode::kResourceExhausted, "server busy, please try again.  maximum pending requests exceeded")},
      {"room in the queue on arrival: decided as usual", View({M("a")}, {.waiting = 1}), L(3, 0, 1, 2),
       Arriving(Ask("a")), Lease()},
      {"a request already queued is not refused again", View({M("a")}, {.waiting = 5}), L(3, 0, 1, 2), Ask("a"),
       Lease()},
      {"shutdown: unavailable", View({M("a")}, {.shutdown = true}), L(3), Ask("a"),
       Fail(StatusCode::kUnavailable, "the server is shutting down")},
      {"shutdown before a full queue", View({}, {.shutdown = true, .waiting = 9}), L(3, 0, 1, 2), Arriving(Ask("a")),
       Fail(StatusCode::kUnavailable)},
  };
  for (const AcquireCase& c : cases) {
    SCOPED_TRACE(c.name);
    Check(DecideAcquire(c.view, c.limits, c.ask), c.expect);
  }
}

// The eviction cost is asked only of candidates, and only when room is needed.
TEST(DecideAcquire, AsksTheCostOnlyOfCandidatesWhenRoomIsNeeded) {
  std::vector<std::string> asked;
  SchedulerView v = View({M("p").Pin(), M("busy").Refs(1), M("x"), M("y")});
  v.eviction_cost = [&](const ModelView& m) {
    asked.emplace_back(m.key);
    return 1.0;
  };
  EXPECT_EQ(DecideAcquire(v, L(5), Ask("z", 1)).kind, Kind::kLoad);
  EXPECT_TRUE(asked.empty());
  Check(DecideAcquire(v, L(4), Ask("z", 1)), Unload({{"x", UnloadReason::kCount}}));
  EXPECT_EQ(asked, (std::vector<std::string>{"x", "y"}));
}

struct TickCase {
  const char* name;
  std::vector<ModelView> models;
  int now_s;
  std::vector<Eviction> expect;
};

TEST(DecideTick, Table) {
  const TickCase cases[] = {
      {"nothing loaded", {}, 100, {}},
      {"idle, not yet expired", {M("a").ExpiresAt(101)}, 100, {}},
      {"idle, expiring now", {M("a").ExpiresAt(100)}, 100, {{"a", UnloadReason::kExpired}}},
      {"idle, expired", {M("a").ExpiresAt(50)}, 100, {{"a", UnloadReason::kExpired}}},
      {"no timer (forever, or in use)", {M("a")}, 100, {}},
      {"busy with a past expiry", {M("a").ExpiresAt(50).Refs(1)}, 100, {}},
      {"queued for with a past expiry", {M("a").ExpiresAt(50).Queued(1)}, 100, {}},
      {"loading", {M("a").Loading().ExpiresAt(50)}, 100, {}},
      {"a dead idle runner, not expired", {M("a").Dead().ExpiresAt(500)}, 100, {{"a", UnloadReason::kExited}}},
      {"a dead idle runner without a timer", {M("a").Dead()}, 100, {{"a", UnloadReason::kExited}}},
      {"a dead expired runner: exited, not expired", {M("a").Dead().ExpiresAt(50)}, 100,
       {{"a", UnloadReason::kExited}}},
      {"a dead runner still leased", {M("a").Dead().Refs(1)}, 100, {}},
      {"a dead runner with a request queued", {M("a").Dead().Queued(1)}, 100, {}},
      {"several, in map order",
       {M("a").ExpiresAt(10), M("b").ExpiresAt(200), M("c").Dead(), M("d").ExpiresAt(99).Refs(1),
        M("e").ExpiresAt(100)},
       100,
       {{"a", UnloadReason::kExpired}, {"c", UnloadReason::kExited}, {"e", UnloadReason::kExpired}}},
  };
  for (const TickCase& c : cases) {
    SCOPED_TRACE(c.name);
    SchedulerView v = View(c.models);
    EXPECT_EQ(Describe(DecideTick(v, TimePoint() + std::chrono::seconds(c.now_s))), Describe(c.expect));
  }
}

struct PrewarmCase {
  const char* name;
  SchedulerView view;
  Limits limits;
  uint64_t bytes;
  Expect expect;
};

TEST(DecidePrewarm, Table) {
  const PrewarmCase cases[] = {
      {"free room: load", View({M("a")}), L(3, 1000), 500, Load()},
      {"exactly the room left: load", View({M("a", 500)}), L(3, 1000), 500, Load()},
      {"already loaded: nothing to do", View({M("p")}), L(1), 10, Lease()},
      {"already loading: nothing to do", View({M("p").Loading()}, {.loading = true}), L(1), 10, Lease()},
      {"max_loaded reached by idle models: never evicts", View({M("a"), M("b")}), L(2), 10, WaitFor(Wait::kRoom)},
      {"max_loaded reached by busy models", View({M("a").Refs(1), M("b").Refs(1)}), L(2), 10, WaitFor(Wait::kRoom)},
      {"the budget would be exceeded by idle models", View({M("a", 600)}), L(3, 1000), 500, WaitFor(Wait::kRoom)},
      {"a load running: wait", View({}, {.loading = true}), L(3), 10, WaitFor(Wait::kOtherLoad)},
      {"an unload running: wait", View({}, {.unloading = 1, .unloading_bytes = 10}), L(3), 10,
       WaitFor(Wait::kOtherLoad)},
      {"shutdown: nothing", View({}, {.shutdown = true}), L(3), 10, WaitFor(Wait::kNone)},
  };
  for (const PrewarmCase& c : cases) {
    SCOPED_TRACE(c.name);
    Check(DecidePrewarm(c.view, c.limits, "p", c.bytes), c.expect);
  }
}

// ---- GPUs ----------------------------------------------------------------------------------------

// Two devices: GPU 0 with 1000 bytes for resident's models, GPU 1 with 500.
SchedulerView WithGpus(SchedulerView v) {
  v.gpus = {{0, 1000}, {1, 500}};
  return v;
}

AcquireAsk OnGpu(AcquireAsk a, int gpu, uint64_t vram) {
  a.gpu = gpu;
  a.predicted_vram = vram;
  return a;
}

TEST(DecideAcquire, GpuTable) {
  const AcquireCase cases[] = {
      {"VRAM free on its device: load", WithGpus(View({M("a").Gpu(0, 400)})), L(3), OnGpu(Ask("n", 10), 0, 600),
       Load()},
      {"VRAM short: the idle model on that device goes, not the cheaper one elsewhere",
       WithGpus(View({M("a").Gpu(0, 500).UsedAt(1), M("b").Gpu(1, 400)}, {}, {{"a", 5.0}, {"b", 0.1}})), L(3),
       OnGpu(Ask("n", 10), 0, 600), Unload({{"a", UnloadReason::kMemory}})},
      {"VRAM short: the cheapest of the models on that device first",
       WithGpus(View({M("a").Gpu(0, 300), M("b").Gpu(0, 300), M("c").Gpu(0, 300)},
                     {}, {{"a", 3.0}, {"b", 1.0}, {"c", 2.0}})),
       L(5), OnGpu(Ask("n", 10), 0, 500), Unload({{"b", UnloadReason::kMemory}, {"c", UnloadReason::kMemory}})},
      {"a model on the CPU frees no VRAM: it stays", WithGpus(View({M("cpu", 100), M("g").Gpu(0, 800)}, {},
                                                                 {{"cpu", 0.1}, {"g", 9.0}})),
       L(3), OnGpu(Ask("n", 10), 0, 300), Unload({{"g", UnloadReason::kMemory}})},
      {"VRAM held by a busy model: wait for room", WithGpus(View({M("a").Gpu(0, 800).Refs(1)})), L(3),
       OnGpu(Ask("n", 10), 0, 300), WaitFor(Wait::kRoom)},
      {"VRAM held by a pinned model, for good: fail", WithGpus(View({M("a").Gpu(0, 800).Pin()})), L(3),
       OnGpu(Ask("n", 10), 0, 300),
       Fail(StatusCode::kFailedPrecondition,
            "model \"n\" needs about " + FormatBytes(300) + " on GPU 0 and does not fit there next to the pinned "
            "models (" + FormatBytes(1000) + " usable); lower num_gpu to offload fewer layers")},
      {"pinned models fill the count, VRAM would fit: the count is named, not num_gpu",
       WithGpus(View({M("p").Pin()})), L(1), OnGpu(Ask("n", 10), 0, 300),
       Fail(StatusCode::kFailedPrecondition,
            "model \"n\" does not fit next to the pinned models (at most 1 models loaded at once)")},
      {"more VRAM than the device has: fail", WithGpus(View({})), L(3), OnGpu(Ask("n", 10), 1, 600),
       Fail(StatusCode::kFailedPrecondition)},
      {"a device that is gone: fail", WithGpus(View({})), L(3), OnGpu(Ask("n", 10), 7, 1),
       Fail(StatusCode::kFailedPrecondition)},
      {"VRAM fits, host memory short: any idle model goes, the CPU one first by cost",
       WithGpus(View({M("cpu", 600), M("g", 100).Gpu(0, 100)}, {}, {{"cpu", 0.1}, {"g", 0.2}})), L(3, 1000),
       OnGpu(Ask("n", 500), 0, 100), Unload({{"cpu", UnloadReason::kMemory}})},
      {"VRAM and host memory both short: the device's model first, then host memory",
       WithGpus(View({M("cpu", 600), M("g", 100).Gpu(0, 900)}, {}, {{"cpu", 0.1}, {"g", 9.0}})), L(3, 1000),
       OnGpu(Ask("n", 500), 0, 500), Unload({{"g", UnloadReason::kMemory}, {"cpu", UnloadReason::kMemory}})},
      {"VRAM short and the count reached: one eviction on the device serves both",
       WithGpus(View({M("cpu"), M("g").Gpu(0, 900)}, {}, {{"cpu", 0.1}, {"g", 9.0}})), L(2),
       OnGpu(Ask("n", 10), 0, 500), Unload({{"g", UnloadReason::kMemory}})},
      {"VRAM short: sleeping (host memory only) is not offered",
       WithGpus(View({M("g").Gpu(0, 900).MaySleep(10)})), L(3, 10000), OnGpu(Ask("n", 10), 0, 500),
       Unload({{"g", UnloadReason::kMemory}})},
      {"a CPU-only model on a GPU machine: VRAM plays no part", WithGpus(View({M("g").Gpu(0, 1000)})), L(3),
       Ask("n", 10), Load()},
  };
  for (const AcquireCase& c : cases) {
    SCOPED_TRACE(c.name);
    Check(DecideAcquire(c.view, c.limits, c.ask), c.expect);
  }
}

TEST(DecidePrewarm, NeverEvictsForVram) {
  SchedulerView v = WithGpus(View({M("a").Gpu(0, 700)}));
  Check(DecidePrewarm(v, L(3), "p", 10, 0, 300), Load());
  Check(DecidePrewarm(v, L(3), "p", 10, 0, 301), WaitFor(Wait::kRoom));
  Check(DecidePrewarm(v, L(3), "p", 10, 1, 500), Load());
  Check(DecidePrewarm(v, L(3), "p", 10, -1, 5000), Load());  // CPU only
}

TEST(EvictionCost, ReloadTimeTimesReuseProbabilityPerByte) {
  EXPECT_DOUBLE_EQ(EvictionCost(10, 0.5, 1000), 10 * 0.5 / 1000);
  EXPECT_DOUBLE_EQ(EvictionCost(0, 1, 1), 0.001);  // a load of no time still costs something
  EXPECT_DOUBLE_EQ(EvictionCost(1, 2, 1), 1);      // probabilities are clamped
  EXPECT_DOUBLE_EQ(EvictionCost(1, -1, 1), 0);
  EXPECT_DOUBLE_EQ(EvictionCost(1, 1, 0), 1);      // no bytes: counted as one
  EXPECT_LT(EvictionCost(10, 0.5, 2000), EvictionCost(10, 0.5, 1000));
}

TEST(DefaultReuseProbability, OneOverOnePlusIdleMinutes) {
  EXPECT_DOUBLE_EQ(DefaultReuseProbability(0s), 1);
  EXPECT_DOUBLE_EQ(DefaultReuseProbability(1min), 0.5);
  EXPECT_DOUBLE_EQ(DefaultReuseProbability(3min), 0.25);
  EXPECT_DOUBLE_EQ(DefaultReuseProbability(-1min), 1);
}

// Sleeping (sleep_after): waking, and sleeping instead of evicting under memory pressure.
TEST(DecideAcquire, SleepingTable) {
  const AcquireCase cases[] = {
      // A request for a sleeping model.
      {"asleep, room to wake: wake", View({M("a", 100).Asleep(400)}), L(3, 1000), Ask("a"), Wake()},
      {"asleep, no budget: wake", View({M("a", 100).Asleep(1ull << 40)}), L(3), Ask("a"), Wake()},
      {"asleep, exactly the room to wake: wake", View({M("a", 100).Asleep(500), M("b", 500)}), L(3, 1000), Ask("a"),
       Wake()},
      {"asleep and a load running, room to wake: wake", View({M("a", 100).Asleep(400)}, {.loading = true}),
       L(3, 1000), Ask("a"), Wake()},
      {"asleep and a load running, no room: wait", View({M("a", 100).Asleep(500), M("b", 500)}, {.loading = true}),
       L(3, 900), Ask("a"), WaitFor(Wait::kOtherLoad)},
      {"falling asleep or waking: wait for it", View({M("a", 100).Asleep(400).ChangingTier()}), L(3, 1000), Ask("a"),
       WaitFor(Wait::kTier)},
      {"an awake model falling asleep: wait for it", View({M("a").ChangingTier()}), L(3), Ask("a"),
       WaitFor(Wait::kTier)},
      {"a dead sleeping runner: unload it (exited)", View({M("a", 100).Asleep(400).Dead()}), L(3), Ask("a"),
       Unload({{"a", UnloadReason::kExited}})},
      {"asleep, other options: unload to reload", View({M("a", 100).Asleep(400)}), L(3), Other(Ask("a")),
       Unload({{"a", UnloadReason::kReload}})},
      {"no room to wake: another idle model sleeps when that frees enough",
       View({M("a", 100).Asleep(500), M("b", 500).MaySleep(200)}), L(3, 900), Ask("a"),
       Sleep({{"b", SleepReason::kMemory}})},
      {"no room to wake, sleeping frees too little: evict",
       View({M("a", 100).Asleep(500), M("b", 500).MaySleep(450)}), L(3, 800), Ask("a"),
       Unload({{"b", UnloadReason::kMemory}})},
      {"no room to wake and nothing can go: wait", View({M("a", 100).Asleep(500), M("busy", 500).Refs(1)}),
       L(3, 800), Ask("a"), WaitFor(Wait::kRoom)},
      {"awake it can never fit next to the pinned models: fail", View({M("a", 100).Asleep(900), M("p", 200).Pin()}),
       L(3, 1000), Ask("a"), Fail(StatusCode::kFailedPrecondition)},

      // Memory pressure on a load.
      {"a load: an idle model sleeps instead of being evicted", View({M("a", 600).MaySleep(200)}), L(3, 1000),
       Ask("b", 500), Sleep({{"a", SleepReason::kMemory}})},
      {"sleeping frees too little: evict as before", View({M("a", 600).MaySleep(550)}), L(3, 1000), Ask("b", 500),
       Unload({{"a", UnloadReason::kMemory}})},
      {"one sleep is enough, the cheapest",
       View({M("a", 400).MaySleep(100), M("b", 400).MaySleep(100)}, {}, {{"a", 2}, {"b", 1}}), L(10, 1000),
       Ask("c", 500), Sleep({{"b", SleepReason::kMemory}})},
      {"sleeps until it fits, cheapest first",
       View({M("a", 400).MaySleep(100), M("b", 400).MaySleep(100)}, {}, {{"a", 2}, {"b", 1}}), L(10, 1000),
       Ask("c", 600), Sleep({{"b", SleepReason::kMemory}, {"a", SleepReason::kMemory}})},
      {"models without sleep_after are not put to sleep", View({M("a", 400).MaySleep(100), M("b", 400)},
       {}, {{"a", 2}, {"b", 1}}), L(10, 1000), Ask("c", 500), Sleep({{"a", SleepReason::kMemory}})},
      {"pinned models never sleep for room", View({M("p", 600).Pin().MaySleep(100), M("x", 300)}), L(10, 1000),
       Ask("c", 300), Unload({{"x", UnloadReason::kMemory}})},
      {"busy models never sleep for room", View({M("a", 600).MaySleep(100).Refs(1), M("x", 300)}), L(10, 1000),
       Ask("c", 300), Unload({{"x", UnloadReason::kMemory}})},
      {"only the count is short: evict (sleeping keeps the model)",
       View({M("a").MaySleep(10).UsedAt(1), M("b").UsedAt(2)}), L(2), Ask("c", 1),
       Unload({{"a", UnloadReason::kCount}})},
      {"a sleeping model is evicted at its sleeping bytes",
       View({M("a", 100).Asleep(500), M("b", 400)}, {}, {{"a", 1}, {"b", 2}}), L(10, 1000), Ask("c", 550),
       Unload({{"a", UnloadReason::kMemory}})},
      {"a model falling asleep or waking is no candidate", View({M("a", 600).MaySleep(200).ChangingTier()}),
       L(3, 1000), Ask("b", 500), WaitFor(Wait::kRoom)},
      {"the budget counts a sleeping model at its sleeping bytes", View({M("a", 100).Asleep(900)}), L(3, 1000),
       Ask("b", 900), Load()},
  };
  for (const AcquireCase& c : cases) {
    SCOPED_TRACE(c.name);
    Check(DecideAcquire(c.view, c.limits, c.ask), c.expect);
  }
}

struct SleepCase {
  const char* name;
  std::vector<ModelView> models;
  int now_s;
  std::vector<SleepOrder> expect;
};

TEST(DecideSleep, Table) {
  const SleepCase cases[] = {
      {"nothing loaded", {}, 100, {}},
      {"no sleep timer", {M("a")}, 100, {}},
      {"idle, sleep_after not yet run out", {M("a").SleepsAt(101)}, 100, {}},
      {"idle, sleep_after runs out now", {M("a").SleepsAt(100)}, 100, {{"a", SleepReason::kIdle}}},
      {"idle, sleep_after ran out", {M("a").SleepsAt(50)}, 100, {{"a", SleepReason::kIdle}}},
      {"keep_alive runs out later", {M("a").SleepsAt(50).ExpiresAt(200)}, 100, {{"a", SleepReason::kIdle}}},
      {"keep_alive ran out too: unloaded, not put to sleep", {M("a").SleepsAt(50).ExpiresAt(100)}, 100, {}},
      {"busy", {M("a").SleepsAt(50).Refs(1)}, 100, {}},
      {"queued for", {M("a").SleepsAt(50).Queued(1)}, 100, {}},
      {"loading", {M("a").SleepsAt(50).Loading()}, 100, {}},
      {"already asleep", {M("a", 10).Asleep(100).SleepsAt(50)}, 100, {}},
      {"falling asleep", {M("a").SleepsAt(50).ChangingTier()}, 100, {}},
      {"a dead runner: DecideTick's", {M("a").SleepsAt(50).Dead()}, 100, {}},
      {"several, in map order", {M("a").SleepsAt(10), M("b").SleepsAt(200), M("c").SleepsAt(100)}, 100,
       {{"a", SleepReason::kIdle}, {"c", SleepReason::kIdle}}},
  };
  for (const SleepCase& c : cases) {
    SCOPED_TRACE(c.name);
    SchedulerView v = View(c.models);
    EXPECT_EQ(Describe(DecideSleep(v, TimePoint() + std::chrono::seconds(c.now_s))), Describe(c.expect));
  }
}

TEST(DecideTick, SleepingModels) {
  const TickCase cases[] = {
      {"asleep, keep_alive ran out: unloaded whatever its tier", {M("a", 10).Asleep(100).ExpiresAt(50)}, 100,
       {{"a", UnloadReason::kExpired}}},
      {"asleep, keep_alive not yet run out", {M("a", 10).Asleep(100).ExpiresAt(500)}, 100, {}},
      {"asleep without a keep_alive timer", {M("a", 10).Asleep(100)}, 100, {}},
      {"a dead sleeping runner is reaped", {M("a", 10).Asleep(100).Dead()}, 100, {{"a", UnloadReason::kExited}}},
      {"falling asleep or waking, expired: left to that", {M("a").ChangingTier().ExpiresAt(50)}, 100, {}},
      {"falling asleep or waking, dead: left to that", {M("a").ChangingTier().Dead()}, 100, {}},
  };
  for (const TickCase& c : cases) {
    SCOPED_TRACE(c.name);
    SchedulerView v = View(c.models);
    EXPECT_EQ(Describe(DecideTick(v, TimePoint() + std::chrono::seconds(c.now_s))), Describe(c.expect));
  }
}

}  // namespace
}  // namespace resident::sched
