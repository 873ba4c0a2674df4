#include "sched/learner.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace resident::sched {
namespace {

struct Sample {
  double g;  // gap, seconds
  double w;  // recency weight
};

double Log2Gap(double seconds) { return std::log2(1 + std::max(0.0, seconds)); }

std::vector<Sample> Weighted(const UsageHistory& h, double now_s, const LearnerConfig& c,
                             const PriorGaps* prior = nullptr) {
  std::vector<Sample> s;
  s.reserve(h.gaps.size() + (prior ? prior->gaps.size() : 0));
  const bool context = c.context_width > 0 && !h.gaps.empty();
  const double latest = context ? Log2Gap(h.gaps.back().seconds) : 0;
  const double hour_now = std::fmod(now_s / 3600.0, 24.0);
  for (const auto& gap : h.gaps) {
    double age = std::max(0.0, now_s - gap.end_s);
    double w = c.half_life_s > 0 ? std::exp2(-age / c.half_life_s) : 1.0;
    if (context && gap.prev_s >= 0) w *= std::exp(-std::abs(Log2Gap(gap.prev_s) - latest) / c.context_width);
    if (c.time_of_day_width_h > 0) {
      double d = std::abs(std::fmod((gap.end_s - gap.seconds) / 3600.0, 24.0) - hour_now);
      d = std::min(d, 24 - d);
      const double width = c.time_of_day_width_h;
      w *= c.time_of_day_floor + (1 - c.time_of_day_floor) * std::exp(-d * d / (2 * width * width));
    }
    s.push_back({std::max(0.0, gap.seconds), std::max(w, 1e-12)});
  }
  // The prior weighs as `min_gaps` fresh gaps in all: it decides for a new model and fades as the
  // model's own gaps accumulate.
  if (prior != nullptr && prior->total_weight > 0 && h.gaps.size() < 8 * c.min_gaps) {
    const double scale = static_cast<double>(c.min_gaps) / prior->total_weight;
    for (const auto& [g, w] : prior->gaps) s.push_back({g, w * scale});
  }
  std::sort(s.begin(), s.end(), [](const Sample& a, const Sample& b) { return a.g < b.g; });
  return s;
}

// A keep time just past sample j: a gap a little longer than one seen is still likely, so the
// plan covers half the way to the next sample, at most a quarter more (and 2 s).
double Past(const std::vector<Sample>& s, size_t j) {
  double g = s[j].g;
  double slack = 0.25 * g + 2;
  if (j + 1 < s.size()) slack = std::min(slack, (s[j + 1].g - g) / 2);
  return g + slack;
}

// A ready time just before sample a (the mirror of Past).
double Before(const std::vector<Sample>& s, size_t a) {
  double g = s[a].g;
  double slack = 0.1 * g + 2;
  if (a > 0) slack = std::min(slack, (g - s[a - 1].g) / 2);
  return std::max(0.0, g - slack);
}

double Clamp(double keep, const CostModel& c) {
  if (c.max_keep_s >= 0) keep = std::min(keep, c.max_keep_s);
  return std::max(keep, c.min_keep_s);
}

std::string Percent(double f) { return fmt::format("{:.0f}%", std::floor(100 * f)); }

}  // namespace

void UsageHistory::Arrive(double now_s) {
  ++requests;
  if (idle_since) {
    gaps.push_back({now_s, std::max(0.0, now_s - *idle_since), gaps.empty() ? -1.0 : gaps.back().seconds});
    while (gaps.size() > kMaxGaps) gaps.pop_front();
    idle_since.reset();
  }
}

void UsageHistory::Idle(double now_s) { idle_since = now_s; }

int ContextBucket(const UsageHistory& history) {
  return history.gaps.empty() ? -1 : static_cast<int>(Log2Gap(history.gaps.back().seconds));
}

std::string FormatSeconds(double seconds) {
  if (!std::isfinite(seconds)) return "forever";
  if (seconds < 10) return fmt::format("{:.1f}s", std::max(0.0, seconds));
  auto s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return s % 60 ? fmt::format("{}m{}s", s / 60, s % 60) : fmt::format("{}m", s / 60);
  int64_t m = (s + 30) / 60;
  return m % 60 ? fmt::format("{}h{}m", m / 60, m % 60) : fmt::format("{}h", m / 60);
}

void PriorGaps::Add(const UsageHistory& history) {
  if (history.gaps.empty()) return;
  const size_t n = std::min(kPerModel, history.gaps.size());
  for (size_t i = history.gaps.size() - n; i < history.gaps.size(); ++i) {
    gaps.push_back({history.gaps[i].seconds, 1.0 / static_cast<double>(n)});
  }
  total_weight += 1;
}

