// How `resident serve` uses the machine's GPUs (docs/gpu.md): NVML finds them (RESIDENT_NVML_LIBRARY
// names another libnvidia-ml), CUDA_VISIBLE_DEVICES hides some or all (as for Ollama: "-1" or an
// unknown id, none; else the indices or UUIDs listed), and runners load llama.cpp's CUDA build from
// RESIDENT_LLAMA_CUDA_DIR (default: the cuda/ folder scripts/setup.sh fetches on a machine with an
// NVIDIA GPU). OLLAMA_GPU_OVERHEAD (bytes) is left free on every device on top of the margin.
// Without a device, or without the CUDA build, every model runs on the CPU as before.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/gpu_discovery.h"
#include "core/status.h"

namespace resident::cli {

struct GpuSettings {
  std::unique_ptr<GpuDiscovery> discovery;  // the visible devices (for /metrics, whatever `use`)
  std::vector<GpuDevice> devices;           // as found at start
  bool use = false;                         // models are placed on them (else: all on the CPU)
  std::string library_dir;                  // first in the runners' LD_LIBRARY_PATH
  uint64_t margin_bytes = 512ull << 20;     // left free on every device
  std::string summary;                      // one line for the log: what was found and used
  bool warn = false;                        // the summary is a warning (a GPU left unused)
};

// The devices in `all` that CUDA_VISIBLE_DEVICES (`visible`; nullopt: unset) lets through.
std::vector<GpuDevice> VisibleDevices(const std::vector<GpuDevice>& all, const std::optional<std::string>& visible);

// A discovery that shows only the devices `visible` lets through.
std::unique_ptr<GpuDiscovery> OnlyVisible(std::unique_ptr<GpuDiscovery> inner, std::optional<std::string> visible);

// From the environment. Errors: kInvalidArgument for an OLLAMA_GPU_OVERHEAD that is not a number
// of bytes.
Result<GpuSettings> GpuSettingsFromEnv();

}  // namespace resident::cli
