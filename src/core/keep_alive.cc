#include "core/keep_alive.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <limits>

namespace resident {
namespace {

constexpr uint64_t kNs = 1;
constexpr uint64_t kUs = 1000 * kNs;
constexpr uint64_t kMs = 1000 * kUs;
constexpr uint64_t kSec = 1000 * kMs;
constexpr uint64_t kMin = 60 * kSec;
constexpr uint64_t kHour = 60 * kMin;
constexpr uint64_t kTwo63 = uint64_t{1} << 63;  // |INT64_MIN|

// Go's time.quote (not strconv.Quote): `"` and `\` get a backslash; every byte of a rune that
// is a control character (< 0x20) or non-ASCII is written as \xHH; 0x7f passes through.
std::string GoQuote(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80 || c < 0x20) {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    } else {
      if (c == '"' || c == '\\') out.push_back('\\');
      out.push_back(ch);
    }
  }
  out.push_back('"');
  return out;
}

Status InvalidDuration(std::string_view orig) {
  return Status::InvalidArgument("time: invalid duration " + GoQuote(orig));
}

// Consumes the leading [0-9]* of s. False on overflow (as Go's leadingInt).
bool LeadingInt(std::string_view& s, uint64_t& x) {
  x = 0;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c < '0' || c > '9') break;
    if (x > kTwo63 / 10) return false;
    x = x * 10 + static_cast<uint64_t>(c - '0');
    if (x > kTwo63) return false;
  }
  s.remove_prefix(i);
  return true;
}

// Consumes the leading [0-9]* of s as a fraction: value x/scale. Stops accumulating precision
// on overflow instead of failing (as Go's leadingFraction).
void LeadingFraction(std::string_view& s, uint64_t& x, double& scale) {
  x = 0;
  scale = 1;
  bool overflow = false;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c < '0' || c > '9') break;
    if (overflow) continue;
    if (x > (kTwo63 - 1) / 10) {
      overflow = true;
      continue;
    }
    const uint64_t y = x * 10 + static_cast<uint64_t>(c - '0');
    if (y > kTwo63) {
      overflow = true;
      continue;
    }
    x = y;
    scale *= 10;
  }
  s.remove_prefix(i);
}

std::optional<uint64_t> UnitNanos(std::string_view u) {
  if (u == "ns") return kNs;
  if (u == "us" || u == "\u00b5s" || u == "\u03bcs") return kUs;
  if (u == "ms") return kMs;
  if (u == "s") return kSec;
  if (u == "m") return kMin;
  if (u == "h") return kHour;
  return std::nullopt;
}

// Go's fmtFrac: writes the fraction of v/10^prec before `w` in buf, without trailing zeros
// (and without the point when the fraction is zero); returns v/10^prec.
uint64_t FmtFrac(char* buf, size_t& w, uint64_t v, int prec) {
  bool print = false;
  for (int i = 0; i < prec; ++i) {
    const uint64_t digit = v % 10;
    print = print || digit != 0;
    if (print) buf[--w] = static_cast<char>('0' + digit);
    v /= 10;
  }
  if (print) buf[--w] = '.';
  return v;
}

// Go's fmtInt.
void FmtInt(char* buf, size_t& w, uint64_t v) {
  if (v == 0) {
    buf[--w] = '0';
    return;
  }
  while (v > 0) {
    buf[--w] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
}

// Decodes one UTF-8 rune at the start of s; returns its length, or 0 if s does not start with a
// valid encoding (Go would see utf8.RuneError, which is no space).
size_t DecodeRune(std::string_view s, char32_t& r) {
  if (s.empty()) return 0;
  const auto b0 = static_cast<unsigned char>(s[0]);
  size_t n;
  char32_t min;
  if (b0 < 0x80) {
    r = b0;
    return 1;
  } else if ((b0 & 0xE0) == 0xC0) {
    n = 2, r = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3, r = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4, r = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xC0) != 0x80) return 0;
    r = (r << 6) | (b & 0x3F);
  }
  if (r < min || r > 0x10FFFF || (r >= 0xD800 && r <= 0xDFFF)) return 0;
  return n;
}

// Go's unicode.IsSpace.
bool IsGoSpace(char32_t r) {
  switch (r) {
    case '\t': case '\n': case '\v': case '\f': case '\r': case ' ':
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return r >= 0x2000 && r <= 0x200A;
  }
}

