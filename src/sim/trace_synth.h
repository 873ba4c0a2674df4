// Synthetic workload traces of known shapes, for tuning and checking residency policies on
// traffic no policy was tuned on (`resident bench make-trace`). Each shape is a random process
// drawn from a seeded std::mt19937_64: the same shape, seed and length give the same trace.
//
//   periodic   jobs every 2-60 minutes (each model its own period), a little jitter, a run
//              skipped now and then, each run a short burst of requests
//   bursty     sessions at random times (a few per hour per model), each a burst of requests
//              seconds apart
//   diurnal    chat sessions that follow office hours: frequent by day, rare at night
//   longtail   gaps drawn from a heavy-tailed (Pareto) distribution
//   rare       many models, each used a few times a day
//   changing   models whose pattern changes half-way (steady use turns rare, rare turns steady)
//   mixed      all of the above at once, on separate models
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "sim/trace.h"

namespace resident::sim {

struct SynthTraceOptions {
  std::string shape = "mixed";
  uint64_t seed = 1;
  double hours = 24;
};

// The shapes above, in order.
std::vector<std::string> SynthTraceShapes();

// Errors: kInvalidArgument for an unknown shape or a non-positive length.
Result<Trace> SynthesizeTrace(const SynthTraceOptions& options);

}  // namespace resident::sim
