#include "sched/residency_stats.h"

namespace resident::sched {

std::string_view ReasonName(UnloadReason reason) {
  switch (reason) {
    case UnloadReason::kExpired: return "expired";
    case UnloadReason::kMemory: return "memory";
    case UnloadReason::kCount: return "count";
    case UnloadReason::kManual: return "manual";
    case UnloadReason::kReload: return "reload";
    case UnloadReason::kExited: return "exited";
  }
  return "unknown";
}

std::string_view SleepReasonName(SleepReason reason) {
  switch (reason) {
    case SleepReason::kIdle: return "idle";
    case SleepReason::kMemory: return "memory";
  }
  return "unknown";
}

std::vector<double> LoadSecondsBuckets() { return {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120}; }

}  // namespace resident::sched