// Go's strings.TrimSpace.
std::string_view TrimGoSpace(std::string_view s) {
  while (!s.empty()) {
    char32_t r;
    const size_t n = DecodeRune(s, r);
    if (n == 0 || !IsGoSpace(r)) break;
    s.remove_prefix(n);
  }
  while (!s.empty()) {
    // Find the start of the last rune: at most 3 continuation bytes back.
    size_t start = s.size() - 1;
    while (start > 0 && s.size() - start < 4 &&
           (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) {
      --start;
    }
    char32_t r;
    const size_t n = DecodeRune(s.substr(start), r);
    if (n == 0 || start + n != s.size() || !IsGoSpace(r)) break;
    s.remove_suffix(n);
  }
  return s;
}

// envconfig.Var: strings.Trim(strings.TrimSpace(v), "\"'").
std::string_view TrimEnvValue(std::string_view s) {
  s = TrimGoSpace(s);
  while (!s.empty() && (s.front() == '"' || s.front() == '\'')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == '"' || s.back() == '\'')) s.remove_suffix(1);
  return s;
}

// strconv.ParseInt(s, 10, 64).
std::optional<int64_t> ParseGoInt64(std::string_view s) {
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    if (v > kTwo63 / 10) return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
    if (v > kTwo63) return std::nullopt;
  }
  if (neg) return v == kTwo63 ? std::numeric_limits<int64_t>::min() : -static_cast<int64_t>(v);
  if (v > kTwo63 - 1) return std::nullopt;
  return static_cast<int64_t>(v);
}

}  // namespace

KeepAlive KeepAlive::Forever() {
  KeepAlive k;
  k.forever = true;
  return k;
}

KeepAlive KeepAlive::Auto() {
  KeepAlive k;
  k.automatic = true;
  return k;
}

KeepAlive KeepAlive::Of(Duration d) {
  if (d < Duration::zero() || d == Duration::max()) return Forever();
  KeepAlive k;
  k.duration = d;
  return k;
}

std::string KeepAlive::ToString() const {
  return automatic ? "auto" : forever ? "forever" : FormatGoDuration(duration);
}

std::string FormatGoDuration(Duration d) {
  // Largest: "-2562047h47m16.854775808s".
  char buf[32];
  size_t w = sizeof buf;
  const int64_t n = d.count();
  const bool neg = n < 0;
  uint64_t u = static_cast<uint64_t>(n);
  if (neg) u = 0 - u;

  if (u < kSec) {
    int prec = 0;
    buf[--w] = 's';
    if (u == 0) {
      return "0s";
    } else if (u < kUs) {
      prec = 0;
      buf[--w] = 'n';
    } else if (u < kMs) {
      prec = 3;
      buf[--w] = '\xb5';  // U+00B5 micro sign, UTF-8 C2 B5
      buf[--w] = '\xc2';
    } else {
      prec = 6;
      buf[--w] = 'm';
    }
    u = FmtFrac(buf, w, u, prec);
    FmtInt(buf, w, u);
  } else {
    buf[--w] = 's';
    u = FmtFrac(buf, w, u, 9);
    FmtInt(buf, w, u % 60);  // seconds
    u /= 60;
    if (u > 0) {
      buf[--w] = 'm';
      FmtInt(buf, w, u % 60);  // minutes
      u /= 60;
      if (u > 0) {
        buf[--w] = 'h';
        FmtInt(buf, w, u);  // hours
      }
    }
  }
  if (neg) buf[--w] = '-';
  return std::string(buf + w, sizeof buf - w);
}

Result<Duration> ParseGoDuration(std::string_view s) {
  const std::string_view orig = s;
  uint64_t d = 0;
  bool neg = false;

  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return Duration::zero();
  if (s.empty()) return InvalidDuration(orig);

  while (!s.empty()) {
    uint64_t v = 0;
    uint64_t f = 0;
    double scale = 1;

    // The next character must be [0-9.].
    if (!(s[0] == '.' || (s[0] >= '0' && s[0] <= '9'))) return InvalidDuration(orig);

    // [0-9]*
    const size_t before_int = s.size();
    if (!LeadingInt(s, v)) return InvalidDuration(orig);
    const bool pre = before_int != s.size();

    // (\.[0-9]*)?
    bool post = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      const size_t before_frac = s.size();
      LeadingFraction(s, f, scale);
      post = before_frac != s.size();
    }
    if (!pre && !post) return InvalidDuration(orig);  // no digits, e.g. ".s"

    // Unit: everything up to the next [0-9.].
    size_t i = 0;
    for (; i < s.size(); ++i) {
      const char c = s[i];
      if (c == '.' || (c >= '0' && c <= '9')) break;
    }
    if (i == 0) return Status::InvalidArgument("time: missing unit in duration " + GoQuote(orig));
    const std::string_view u = s.substr(0, i);
    s.remove_prefix(i);
    const std::optional<uint64_t> unit = UnitNanos(u);
    if (!unit) {
      return Status::InvalidArgument("time: unknown unit " + GoQuote(u) + " in duration " +
                                     GoQuote(orig));
    }
    if (v > kTwo63 / *unit) return InvalidDuration(orig);
    v *= *unit;
    if (f > 0) {
      // Double is needed to be nanosecond accurate for fractions of hours; the product is at
      // most 3.6e12 (ns per hour), so the conversion is defined.
      v += static_cast<uint64_t>(static_cast<double>(f) * (static_cast<double>(*unit) / scale));
      if (v > kTwo63) return InvalidDuration(orig);
    }
    d += v;  // both ≤ 2^63: no uint64 wrap
    if (d > kTwo63) return InvalidDuration(orig);
  }
  if (neg) {
    return Duration(d == kTwo63 ? std::numeric_limits<int64_t>::min() : -static_cast<int64_t>(d));
  }
  if (d > kTwo63 - 1) return InvalidDuration(orig);
  return Duration(static_cast<int64_t>(d));
}

