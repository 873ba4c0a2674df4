// GPUs in the scheduler, with a fake GPU, a fake clock and fake runners: no processes, no devices.
// A model is placed on the device with room for it (its runner told which one and how many
// layers), its VRAM measured after the load; the room a placement sees leaves out other
// processes, the margin and models that cannot go now; VRAM that is short evicts the idle models
// on that device first; an unload waits for the device's memory to come back.
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/keep_alive.h"
#include "sched/scheduler.h"
#include "support/fake_gpu.h"
#include "support/fake_runners.h"

namespace resident::sched {
namespace {

using namespace std::chrono_literals;
using resident::testing::FakeFactory;
using resident::testing::FakeGpu;

ModelSpec Spec(const std::string& path, int num_gpu = -1) {
  ModelSpec s;
  s.name = path;
  s.load.model_path = path;
  s.load.n_gpu_layers = num_gpu;
  return s;
}

class SchedulerGpuTest : public ::testing::Test {
 protected:
  SchedulerGpuTest() : gpu_(factory_) {}

  // The planner: every layer (33) on the device with the most room that holds the model's
  // predicted VRAM (predicted_, default 500), else CPU only.
  Scheduler::Options Opts(uint64_t margin = 0) {
    Scheduler::Options o;
    o.timer_thread = false;
    o.max_loaded = 3;
    o.gpus = &gpu_;
    o.gpu_margin_bytes = margin;
    o.gpu_release_wait = 0s;  // a test never sleeps: one look at the device
    o.gpu_planner = [this](const ModelSpec& spec, const std::vector<GpuRoom>& rooms) -> Result<GpuPlacement> {
      std::lock_guard<std::mutex> lock(mu_);
      rooms_seen_[spec.name] = rooms;
      ++placements_[spec.name];
      placed_cv_.notify_all();
      GpuPlacement p;
      p.total_layers = 33;
      p.host_bytes = 100;
      const uint64_t need = predicted_.count(spec.name) ? predicted_.at(spec.name) : 500;
      if (spec.load.n_gpu_layers == 0) return p;
      uint64_t best = 0;
      for (const GpuRoom& r : rooms) {
        if (r.bytes >= need && (p.gpu < 0 || r.bytes > best)) {
          best = r.bytes;
          p.gpu = r.index;
          p.layers = 33;
          p.vram_bytes = need;
        }
      }
      if (p.gpu < 0) p.host_bytes = 100 + need;
      return p;
    };
    return o;
  }
  const LoadedModel* Find(const std::vector<LoadedModel>& models, const std::string& name) {
    for (const LoadedModel& m : models) {
      if (m.name == name) return &m;
    }
    return nullptr;
  }
  const runner::LoadRequest& LastLoad() { return factory_.requests.back(); }

  FakeFactory factory_;
  FakeClock clock_;
  FakeGpu gpu_;
  std::map<std::string, uint64_t> predicted_;
  std::mutex mu_;  // the planner may run on another thread
  std::condition_variable placed_cv_;
  std::map<std::string, std::vector<GpuRoom>> rooms_seen_;
  std::map<std::string, int> placements_;
};

TEST_F(SchedulerGpuTest, PlacesOnTheDeviceWithRoomAndMeasuresItsVram) {
  gpu_.Add(0, 1000);
  gpu_.Add(1, 3000);
  predicted_["a"] = 800;
  factory_.vram["a"] = 900;  // what the runner really holds
  Scheduler s(Opts(), factory_, clock_);
  {
    auto lease = s.Acquire(Spec("a"), KeepAlive::Of(5min));
    ASSERT_TRUE(lease.ok()) << lease.status().message();
  }
  EXPECT_EQ(LastLoad().main_gpu, 1);
  EXPECT_EQ(LastLoad().n_gpu_layers, 33);
  auto models = s.Snapshot();
  const LoadedModel* a = Find(models, "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->gpu, 1);
  EXPECT_EQ(a->gpu_layers, 33);
  EXPECT_EQ(a->total_layers, 33);
  EXPECT_EQ(a->vram_bytes, 900u);  // measured, not the 800 predicted
  EXPECT_EQ(a->facts.vram_bytes, 900u);
  EXPECT_EQ(a->predicted_bytes, 100u);  // host memory only
}

TEST_F(SchedulerGpuTest, TheRunnerIsToldItsDeviceById) {
  gpu_.Add(0, 1000);
  gpu_.Add(3, 1000);
  predicted_["a"] = 900;
  gpu_.others[0] = 500;
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(5min)).ok());
  EXPECT_EQ(LastLoad().main_gpu, 3);
  EXPECT_EQ(LastLoad().gpu_id, "GPU-fake-3");
}

TEST_F(SchedulerGpuTest, ARunnerWithoutAGpuBackendCountsAsOnTheCpu) {
  gpu_.Add(0, 1000);
  factory_.gpu_backend = false;
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(5min)).ok());
  EXPECT_EQ(LastLoad().main_gpu, 0);  // it was asked
  auto models = s.Snapshot();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].gpu, -1);        // but it runs on the CPU, and holds no VRAM
  EXPECT_EQ(models[0].vram_bytes, 0u);
}

