#include "sim/lower_bound.h"

#include <algorithm>
#include <functional>
#include <limits>

namespace resident::sim {

double LowerBound::IdleAt(int cold) const {
  if (cold < models) return std::numeric_limits<double>::infinity();
  if (idle_gbs.empty()) return 0;
  size_t i = std::min(static_cast<size_t>(cold - models), idle_gbs.size() - 1);
  return idle_gbs[i];
}

int LowerBound::ColdFor(double target) const {
  // idle_gbs is non-increasing: the first index at or below the target.
  auto it = std::lower_bound(idle_gbs.begin(), idle_gbs.end(), target + 1e-9, std::greater<double>());
  if (it == idle_gbs.end()) return busy_periods;
  return models + static_cast<int>(it - idle_gbs.begin());
}

double LowerBound::HindsightAt(double loads) const {
  if (hindsight.empty()) return 0;
  if (loads < hindsight.front().first) return std::numeric_limits<double>::infinity();
  for (size_t i = 1; i < hindsight.size(); ++i) {
    const auto& [l0, i0] = hindsight[i - 1];
    const auto& [l1, i1] = hindsight[i];
    if (loads <= l1) return i0 + (i1 - i0) * (loads - l0) / (l1 - l0);
  }
  return hindsight.back().second;
}

namespace {

// One model's choices of a fixed keep time with hindsight, reduced to the segments of their
// lower convex hull: (extra loads, idle GB·s saved) of each step from keeping through every gap
// towards unloading in every gap.
void AddHindsightSteps(std::vector<double> gaps, double gb, double* keep_all_gbs,
                       std::vector<std::pair<double, double>>* steps) {
  if (gaps.empty()) return;
  std::sort(gaps.begin(), gaps.end());
  const size_t n = gaps.size();
  // Keeping for gaps[k] (k = n-1 .. 0): loads n-1-k, idle sum(gaps[0..k]) + (n-1-k) × gaps[k];
  // keeping for 0: loads n, idle 0. Points (loads, idle) by loads increasing.
  std::vector<double> prefix(n + 1, 0);
  for (size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + gaps[i];
  std::vector<std::pair<double, double>> pts;
  pts.reserve(n + 1);
  for (size_t c = 0; c < n; ++c) {
    const size_t k = n - 1 - c;
    pts.push_back({static_cast<double>(c), (prefix[k + 1] + static_cast<double>(c) * gaps[k]) * gb});
  }
  pts.push_back({static_cast<double>(n), 0});
  *keep_all_gbs += pts.front().second;
  // Lower convex hull (monotone chain), then its steps.
  std::vector<std::pair<double, double>> hull;
  for (const auto& p : pts) {
    while (hull.size() >= 2) {
      const auto& a = hull[hull.size() - 2];
      const auto& b = hull.back();
      const double cross = (b.first - a.first) * (p.second - a.second) - (b.second - a.second) * (p.first - a.first);
      if (cross > 0) break;
      hull.pop_back();
    }
    hull.push_back(p);
  }
  for (size_t i = 1; i < hull.size(); ++i) {
    const double saved = hull[i - 1].second - hull[i].second;
    if (saved > 0) steps->push_back({hull[i].first - hull[i - 1].first, saved});
  }
}

}  // namespace

LowerBound ComputeLowerBound(const Trace& trace, const std::map<std::string, uint64_t>& bytes_of,
                             const std::vector<double>& service_s, const std::map<std::string, double>& load_s) {
  // Per model: merged busy periods, in arrival order (requests are sorted by time).
  struct Open {
    double end = -1;
    bool any = false;
  };
  std::map<std::string, Open> open;
  // Every idle gap, in GB·s: what keeping the model through it costs, and what unloading in it
  // saves at most (the gap, and the load time by which the load can shorten the next gap).
  std::vector<double> saved_gbs;
  double kept_gbs = 0;   // every gap kept
  double first_loads = 0;  // each model's first load can shorten the gap after it
  LowerBound lb;
  auto gb_of = [&](const std::string& model) {
    auto b = bytes_of.find(model);
    return b == bytes_of.end() ? 0.0 : static_cast<double>(b->second) / 1e9;
  };
  auto load_of = [&](const std::string& model) {
    auto l = load_s.find(model);
    return l == load_s.end() ? 0.0 : l->second;
  };
  std::map<std::string, std::vector<double>> gaps_of;  // each model's gaps, seconds
  for (size_t i = 0; i < trace.requests.size(); ++i) {
    const auto& r = trace.requests[i];
    double end = r.t + (i < service_s.size() ? service_s[i] : 0.0);
    Open& o = open[r.model];
    if (!o.any) {
      o.any = true;
      o.end = end;
      ++lb.models;
      ++lb.busy_periods;
      first_loads += gb_of(r.model) * load_of(r.model);
      continue;
    }
    if (r.t > o.end) {
      const double gb = gb_of(r.model);
      kept_gbs += (r.t - o.end) * gb;
      saved_gbs.push_back((r.t - o.end + load_of(r.model)) * gb);
      gaps_of[r.model].push_back(r.t - o.end);
      ++lb.busy_periods;
    }
    o.end = std::max(o.end, end);
  }
  std::sort(saved_gbs.begin(), saved_gbs.end(), std::greater<double>());
  double total = kept_gbs - first_loads;
  lb.idle_gbs.reserve(saved_gbs.size() + 1);
  lb.idle_gbs.push_back(std::max(0.0, total));
  for (double g : saved_gbs) {
    total -= g;
    lb.idle_gbs.push_back(std::max(0.0, total));
  }

  // The hindsight curve: every model's hull steps, the most idle saved per load first.
  double keep_all = 0;
  std::vector<std::pair<double, double>> steps;
  for (auto& [model, gaps] : gaps_of) AddHindsightSteps(std::move(gaps), gb_of(model), &keep_all, &steps);
  std::sort(steps.begin(), steps.end(),
            [](const auto& a, const auto& b) { return a.second * b.first > b.second * a.first; });
  double loads = lb.models, idle = keep_all;
  lb.hindsight.push_back({loads, idle});
  for (const auto& [more, saved] : steps) {
    loads += more;
    idle = std::max(0.0, idle - saved);
    lb.hindsight.push_back({loads, idle});
  }
  return lb;
}

}  // namespace resident::sim
