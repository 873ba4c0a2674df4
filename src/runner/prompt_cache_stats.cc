#include "runner/prompt_cache_stats.h"

namespace resident::runner {

void PromptCacheStats::Add(const PromptCacheReport& r) {
  std::lock_guard<std::mutex> lock(mu_);
  counters_.saves += r.saves;
  counters_.saved_bytes += r.saved_bytes;
  counters_.hits += r.hits;
  counters_.restored_tokens += r.restored_tokens;
  counters_.restored_bytes += r.restored_bytes;
  counters_.evictions += r.evictions;
  counters_.evicted_bytes += r.evicted_bytes;
  counters_.dropped += r.dropped;
}

PromptCacheCounters PromptCacheStats::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

}  // namespace resident::runner