TEST_F(SchedulerGpuTest, NumGpuZeroLoadsOnTheCpu) {
  gpu_.Add(0, 10000);
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a", 0), KeepAlive::Of(5min)).ok());
  EXPECT_EQ(LastLoad().n_gpu_layers, 0);
  EXPECT_EQ(LastLoad().main_gpu, -1);
  EXPECT_EQ(LastLoad().gpu_id, "-1");  // its runner's CUDA sees no device: no context, no VRAM
  EXPECT_EQ(s.Snapshot()[0].vram_bytes, 0u);
  EXPECT_EQ(s.Snapshot()[0].gpu, -1);
}

TEST_F(SchedulerGpuTest, WithoutGpusConfiguredNothingChanges) {
  Scheduler::Options o = Opts();
  o.gpus = nullptr;  // a machine without a GPU, or without llama.cpp's CUDA build
  Scheduler s(o, factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a", 7), KeepAlive::Of(5min)).ok());
  EXPECT_EQ(LastLoad().n_gpu_layers, 7);  // as the request asked (llama.cpp's CPU build ignores it)
  EXPECT_EQ(LastLoad().main_gpu, -1);
  EXPECT_EQ(LastLoad().gpu_id, "");
  EXPECT_TRUE(rooms_seen_.empty());       // never asked to place it
}

TEST_F(SchedulerGpuTest, AReadingWithoutDevicesPlacesItOnTheCpuWithNoGpuInSight) {
  Scheduler s(Opts(), factory_, clock_);  // the GPUs were there at start; this reading has none
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(5min)).ok());
  EXPECT_GE(gpu_.reads, 1);
  EXPECT_TRUE(rooms_seen_.at("a").empty());
  EXPECT_EQ(LastLoad().n_gpu_layers, 0);  // not llama.cpp's "every layer, on every device"
  EXPECT_EQ(LastLoad().gpu_id, "-1");
}

TEST_F(SchedulerGpuTest, VramShortEvictsTheIdleModelOnThatDeviceNotTheCheaperCpuOne) {
  gpu_.Add(0, 2000);
  predicted_["a"] = factory_.vram["a"] = 1500;
  predicted_["b"] = factory_.vram["b"] = 1000;
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(5min)).ok());
  clock_.Advance(1min);
  ASSERT_TRUE(s.Acquire(Spec("cpu", 0), KeepAlive::Of(5min)).ok());  // idle, used later: cheaper
  clock_.Advance(1min);
  // a is idle: its VRAM counts as room for b, which goes on GPU 0 after a is evicted.
  {
    auto b = s.Acquire(Spec("b"), KeepAlive::Of(5min));
    ASSERT_TRUE(b.ok()) << b.status().message();
  }
  EXPECT_EQ(rooms_seen_["b"].at(0).bytes, 2000u);
  EXPECT_EQ(LastLoad().main_gpu, 0);
  auto models = s.Snapshot();
  EXPECT_EQ(Find(models, "a"), nullptr);
  ASSERT_NE(Find(models, "cpu"), nullptr);
  ASSERT_NE(Find(models, "b"), nullptr);
  EXPECT_EQ(Find(models, "b")->vram_bytes, 1000u);
  bool evicted = false;
  for (const auto& ev : s.events().Since(0)) {
    evicted = evicted || (ev.type == ResidencyEvent::Type::kEvict && ev.model == "a" && ev.reason == UnloadReason::kMemory);
  }
  EXPECT_TRUE(evicted);
}

TEST_F(SchedulerGpuTest, ABusyModelsVramIsNoRoomSoFewerLayersGoThere) {
  gpu_.Add(0, 2000);
  predicted_["a"] = factory_.vram["a"] = 1500;
  predicted_["b"] = 1000;
  Scheduler s(Opts(), factory_, clock_);
  auto busy = s.Acquire(Spec("a"), KeepAlive::Of(5min));
  ASSERT_TRUE(busy.ok());
  ASSERT_TRUE(s.Acquire(Spec("b"), KeepAlive::Of(5min)).ok());  // does not wait for a
  EXPECT_EQ(rooms_seen_["b"].at(0).bytes, 500u);
  EXPECT_EQ(LastLoad().n_gpu_layers, 0);  // the planner found no room: CPU only
  EXPECT_EQ(s.Snapshot().size(), 2u);
}

