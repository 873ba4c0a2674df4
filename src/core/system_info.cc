#include "core/system_info.h"

#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <utility>

namespace resident {

int PhysicalCores() {
  std::set<std::pair<long, long>> cores;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/devices/system/cpu", ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind("cpu", 0) != 0 || name.size() < 4 || !std::isdigit(static_cast<unsigned char>(name[3]))) continue;
    std::ifstream core(entry.path() / "topology/core_id");
    std::ifstream package(entry.path() / "topology/physical_package_id");
    long core_id = -1, package_id = -1;
    if (core >> core_id && package >> package_id) cores.emplace(package_id, core_id);
  }
  if (!cores.empty()) return static_cast<int>(cores.size());
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

uint64_t ProcessRssBytes(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

uint64_t ProcessVmBytes(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0;
  if (!(statm >> size)) return 0;
  return size * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

uint64_t ProcessRssAnonBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("RssAnon:", 0) != 0) continue;
    uint64_t kb = 0;
    if (std::sscanf(line.c_str() + 8, "%" SCNu64, &kb) != 1) return 0;
    return kb * 1024;
  }
  return 0;
}

uint64_t PhysicalMemoryBytes() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page);
}

uint64_t CgroupMemoryLimitBytes() { return CgroupMemoryLimitBytes("/sys/fs/cgroup", PhysicalMemoryBytes()); }

uint64_t CgroupMemoryLimitBytes(const std::string& cgroup_root, uint64_t physical) {
  for (const char* file : {"/memory.max", "/memory/memory.limit_in_bytes"}) {
    std::ifstream in(cgroup_root + file);
    std::string value;
    if (!(in >> value) || value == "max") continue;
    try {
      uint64_t limit = std::stoull(value);
      if (limit > 0 && (physical == 0 || limit < physical)) return limit;
    } catch (...) {
    }
  }
  return 0;
}

}  // namespace resident
