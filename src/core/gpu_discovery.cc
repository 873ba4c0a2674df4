#include "core/gpu_discovery.h"

#include <dlfcn.h>

#include <algorithm>
#include <mutex>
#include <utility>

#include <spdlog/spdlog.h>

namespace resident {
namespace {

// NVML's ABI, written here so that resident builds without CUDA's headers (nvml.h, NVML API
// version 13; the layouts and signatures have not changed since the _v2/_v3 names appeared).
using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;  // nvml.h: a struct holding only this pointer (same ABI)

constexpr nvmlReturn_t kNvmlSuccess = 0;
constexpr nvmlReturn_t kNvmlInsufficientSize = 7;  // NVML_ERROR_INSUFFICIENT_SIZE
constexpr unsigned long long kNvmlValueNotAvailable = static_cast<unsigned long long>(-1);
constexpr unsigned int kNvmlBufferSize = 96;  // NVML_DEVICE_{NAME,UUID}_V2_BUFFER_SIZE

struct nvmlMemory_t {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

// What nvmlDeviceGetComputeRunningProcesses (unversioned) fills.
struct nvmlProcessInfo_v1_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
};

// What the _v2 and _v3 calls fill (nvml.h: nvmlProcessInfo_v2_t, also named nvmlProcessInfo_t).
struct nvmlProcessInfo_v2_t {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};

using InitFn = nvmlReturn_t (*)();
using GetCountFn = nvmlReturn_t (*)(unsigned int*);
using GetHandleFn = nvmlReturn_t (*)(unsigned int, nvmlDevice_t*);
using GetMemoryFn = nvmlReturn_t (*)(nvmlDevice_t, nvmlMemory_t*);
using GetStringFn = nvmlReturn_t (*)(nvmlDevice_t, char*, unsigned int);  // name and UUID
using ErrorStringFn = const char* (*)(nvmlReturn_t);
template <typename Info>
using GetProcessesFn = nvmlReturn_t (*)(nvmlDevice_t, unsigned int*, Info*);
using GetProcessesV1Fn = GetProcessesFn<nvmlProcessInfo_v1_t>;
using GetProcessesV2Fn = GetProcessesFn<nvmlProcessInfo_v2_t>;

// One loaded and initialized NVML. Constant after Load; NVML's own calls are thread-safe.
class Nvml {
 public:
  // The library loaded and NVML initialized, or nullptr (and why, logged).
  static std::unique_ptr<Nvml> Load(const std::string& library) {
    void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = dlerror();
      spdlog::info("no GPU: cannot load {} ({})", library, why != nullptr ? why : "unknown error");
      return nullptr;
    }
    // From here on the library stays loaded, even when NVML is unusable: unloading a library
    // that may have started threads or registered handlers is riskier than the memory it takes.
    auto nvml = std::unique_ptr<Nvml>(new Nvml);
    auto init = Symbol<InitFn>(handle, "nvmlInit_v2");
    bool ok = init != nullptr;
    ok &= (nvml->get_count_ = Symbol<GetCountFn>(handle, "nvmlDeviceGetCount_v2")) != nullptr;
    ok &= (nvml->get_handle_ = Symbol<GetHandleFn>(handle, "nvmlDeviceGetHandleByIndex_v2")) != nullptr;
    ok &= (nvml->get_memory_ = Symbol<GetMemoryFn>(handle, "nvmlDeviceGetMemoryInfo")) != nullptr;
    ok &= (nvml->get_name_ = Symbol<GetStringFn>(handle, "nvmlDeviceGetName")) != nullptr;
    ok &= (nvml->get_uuid_ = Symbol<GetStringFn>(handle, "nvmlDeviceGetUUID")) != nullptr;
    ok &= (nvml->error_string_ = Symbol<ErrorStringFn>(handle, "nvmlErrorString")) != nullptr;
    if (!ok) {
      spdlog::info("no GPU: {} lacks an NVML function resident needs (driver too old?)", library);
      return nullptr;
    }
    // The newest process call the driver has; _v2 and _v3 fill the same struct, the unversioned
    // one (older drivers) a shorter one. Without any, ProcessMemory is always empty.
    nvml->processes_v2_ = Symbol<GetProcessesV2Fn>(handle, "nvmlDeviceGetComputeRunningProcesses_v3");
    if (nvml->processes_v2_ == nullptr) {
      nvml->processes_v2_ = Symbol<GetProcessesV2Fn>(handle, "nvmlDeviceGetComputeRunningProcesses_v2");
    }
    if (nvml->processes_v2_ == nullptr) {
      nvml->processes_v1_ = Symbol<GetProcessesV1Fn>(handle, "nvmlDeviceGetComputeRunningProcesses");
    }
    // Initialized once for the process's lifetime: never nvmlShutdown (the driver lets go at exit).
    nvmlReturn_t rc = init();
    if (rc != kNvmlSuccess) {
      spdlog::info("no GPU: NVML did not start ({}: {})", library, nvml->ErrorString(rc));
      return nullptr;
    }
    return nvml;
  }

  std::vector<GpuDevice> Devices() const {
    std::vector<GpuDevice> devices;
    unsigned int count = 0;
    if (get_count_(&count) != kNvmlSuccess) return devices;
    for (unsigned int i = 0; i < count; ++i) {
      nvmlDevice_t device = nullptr;
      nvmlMemory_t memory{};
      char name[kNvmlBufferSize] = {};
      char uuid[kNvmlBufferSize] = {};
      nvmlReturn_t rc = get_handle_(i, &device);
      if (rc == kNvmlSuccess) rc = get_memory_(device, &memory);
      if (rc == kNvmlSuccess) rc = get_name_(device, name, sizeof name);
      if (rc == kNvmlSuccess) rc = get_uuid_(device, uuid, sizeof uuid);
      if (rc != kNvmlSuccess) {
        // E.g. a GPU fallen off the bus, or one whose memory NVML does not report (unified memory).
        spdlog::debug("GPU {} left out: {}", i, ErrorString(rc));
        continue;
      }
      name[sizeof name - 1] = '\0';
      uuid[sizeof uuid - 1] = '\0';
      GpuDevice d;
      d.index = static_cast<int>(i);
      d.id = uuid;
      d.name = name;
      d.total_bytes = memory.total;
      d.free_bytes = memory.free;
      devices.push_back(std::move(d));
    }
    return devices;
  }

