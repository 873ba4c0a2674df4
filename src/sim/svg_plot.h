// A dependency-free SVG of resident memory over time: one step line per model, the total,
// and a mark at each load (▲) and unload (▼).
#pragma once

#include <string>
#include <vector>

#include "sim/replay.h"

namespace resident::sim {

std::string ResidentMemorySvg(const std::vector<PsSample>& samples, const std::vector<ResidencyMark>& marks,
                              const std::string& title);

}  // namespace resident::sim
