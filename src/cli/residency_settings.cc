#include "cli/residency_settings.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "cli/config.h"
#include "core/bytes.h"
#include "core/keep_alive.h"
#include "core/system_info.h"
#include "sched/footprint.h"
#include "sched/policy.h"

namespace resident::cli {

MachineMemory ReadMachineMemory() { return MachineMemory{PhysicalMemoryBytes(), CgroupMemoryLimitBytes()}; }

Result<ResidencySettings> LoadResidencySettings(const std::string& config_flag) {
  return LoadResidencySettings(config_flag, ReadMachineMemory());
}

Result<ResidencySettings> LoadResidencySettings(const std::string& config_flag, const MachineMemory& machine) {
  ResidencySettings rs;
  std::string warning;
  KeepAlive keep_alive = DefaultKeepAliveFromEnv(&warning);
  if (!warning.empty()) spdlog::warn("{}", warning);

  rs.config_path = config_flag.empty() ? EnvFirst({"RESIDENT_CONFIG"}).value_or("") : config_flag;
  sched::Policy policy;
  policy.default_keep_alive = keep_alive;
  // RESIDENT_KEEP_ALIVE wins over the file's keep_alive, which wins over OLLAMA_KEEP_ALIVE.
  // (Set as DefaultKeepAliveFromEnv reads it: blanks or quotes alone are unset.)
  const bool resident_keep_alive_set = KeepAliveEnvIsSet(std::getenv("RESIDENT_KEEP_ALIVE"));
  if (!rs.config_path.empty()) {
    auto loaded = sched::LoadPolicyFile(rs.config_path, keep_alive, resident_keep_alive_set);
    if (!loaded.ok()) return loaded.status();
    policy = std::move(loaded).value();
  }
  if (auto env = EnvFirst({"RESIDENT_COLD_START_COST"})) {
    auto cost = sched::ParseColdStartCost(*env);
    if (!cost.ok()) {
      return Status::InvalidArgument("RESIDENT_COLD_START_COST=\"" + *env + "\": " + cost.status().message() +
                                     " (a multiple of the load time such as \"300x\", or a duration such as \"10m\")");
    }
    policy.cold_start_cost = *cost;
  }
  // RESIDENT_SLEEP_AFTER wins over the file's top-level sleep_after (as RESIDENT_KEEP_ALIVE does),
  // in keep_alive's environment forms ("10m", "600", "-1"); unset or blank: the file's, else none.
  if (auto env = EnvFirst({"RESIDENT_SLEEP_AFTER"}); env && KeepAliveEnvIsSet(env->c_str())) {
    auto sleep_after = ParseKeepAliveEnv(*env);
    if (!sleep_after || sleep_after->automatic) {
      return Status::InvalidArgument("RESIDENT_SLEEP_AFTER=\"" + *env +
                                     "\" is not a duration (such as \"10m\", or a number of seconds)");
    }
    policy.sleep_after = *sleep_after;
  }
  if (auto env = EnvFirst({"RESIDENT_PRELOAD"})) {
    std::string list = *env;
    size_t pos = 0;
    while (pos <= list.size()) {
      size_t comma = list.find(',', pos);
      if (comma == std::string::npos) comma = list.size();
      std::string name = list.substr(pos, comma - pos);
      while (!name.empty() && std::isspace(static_cast<unsigned char>(name.front()))) name.erase(0, 1);
      while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
      if (!name.empty()) rs.preload.push_back(name);
      pos = comma + 1;
    }
  }
  for (const auto& [name, entry] : policy.models) {
    if (entry.preload && std::find(rs.preload.begin(), rs.preload.end(), name) == rs.preload.end()) {
      rs.preload.push_back(name);
    }
  }

  auto max_loaded = IntFromEnv("RESIDENT_MAX_LOADED_MODELS", "OLLAMA_MAX_LOADED_MODELS", 3, 0);
  auto num_parallel = IntFromEnv("RESIDENT_NUM_PARALLEL", "OLLAMA_NUM_PARALLEL", 1, 1);
  auto max_queue = IntFromEnv("RESIDENT_MAX_QUEUE", "OLLAMA_MAX_QUEUE", 512, 1);
  auto num_ctx = IntFromEnv("RESIDENT_CONTEXT_LENGTH", "OLLAMA_CONTEXT_LENGTH", 4096, 1);
  for (const auto* r : {&max_loaded, &num_parallel, &max_queue, &num_ctx}) {
    if (!r->ok()) return r->status();
  }
  sched::Scheduler::Options& so = rs.scheduler;
  so.max_loaded = *max_loaded == 0 ? 3 : *max_loaded;  // 0 means the default, as in Ollama
  so.num_parallel = *num_parallel;
  so.max_queue = *max_queue;
  so.default_keep_alive = policy.default_keep_alive;
  so.cold_start_cost = policy.cold_start_cost;
  so.default_sleep_after = policy.sleep_after;
  rs.num_ctx = *num_ctx;

  const uint64_t physical = machine.physical;
  const uint64_t cgroup = machine.cgroup;
  uint64_t ceiling = cgroup ? cgroup : physical;
  if (auto env = EnvFirst({"RESIDENT_MEMORY_LIMIT"})) {
    auto bytes = ParseBytes(*env);
    if (!bytes.ok()) return Status::InvalidArgument("RESIDENT_MEMORY_LIMIT=\"" + *env + "\": " + bytes.status().message());
    so.memory_budget = *bytes;
    rs.budget_source = "RESIDENT_MEMORY_LIMIT";
  } else if (policy.memory_limit) {
    so.memory_budget = *policy.memory_limit;
    rs.budget_source = rs.config_path;
  } else {
    so.memory_budget = ceiling / 4 * 3;
    rs.budget_source = cgroup ? "75% of the cgroup limit" : "75% of physical memory";
  }
  if (ceiling && so.memory_budget > ceiling) {
    spdlog::warn("memory budget {} is above the machine's {} ({}); using {}", FormatBytes(so.memory_budget),
                 cgroup ? "cgroup limit" : "physical memory", FormatBytes(ceiling), FormatBytes(ceiling));
    so.memory_budget = ceiling;
  }
  // A sleeping model's context gives its pages back, and the requests after its wake fault them in
  // again: where a page fault is dear (a sandboxed or virtual machine: tens of microseconds per
  // 4 KiB page measured here), 2 MiB pages make that 5-20 times faster. Without sleep_after nothing
  // changes unless asked for.
  rs.may_sleep = policy.sleep_after.has_value();
  for (const auto& [name, entry] : policy.models) rs.may_sleep = rs.may_sleep || entry.sleep_after.has_value();
  rs.huge_pages = rs.may_sleep;
  if (auto v = EnvFirst({"RESIDENT_HUGE_PAGES"})) rs.huge_pages = *v != "0" && *v != "false";
  so.policy = std::move(policy);
  so.predictor = sched::MakeGgufPredictor();

  // The same forms as keep_alive: Go duration or integer seconds. Forever (a negative value) and
  // 0 both mean: no timer.
  auto timeout_env = [](std::initializer_list<const char*> names,
                        std::chrono::milliseconds& out) -> Status {
    auto v = EnvFirst(names);
    if (!v) return Status::Ok();
    auto ka = ParseKeepAliveEnv(*v);
    if (!ka) return Status::InvalidArgument(std::string(*names.begin()) + "=\"" + *v + "\" is not a duration");
    out = ka->forever ? std::chrono::milliseconds(0) : std::chrono::duration_cast<std::chrono::milliseconds>(ka->duration);
    return Status::Ok();
  };
  RESIDENT_RETURN_IF_ERROR(timeout_env({"RESIDENT_LOAD_TIMEOUT", "OLLAMA_LOAD_TIMEOUT"}, rs.load_timeout));
  RESIDENT_RETURN_IF_ERROR(timeout_env({"RESIDENT_HEALTH_TIMEOUT"}, rs.health_timeout));
  if (auto v = EnvFirst({"RESIDENT_SPARE_RUNNER"})) rs.spare_runner = *v != "0" && *v != "false";
  if (auto env = EnvFirst({"RESIDENT_MEMORY_MARGIN"})) {
    auto bytes = ParseBytes(*env);
    if (!bytes.ok()) return Status::InvalidArgument("RESIDENT_MEMORY_MARGIN=\"" + *env + "\": " + bytes.status().message());
    rs.memory_margin = *bytes;
  }
  return rs;
}

}  // namespace resident::cli
