// Test support: the mean and spread of a sample of values, for tests that
// check rewritten tensors against a distribution's moments.
#pragma once

#include <cmath>
#include <vector>

namespace onnx_reinit::test {

inline double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// The sum of squared deviations from the mean over `divisor`.
inline double squared_deviation_over(const std::vector<double>& v, double divisor) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / divisor;
}

// The unbiased sample variance (n - 1).
inline double variance_of(const std::vector<double>& v) {
  return squared_deviation_over(v, static_cast<double>(v.size() - 1));
}

// The population std (n), as the report computes it.
inline double std_of(const std::vector<double>& v) {
  return std::sqrt(squared_deviation_over(v, static_cast<double>(v.size())));
}

}  // namespace onnx_reinit::test
