// The scheduler's settings for `resident serve`: environment variables and the policy file.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "runner/runner_limits.h"
#include "sched/scheduler.h"

namespace resident::cli {

struct ResidencySettings {
  sched::Scheduler::Options scheduler;
  std::chrono::milliseconds load_timeout{std::chrono::minutes(5)};  // 0: none
  std::chrono::milliseconds health_timeout{std::chrono::seconds(20)};  // 0: no health checks
  // The least margin of a runner's memory cap above its prediction (RESIDENT_MEMORY_MARGIN).
  uint64_t memory_margin = runner::kDefaultMinMemoryMargin;
  int num_ctx = 4096;
  std::string config_path;                // empty: no policy file
  std::string budget_source;              // how the memory budget was chosen, for the log
  bool spare_runner = true;               // RESIDENT_SPARE_RUNNER=0 turns the warm spare off
  // Models to load at start-up and again when their runner dies: RESIDENT_PRELOAD (comma-separated
  // names) and the policy entries with preload = true.
  std::vector<std::string> preload;
  // Runners allocate their large buffers (KV cache, compute buffers) in transparent huge pages
  // (runner_process.h): RESIDENT_HUGE_PAGES (0/false: no, anything else: yes), by default yes when
  // models may sleep (a sleep_after anywhere: its wakes create contexts again), else no.
  bool huge_pages = false;
  // A sleep_after is set somewhere: runners sleep in place (Engine::Sleep).
  bool may_sleep = false;
};

// Reads RESIDENT_KEEP_ALIVE ("auto" allowed) / OLLAMA_KEEP_ALIVE (invalid: 5m with a warning;
// RESIDENT_KEEP_ALIVE wins over the file's keep_alive, which wins over OLLAMA_KEEP_ALIVE),
// RESIDENT_COLD_START_COST (wins over the file's cold_start_cost), RESIDENT_PRELOAD, the policy file
// (config_flag, else RESIDENT_CONFIG), RESIDENT_MEMORY_LIMIT (else the file's memory_limit, else
// 75% of physical memory, never above a cgroup limit), RESIDENT_LOAD_TIMEOUT (Go duration or
// seconds; <= 0 waits forever; default 5m), RESIDENT_HEALTH_TIMEOUT (a loaded runner that does not
// answer a health check in it, or goes that long without progress, is killed; default 20s; <= 0
// turns checks off), RESIDENT_MEMORY_MARGIN (a byte size: the least margin of a runner's memory
// cap above its predicted footprint; default 512MiB), RESIDENT_MAX_LOADED_MODELS, RESIDENT_NUM_PARALLEL,
// RESIDENT_MAX_QUEUE, RESIDENT_CONTEXT_LENGTH (each falling back to the OLLAMA_ name),
// RESIDENT_SLEEP_AFTER (keep_alive's forms; wins over the file's sleep_after), RESIDENT_HUGE_PAGES.
// Errors: kInvalidArgument naming the variable or FILE:LINE of the policy file.
Result<ResidencySettings> LoadResidencySettings(const std::string& config_flag);

// The machine's memory as the budget sees it (0: unknown / no cgroup limit).
struct MachineMemory {
  uint64_t physical = 0;
  uint64_t cgroup = 0;  // the cgroup limit when set and below physical memory
};
MachineMemory ReadMachineMemory();  // PhysicalMemoryBytes(), CgroupMemoryLimitBytes()

// The same, on the given machine (for tests).
Result<ResidencySettings> LoadResidencySettings(const std::string& config_flag, const MachineMemory& machine);

}  // namespace resident::cli