ResidencyPlan Plan(const UsageHistory& history, double now_s, const LearnerConfig& config, const CostModel& cost,
                   const PriorGaps* prior) {
  ResidencyPlan plan;
  const double W = std::max(0.0, cost.cold_start_s);
  const double V = std::max(0.0, config.prewarm_cost) * W;
  plan.gaps = history.gaps.size();
  const bool has_prior = prior != nullptr && prior->total_weight >= 2;
  if (history.gaps.size() < config.min_gaps && !has_prior) {
    plan.keep_s = Clamp(W, cost);
    plan.expected_cost_s = W;
    plan.reason = fmt::format("auto: {} of this model's gaps seen so far: keeps it for what a cold start is worth ({})",
                              history.gaps.size(), FormatSeconds(plan.keep_s));
    return plan;
  }
  const std::vector<Sample> s = Weighted(history, now_s, config, has_prior ? prior : nullptr);
  const char* whose = history.gaps.size() < config.min_gaps ? "this and other models'" : "this model's";
  const size_t n = s.size();
  // Prefix sums: sw[i] = weight of samples < i, swg[i] = their weight × gap.
  std::vector<double> sw(n + 1, 0), swg(n + 1, 0);
  for (size_t i = 0; i < n; ++i) {
    sw[i + 1] = sw[i] + s[i].w;
    swg[i + 1] = swg[i] + s[i].w * s[i].g;
  }
  const double total = sw[n];

  // Keep plans: K = 0, or just past sample j (j warm and everything shorter).
  double best_keep_cost = total * W;
  double best_keep = 0;
  size_t best_j = n;  // n: K = 0
  for (size_t j = 0; j < n; ++j) {
    double K = Past(s, j);
    double c = swg[j + 1] + (total - sw[j + 1]) * (K + W);
    if (c < best_keep_cost) {
      best_keep_cost = c;
      best_keep = K;
      best_j = j;
    }
  }
  // The clamps change the keep time, not the choice.
  plan.keep_s = Clamp(best_keep, cost);
  plan.expected_cost_s = best_keep_cost / total;
  if (best_j == n) {
    plan.reason = fmt::format("auto: a cold start ({} of idle) costs less than waiting through {} gaps "
                              "(median {}): unloads at once",
                              FormatSeconds(W), whose, FormatSeconds(s[n / 2].g));
  } else {
    plan.reason = fmt::format("auto: {} of {} recent gaps are under {}", Percent(sw[best_j + 1] / total), whose,
                              FormatSeconds(best_keep));
  }

  // Prewarm plans: ready just before sample a, kept until just past sample b >= a.
  const bool can_prewarm = config.prewarm && cost.min_keep_s <= 0 && history.gaps.size() >= 2 * config.min_gaps;
  if (!can_prewarm) return plan;
  const double min_ready = std::max(config.min_prewarm_s, 3 * cost.load_s);
  double best_cost = best_keep_cost;
  bool found = false;
  double best_ready = 0, best_window = 0;
  size_t best_a = 0, best_b = 0;
  // The ready time from at most ~32 quantiles of the gaps; every window end after it.
  const size_t step = std::max<size_t>(1, n / 32);
  for (size_t a = 0; a < n; a += step) {
    double ready = Before(s, a);
    if (ready < min_ready) continue;
    const double early = sw[a] * W;  // arrived before the model was ready: cold
    for (size_t b = a; b < n; ++b) {
      double window = Past(s, b) - ready;
      if (cost.max_keep_s >= 0 && window > cost.max_keep_s) break;
      double warm = (swg[b + 1] - swg[a]) - ready * (sw[b + 1] - sw[a]) + (sw[b + 1] - sw[a]) * V;
      double late = (total - sw[b + 1]) * (window + V + W);
      double c = early + warm + late;
      // A prewarm is a prediction: only one that most gaps can prove right, and that saves more
      // than the noise of the estimate, replaces keeping.
      const bool predicts = sw[b + 1] - sw[a] >= config.min_prewarm_share * total;
      if (predicts && c < best_cost && c < (1 - config.min_prewarm_gain) * best_keep_cost) {
        best_cost = c;
        found = true;
        best_ready = ready;
        best_window = window;
        best_a = a;
        best_b = b;
      }
    }
  }
  if (!found) return plan;
  plan.kind = ResidencyPlan::Kind::kPrewarm;
  plan.keep_s = 0;
  plan.prewarm_ready_s = best_ready;
  plan.prewarm_keep_s = best_window;
  plan.expected_cost_s = best_cost / total;
  plan.reason = fmt::format("auto: {} of {} recent gaps fall between {} and {}: unloads at once and is "
                            "loaded again for {} after each request",
                            Percent((sw[best_b + 1] - sw[best_a]) / total), whose, FormatSeconds(s[best_a].g),
                            FormatSeconds(s[best_b].g), FormatSeconds(best_ready));
  return plan;
}

std::optional<double> ReuseProbability(const UsageHistory& history, double now_s, double idle_s, double horizon_s,
                                       const LearnerConfig& config) {
  if (history.gaps.empty()) return std::nullopt;
  double longer = 0, soon = 0;
  for (const Sample& x : Weighted(history, now_s, config)) {
    if (x.g <= idle_s) continue;
    longer += x.w;
    if (x.g <= idle_s + horizon_s) soon += x.w;
  }
  // Idle longer than every gap seen: as unlikely as one more gap out of all of them.
  if (longer <= 0) return 1.0 / static_cast<double>(history.gaps.size() + 1);
  return soon / longer;
}

}  // namespace resident::sched
