// How many of a model's layers go to a GPU, and what that costs in VRAM and host memory, before it
// is loaded (Ollama's num_gpu). llama.cpp offloads the last `n_gpu_layers` of its n_layer + 1
// layers: the repeating blocks from the top down, then the output layer; the input embeddings stay
// in host memory. A block on the GPU takes its weights, its share of the KV cache (the cache of an
// offloaded layer lives with it) and, once any layer is there, the device's compute buffers and
// the backend's own context (a fixed allowance). What stays on the CPU is predicted as
// sched/footprint.h predicts a CPU model.
//
// num_gpu: < 0 (Ollama's default): as many layers as fit in the device's room; 0: CPU only; N > 0: N layers (at most n_layer + 1), whether or not they fit: the user
// asked (the scheduler then fails the load with a clear message if even evicting cannot make room).
// One device per model (the one where most layers fit, then the most room): llama.cpp is told to
// use only it (runner::LoadRequest::main_gpu), so the prediction holds for one device.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runner/protocol.h"
#include "store/gguf_metadata.h"

namespace resident::sched {

// What a model may use on one device: its budget (the safety margin and other processes' use left
// out) less what models that cannot be evicted now hold there.
struct GpuRoom {
  int index = 0;
  uint64_t bytes = 0;
};

struct GpuPlacement {
  bool placed = false;      // the scheduler placed it (on a device, or on none) with a GPU present
  std::string gpu_id;       // the device's id (its UUID), set by the scheduler
  int gpu = -1;             // the device (-1: CPU only)
  int layers = 0;           // n_gpu_layers for llama.cpp (0 .. n_layer + 1)
  int total_layers = 0;     // n_layer + 1
  uint64_t vram_bytes = 0;  // predicted on the device
  uint64_t host_bytes = 0;  // predicted in host memory (the process included)
};

struct GpuSplitOptions {
  uint64_t backend_bytes = 384ull << 20;   // the CUDA context and cuBLAS workspace, once per device
};

// The VRAM that offloading `layers` layers takes (0 for 0 layers).
uint64_t PredictVram(const store::GgufInfo& info, const runner::LoadRequest& load, int layers,
                     const GpuSplitOptions& options = {});

GpuPlacement SplitLayers(const store::GgufInfo& info, const runner::LoadRequest& load, int num_gpu,
                         const std::vector<GpuRoom>& rooms, const GpuSplitOptions& options = {});

// "28/33 layers on GPU 0 (5.1 GiB)", "CPU only" (for logs and /api/ps reasons).
std::string DescribePlacement(const GpuPlacement& p);

}  // namespace resident::sched
