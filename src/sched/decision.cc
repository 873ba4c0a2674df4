#include "sched/decision.h"

#include <algorithm>

#include "core/bytes.h"

namespace resident::sched {
namespace {

Decision Wait(Decision::Wait why) {
  Decision d;
  d.kind = Decision::Kind::kWait;
  d.waiting_for = why;
  return d;
}

Decision Do(Decision::Kind kind) {
  Decision d;
  d.kind = kind;
  return d;
}

Decision Fail(Status error) {
  Decision d;
  d.kind = Decision::Kind::kFail;
  d.error = std::move(error);
  return d;
}

Decision UnloadOne(std::string_view key, UnloadReason reason) {
  Decision d;
  d.kind = Decision::Kind::kUnload;
  d.unload.push_back({std::string(key), reason});
  return d;
}

bool Fits(const Limits& limits, uint64_t used, size_t count, uint64_t bytes) {
  return static_cast<int>(count) < limits.max_loaded && (limits.memory_budget == 0 || used + bytes <= limits.memory_budget);
}

}  // namespace

const ModelView* SchedulerView::Find(std::string_view key) const {
  for (const ModelView& m : models) {
    if (m.key == key) return &m;
  }
  return nullptr;
}

uint64_t SchedulerView::MemoryInUse() const {
  uint64_t total = unloading_bytes;
  for (const ModelView& m : models) total += m.bytes;
  return total;
}

double EvictionCost(double reload_s, double reuse_probability, uint64_t bytes) {
  return std::max(0.001, reload_s) * std::clamp(reuse_probability, 0.0, 1.0) /
         static_cast<double>(std::max<uint64_t>(1, bytes));
}

double DefaultReuseProbability(Duration idle) {
  double idle_min = std::chrono::duration<double>(idle).count() / 60.0;
  return 1.0 / (1.0 + std::max(0.0, idle_min));
}

Decision DecideAcquire(const SchedulerView& view, const Limits& limits, const AcquireAsk& ask) {
  if (view.shutdown) return Fail(Status::Unavailable("the server is shutting down"));
  if (ask.arriving && view.waiting >= limits.max_queue) {
    return Fail(Status::ResourceExhausted("server busy, please try again.  maximum pending requests exceeded"));
  }
  if (const ModelView* m = view.Find(ask.key)) {
    if (m->loading) return Wait(Decision::Wait::kLoad);
    if (!m->alive && m->refs == 0) return UnloadOne(ask.key, UnloadReason::kExited);
    if (!ask.matches_loaded) {
      return m->refs == 0 ? UnloadOne(ask.key, UnloadReason::kReload) : Wait(Decision::Wait::kReload);
    }
    if (m->refs >= limits.num_parallel) return Wait(Decision::Wait::kSlot);
    return Do(Decision::Kind::kLease);
  }

  if (!ask.predicted) return Do(Decision::Kind::kPredict);
  const uint64_t bytes = *ask.predicted;
  const std::string name(ask.name);
  if (limits.memory_budget && bytes > limits.memory_budget) {
    return Fail(Status::FailedPrecondition("model \"" + name + "\" needs about " + FormatBytes(bytes) +
                                           " but the memory budget is " + FormatBytes(limits.memory_budget) +
                                           " (RESIDENT_MEMORY_LIMIT): it can never be loaded"));
  }
  // One load at a time, and not while memory is still being returned.
  if (view.loading || view.unloading > 0) return Wait(Decision::Wait::kOtherLoad);
  uint64_t in_use = view.MemoryInUse();
  size_t count = view.models.size();
  if (Fits(limits, in_use, count, bytes)) return Do(Decision::Kind::kLoad);

  // Could it ever fit? Only the pinned models stay.
  uint64_t pinned_bytes = 0;
  size_t pinned_count = 0;
  for (const ModelView& m : view.models) {
    if (m.pinned) {
      pinned_bytes += m.bytes;
      ++pinned_count;
    }
  }
  if (!Fits(limits, pinned_bytes, pinned_count, bytes)) {
    return Fail(Status::FailedPrecondition("model \"" + name + "\" needs about " + FormatBytes(bytes) +
                                           " and does not fit next to the pinned models within the memory budget of " +
                                           FormatBytes(limits.memory_budget)));
  }

  struct Candidate {
    const ModelView* m;
    double cost;
  };
  std::vector<Candidate> candidates;
  for (const ModelView& m : view.models) {
    if (!m.loading && m.refs == 0 && m.queued == 0 && !m.pinned) {
      candidates.push_back({&m, view.eviction_cost ? view.eviction_cost(m) : 0.0});
    }
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.cost != b.cost) return a.cost < b.cost;
    return a.m->last_used < b.m->last_used;
  });
  Decision d;
  d.kind = Decision::Kind::kUnload;
  for (const Candidate& cand : candidates) {
    const ModelView* c = cand.m;
    // Each victim goes for the limit still exceeded when it is chosen: memory first, then count.
    bool over_memory = limits.memory_budget != 0 && in_use + bytes > limits.memory_budget;
    d.unload.push_back({std::string(c->key), over_memory ? UnloadReason::kMemory : UnloadReason::kCount});
    in_use -= c->bytes;
    --count;
    if (Fits(limits, in_use, count, bytes)) return d;
  }
  return Wait(Decision::Wait::kRoom);  // every model that could go is busy, queued for or loading
}

std::vector<Eviction> DecideTick(const SchedulerView& view, TimePoint now) {
  std::vector<Eviction> out;
  for (const ModelView& m : view.models) {
    if (m.loading || m.refs != 0 || m.queued != 0) continue;
    if (!m.alive) {
      out.push_back({std::string(m.key), UnloadReason::kExited});  // killed by its health check, or crashed while idle
    } else if (m.expires_at && *m.expires_at <= now) {
      out.push_back({std::string(m.key), UnloadReason::kExpired});
    }
  }
  return out;
}

Decision DecidePrewarm(const SchedulerView& view, const Limits& limits, std::string_view key, uint64_t bytes) {
  if (view.shutdown) return Wait(Decision::Wait::kNone);
  if (view.Find(key) != nullptr) return Do(Decision::Kind::kLease);
  if (view.loading || view.unloading > 0) return Wait(Decision::Wait::kOtherLoad);
  if (!Fits(limits, view.MemoryInUse(), view.models.size(), bytes)) return Wait(Decision::Wait::kRoom);
  return Do(Decision::Kind::kLoad);
}

}  // namespace resident::sched
