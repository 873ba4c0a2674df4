// The offline lower bound on idle memory-time for a given number of cold starts.
//
// Each model's requests are merged into busy periods ([arrival, arrival + service] intervals that
// overlap); between two busy periods lies an idle gap. Every model loads at least once (its first
// cold start). With K cold starts allowed, a model can be unloaded in K-1 of its gaps; idle
// memory-time is least when those are its K-1 longest gaps, and an omniscient policy unloads
// right after its last request (no tail). Across models the best use of C cold starts takes the
// C - (number of models) gaps with the largest bytes × seconds, whichever model they belong to.
//
// So the curve Bound(C) (C = models .. total busy periods) is the least idle byte-seconds any
// policy can reach with C loads; it ignores load time, capacity limits and the memory budget, so
// it is a true lower bound: a policy with C loads and I idle byte-seconds has I >= Bound(C).
// A load is memory in use, not idle, and a busy period that began with a load ends at most the
// load time later, so the gap after it is at most that much shorter. The bound therefore takes
// every load (each model's first included) to shorten one gap by the model's load time, whichever
// gap that is: unloading in a gap saves at most (gap + load time) × bytes. (It stays below what
// any policy, the simulated ones included, can reach; gaps after warm busy periods are exact.)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "sim/trace.h"

namespace resident::sim {

struct LowerBound {
  int models = 0;          // the least number of cold starts (one per model used)
  int busy_periods = 0;    // beyond this, more cold starts save nothing
  // idle_gbs[i]: least idle GB·s with models + i cold starts (i = 0 .. busy_periods - models).
  std::vector<double> idle_gbs;

  // Least idle GB·s reachable with at most `cold` cold starts (the curve is flat past its end;
  // below `models`, no policy can serve the trace: +infinity).
  double IdleAt(int cold) const;
  // Fewest cold starts that reach at most `idle_gbs` idle GB·s.
  int ColdFor(double idle_gbs_target) const;

  // A second, higher reference: the best one fixed keep_alive per model can do, each model's
  // value chosen knowing the whole trace (the least idle GB·s over every choice of one keep time
  // per model that has at most the given loads; the lower convex hull, so between two choices the
  // curve interpolates). On traffic whose gaps carry no sign of what comes next (a burst that ends
  // at random), no policy that does not know the future does much better than this; the gap
  // between it and the bound is what knowing the future is worth. (loads, idle GB·s), loads
  // increasing from one per model.
  std::vector<std::pair<double, double>> hindsight;
  // The hindsight curve at `loads` (+infinity below one load per model, flat past its end).
  double HindsightAt(double loads) const;
};

// bytes_of, load_s: each model's size and load time; service_s: each request's service time.
LowerBound ComputeLowerBound(const Trace& trace, const std::map<std::string, uint64_t>& bytes_of,
                             const std::vector<double>& service_s, const std::map<std::string, double>& load_s = {});

}  // namespace resident::sim
