#include "sim/trace_synth.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace resident::sim {
namespace {

class Gen {
 public:
  Gen(uint64_t seed, double duration_s) : rng_(seed), end_(duration_s) {}

  double Uniform(double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng_); }
  double Exp(double mean) { return std::exponential_distribution<double>(1.0 / mean)(rng_); }
  int Geometric(double mean) { return 1 + std::geometric_distribution<int>(1.0 / mean)(rng_); }
  bool Chance(double p) { return Uniform(0, 1) < p; }
  double Pareto(double scale, double alpha) { return scale / std::pow(1.0 - Uniform(0, 1), 1.0 / alpha); }

  void Add(const std::string& model, double t) {
    if (t < 0 || t >= end_) return;
    trace_.requests.push_back({t, model, static_cast<int>(Uniform(16, 400)), static_cast<int>(Uniform(8, 200))});
  }
  // A burst of `n` requests starting at t, `gap_mean` seconds apart on average.
  void Burst(const std::string& model, double t, int n, double gap_mean) {
    for (int i = 0; i < n; ++i) {
      Add(model, t);
      t += Exp(gap_mean);
    }
  }
  double end() const { return end_; }
  Trace Take() {
    std::sort(trace_.requests.begin(), trace_.requests.end(), [](const TraceRequest& a, const TraceRequest& b) {
      return a.t < b.t || (a.t == b.t && a.model < b.model);
    });
    for (const auto& r : trace_.requests) {
      if (std::find(trace_.models.begin(), trace_.models.end(), r.model) == trace_.models.end()) {
        trace_.models.push_back(r.model);
      }
    }
    trace_.duration_s = end_;
    trace_.format = "csv";
    return std::move(trace_);
  }

 private:
  std::mt19937_64 rng_;
  double end_;
  Trace trace_;
};

void Periodic(Gen& g, const std::string& prefix, int models) {
  const double periods_min[] = {2, 5, 10, 15, 30, 60};
  for (int m = 0; m < models; ++m) {
    std::string name = fmt::format("{}periodic-{}", prefix, m);
    double period = 60 * periods_min[m % 6] * g.Uniform(0.9, 1.1);
    double t = g.Uniform(0, period);
    while (t < g.end()) {
      if (!g.Chance(0.05)) g.Burst(name, t + g.Uniform(-0.02, 0.02) * period, g.Geometric(2), 3);
      t += period;
    }
  }
}

void Bursty(Gen& g, const std::string& prefix, int models) {
  for (int m = 0; m < models; ++m) {
    std::string name = fmt::format("{}bursty-{}", prefix, m);
    double session_gap = 60 * g.Uniform(15, 120);
    for (double t = g.Exp(session_gap); t < g.end(); t += g.Exp(session_gap)) {
      g.Burst(name, t, g.Geometric(15), g.Uniform(5, 40));
    }
  }
}

// Sessions per hour by hour of the day: office hours busy, the night nearly silent.
double DayRate(double t_s) {
  double h = std::fmod(t_s / 3600.0, 24.0);
  if (h >= 9 && h < 18) return 4;
  if (h >= 7 && h < 22) return 1;
  return 0.1;
}

void Diurnal(Gen& g, const std::string& prefix, int models) {
  for (int m = 0; m < models; ++m) {
    std::string name = fmt::format("{}diurnal-{}", prefix, m);
    double scale = g.Uniform(0.5, 2);
    // Thinning: candidate sessions at the peak rate, kept with probability rate / peak.
    for (double t = g.Exp(3600 / (4 * scale)); t < g.end(); t += g.Exp(3600 / (4 * scale))) {
      if (g.Chance(DayRate(t) / 4)) g.Burst(name, t, g.Geometric(8), g.Uniform(20, 90));
    }
  }
}

void LongTail(Gen& g, const std::string& prefix, int models) {
  for (int m = 0; m < models; ++m) {
    std::string name = fmt::format("{}longtail-{}", prefix, m);
    double scale = g.Uniform(5, 60);
    for (double t = g.Uniform(0, 600); t < g.end(); t += g.Pareto(scale, 1.1)) g.Add(name, t);
  }
}

void Rare(Gen& g, const std::string& prefix, int models) {
  for (int m = 0; m < models; ++m) {
    std::string name = fmt::format("{}rare-{}", prefix, m);
    int uses = static_cast<int>(g.Uniform(1, 6) * g.end() / 86400) + 1;
    for (int i = 0; i < uses; ++i) g.Burst(name, g.Uniform(0, g.end()), g.Geometric(2), 20);
  }
}

void Changing(Gen& g, const std::string& prefix, int models) {
  const double half = g.end() / 2;
  for (int m = 0; m < models; ++m) {
    std::string name = fmt::format("{}changing-{}", prefix, m);
    const bool steady_first = m % 2 == 0;
    for (double t = g.Uniform(0, 60); t < g.end();) {
      bool steady = (t < half) == steady_first;
      g.Add(name, t);
      t += steady ? g.Exp(45) : g.Exp(40 * 60);
    }
  }
}

}  // namespace

std::vector<std::string> SynthTraceShapes() {
  return {"periodic", "bursty", "diurnal", "longtail", "rare", "changing", "mixed"};
}

Result<Trace> SynthesizeTrace(const SynthTraceOptions& o) {
  if (!(o.hours > 0) || o.hours > 24 * 366) return Status::InvalidArgument("the trace's length must be 0-8784 hours");
  Gen g(o.seed, o.hours * 3600);
  if (o.shape == "periodic") Periodic(g, "", 12);
  else if (o.shape == "bursty") Bursty(g, "", 10);
  else if (o.shape == "diurnal") Diurnal(g, "", 8);
  else if (o.shape == "longtail") LongTail(g, "", 10);
  else if (o.shape == "rare") Rare(g, "", 60);
  else if (o.shape == "changing") Changing(g, "", 6);
  else if (o.shape == "mixed") {
    Periodic(g, "", 4);
    Bursty(g, "", 4);
    Diurnal(g, "", 3);
    LongTail(g, "", 3);
    Rare(g, "", 20);
    Changing(g, "", 2);
  } else {
    std::string known;
    for (const auto& s : SynthTraceShapes()) known += (known.empty() ? "" : ", ") + s;
    return Status::InvalidArgument("unknown trace shape \"" + o.shape + "\" (known: " + known + ")");
  }
  return g.Take();
}

}  // namespace resident::sim
