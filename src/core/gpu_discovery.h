// GPU discovery: which GPUs the machine has, and how much of their memory is free, read fresh at
// every call (the scheduler asks before each load decision). An interface, as the clock is, so
// that the scheduler and its tests can take a fake GPU; the real one reads NVIDIA's management
// library (NVML, libnvidia-ml.so.1, installed with the driver) through dlopen: resident has no
// build-time dependency on CUDA, and a machine without the driver simply has no GPU.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace resident {

struct GpuDevice {
  int index = 0;             // NVML's order (PCI bus order); CUDA's default order (fastest first)
                             // can differ, and CUDA_VISIBLE_DEVICES is not applied: match by id
  std::string id;            // stable: the device's UUID ("GPU-8f3c...")
  std::string name;          // "NVIDIA H100 80GB HBM3"
  std::string library = "cuda";  // the llama.cpp backend that drives it
  uint64_t total_bytes = 0;  // device memory
  uint64_t free_bytes = 0;   // free now, as the driver counts it (every process's use subtracted)
};

class GpuDiscovery {
 public:
  virtual ~GpuDiscovery() = default;
  // The devices now, free memory read at this call. Empty: no GPU, or no driver.
  virtual std::vector<GpuDevice> Devices() const = 0;
  // The device memory process `pid` holds, by device index (devices where it holds none are left
  // out). Empty when it holds none or the driver cannot tell.
  virtual std::map<int, uint64_t> ProcessMemory(pid_t pid) const = 0;
};

// The machine's GPUs through NVML, loaded from `library` with dlopen at the first call (a name the
// dynamic linker searches, or a path). Never fails: without the library, or when NVML does not
// start (no driver, no device), it has no devices, and logs why once (spdlog, info). Each library
// is loaded and NVML initialized once per process, whatever the number of discoveries, and stays
// so until exit. Every device NVML sees is reported, but one whose calls fail is left out.
std::unique_ptr<GpuDiscovery> MakeNvmlDiscovery(const std::string& library = "libnvidia-ml.so.1");

// No GPU at all: what a CPU-only machine sees.
std::unique_ptr<GpuDiscovery> MakeNoGpuDiscovery();

}  // namespace resident
