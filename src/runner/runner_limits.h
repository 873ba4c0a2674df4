// What a runner may use and how long it may go without progress: the rules the server's watchdog
// (RunnerProcess) and the runner itself apply, as pure functions.
//
// Memory. Every runner has a cap on its resident memory: the scheduler's prediction of its
// footprint (sched/footprint.h; the figure measured after the load when that is larger), plus
// what one batch that asks for every output touches (an embedding of a long input: n_batch ×
// n_vocab floats, twice: the logits buffer and the graph's tensor; the prediction counts the few
// outputs of a generation only), plus a margin (at least `min_margin`, else a quarter of the
// prediction). While it loads, the cap is the prediction plus the margin. The server samples the
// runner's resident memory every kMemorySampleEvery and kills a runner above its cap, with a
// message saying how much it used against which cap; on a machine without a GPU backend the
// runner also limits its own address space (RLIMIT_AS, AddressSpaceLimit) so that one huge
// allocation fails at once instead of between two samples, and it exits with
// kExitMemoryCap when an allocation fails there.
//
// Progress. A runner's health answer says how long its worker has gone without progress while
// busy (a decoded graph node, a decode, a sampled token, a finished request). One that goes
// without for the health timeout is stuck in something it cannot be cancelled from, and is killed.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace resident::runner {

inline constexpr std::chrono::milliseconds kMemorySampleEvery{100};
inline constexpr uint64_t kDefaultMinMemoryMargin = 512ull << 20;
// Address space a loaded runner may reserve without touching it (thread stacks started after
// the load, malloc arenas, which the runner keeps to two).
inline constexpr uint64_t kAddressSpaceSlack = 256ull << 20;
// The runner's exit code when an allocation failed under its address-space limit.
inline constexpr int kExitMemoryCap = 86;

// Address-space limits (RLIMIT_AS) are set only where they work: not under a sanitizer, whose
// shadow memory and allocator reserve address space freely. The sampled limits hold regardless.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define RESIDENT_UNDER_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RESIDENT_UNDER_SANITIZER 1
#endif
#ifdef RESIDENT_UNDER_SANITIZER
inline constexpr bool kAddressSpaceLimits = false;
#else
inline constexpr bool kAddressSpaceLimits = true;
#endif

struct MemoryCap {
  uint64_t base = 0;     // the prediction (or the measured load, when larger); 0: no cap
  uint64_t outputs = 0;  // a batch with every output
  uint64_t margin = 0;
  bool measured = false;  // base is the memory measured after the load, not the prediction

  bool enabled() const { return base > 0; }
  uint64_t bytes() const { return enabled() ? base + outputs + margin : 0; }
  // "700 MB (predicted 75 MB + 131 MB for a batch's outputs + margin 512 MB)".
  std::string Describe() const;
};

// The cap while the model loads; no cap when predicted is 0 (nothing predicted it).
MemoryCap CapWhileLoading(uint64_t predicted, uint64_t min_margin);
// The cap once loaded: `measured` is the runner's resident memory right after the load.
MemoryCap CapOnceLoaded(uint64_t predicted, uint64_t measured, int32_t n_batch, int32_t n_vocab, uint64_t min_margin);

// The RLIMIT_AS a loaded runner sets on itself: the address space it has now, plus the resident
// memory its cap still allows, plus kAddressSpaceSlack. 0 (no limit) when the cap is off.
uint64_t AddressSpaceLimit(uint64_t vm_now, uint64_t rss_now, const MemoryCap& cap);

// What the watchdog saw of one runner at one look.
struct RunnerReading {
  uint64_t rss = 0;  // resident memory now (0: unknown)
  // How long an asked health question has gone unanswered (nullopt: none outstanding).
  std::optional<std::chrono::milliseconds> unanswered;
  // From the latest health answer: how long the busy worker had gone without progress.
  std::chrono::milliseconds stalled{0};
};

enum class RunnerVerdict { kFine, kOverCap, kNotAnswering, kNoProgress };

// kOverCap when rss is above an enabled cap; kNotAnswering when a health question waited the
// timeout; kNoProgress when the worker went the timeout without progress. A timeout of 0 turns
// the last two off.
RunnerVerdict JudgeRunner(const RunnerReading& reading, const MemoryCap& cap, std::chrono::milliseconds timeout);

}  // namespace resident::runner
