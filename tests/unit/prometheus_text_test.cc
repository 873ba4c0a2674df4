// The Prometheus text writer and the histogram it writes.
#include "api/prometheus_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace resident::api {
namespace {

TEST(HistogramTest, ABoundaryValueFallsInItsOwnBucketAndBucketsAreCumulative) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 1.0, 20.0}) h.Observe(v);
  EXPECT_EQ(h.CumulativeCount(0), 2u);  // 0.05 and 0.1 (le is "less than or equal")
  EXPECT_EQ(h.CumulativeCount(1), 4u);
  EXPECT_EQ(h.CumulativeCount(2), 4u);
  EXPECT_EQ(h.count(), 5u);  // 20 only in +Inf
  EXPECT_DOUBLE_EQ(h.sum(), 21.65);
}

TEST(PrometheusTextTest, ValuesAreShortestRoundTripDecimals) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(3), "3");
  EXPECT_EQ(FormatMetricValue(0.1), "0.1");
  EXPECT_EQ(FormatMetricValue(2.5), "2.5");
  EXPECT_EQ(FormatMetricValue(200'000'000), "200000000");
  EXPECT_EQ(FormatMetricValue(1e300), "1e+300");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
}

TEST(PrometheusTextTest, LabelValuesAndHelpAreEscaped) {
  EXPECT_EQ(EscapeLabelValue(R"(a"b\c)" "\nd"), R"(a\"b\\c\nd)");
  PrometheusWriter w;
  w.Family("x_total", PrometheusWriter::Type::kCounter, "line one\nback\\slash");
  w.Sample({{"model", "we\"ird"}}, 1);
  EXPECT_EQ(w.text(),
            "# HELP x_total line one\\nback\\\\slash\n"
            "# TYPE x_total counter\n"
            "x_total{model=\"we\\\"ird\"} 1\n");
}

TEST(PrometheusTextTest, CountersGaugesAndHistogramsInTheExpositionFormat) {
  PrometheusWriter w;
  w.Family("resident_model_loads_total", PrometheusWriter::Type::kCounter, "Loads.");
  w.Sample({{"model", "a:latest"}}, 2);
  w.Sample({{"model", "b:latest"}}, 0);
  w.Family("resident_memory_budget_bytes", PrometheusWriter::Type::kGauge, "Budget.");
  w.Sample({}, 200'000'000);
  w.Family("resident_model_load_seconds", PrometheusWriter::Type::kHistogram, "Load time.");
  Histogram h({0.5, 1});
  h.Observe(0.25);
  h.Observe(0.75);
  h.Observe(3);
  w.Histogram({{"model", "a:latest"}}, h);
  EXPECT_EQ(w.text(),
            "# HELP resident_model_loads_total Loads.\n"
            "# TYPE resident_model_loads_total counter\n"
            "resident_model_loads_total{model=\"a:latest\"} 2\n"
            "resident_model_loads_total{model=\"b:latest\"} 0\n"
            "# HELP resident_memory_budget_bytes Budget.\n"
            "# TYPE resident_memory_budget_bytes gauge\n"
            "resident_memory_budget_bytes 200000000\n"
            "# HELP resident_model_load_seconds Load time.\n"
            "# TYPE resident_model_load_seconds histogram\n"
            "resident_model_load_seconds_bucket{model=\"a:latest\",le=\"0.5\"} 1\n"
            "resident_model_load_seconds_bucket{model=\"a:latest\",le=\"1\"} 2\n"
            "resident_model_load_seconds_bucket{model=\"a:latest\",le=\"+Inf\"} 3\n"
            "resident_model_load_seconds_sum{model=\"a:latest\"} 4\n"
            "resident_model_load_seconds_count{model=\"a:latest\"} 3\n");
}

}  // namespace
}  // namespace resident::api
