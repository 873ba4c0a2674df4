#include "api/prometheus_text.h"

#include <fmt/format.h>

#include <cassert>
#include <cmath>

namespace resident::api {
namespace {

[[maybe_unused]] bool ValidName(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

const char* TypeName(PrometheusWriter::Type type) {
  switch (type) {
    case PrometheusWriter::Type::kCounter: return "counter";
    case PrometheusWriter::Type::kGauge: return "gauge";
    case PrometheusWriter::Type::kHistogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void PrometheusWriter::Family(std::string_view name, Type type, std::string_view help) {
  assert(ValidName(name, /*allow_colon=*/true));
  family_ = std::string(name);
  type_ = type;
  out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, EscapeHelp(help), name, TypeName(type));
}

void PrometheusWriter::Line(std::string_view suffix, const MetricLabels& labels,
                            const std::pair<std::string, std::string>* extra, double value) {
  out_ += family_;
  out_ += suffix;
  if (!labels.empty() || extra != nullptr) {
    out_ += '{';
    bool first = true;
    auto put = [&](const std::pair<std::string, std::string>& l) {
      assert(ValidName(l.first, /*allow_colon=*/false));
      if (!first) out_ += ',';
      first = false;
      out_ += l.first;
      out_ += "=\"";
      out_ += EscapeLabelValue(l.second);
      out_ += '"';
    };
    for (const auto& l : labels) put(l);
    if (extra != nullptr) put(*extra);
    out_ += '}';
  }
  out_ += ' ';
  out_ += FormatMetricValue(value);
  out_ += '\n';
}

void PrometheusWriter::Sample(const MetricLabels& labels, double value) {
  assert(type_ != Type::kHistogram);
  Line("", labels, nullptr, value);
}

void PrometheusWriter::Histogram(const MetricLabels& labels, const resident::Histogram& h) {
  assert(type_ == Type::kHistogram);
  const auto& bounds = h.upper_bounds();
  for (size_t i = 0; i < bounds.size(); ++i) {
    std::pair<std::string, std::string> le{"le", FormatMetricValue(bounds[i])};
    Line("_bucket", labels, &le, static_cast<double>(h.CumulativeCount(i)));
  }
  std::pair<std::string, std::string> inf{"le", "+Inf"};
  Line("_bucket", labels, &inf, static_cast<double>(h.count()));
  Line("_sum", labels, nullptr, h.sum());
  Line("_count", labels, nullptr, static_cast<double>(h.count()));
}

}  // namespace resident::api
