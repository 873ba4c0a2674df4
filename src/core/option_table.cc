#include "core/option_table.h"

#include <array>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace resident {
namespace {

constexpr double kInt32Max = std::numeric_limits<int32_t>::max();
constexpr double kMaxSafeInteger = 9007199254740992.0;  // 2^53: a JSON number's exact integers

// The bounds are what the runner can take (llama.cpp's int32 fields, a seed JSON carries exactly).
constexpr std::array<OptionSpec, 21> kOptions = {{
    // Load-time options: a change reloads the model.
    {"num_ctx", OptionType::kInt, 1, 1 << 24},
    {"num_batch", OptionType::kInt, 1, 1 << 20},
    {"num_gpu", OptionType::kInt, -1, 100000},
    {"num_thread", OptionType::kInt, 0, 1024},
    {"use_mmap", OptionType::kBool},
    // Sampling.
    {"num_keep", OptionType::kInt, -1, kInt32Max, /*applied=*/false},
    {"seed", OptionType::kInt, -1, kMaxSafeInteger},
    {"num_predict", OptionType::kInt, -2, kInt32Max},
    {"top_k", OptionType::kInt, 0, kInt32Max},
    {"top_p", OptionType::kFloat, 0, 1},
    {"min_p", OptionType::kFloat, 0, 1},
    {"typical_p", OptionType::kFloat, 0, 1, /*applied=*/false},
    {"repeat_last_n", OptionType::kInt, -1, kInt32Max},
    {"temperature", OptionType::kFloat, 0, 100},
    {"repeat_penalty", OptionType::kFloat, 0, 100},
    {"presence_penalty", OptionType::kFloat, -100, 100},
    {"frequency_penalty", OptionType::kFloat, -100, 100},
    {"mirostat", OptionType::kInt, 0, 2, /*applied=*/false},
    {"mirostat_tau", OptionType::kFloat, 0, 100, /*applied=*/false},
    {"mirostat_eta", OptionType::kFloat, 0, 100, /*applied=*/false},
    {"stop", OptionType::kString},
}};

}  // namespace

std::span<const OptionSpec> OptionTable() { return kOptions; }

const OptionSpec* FindOption(std::string_view name) {
  for (const OptionSpec& o : kOptions) {
    if (o.name == name) return &o;
  }
  return nullptr;
}

Status CheckOptionNumber(const OptionSpec& spec, double value) {
  if (!std::isfinite(value) || value < spec.min || value > spec.max) {
    return Status::InvalidArgument(fmt::format("out of range [{}, {}]", spec.min, spec.max));
  }
  if (spec.type == OptionType::kInt && value != std::floor(value)) {
    return Status::InvalidArgument("expected an integer");
  }
  return Status::Ok();
}

Status CheckStopCount(size_t count) {
  if (count > kMaxStopStrings) {
    return Status::InvalidArgument(fmt::format("too many stop strings: {} (at most {})", count, kMaxStopStrings));
  }
  return Status::Ok();
}

Status CheckStopString(std::string_view stop) {
  if (stop.size() > kMaxStopBytes) {
    return Status::InvalidArgument(
        fmt::format("a stop string of {} bytes is too long (at most {})", stop.size(), kMaxStopBytes));
  }
  return Status::Ok();
}

}  // namespace resident
