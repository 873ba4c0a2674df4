// The one table of Ollama's model options: each name, its type, the values resident accepts and
// whether resident applies it. Both checks read it: a Modelfile's PARAMETER lines
// (store/modelfile.h, at create time) and a request's `options` (api/requests.h, at request
// time), so that a model created with a value is never refused at every request.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "core/status.h"

namespace resident {

enum class OptionType { kInt, kFloat, kBool, kString };

struct OptionSpec {
  std::string_view name;
  OptionType type;
  double min = 0;  // inclusive bounds for kInt and kFloat
  double max = 0;
  // false: Ollama knows the option and resident accepts it (checked like any other), but does
  // not apply it (typical_p, num_keep, mirostat...): the request logs that it is ignored.
  bool applied = true;
};

// Every option, in the order Ollama documents them.
std::span<const OptionSpec> OptionTable();

// The option of that (lowercase) name, or nullptr when Ollama has no such option.
const OptionSpec* FindOption(std::string_view name);

// Checks a number given for a kInt or kFloat option. Errors: kInvalidArgument "out of range
// [min, max]" (not finite, or outside the bounds) or "expected an integer" (a kInt with a
// fraction); the caller adds which option and which value.
Status CheckOptionNumber(const OptionSpec& spec, double value);

// Stop strings, a request's (`options.stop`) or a model's (PARAMETER stop): at most this many,
// each at most this many bytes. Every generated piece is compared with each of them, and a
// request carries them to the runner, so their number scales memory and time (a 4 MB request
// with 10^6 of them once took 200 MB of the server's memory).
inline constexpr size_t kMaxStopStrings = 64;
inline constexpr size_t kMaxStopBytes = 1024;

// Errors: kInvalidArgument "too many stop strings: N (at most 64)" before any string is looked
// at, or "a stop string of N bytes is too long (at most 1024)".
Status CheckStopCount(size_t count);
Status CheckStopString(std::string_view stop);

}  // namespace resident
