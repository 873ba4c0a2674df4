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

LowerBound ComputeLowerBound(const Trace& trace, const std::map<std::string, uint64_t>& bytes_of,
                             const std::vector<double>& service_s, const std::map<std::string, double>& load_s) {
  // Per model: merged busy periods, in arrival order (requests are sorted by time).
  struct Open {
    double end = -1;
    bool any = false;
  };
  std::map<std::string, Open> open;
  std::vector<double> gaps_gbs;  // bytes × seconds of every idle gap, in GB·s
  LowerBound lb;
  for (size_t i = 0; i < trace.requests.size(); ++i) {
    const auto& r = trace.requests[i];
    double end = r.t + (i < service_s.size() ? service_s[i] : 0.0);
    Open& o = open[r.model];
    if (!o.any) {
      o.any = true;
      o.end = end;
      ++lb.models;
      ++lb.busy_periods;
      continue;
    }
    if (r.t > o.end) {
      auto b = bytes_of.find(r.model);
      double gb = b == bytes_of.end() ? 0.0 : static_cast<double>(b->second) / 1e9;
      auto l = load_s.find(r.model);
      double load = l == load_s.end() ? 0.0 : l->second;
      gaps_gbs.push_back(std::max(0.0, r.t - o.end - load) * gb);
      ++lb.busy_periods;
    }
    o.end = std::max(o.end, end);
  }
  std::sort(gaps_gbs.begin(), gaps_gbs.end(), std::greater<double>());
  double total = 0;
  for (double g : gaps_gbs) total += g;
  lb.idle_gbs.reserve(gaps_gbs.size() + 1);
  lb.idle_gbs.push_back(total);
  for (double g : gaps_gbs) {
    total -= g;
    lb.idle_gbs.push_back(std::max(0.0, total));
  }
  return lb;
}

}  // namespace resident::sim
