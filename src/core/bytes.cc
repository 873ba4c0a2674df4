#include "core/bytes.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <fmt/format.h>

namespace resident {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Splits "1.5GiB" into 1.5 and "gib". Fails when there is no leading number.
Result<std::pair<double, std::string>> SplitNumber(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  if (i == 0) return Status::InvalidArgument(fmt::format("invalid size \"{}\": expected a number", text));
  double value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc() || ptr != text.data() + i || !std::isfinite(value)) {
    return Status::InvalidArgument(fmt::format("invalid size \"{}\"", text));
  }
  std::string_view unit = text.substr(i);
  while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.front()))) unit.remove_prefix(1);
  return std::make_pair(value, Lower(unit));
}

Result<uint64_t> Scale(std::string_view text, double value, double multiplier) {
  double v = value * multiplier;
  if (v >= 1.8446744073709552e19) return Status::InvalidArgument(fmt::format("size \"{}\" is too large", text));
  return static_cast<uint64_t>(std::llround(v));
}

}  // namespace

Result<uint64_t> ParseCount(std::string_view text) {
  auto split = SplitNumber(text);
  if (!split.ok()) return split.status();
  auto [value, unit] = *split;
  double mult = 1;
  if (unit.empty()) mult = 1;
  else if (unit == "k") mult = 1e3;
  else if (unit == "m") mult = 1e6;
  else if (unit == "g" || unit == "b") mult = 1e9;  // "7B" parameters, as model names say
  else if (unit == "t") mult = 1e12;
  else return Status::InvalidArgument(fmt::format("invalid count \"{}\": unknown suffix \"{}\" (use K, M, G)", text, unit));
  return Scale(text, value, mult);
}

Result<uint64_t> ParseBytes(std::string_view text) {
  auto split = SplitNumber(text);
  if (!split.ok()) return split.status();
  auto [value, unit] = *split;
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();
  double mult = 0;
  if (unit.empty()) mult = 1;
  else if (unit == "k") mult = 1e3;
  else if (unit == "m") mult = 1e6;
  else if (unit == "g") mult = 1e9;
  else if (unit == "t") mult = 1e12;
  else if (unit == "ki") mult = 1024.0;
  else if (unit == "mi") mult = 1024.0 * 1024;
  else if (unit == "gi") mult = 1024.0 * 1024 * 1024;
  else if (unit == "ti") mult = 1024.0 * 1024 * 1024 * 1024;
  else return Status::InvalidArgument(fmt::format("invalid size \"{}\": unknown unit (use B, KB, MB, GB, KiB, MiB, GiB)", text));
  return Scale(text, value, mult);
}

std::string FormatBytes(uint64_t bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  if (v >= 100) return fmt::format("{:.0f} {}", v, units[u]);
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string FormatCount(uint64_t n) {
  double v = static_cast<double>(n);
  if (n >= 1'000'000'000) return fmt::format("{:.1f}B", v / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.0f}M", v / 1e6);
  if (n >= 1'000) return fmt::format("{:.0f}K", v / 1e3);
  return std::to_string(n);
}

}  // namespace resident
