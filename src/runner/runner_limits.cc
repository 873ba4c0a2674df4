#include "runner/runner_limits.h"

#include <algorithm>

#include "core/bytes.h"

namespace resident::runner {

std::string MemoryCap::Describe() const {
  std::string s = FormatBytes(bytes()) + " (" + (measured ? "measured at load " : "predicted ") + FormatBytes(base);
  if (outputs > 0) s += " + " + FormatBytes(outputs) + " for a batch's outputs";
  return s + " + margin " + FormatBytes(margin) + ")";
}

namespace {

uint64_t MarginFor(uint64_t base, uint64_t min_margin) { return std::max(min_margin, base / 4); }

}  // namespace

MemoryCap CapWhileLoading(uint64_t predicted, uint64_t min_margin) {
  MemoryCap cap;
  if (predicted == 0) return cap;
  cap.base = predicted;
  cap.margin = MarginFor(predicted, min_margin);
  return cap;
}

MemoryCap CapOnceLoaded(uint64_t predicted, uint64_t measured, int32_t n_batch, int32_t n_vocab, uint64_t min_margin) {
  MemoryCap cap;
  if (predicted == 0) return cap;
  cap.measured = measured > predicted;
  cap.base = std::max(predicted, measured);
  cap.outputs = 2ull * static_cast<uint64_t>(std::max(0, n_batch)) * static_cast<uint64_t>(std::max(0, n_vocab)) * 4ull;
  cap.margin = MarginFor(predicted, min_margin);
  return cap;
}

uint64_t AddressSpaceLimit(uint64_t vm_now, uint64_t rss_now, const MemoryCap& cap) {
  if (!cap.enabled()) return 0;
  const uint64_t allowed = cap.bytes() > rss_now ? cap.bytes() - rss_now : 0;
  return vm_now + allowed + kAddressSpaceSlack;
}

RunnerVerdict JudgeRunner(const RunnerReading& reading, const MemoryCap& cap, std::chrono::milliseconds timeout) {
  if (cap.enabled() && reading.rss > cap.bytes()) return RunnerVerdict::kOverCap;
  if (timeout.count() <= 0) return RunnerVerdict::kFine;
  if (reading.unanswered && *reading.unanswered >= timeout) return RunnerVerdict::kNotAnswering;
  if (reading.stalled >= timeout) return RunnerVerdict::kNoProgress;
  return RunnerVerdict::kFine;
}

}  // namespace resident::runner
