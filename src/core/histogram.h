// A histogram over fixed buckets, the shape Prometheus exposes: a count per upper bound, a sum
// and a count of every observation. A plain value, not thread-safe: its owner locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace resident {

class Histogram {
 public:
  // upper_bounds: ascending and finite; an implicit +Inf bucket follows the last one.
  explicit Histogram(std::vector<double> upper_bounds);

  void Observe(double value);

  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Observations <= upper_bounds()[i] (cumulative, as Prometheus' `le` buckets count).
  uint64_t CumulativeCount(size_t i) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; one more than bounds_ (+Inf)
  uint64_t count_ = 0;
  double sum_ = 0;
};

}  // namespace resident
