// Facts about this machine and process, read from /proc and /sys.
#pragma once

#include <cstdint>
#include <string>
#include <sys/types.h>

namespace resident {

// Physical cores (unique (package, core) pairs in /sys); falls back to the logical CPU count.
int PhysicalCores();

// Resident set size of a process in bytes (/proc/PID/statm); 0 when it cannot be read.
uint64_t ProcessRssBytes(pid_t pid);
// Address space (virtual size) of a process in bytes (/proc/PID/statm); 0 when it cannot be read.
uint64_t ProcessVmBytes(pid_t pid);

// Physical memory of the machine in bytes, and the cgroup (v2 or v1) limit when one is set
// and lower; 0 when unknown.
uint64_t PhysicalMemoryBytes();
uint64_t CgroupMemoryLimitBytes();
// The same, read under `cgroup_root` (v2: memory.max; v1: memory/memory.limit_in_bytes) and
// compared with `physical` (0: unknown, any limit counts): for tests.
uint64_t CgroupMemoryLimitBytes(const std::string& cgroup_root, uint64_t physical);

// The private (anonymous) part of a process's resident memory in bytes: RssAnon in
// /proc/PID/status (a mapped file's pages are RssFile); 0 when it cannot be read.
uint64_t ProcessRssAnonBytes(pid_t pid);

}  // namespace resident