TEST_F(SchedulerGpuTest, OtherProcessesAndTheMarginAreNotRoom) {
  gpu_.Add(0, 2000);
  gpu_.others[0] = 600;
  Scheduler s(Opts(/*margin=*/200), factory_, clock_);
  predicted_["b"] = 1000;
  ASSERT_TRUE(s.Acquire(Spec("b"), KeepAlive::Of(5min)).ok());
  EXPECT_EQ(rooms_seen_["b"].at(0).bytes, 1200u);
  EXPECT_EQ(LastLoad().main_gpu, 0);
  // b holds 500 (the fake runner's default), less than the 1000 predicted: c fits beside it.
  predicted_["c"] = 700;
  {
    auto c = s.Acquire(Spec("c"), KeepAlive::Of(5min));
    ASSERT_TRUE(c.ok()) << c.status().message();
  }
  // b is idle and could go: room = 1200; c fits beside b (500 measured + 700 <= 1200).
  EXPECT_EQ(rooms_seen_["c"].at(0).bytes, 1200u);
  EXPECT_EQ(s.Snapshot().size(), 2u);
  // d (800) does not: b, idle on that device, goes.
  predicted_["d"] = 800;
  ASSERT_TRUE(s.Acquire(Spec("d"), KeepAlive::Of(5min)).ok());
  auto models = s.Snapshot();
  EXPECT_EQ(Find(models, "b"), nullptr);
  ASSERT_NE(Find(models, "d"), nullptr);
  EXPECT_EQ(Find(models, "d")->gpu, 0);
}

TEST_F(SchedulerGpuTest, APinnedModelsVramIsNeverRoom) {
  gpu_.Add(0, 2000);
  predicted_["p"] = factory_.vram["p"] = 1500;
  Scheduler::Options o = Opts();
  auto policy = ParsePolicy("[models.p]\npin = true\n", "test", KeepAlive::Of(5min));
  ASSERT_TRUE(policy.ok()) << policy.status().message();
  o.policy = *policy;
  Scheduler s(o, factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("p"), std::nullopt).ok());
  predicted_["b"] = 1000;
  ASSERT_TRUE(s.Acquire(Spec("b"), KeepAlive::Of(5min)).ok());
  EXPECT_EQ(rooms_seen_["b"].at(0).bytes, 500u);
  EXPECT_EQ(s.Snapshot().size(), 2u);  // p stays; b on the CPU
}

// A placement made while another model was loading rests on a reading from before that load took
// its VRAM: it is made again once the load has ended.
TEST_F(SchedulerGpuTest, APlacementMadeDuringAnotherLoadIsMadeAgainAfterIt) {
  gpu_.Add(0, 2000);
  predicted_["b"] = 1500;
  factory_.vram["b"] = 1800;  // more than predicted
  predicted_["a"] = 400;
  Scheduler s(Opts(), factory_, clock_);
  factory_.gated = true;
  auto b = std::async(std::launch::async, [&] { return s.Acquire(Spec("b"), KeepAlive::Of(5min)); });
  factory_.WaitForStarts(1);
  auto a = std::async(std::launch::async, [&] { return s.Acquire(Spec("a"), KeepAlive::Of(5min)); });
  {
    std::unique_lock<std::mutex> lock(mu_);
    placed_cv_.wait(lock, [&] { return placements_["a"] == 1; });
    EXPECT_EQ(rooms_seen_["a"].at(0).bytes, 500u);  // b loading: its 1500 predicted stay
  }
  factory_.Open();
  auto b_lease = b.get();  // b stays busy
  ASSERT_TRUE(b_lease.ok());
  ASSERT_TRUE(a.get().ok());
  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_EQ(placements_["a"], 2);
  EXPECT_EQ(rooms_seen_["a"].at(0).bytes, 200u);  // b measured 1800
  EXPECT_EQ(factory_.requests.back().model_path, "a");
  EXPECT_EQ(factory_.requests.back().n_gpu_layers, 0);  // no room left on the GPU: the CPU
}

TEST_F(SchedulerGpuTest, ACrashedRunnersVramIsNotWaitedFor) {
  gpu_.Add(0, 2000);
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(5min)).ok());
  factory_.runners["a"]->death = "killed by signal 9";
  factory_.runners["a"]->alive_ = false;  // gone: the driver has its memory back already
  const int before = gpu_.reads;
  s.Tick();
  EXPECT_TRUE(s.Snapshot().empty());
  EXPECT_EQ(gpu_.reads - before, 1);  // one reading for the budgets, no wait for memory to come back
}

TEST_F(SchedulerGpuTest, AnUnloadLooksForTheVramBackAndGoesOnWhenItDoesNotCome) {
  gpu_.Add(0, 2000);
  Scheduler s(Opts(), factory_, clock_);
  ASSERT_TRUE(s.Acquire(Spec("a"), KeepAlive::Of(5min)).ok());
  int before = gpu_.reads;
  s.Unload("a");
  EXPECT_GE(gpu_.reads - before, 2);  // free memory read before the runner closed, and after
  EXPECT_TRUE(factory_.held.empty());

  // A runner whose memory the driver keeps: the unload still ends (after gpu_release_wait), and
  // what stays held counts as another process's use from then on.
  ASSERT_TRUE(s.Acquire(Spec("b"), KeepAlive::Of(5min)).ok());
  factory_.runners["b"]->on_close = nullptr;
  s.Unload("b");
  EXPECT_EQ(factory_.held.size(), 1u);
  predicted_["c"] = 1600;
  ASSERT_TRUE(s.Acquire(Spec("c"), KeepAlive::Of(5min)).ok());
  EXPECT_EQ(rooms_seen_["c"].at(0).bytes, 1500u);
  EXPECT_EQ(LastLoad().n_gpu_layers, 0);
}

}  // namespace
}  // namespace resident::sched
