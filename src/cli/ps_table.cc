#include "cli/ps_table.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace resident::cli {

std::string HumanBytes(uint64_t bytes) {
  static constexpr std::array<std::pair<double, const char*>, 4> kUnits = {
      {{1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "KB"}}};
  const double b = static_cast<double>(bytes);
  for (const auto& [size, unit] : kUnits) {
    if (b < size) continue;
    const double value = b / size;
    if (value >= 10 || value == std::trunc(value)) return fmt::format("{} {}", static_cast<int64_t>(value), unit);
    return fmt::format("{:.1f} {}", value, unit);
  }
  return fmt::format("{} B", bytes);
}

std::string HumanDuration(double s) {
  const int64_t seconds = static_cast<int64_t>(s);
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return fmt::format("{} seconds", seconds);
  const int64_t minutes = static_cast<int64_t>(s / 60);
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return fmt::format("{} minutes", minutes);
  const int64_t hours = static_cast<int64_t>(std::round(s / 3600));
  if (hours == 1) return "About an hour";
  if (hours < 48) return fmt::format("{} hours", hours);
  if (hours < 24 * 7 * 2) return fmt::format("{} days", hours / 24);
  if (hours < 24 * 30 * 2) return fmt::format("{} weeks", hours / 24 / 7);
  if (hours < 24 * 365 * 2) return fmt::format("{} months", hours / 24 / 30);
  return fmt::format("{} years", hours / 24 / 365);
}

std::string Until(double expires_s, double now_s) {
  const double delta = now_s - expires_s;  // negative while it lies ahead
  if (delta > 0) return "Stopping...";
  if (static_cast<int64_t>(delta / 3600) / 24 / 365 < -20) return "Forever";
  return HumanDuration(-delta) + " from now";
}

std::string Processor(uint64_t size, uint64_t vram) {
  if (vram == 0) return "100% CPU";
  if (vram == size) return "100% GPU";
  if (vram > size || size == 0) return "Unknown";
  const double cpu = std::round(static_cast<double>(size - vram) / static_cast<double>(size) * 100);
  return fmt::format("{}%/{}% CPU/GPU", static_cast<int>(cpu), static_cast<int>(100 - cpu));
}

Result<double> ParseRfc3339Seconds(const std::string& s) {
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, used = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6) {
    return Status::InvalidArgument("not an RFC 3339 time: \"" + s + "\"");
  }
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  double t = static_cast<double>(timegm(&tm));
  size_t i = static_cast<size_t>(used);
  if (i < s.size() && s[i] == '.') {
    double scale = 0.1;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, scale /= 10) t += (s[i] - '0') * scale;
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int oh = 0, om = 0;
    if (std::sscanf(s.c_str() + i + 1, "%2d:%2d", &oh, &om) != 2) {
      return Status::InvalidArgument("not an RFC 3339 time: \"" + s + "\"");
    }
    const double offset = (oh * 60 + om) * 60.0;
    t += s[i] == '+' ? -offset : offset;
  } else if (i >= s.size() || (s[i] != 'Z' && s[i] != 'z')) {
    return Status::InvalidArgument("not an RFC 3339 time: \"" + s + "\"");
  }
  return t;
}

Result<std::string> FormatPsTable(const nlohmann::json& ps, double now_s) {
  if (!ps.is_object() || !ps.contains("models") || !ps["models"].is_array()) {
    return Status::InvalidArgument("unexpected answer from /api/ps");
  }
  auto text = [](const nlohmann::json& m, const char* key) {
    auto it = m.find(key);
    return it != m.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto number = [](const nlohmann::json& m, const char* key) -> uint64_t {
    auto it = m.find(key);
    return it != m.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
  };
  // STATE (resident's addition) only when a model is not plainly loaded (asleep): otherwise the
  // table is Ollama's, column for column.
  bool with_state = false, with_node = false;
  for (const auto& m : ps["models"]) {
    if (m.is_object() && !text(m, "state").empty() && text(m, "state") != "loaded") with_state = true;
    if (m.is_object() && !text(m, "node").empty()) with_node = true;
  }
  using Row = std::vector<std::string>;
  std::vector<Row> rows{{"NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"}};
  if (with_state) rows[0].push_back("STATE");
  if (with_node) rows[0].push_back("NODE");
  for (const auto& m : ps["models"]) {
    if (!m.is_object()) continue;
    std::string digest = text(m, "digest");
    if (digest.rfind("sha256:", 0) == 0) digest = digest.substr(7);
    const uint64_t size = number(m, "size");
    const std::string expires_at = text(m, "expires_at");
    auto expires = ParseRfc3339Seconds(expires_at);
    rows.push_back({text(m, "name"), digest.substr(0, 12), HumanBytes(size), Processor(size, number(m, "size_vram")),
                    std::to_string(number(m, "context_length")),
                    expires_at.empty() ? "Never" : expires.ok() ? Until(*expires, now_s) : expires_at});
    if (with_state) rows.back().push_back(text(m, "state").empty() ? "loaded" : text(m, "state"));
    if (with_node) rows.back().push_back(text(m, "node"));
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const Row& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const Row& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 4, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace resident::cli
