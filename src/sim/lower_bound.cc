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
  return lb;
}

}  // namespace resident::sim
