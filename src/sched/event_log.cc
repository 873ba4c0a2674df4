#include "sched/event_log.h"

#include <fmt/format.h>

#include "core/bytes.h"
#include "core/clock.h"
#include "core/keep_alive.h"

namespace resident::sched {
namespace {


// Whole seconds in Go's format ("4m0s"), as the rest of the log writes durations.
std::string Brief(Duration d) {
  return FormatGoDuration(std::chrono::duration_cast<std::chrono::seconds>(d));
}

}  // namespace

const char* TypeName(ResidencyEvent::Type type) {
  switch (type) {
    case ResidencyEvent::Type::kLoad: return "load";
    case ResidencyEvent::Type::kLoadFailed: return "load_failed";
    case ResidencyEvent::Type::kUnload: return "unload";
    case ResidencyEvent::Type::kEvict: return "evict";
    case ResidencyEvent::Type::kPrewarmHit: return "prewarm_hit";
    case ResidencyEvent::Type::kPrewarmMiss: return "prewarm_miss";
    case ResidencyEvent::Type::kSleep: return "sleep";
    case ResidencyEvent::Type::kWake: return "wake";
  }
  return "unknown";
}

std::string Describe(const ResidencyEvent& e) {
  using Type = ResidencyEvent::Type;
  switch (e.type) {
    case Type::kLoad: {
      std::string sizes = e.bytes ? fmt::format("{} measured, predicted {}", FormatBytes(e.bytes),
                                                FormatBytes(e.predicted_bytes))
                                  : fmt::format("predicted {}, not measured", FormatBytes(e.predicted_bytes));
      std::string why = e.origin.empty() ? "" : fmt::format(" ({}{}{})", e.origin, e.explanation.empty() ? "" : ": ",
                                                              e.explanation);
      return fmt::format("loaded {} in {:.2f} s ({}, pid {}){}", e.model, ToSeconds(e.duration), sizes, e.pid, why);
    }
    case Type::kLoadFailed:
      return fmt::format("loading {} failed after {:.2f} s: {}", e.model, ToSeconds(e.duration), e.error);
    case Type::kPrewarmHit:
      return fmt::format("prewarm of {} hit: the request found it loaded{}", e.model,
                         e.idle ? fmt::format(" ({} after it was ready)", Brief(*e.idle)) : std::string());
    case Type::kPrewarmMiss:
      return fmt::format("prewarm of {} missed: {}", e.model, e.explanation);
    case Type::kSleep: {
      std::string why;
      if (e.sleep_reason == SleepReason::kMemory) {
        why = e.for_model.empty() ? " to make room" : " to make room for " + e.for_model;
      } else if (e.keep_alive) {
        why = " after sleep_after " + e.keep_alive->ToString();
      }
      return fmt::format("put {} to sleep ({} -> {}{}){}", e.model, FormatBytes(e.awake_bytes), FormatBytes(e.bytes),
                         e.idle ? ", idle " + Brief(*e.idle) : std::string(), why);
    }
    case Type::kWake:
      return fmt::format("woke {} in {:.2f} s ({} -> {})", e.model, ToSeconds(e.duration), FormatBytes(e.asleep_bytes),
                         FormatBytes(e.bytes));
    case Type::kUnload:
    case Type::kEvict:
      break;
  }
  std::string what = fmt::format("unloaded {} ({}", e.model, FormatBytes(e.bytes));
  UnloadReason reason = e.reason.value_or(UnloadReason::kManual);
  if (reason == UnloadReason::kExpired) {
    return fmt::format("{}, expired after keep_alive {}){}", what, e.keep_alive ? e.keep_alive->ToString() : "?",
                       e.explanation.empty() ? "" : ": " + e.explanation);
  }
  if (e.idle) what += ", idle " + Brief(*e.idle);
  switch (reason) {
    case UnloadReason::kMemory:
    case UnloadReason::kCount: return what + ") to make room for " + e.for_model;
    case UnloadReason::kManual: return what + "): stopped (keep_alive 0)";
    case UnloadReason::kReload: return what + ") to load it again with new load options";
    case UnloadReason::kExited:
      // The runner's own account: killed by its watchdog and why, or how it died.
      return what + "): " + (e.explanation.empty() ? "its runner process was gone" : e.explanation);
    case UnloadReason::kExpired: break;
  }
  return what + ")";
}

EventLog::EventLog(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

uint64_t EventLog::Append(ResidencyEvent event) {
  uint64_t seq;
  {
    std::lock_guard<std::mutex> lock(mu_);
    seq = next_seq_++;
    event.seq = seq;
    events_.push_back(std::move(event));
    while (events_.size() > capacity_) events_.pop_front();
  }
  cv_.notify_all();
  return seq;
}

std::vector<ResidencyEvent> EventLog::SinceLocked(uint64_t since) const {
  std::vector<ResidencyEvent> out;
  if (events_.empty() || since >= events_.back().seq) return out;
  // Seqs are consecutive: the first one wanted sits at a known offset.
  uint64_t first = events_.front().seq;
  size_t start = since < first ? 0 : static_cast<size_t>(since - first + 1);
  out.assign(events_.begin() + static_cast<std::ptrdiff_t>(start), events_.end());
  return out;
}

std::vector<ResidencyEvent> EventLog::Since(uint64_t since) const {
  std::lock_guard<std::mutex> lock(mu_);
  return SinceLocked(since);
}

std::vector<ResidencyEvent> EventLog::WaitSince(uint64_t since, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return closed_ || next_seq_ - 1 > since; });
  return SinceLocked(since);
}

uint64_t EventLog::last_seq() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_seq_ - 1;
}

void EventLog::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool EventLog::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

}  // namespace resident::sched
