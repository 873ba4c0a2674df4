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

// Whether `vram` more bytes fit on device `gpu` next to `in_use` (no device: nothing to fit; a
// device that is gone: nothing fits).
bool FitsVram(const SchedulerView& view, int gpu, uint64_t in_use, uint64_t vram) {
  if (gpu < 0 || vram == 0) return true;
  const GpuBudget* g = view.Gpu(gpu);
  return g != nullptr && in_use + vram <= g->capacity;
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

uint64_t SchedulerView::VramInUse(int gpu) const {
  uint64_t total = 0;
  for (const ModelView& m : models) total += m.gpu == gpu ? m.vram_bytes : 0;
  return total;
}

const GpuBudget* SchedulerView::Gpu(int index) const {
  for (const GpuBudget& g : gpus) {
    if (g.index == index) return &g;
  }
  return nullptr;
}

double EvictionCost(double reload_s, double reuse_probability, uint64_t bytes) {
  return std::max(0.001, reload_s) * std::clamp(reuse_probability, 0.0, 1.0) /
         static_cast<double>(std::max<uint64_t>(1, bytes));
}

double DefaultReuseProbability(Duration idle) {
  double idle_min = std::chrono::duration<double>(idle).count() / 60.0;
  return 1.0 / (1.0 + std::max(0.0, idle_min));
}

namespace {

// Whether the models could ever make room for `need` more bytes (and one more model when
// `adds_one`): only the pinned models stay (and `self`, which is never a candidate).
bool CouldEverFit(const SchedulerView& view, const Limits& limits, uint64_t need, bool adds_one,
                  std::string_view self, int gpu = -1, uint64_t vram = 0) {
  uint64_t stay_bytes = 0, stay_vram = 0;
  size_t stay_count = 0;
  for (const ModelView& m : view.models) {
    if (m.pinned || m.key == self) {
      stay_bytes += m.key == self ? 0 : m.bytes;  // `self` counts in `need`
      stay_vram += m.key == self || m.gpu != gpu ? 0 : m.vram_bytes;
      ++stay_count;
    }
  }
  const bool count_ok = !adds_one || static_cast<int>(stay_count) < limits.max_loaded;
  return count_ok && (limits.memory_budget == 0 || stay_bytes + need <= limits.memory_budget) &&
         FitsVram(view, gpu, stay_vram, vram);
}

// Which limit the pinned models leave no room under, in words: the memory budget, the device's
// VRAM, or the number of models.
std::string CannotFit(const std::string& name, uint64_t bytes, const Limits& limits, const SchedulerView& view,
                      std::string_view self, int gpu, uint64_t vram) {
  if (limits.memory_budget != 0 && !CouldEverFit(view, limits, bytes, false, self)) {
    return "model \"" + name + "\" needs about " + FormatBytes(bytes) +
           " and does not fit next to the pinned models within the memory budget of " + FormatBytes(limits.memory_budget);
  }
  Limits vram_only = limits;
  vram_only.memory_budget = 0;
  const GpuBudget* g = view.Gpu(gpu);
  if (vram != 0 && gpu >= 0 && !CouldEverFit(view, vram_only, 0, false, self, gpu, vram)) {
    return "model \"" + name + "\" needs about " + FormatBytes(vram) + " on GPU " + std::to_string(gpu) +
           " and does not fit there next to the pinned models (" + FormatBytes(g ? g->capacity : 0) +
           " usable); lower num_gpu to offload fewer layers";
  }
  return "model \"" + name + "\" does not fit next to the pinned models (at most " +
         std::to_string(limits.max_loaded) + " models loaded at once)";
}

// Room for `need` more bytes (and one more model when `adds_one`) next to what is loaded, made by
// putting idle models to sleep when that frees enough, else by evicting idle models. `done` when
// it fits as it is. Never touches `self`.
Decision MakeRoom(const SchedulerView& view, const Limits& limits, uint64_t need, bool adds_one, std::string_view self,
                  Decision::Kind done, int gpu = -1, uint64_t vram = 0) {
  uint64_t in_use = view.MemoryInUse();
  uint64_t vram_in_use = gpu >= 0 ? view.VramInUse(gpu) : 0;
  size_t count = view.models.size();
  auto fits_memory = [&] { return limits.memory_budget == 0 || in_use + need <= limits.memory_budget; };
  auto fits_count = [&] { return !adds_one || static_cast<int>(count) < limits.max_loaded; };
  auto fits_vram = [&] { return FitsVram(view, gpu, vram_in_use, vram); };
  if (fits_memory() && fits_count() && fits_vram()) return Do(done);
  const bool vram_short = !fits_vram();

  struct Candidate {
    const ModelView* m;
    double cost;
  };
  std::vector<Candidate> candidates;
  for (const ModelView& m : view.models) {
    if (!m.loading && !m.changing_tier && m.refs == 0 && m.queued == 0 && !m.pinned && m.key != self) {
      candidates.push_back({&m, view.eviction_cost ? view.eviction_cost(m) : 0.0});
    }
  }
  // VRAM short: the models on that device go first.
  auto frees_vram = [&](const ModelView* m) { return vram_short && m->gpu == gpu && m->vram_bytes > 0; };
  std::sort(candidates.begin(), candidates.end(), [&](const Candidate& a, const Candidate& b) {
    if (frees_vram(a.m) != frees_vram(b.m)) return frees_vram(a.m);
    if (a.cost != b.cost) return a.cost < b.cost;
    return a.m->last_used < b.m->last_used;
  });

  // Memory alone is short: sleeping idle models may free enough without unloading any.
  if (fits_count() && !vram_short) {
    Decision d;
    d.kind = Decision::Kind::kSleep;
    uint64_t left = in_use;
    for (const Candidate& cand : candidates) {
      const ModelView* c = cand.m;
      if (!c->may_sleep || c->sleeping || !c->alive || c->asleep_bytes >= c->bytes) continue;
      d.sleep.push_back({std::string(c->key), SleepReason::kMemory});
      left -= c->bytes - c->asleep_bytes;
      if (left + need <= limits.memory_budget) return d;
    }
  }

  Decision d;
  d.kind = Decision::Kind::kUnload;
  for (const Candidate& cand : candidates) {
    const ModelView* c = cand.m;
    // Only a model that frees what is still short: memory (host or VRAM) first, then count.
    const bool for_vram = !fits_vram() && c->gpu == gpu && c->vram_bytes > 0;
    const bool for_memory = !fits_memory() && c->bytes > 0;
    if (!for_vram && !for_memory && fits_count()) continue;
    d.unload.push_back({std::string(c->key), for_vram || for_memory ? UnloadReason::kMemory : UnloadReason::kCount});
    in_use -= c->bytes;
    if (c->gpu == gpu) vram_in_use -= std::min(vram_in_use, c->vram_bytes);
    --count;
    if (fits_memory() && fits_count() && fits_vram()) return d;
  }
  return Wait(Decision::Wait::kRoom);  // every model that could go is busy, queued for or loading
}

}  // namespace

Decision DecideAcquire(const SchedulerView& view, const Limits& limits, const AcquireAsk& ask) {
  if (view.shutdown) return Fail(Status::Unavailable("the server is shutting down"));
  if (ask.arriving && view.waiting >= limits.max_queue) {
    return Fail(Status::ResourceExhausted("server busy, please try again.  maximum pending requests exceeded"));
  }
  const std::string name(ask.name);
  if (const ModelView* m = view.Find(ask.key)) {
    if (m->loading) return Wait(Decision::Wait::kLoad);
    if (m->changing_tier) return Wait(Decision::Wait::kTier);
    if (!m->alive && m->refs == 0) return UnloadOne(ask.key, UnloadReason::kExited);
    if (!ask.matches_loaded) {
      return m->refs == 0 ? UnloadOne(ask.key, UnloadReason::kReload) : Wait(Decision::Wait::kReload);
    }
    if (m->sleeping) {
      // Awake it holds awake_bytes again: room for the difference.
      const uint64_t need = m->awake_bytes > m->bytes ? m->awake_bytes - m->bytes : 0;
      const bool fits = limits.memory_budget == 0 || view.MemoryInUse() + need <= limits.memory_budget;
      if (fits) return Do(Decision::Kind::kWake);
      if (view.loading || view.unloading > 0) return Wait(Decision::Wait::kOtherLoad);
      if (!CouldEverFit(view, limits, m->awake_bytes, false, ask.key)) {
        return Fail(Status::FailedPrecondition("model \"" + name + "\" needs about " + FormatBytes(m->awake_bytes) +
                                               " awake and does not fit next to the pinned models within the memory "
                                               "budget of " + FormatBytes(limits.memory_budget)));
      }
      return MakeRoom(view, limits, need, false, ask.key, Decision::Kind::kWake);
    }
    if (m->refs >= limits.num_parallel) return Wait(Decision::Wait::kSlot);
    return Do(Decision::Kind::kLease);
  }

  if (!ask.predicted) return Do(Decision::Kind::kPredict);
  const uint64_t bytes = *ask.predicted;
  if (limits.memory_budget && bytes > limits.memory_budget) {
    return Fail(Status::FailedPrecondition("model \"" + name + "\" needs about " + FormatBytes(bytes) +
                                           " but the memory budget is " + FormatBytes(limits.memory_budget) +
                                           " (RESIDENT_MEMORY_LIMIT): it can never be loaded"));
  }
  // One load at a time, and not while memory is still being returned.
  if (view.loading || view.unloading > 0) return Wait(Decision::Wait::kOtherLoad);
  const int gpu = ask.gpu;
  const uint64_t vram = gpu >= 0 ? ask.predicted_vram : 0;
  if (Fits(limits, view.MemoryInUse(), view.models.size(), bytes) && FitsVram(view, gpu, view.VramInUse(gpu), vram)) {
    return Do(Decision::Kind::kLoad);
  }
  // Could it ever fit? Only the pinned models stay.
  if (!CouldEverFit(view, limits, bytes, true, ask.key, gpu, vram)) {
    return Fail(Status::FailedPrecondition(CannotFit(name, bytes, limits, view, ask.key, gpu, vram)));
  }
  return MakeRoom(view, limits, bytes, true, ask.key, Decision::Kind::kLoad, gpu, vram);
}

std::vector<Eviction> DecideTick(const SchedulerView& view, TimePoint now) {
  std::vector<Eviction> out;
  for (const ModelView& m : view.models) {
    if (m.loading || m.changing_tier || m.refs != 0 || m.queued != 0) continue;
    if (!m.alive) {
      out.push_back({std::string(m.key), UnloadReason::kExited});  // killed by its health check, or crashed while idle
    } else if (m.expires_at && *m.expires_at <= now) {
      out.push_back({std::string(m.key), UnloadReason::kExpired});
    }
  }
  return out;
}

std::vector<SleepOrder> DecideSleep(const SchedulerView& view, TimePoint now) {
  std::vector<SleepOrder> out;
  for (const ModelView& m : view.models) {
    if (m.loading || m.changing_tier || m.sleeping || !m.alive || m.refs != 0 || m.queued != 0) continue;
    if (m.expires_at && *m.expires_at <= now) continue;  // DecideTick unloads it
    if (m.sleep_at && *m.sleep_at <= now) out.push_back({std::string(m.key), SleepReason::kIdle});
  }
  return out;
}

Decision DecidePrewarm(const SchedulerView& view, const Limits& limits, std::string_view key, uint64_t bytes, int gpu,
                       uint64_t vram) {
  if (view.shutdown) return Wait(Decision::Wait::kNone);
  if (view.Find(key) != nullptr) return Do(Decision::Kind::kLease);
  if (view.loading || view.unloading > 0) return Wait(Decision::Wait::kOtherLoad);
  if (!Fits(limits, view.MemoryInUse(), view.models.size(), bytes)) return Wait(Decision::Wait::kRoom);
  if (!FitsVram(view, gpu, view.VramInUse(gpu), vram)) return Wait(Decision::Wait::kRoom);
  return Do(Decision::Kind::kLoad);
}

}  // namespace resident::sched
