// Length-map quantities by quadrature (gaussian_moments).
#include "length_map.h"

#include <cmath>
#include <limits>
#include <numbers>

namespace onnx_reinit::signal {

double post_activation_second_moment(const scalar_function& f, double q) {
  return gaussian_moments(f.apply, {0.0, std::sqrt(q)}, f.kinks).second;
}

double variance_factor(const scalar_function& f, double q) {
  return q / post_activation_second_moment(f, q);
}

double elasticity(const scalar_function& f, double q) {
  // A central difference in ln q; the moments are accurate to ~1e-11, so a
  // step of 1e-3 leaves an error of ~1e-7 in the slope.
  const double step = 1e-3;
  const double up = post_activation_second_moment(f, q * std::exp(step));
  const double down = post_activation_second_moment(f, q * std::exp(-step));
  return (std::log(up) - std::log(down)) / (2.0 * step);
}

double tenfold_error_depth(const scalar_function& f, double q) {
  const double rate = std::abs(std::log(elasticity(f, q)));
  if (rate < 1e-6) return std::numeric_limits<double>::infinity();
  return std::numbers::ln10 / rate;
}

}  // namespace onnx_reinit::signal
