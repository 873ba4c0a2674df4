#include "cli/gpu_settings.h"

#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <sstream>

#include "cli/config.h"
#include "core/bytes.h"

#ifndef RESIDENT_DEFAULT_CUDA_DIR
#define RESIDENT_DEFAULT_CUDA_DIR ""
#endif

namespace resident::cli {
namespace {

class VisibleGpus final : public GpuDiscovery {
 public:
  VisibleGpus(std::unique_ptr<GpuDiscovery> inner, std::optional<std::string> visible)
      : inner_(std::move(inner)), visible_(std::move(visible)) {}
  std::vector<GpuDevice> Devices() const override { return VisibleDevices(inner_->Devices(), visible_); }
  std::map<int, uint64_t> ProcessMemory(pid_t pid) const override { return inner_->ProcessMemory(pid); }

 private:
  std::unique_ptr<GpuDiscovery> inner_;
  std::optional<std::string> visible_;
};

// CUDA_VISIBLE_DEVICES, where set and empty means no device (as CUDA reads it).
std::optional<std::string> VisibleEnv() {
  const char* v = std::getenv("CUDA_VISIBLE_DEVICES");
  return v == nullptr ? std::nullopt : std::optional<std::string>(v);
}

}  // namespace

std::vector<GpuDevice> VisibleDevices(const std::vector<GpuDevice>& all, const std::optional<std::string>& visible) {
  if (!visible) return all;
  std::vector<std::string> wanted;
  std::stringstream in(*visible);
  for (std::string item; std::getline(in, item, ',');) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) wanted.push_back(item);
  }
  std::vector<GpuDevice> out;
  for (const GpuDevice& d : all) {
    for (const std::string& w : wanted) {
      // An index, or a UUID (whole, or its first characters as CUDA accepts them: "GPU-8f3c").
      const bool uuid = w.rfind("GPU-", 0) == 0 && d.id.rfind(w, 0) == 0;
      if (w == std::to_string(d.index) || uuid) {
        out.push_back(d);
        break;
      }
    }
  }
  return out;
}

std::unique_ptr<GpuDiscovery> OnlyVisible(std::unique_ptr<GpuDiscovery> inner, std::optional<std::string> visible) {
  return std::make_unique<VisibleGpus>(std::move(inner), std::move(visible));
}

Result<GpuSettings> GpuSettingsFromEnv() {
  GpuSettings g;
  if (auto overhead = EnvFirst({"OLLAMA_GPU_OVERHEAD"})) {
    auto bytes = ParseBytes(*overhead);
    if (!bytes.ok()) {
      return Status::InvalidArgument("OLLAMA_GPU_OVERHEAD=\"" + *overhead + "\" is not a number of bytes");
    }
    g.margin_bytes += *bytes;
  }
  g.discovery = OnlyVisible(MakeNvmlDiscovery(EnvFirst({"RESIDENT_NVML_LIBRARY"}).value_or("libnvidia-ml.so.1")),
                               VisibleEnv());
  g.devices = g.discovery->Devices();
  if (g.devices.empty()) {
    g.summary = "no GPU: models run on the CPU";
    return g;
  }
  std::string found;
  for (const GpuDevice& d : g.devices) {
    found += fmt::format("{}GPU {} {} ({}, {} free)", found.empty() ? "" : ", ", d.index, d.name,
                         FormatBytes(d.total_bytes), FormatBytes(d.free_bytes));
  }
  const std::string dir = EnvFirst({"RESIDENT_LLAMA_CUDA_DIR"}).value_or(RESIDENT_DEFAULT_CUDA_DIR);
  std::error_code ec;
  if (dir.empty() || !std::filesystem::exists(std::filesystem::path(dir) / "libggml-cuda.so", ec)) {
    g.summary = found + ": llama.cpp's CUDA build is not in " + (dir.empty() ? "(none set)" : dir) +
                " (scripts/setup.sh fetches it; RESIDENT_LLAMA_CUDA_DIR names another folder): models run on the CPU";
    g.warn = true;
    return g;
  }
  g.library_dir = dir;
  g.use = true;
  g.summary = found + "; runners load llama.cpp's CUDA build from " + dir + "; " + FormatBytes(g.margin_bytes) +
              " kept free on each";
  return g;
}

}  // namespace resident::cli
