// The server's counters of the prompt cache (prompt_cache.h), summed over every runner's reports
// (PromptCacheReport), for GET /metrics. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>

#include "runner/protocol.h"

namespace resident::runner {

struct PromptCacheCounters {
  uint64_t saves = 0;            // entries written
  uint64_t saved_bytes = 0;
  uint64_t hits = 0;             // entries restored for a request
  uint64_t restored_tokens = 0;  // prompt tokens those requests took from restored states
  uint64_t restored_bytes = 0;
  uint64_t evictions = 0;        // entries removed to keep the folder within its size
  uint64_t evicted_bytes = 0;
  uint64_t dropped = 0;          // entries found corrupt, cut short or of another key, removed
};

class PromptCacheStats {
 public:
  void Add(const PromptCacheReport& report);
  PromptCacheCounters Snapshot() const;

 private:
  mutable std::mutex mu_;
  PromptCacheCounters counters_;  // guarded by mu_
};

}  // namespace resident::runner
