// Sizes and counts written by people: "20M" parameters, "12GiB" of memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace resident {

// Parses a count with an optional SI suffix: "20M" = 20,000,000; K, M, G, T (case-insensitive),
// decimals allowed ("1.5G"). Fails on empty input, unknown suffixes, negatives and overflow.
Result<uint64_t> ParseCount(std::string_view text);

// Parses a byte size: plain bytes ("1048576"), SI units (KB, MB, GB, TB = powers of 1000) and
// binary units (KiB, MiB, GiB, TiB = powers of 1024); "B" optional; decimals allowed.
Result<uint64_t> ParseBytes(std::string_view text);

// "1.6 GB", "40 MB", "512 B": decimal units with one decimal, as ollama prints sizes.
std::string FormatBytes(uint64_t bytes);

// "20M", "1.6B", "850K": a parameter count as Ollama shows it.
std::string FormatCount(uint64_t n);

}  // namespace resident