  std::map<int, uint64_t> ProcessMemory(pid_t pid) const {
    std::map<int, uint64_t> held;
    if (processes_v2_ == nullptr && processes_v1_ == nullptr) return held;
    unsigned int count = 0;
    if (get_count_(&count) != kNvmlSuccess) return held;
    for (unsigned int i = 0; i < count; ++i) {
      nvmlDevice_t device = nullptr;
      if (get_handle_(i, &device) != kNvmlSuccess) continue;
      uint64_t bytes =
          processes_v2_ != nullptr ? HeldOn(processes_v2_, device, pid) : HeldOn(processes_v1_, device, pid);
      if (bytes > 0) held[static_cast<int>(i)] = bytes;
    }
    return held;
  }

 private:
  Nvml() = default;

  template <typename Fn>
  static Fn Symbol(void* handle, const char* name) {
    return reinterpret_cast<Fn>(dlsym(handle, name));
  }

  const char* ErrorString(nvmlReturn_t rc) const {
    const char* s = error_string_(rc);
    return s != nullptr ? s : "unknown error";
  }

  // The bytes `pid` holds on `device` (0 when none, or when the driver cannot tell).
  template <typename Info>
  static uint64_t HeldOn(GetProcessesFn<Info> get_processes, nvmlDevice_t device, pid_t pid) {
    // The list can grow between two calls (a process starts): a few tries, each with the size
    // the last one asked for and some room to spare.
    std::vector<Info> infos(16);
    unsigned int n = 0;
    nvmlReturn_t rc = kNvmlInsufficientSize;
    for (int attempt = 0; attempt < 4 && rc == kNvmlInsufficientSize; ++attempt) {
      n = static_cast<unsigned int>(infos.size());
      rc = get_processes(device, &n, infos.data());
      if (rc == kNvmlInsufficientSize) infos.resize(std::max<size_t>(infos.size(), n) + 8);
    }
    if (rc != kNvmlSuccess) return 0;
    uint64_t bytes = 0;
    for (unsigned int k = 0; k < n && k < infos.size(); ++k) {
      const Info& info = infos[k];
      if (info.pid != static_cast<unsigned int>(pid) || info.usedGpuMemory == kNvmlValueNotAvailable) continue;
      bytes += info.usedGpuMemory;
    }
    return bytes;
  }

  GetCountFn get_count_ = nullptr;
  GetHandleFn get_handle_ = nullptr;
  GetMemoryFn get_memory_ = nullptr;
  GetStringFn get_name_ = nullptr;
  GetStringFn get_uuid_ = nullptr;
  ErrorStringFn error_string_ = nullptr;
  GetProcessesV2Fn processes_v2_ = nullptr;  // _v3 or _v2
  GetProcessesV1Fn processes_v1_ = nullptr;  // unversioned, when neither
};

// NVML for `library`, loaded and initialized at most once per process (whatever the number of
// discoveries): nullptr when it is unusable, after logging why once.
const Nvml* NvmlFor(const std::string& library) {
  // Never destroyed: a discovery may be used by a thread still running at exit.
  static std::mutex* mu = new std::mutex;
  static auto* loaded = new std::map<std::string, std::unique_ptr<Nvml>>;  // guarded by *mu
  std::lock_guard<std::mutex> lock(*mu);
  auto it = loaded->find(library);
  if (it == loaded->end()) it = loaded->emplace(library, Nvml::Load(library)).first;
  return it->second.get();
}

// Every device NVML sees, in NVML's index order (PCI bus order). CUDA_VISIBLE_DEVICES is not
// applied: NVML ignores it, and what a runner may use is the scheduler's business, by device id.
class NvmlDiscovery : public GpuDiscovery {
 public:
  explicit NvmlDiscovery(std::string library) : library_(std::move(library)) {}

  std::vector<GpuDevice> Devices() const override {
    const Nvml* nvml = Get();
    return nvml != nullptr ? nvml->Devices() : std::vector<GpuDevice>{};
  }

  std::map<int, uint64_t> ProcessMemory(pid_t pid) const override {
    const Nvml* nvml = Get();
    return nvml != nullptr ? nvml->ProcessMemory(pid) : std::map<int, uint64_t>{};
  }

 private:
  // Loaded at the first call, not at construction: a discovery nobody asks costs nothing.
  const Nvml* Get() const {
    std::call_once(once_, [this] { nvml_ = NvmlFor(library_); });
    return nvml_;
  }

  const std::string library_;
  mutable std::once_flag once_;
  mutable const Nvml* nvml_ = nullptr;  // set once, under once_
};

class NoGpuDiscovery : public GpuDiscovery {
 public:
  std::vector<GpuDevice> Devices() const override { return {}; }
  std::map<int, uint64_t> ProcessMemory(pid_t) const override { return {}; }
};

}  // namespace

std::unique_ptr<GpuDiscovery> MakeNvmlDiscovery(const std::string& library) {
  return std::make_unique<NvmlDiscovery>(library);
}

std::unique_ptr<GpuDiscovery> MakeNoGpuDiscovery() { return std::make_unique<NoGpuDiscovery>(); }

}  // namespace resident
