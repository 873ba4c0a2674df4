// Fake runners for scheduler tests: no processes, no sleeping. A FakeFactory's loads succeed at
// once, or wait at a gate the test opens, or fail for one path; with a FakeClock attached, a load
// moves that clock by the model's load time (so the scheduler measures that load time). A runner
// loaded with layers on a GPU holds that device's memory until it is closed (FakeFactory::held,
// read by support/fake_gpu.h).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "runner/model_runner.h"

namespace resident::testing {

class FakeRunner final : public runner::ModelRunner {
 public:
  FakeRunner(std::string path, std::atomic<int>* closes, uint64_t rss) : closes_(closes) {
    facts_.rss_bytes = rss;
    facts_.architecture = std::move(path);
  }
  Result<runner::DoneEvent> Generate(const runner::GenerateRequest&,
                                     const std::function<bool(std::string_view)>&, std::stop_token) override {
    return runner::DoneEvent{};
  }
  Result<runner::EmbedResult> Embed(const runner::EmbedRequest&, std::stop_token) override {
    return runner::EmbedResult{};
  }
  Result<std::vector<int32_t>> Tokenize(std::string_view, bool) override { return std::vector<int32_t>{}; }
  Result<runner::MemoryResult> Memory() override { return runner::MemoryResult{0, facts_.rss_bytes, 0}; }
  Status Health(std::chrono::milliseconds) override { return Status::Ok(); }
  uint64_t SampledRssBytes() const override { return sampled_rss_; }
  const runner::ModelFacts& facts() const override { return facts_; }
  pid_t pid() const override { return pid_; }
  bool alive() const override { return alive_; }
  std::string exit_reason() const override { return alive_ ? std::string() : death; }
  void Close() override {
    if (alive_.exchange(false) || !closed_) {
      closed_ = true;
      ++*closes_;
      if (on_close) on_close();
    }
  }
  pid_t pid_ = 1;
  std::function<void()> on_close;  // the process is gone (its GPU memory returned)
  // Set false to play a runner that died (a crash, a failed health check); `death` (set first)
  // is then its exit_reason.
  std::atomic<bool> alive_{true};
  std::string death;
  // What its watchdog sampled last (0: nothing), to play a runner that grows.
  std::atomic<uint64_t> sampled_rss_{0};

  // Sleeping: Sleep answers `asleep_rss`; Wake moves `clock` (when set) by `wake_time`. A wake
  // with `wake_fails` set fails (kResourceExhausted), as a context that cannot be created again.
  Result<runner::SleepResult> Sleep() override {
    if (!alive_) return Status::Unavailable("the runner is gone");
    ++sleeps;
    asleep = true;
    return runner::SleepResult{0, asleep_rss, asleep_rss / 2, 0};
  }
  Result<runner::WakeResult> Wake() override {
    if (!alive_) return Status::Unavailable("the runner is gone");
    if (wake_fails) return Status::ResourceExhausted("could not create the context again");
    if (clock != nullptr) clock->Advance(wake_time);
    ++wakes;
    asleep = false;
    return runner::WakeResult{0, 0, facts_.rss_bytes};
  }
  void SetWeights(uint64_t bytes) { facts_.size_bytes = bytes; }
  void SetGpuLayers(int32_t layers) { facts_.gpu_layers = layers; }
  uint64_t asleep_rss = 0;
  FakeClock* clock = nullptr;
  Duration wake_time{0};
  std::atomic<bool> wake_fails{false};
  std::atomic<bool> asleep{false};
  std::atomic<int> sleeps{0};
  std::atomic<int> wakes{0};

 private:
  bool closed_ = false;
  std::atomic<int>* closes_;
  runner::ModelFacts facts_;
};

// Loads succeed at once unless a gate is set, or fail for the path in `failing`.
class FakeFactory final : public runner::RunnerFactory {
 public:
  Result<std::unique_ptr<runner::ModelRunner>> Start(const runner::LoadRequest& request,
                                                     const std::function<void(float)>&) override {
    std::unique_lock<std::mutex> lock(mu);
    ++starts;
    requests.push_back(request);
    started_cv.notify_all();
    gate_cv.wait(lock, [&] { return !gated; });
    if (clock != nullptr) {
      if (auto t = load_time.find(request.model_path); t != load_time.end()) clock->Advance(t->second);
    }
    if (request.model_path == failing) return Status::InvalidArgument("bad file " + failing);
    auto size = sizes.find(request.model_path);
    auto r = std::make_unique<FakeRunner>(request.model_path, &closes, size == sizes.end() ? 1000 : size->second);
    r->asleep_rss = r->facts().rss_bytes / 10;
    if (auto a = asleep_sizes.find(request.model_path); a != asleep_sizes.end()) r->asleep_rss = a->second;
    if (auto w = weights.find(request.model_path); w != weights.end()) r->SetWeights(w->second);
    r->clock = clock;
    if (auto t = wake_time.find(request.model_path); t != wake_time.end()) r->wake_time = t->second;
    r->pid_ = next_pid++;
    if (request.main_gpu >= 0 && request.n_gpu_layers != 0 && gpu_backend) {
      r->SetGpuLayers(request.n_gpu_layers);
      auto v = vram.find(request.model_path);
      held[r->pid_] = {request.main_gpu, v == vram.end() ? uint64_t{500} : v->second};
      r->on_close = [this, pid = r->pid_] {
        std::lock_guard<std::mutex> l(mu);
        held.erase(pid);
      };
    }
    last = r.get();
    runners[request.model_path] = r.get();
    return std::unique_ptr<runner::ModelRunner>(std::move(r));
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu);
    gated = false;
    gate_cv.notify_all();
  }
  void WaitForStarts(int n) {
    std::unique_lock<std::mutex> lock(mu);
    started_cv.wait(lock, [&] { return starts >= n; });
  }
  int Starts() {
    std::lock_guard<std::mutex> lock(mu);
    return starts;
  }

  std::mutex mu;
  std::condition_variable gate_cv, started_cv;
  bool gated = false;
  int starts = 0;
  std::string failing;
  std::atomic<int> closes{0};
  FakeRunner* last = nullptr;
  std::map<std::string, FakeRunner*> runners;  // the latest runner of each path
  std::vector<runner::LoadRequest> requests;   // every Start's request, in order
  std::map<std::string, uint64_t> sizes;       // measured RSS of each model's runner (default 1000)
  FakeClock* clock = nullptr;                  // set: loads advance it by load_time
  std::map<std::string, Duration> load_time;   // per model path
  // Sleeping, per model path: RSS once asleep (default a tenth of its RSS), the weights' bytes
  // (ModelFacts::size_bytes: the scheduler's guess of the RSS asleep before a first sleep;
  // default 0) and how long a wake moves the clock.
  std::map<std::string, uint64_t> asleep_sizes;
  std::map<std::string, uint64_t> weights;
  std::map<std::string, Duration> wake_time;
  // GPUs: the VRAM a runner of each path holds once loaded with layers on a device (default 500),
  // and what every live runner holds now, by pid: (device, bytes).
  std::map<std::string, uint64_t> vram;
  std::map<pid_t, std::pair<int, uint64_t>> held;
  bool gpu_backend = true;  // false: plays a runner without llama.cpp's CUDA build (it loads on the CPU)
  pid_t next_pid = 100;
};

}  // namespace resident::testing