namespace {

// Ollama answers with Go's type names ("Unsupported type: '[]interface {}'"); the same 400, in
// words a client's author can act on.
Status UnsupportedKeepAlive(std::string_view got) {
  return Status::InvalidArgument("invalid keep_alive: expected a duration string or a number of seconds, got " +
                                 std::string(got));
}

}  // namespace

Result<KeepAlive> ParseKeepAlive(const KeepAliveInput& in) {
  switch (in.kind) {
    case KeepAliveInput::Kind::kNumber: {
      const double t = in.number;
      if (std::isnan(t)) return Status::InvalidArgument("keep_alive: not a number");
      if (t < 0) return KeepAlive::Forever();
      // Go: time.Duration(t * float64(time.Second)), truncating toward zero. Values that do not
      // fit int64 nanoseconds (where Go's conversion is implementation-defined) are forever.
      const double ns = t * 1e9;
      if (ns >= 9223372036854775808.0) return KeepAlive::Forever();
      return KeepAlive::Of(Duration(static_cast<int64_t>(ns)));
    }
    case KeepAliveInput::Kind::kString: {
      Result<Duration> d = ParseGoDuration(in.text);
      if (!d.ok()) return d.status();
      return KeepAlive::Of(*d);  // negative → forever
    }
    case KeepAliveInput::Kind::kBool: return UnsupportedKeepAlive("a boolean");
    case KeepAliveInput::Kind::kObject: return UnsupportedKeepAlive("an object");
    case KeepAliveInput::Kind::kArray: return UnsupportedKeepAlive("an array");
  }
  return Status::InvalidArgument("keep_alive: unsupported type");
}

std::optional<KeepAlive> ParseKeepAliveEnv(std::string_view value) {
  const std::string_view s = TrimEnvValue(value);
  if (s.empty()) return std::nullopt;
  if (Result<Duration> d = ParseGoDuration(s); d.ok()) return KeepAlive::Of(*d);
  const std::optional<int64_t> n = ParseGoInt64(s);
  if (!n) return std::nullopt;
  if (*n < 0) return KeepAlive::Forever();
  // Go wraps time.Duration(n) * time.Second on overflow; more seconds than fit is forever here.
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / 1'000'000'000;
  if (*n > kMaxSeconds) return KeepAlive::Forever();
  return KeepAlive::Of(std::chrono::seconds(*n));
}

bool KeepAliveEnvIsSet(const char* value) { return value != nullptr && !TrimEnvValue(value).empty(); }

KeepAlive DefaultKeepAliveFromEnv(std::string* warning) {
  if (warning != nullptr) warning->clear();
  for (const char* name : {"RESIDENT_KEEP_ALIVE", "OLLAMA_KEEP_ALIVE"}) {
    const char* raw = std::getenv(name);
    if (!KeepAliveEnvIsSet(raw)) continue;  // unset, as Ollama's Var sees it
    if (std::string_view(name) == "RESIDENT_KEEP_ALIVE" && TrimEnvValue(raw) == "auto") return KeepAlive::Auto();
    if (std::optional<KeepAlive> k = ParseKeepAliveEnv(raw)) return *k;
    if (warning != nullptr) {
      *warning = std::string("invalid ") + name + " " + GoQuote(raw) +
                 ": using the default keep_alive of " + FormatGoDuration(kDefaultKeepAlive);
    }
    return KeepAlive::Of(kDefaultKeepAlive);
  }
  return KeepAlive::Of(kDefaultKeepAlive);
}

}  // namespace resident
