#include "sim/what_if.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

namespace resident::sim {
namespace {

constexpr double kDefaultColdStartS = 900;

// "1,234"
std::string Thousands(long long n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string Gbs(double v) { return v >= 100 ? fmt::format("{:.0f}", v) : fmt::format("{:.3g}", v); }

std::string StartsWord(int n) { return n == 1 ? "cold start" : "cold starts"; }

}  // namespace

std::string KeepAliveSetting(const KeepAlive& k) {
  if (k.automatic) return "auto";
  if (k.forever) return "-1";
  if (k.duration == Duration::zero()) return "0";
  std::string s = FormatGoDuration(k.duration);
  if (s.ends_with("m0s")) s.resize(s.size() - 2);
  if (s.ends_with("h0m")) s.resize(s.size() - 2);
  return s;
}

double CostGbs(const SimResult& r, const SimSetup& setup, const std::map<std::string, double>& cold_start_s) {
  double cost = r.idle_gbs;
  for (const auto& [model, cold] : r.cold_by_model) {
    auto p = setup.models.find(model);
    const double gb = p == setup.models.end() ? 0 : static_cast<double>(p->second.bytes) / 1e9;
    auto w = cold_start_s.find(model);
    cost += cold * gb * (w == cold_start_s.end() ? kDefaultColdStartS : w->second);
  }
  return cost;
}

Result<WhatIf> RunWhatIf(const Trace& trace, const SimSetup& setup, const SimPolicy& current,
                         const std::map<std::string, double>& cold_start_s) {
  const auto start = std::chrono::steady_clock::now();
  WhatIf w;
  for (const SimPolicy& p : StandardPolicies()) {
    auto r = Simulate(trace, setup, p);
    if (!r.ok()) return r.status();
    WhatIfRow row;
    row.label = p.label;
    row.setting = KeepAliveSetting(p.default_keep_alive);
    row.fixed = !p.default_keep_alive.automatic;
    row.result = std::move(r).value();
    row.cost_gbs = CostGbs(row.result, setup, cold_start_s);
    w.rows.push_back(std::move(row));
  }
  auto r = Simulate(trace, setup, current);
  if (!r.ok()) return r.status();
  w.current.label = current.label;
  w.current.result = std::move(r).value();
  w.current.cost_gbs = CostGbs(w.current.result, setup, cold_start_s);
  std::map<std::string, uint64_t> bytes_of;
  std::map<std::string, double> load_of;
  for (const auto& [name, p] : setup.models) {
    bytes_of[name] = p.bytes;
    load_of[name] = p.load_s;
  }
  w.bound = ComputeLowerBound(trace, bytes_of, setup.service_s, load_of);
  w.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return w;
}

namespace {

// What the row changes against the current setting: idle memory, then cold starts.
std::pair<std::string, std::string> Differences(const WhatIfRow& row, const WhatIfRow& current) {
  const double a = row.result.idle_gbs, b = current.result.idle_gbs;
  std::string memory;
  if (std::abs(a - b) <= 0.005 * std::max(a, b)) {
    memory = fmt::format("as much idle memory as yours ({} GB·s)", Gbs(a));
  } else if (b <= 0) {
    memory = fmt::format("{} GB·s of idle memory where yours had none", Gbs(a));
  } else {
    const double pct = std::max(1.0, std::round(100 * std::abs(a - b) / b));
    memory = fmt::format("{}% {} idle memory than yours ({} vs {} GB·s)", pct, a < b ? "less" : "more", Gbs(a), Gbs(b));
  }
  const int ca = row.result.cold, cb = current.result.cold;
  std::string cold = ca == cb   ? fmt::format("as many cold starts ({})", ca)
                     : ca > cb ? fmt::format("{} more {} ({} vs {})", ca - cb, StartsWord(ca - cb), ca, cb)
                               : fmt::format("{} fewer {} ({} vs {})", cb - ca, StartsWord(cb - ca), ca, cb);
  return {memory, cold};
}

}  // namespace

std::string CompareToCurrent(const WhatIfRow& row, const WhatIfRow& current) {
  auto [memory, cold] = Differences(row, current);
  return row.label + ": " + memory + ", " + cold;
}

void Advise(WhatIf& w, const std::string& cold_start_cost) {
  w.best = -1;
  double best_cost = w.current.cost_gbs;
  for (size_t i = 0; i < w.rows.size(); ++i) {
    // Another setting is advised when it is cheaper (beyond floating-point noise).
    if (w.rows[i].cost_gbs < best_cost * (1 - 1e-9) - 1e-12) {
      best_cost = w.rows[i].cost_gbs;
      w.best = static_cast<int>(i);
    }
  }
  if (w.current.result.requests == 0) {
    w.advice = "No requests recorded yet: once some have been served, this says which keep_alive would have cost least.";
    return;
  }
  const std::string n = Thousands(w.current.result.requests);
  const std::string priced = fmt::format("(a cold start counted as cold_start_cost {} of the model's idle time)",
                                         cold_start_cost);
  if (w.best < 0) {
    // The cheapest setting that behaves differently, to say what moving would trade.
    int next = -1;
    for (size_t i = 0; i < w.rows.size(); ++i) {
      const WhatIfRow& r = w.rows[i];
      if (r.result.cold == w.current.result.cold && r.result.idle_gbs == w.current.result.idle_gbs) continue;
      if (next < 0 || r.cost_gbs < w.rows[static_cast<size_t>(next)].cost_gbs) next = static_cast<int>(i);
    }
    w.advice = fmt::format("Your setting, {}, would have cost least on these {} requests {}: nothing to change.",
                           w.current.setting.empty() ? w.current.label : "keep_alive " + w.current.setting, n, priced);
    if (next >= 0) w.advice += " The nearest, " + CompareToCurrent(w.rows[static_cast<size_t>(next)], w.current) + ".";
    return;
  }
  const WhatIfRow& best = w.rows[static_cast<size_t>(w.best)];
  auto [memory, cold] = Differences(best, w.current);
  w.advice = fmt::format("{} would have cost least on these {} requests: {}, {}, where yours is {} {}. Set "
                         "RESIDENT_KEEP_ALIVE={}.",
                         best.label, n, memory, cold,
                         w.current.setting.empty() ? w.current.label : "keep_alive " + w.current.setting, priced,
                         best.setting);
}

}  // namespace resident::sim
