// A fake GPU for scheduler tests (core/gpu_discovery.h): devices of a given size whose free memory
// is what other processes hold (`others`) and what the FakeFactory's live runners hold on them.
#pragma once

#include <map>
#include <mutex>
#include <vector>

#include "core/gpu_discovery.h"
#include "support/fake_runners.h"

namespace resident::testing {

class FakeGpu final : public GpuDiscovery {
 public:
  explicit FakeGpu(FakeFactory& factory) : factory_(factory) {}

  // Adds device `index` with `total` bytes.
  void Add(int index, uint64_t total) {
    GpuDevice d;
    d.index = index;
    d.id = "GPU-fake-" + std::to_string(index);
    d.name = "Fake GPU " + std::to_string(index);
    d.total_bytes = total;
    devices_.push_back(d);
  }

  std::vector<GpuDevice> Devices() const override {
    std::lock_guard<std::mutex> lock(factory_.mu);
    ++reads;
    std::vector<GpuDevice> out = devices_;
    for (GpuDevice& d : out) {
      uint64_t used = others.count(d.index) ? others.at(d.index) : 0;
      for (const auto& [pid, h] : factory_.held) used += h.first == d.index ? h.second : 0;
      d.free_bytes = d.total_bytes > used ? d.total_bytes - used : 0;
    }
    return out;
  }

  std::map<int, uint64_t> ProcessMemory(pid_t pid) const override {
    std::lock_guard<std::mutex> lock(factory_.mu);
    std::map<int, uint64_t> out;
    if (auto it = factory_.held.find(pid); it != factory_.held.end()) out[it->second.first] = it->second.second;
    return out;
  }

  std::map<int, uint64_t> others;  // bytes other processes hold, by device; set before use
  mutable int reads = 0;           // Devices() calls

 private:
  FakeFactory& factory_;
  std::vector<GpuDevice> devices_;
};

}  // namespace resident::testing
