// Prometheus' text exposition format, version 0.0.4 (what GET /metrics answers):
//
//   # HELP resident_model_loads_total Loads that finished.
//   # TYPE resident_model_loads_total counter
//   resident_model_loads_total{model="demo:latest"} 3
//
// A small writer rather than Debian's prometheus-cpp: its development package pulls in a second
// HTTP server (civetweb) and libcurl for what is, here, ~100 lines of formatting over values the
// scheduler already keeps.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/histogram.h"

namespace resident::api {

inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

// name="value" pairs, written in this order.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class PrometheusWriter {
 public:
  enum class Type { kCounter, kGauge, kHistogram };

  // Starts a metric family: its # HELP and # TYPE lines; the samples written until the next
  // Family() belong to it. Names and label names must be valid Prometheus names (a programmer
  // error otherwise, asserted).
  void Family(std::string_view name, Type type, std::string_view help);
  // A sample of the current counter or gauge family: name{labels} value.
  void Sample(const MetricLabels& labels, double value);
  // A histogram of the current histogram family: name_bucket{labels,le="..."} for each bound and
  // +Inf (cumulative), name_sum and name_count.
  void Histogram(const MetricLabels& labels, const resident::Histogram& histogram);

  const std::string& text() const { return out_; }

 private:
  void Line(std::string_view suffix, const MetricLabels& labels, const std::pair<std::string, std::string>* extra,
            double value);

  std::string out_;
  std::string family_;
  Type type_ = Type::kGauge;
};

// A sample value: shortest round-trip decimal ("3", "0.25", "1.5e+20"), "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double value);
// A label value with \, " and newline escaped.
std::string EscapeLabelValue(std::string_view value);

}  // namespace resident::api
