// keep_alive: how long a model stays loaded after its last request.
//
// Matches Ollama (api/types.go Duration.UnmarshalJSON, envconfig.KeepAlive, Go's
// time.ParseDuration and Duration.String) byte for byte in values and error messages, as
// Ollama documents and implements keep_alive. Nothing here depends on a JSON library.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"

namespace resident {

// A keep_alive value: a duration, or forever. A duration stays finite however long (up to
// 2^63-2 ns, about 292 years), as in Ollama, which reports it back as such: every time computed
// from one (now + keep_alive) saturates at the clock's end instead of overflowing
// (SaturatingAdd, core/clock.h), so such a model never expires.
//
// "auto" (resident's own, accepted where a default is set: RESIDENT_KEEP_ALIVE and the policy
// file, never in a request) leaves the choice to the residency learner (sched/learner.h).
struct KeepAlive {
  Duration duration{0};  // meaningful only when !forever && !automatic; never negative
  bool forever = false;
  bool automatic = false;  // "auto"

  static KeepAlive Forever();
  static KeepAlive Auto();
  // A negative duration means forever (as in Ollama), and so does Duration::max()
  // (Ollama's forever is math.MaxInt64 nanoseconds).
  static KeepAlive Of(Duration d);

  bool operator==(const KeepAlive&) const = default;
  // Go's Duration.String() ("5m0s", "1.5s", "300ms", "0s"), or "forever", or "auto".
  std::string ToString() const;
};

// Go's Duration.String(): "0s", "1.5s", "5m0s", "1h30m0s", "300ms", "2µs" (U+00B5), "-1m0s".
std::string FormatGoDuration(Duration d);

// Go's time.ParseDuration, exactly: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+ with units ns, us,
// µs (U+00B5), μs (U+03BC), ms, s, m, h; "0", "-0", "+0" alone need no unit. Out-of-range
// values are errors (never wrap). Errors are InvalidArgument with Go's messages:
//   time: invalid duration "<s>"
//   time: missing unit in duration "<s>"
//   time: unknown unit "<u>" in duration "<s>"
// quoted as Go's time package quotes (`"` and `\` escaped with a backslash; every byte below
// 0x20 or above 0x7f written as \xHH).
Result<Duration> ParseGoDuration(std::string_view s);

// The keep_alive of a request body, as the already-parsed JSON kind (absent/null is the
// caller's business: it means "unset").
struct KeepAliveInput {
  enum class Kind { kNumber, kString, kBool, kObject, kArray } kind;
  double number = 0;  // kNumber
  std::string text;   // kString
};

// number: seconds, fractions allowed (truncated to whole nanoseconds); negative = forever;
//   0 = zero; too large for int64 nanoseconds = forever. NaN (not JSON) is an error.
// string: ParseGoDuration; a negative duration = forever; its errors as they are, e.g.
//   "300" → time: missing unit in duration "300".
// bool/object/array → "invalid keep_alive: expected a duration string or a number of seconds,
//   got a boolean" (an object, an array). Ollama answers the same 400 with Go's type names
//   ("Unsupported type: '[]interface {}'").
// All errors are InvalidArgument (HTTP 400).
Result<KeepAlive> ParseKeepAlive(const KeepAliveInput& in);

// An OLLAMA_KEEP_ALIVE-style value, as Ollama reads it: white space trimmed, then any leading
// and trailing ' and " characters; parsed as a Go duration, or else as base-10 integer seconds
// ("60" = 60 s, "-1" = forever, "0" = zero; seconds beyond int64 nanoseconds = forever).
// Negative = forever. Empty (after trimming) or invalid → nullopt.
std::optional<KeepAlive> ParseKeepAliveEnv(std::string_view value);

// Whether a keep_alive variable's value counts as set: non-empty once trimmed as
// ParseKeepAliveEnv trims it (DefaultKeepAliveFromEnv skips the others, as Ollama does).
bool KeepAliveEnvIsSet(const char* value);

// The default keep_alive: RESIDENT_KEEP_ALIVE if set and non-empty after trimming ("auto"
// allowed), else OLLAMA_KEEP_ALIVE likewise (Ollama's forms only), else 5 minutes. The first variable that is set decides: an invalid
// value gives 5 minutes and a message in *warning (left empty otherwise; warning may be null).
KeepAlive DefaultKeepAliveFromEnv(std::string* warning);

// 5 minutes, Ollama's default.
inline constexpr Duration kDefaultKeepAlive = std::chrono::minutes(5);

}  // namespace resident
