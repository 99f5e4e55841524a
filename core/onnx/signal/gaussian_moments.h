// Moments of a function of a Gaussian (docs/DESIGN.md section 14): E[f(z)]
// and E[f(z)^2] for z ~ N(mu, sigma^2), by adaptive Gauss-Kronrod
// quadrature, so any elementwise function (an activation, fused or
// decomposed) has its moments measured rather than looked up in a table.
// Kinks (ReLU's 0, Clip's bounds) are found by the adaptive refinement;
// known ones may be passed to split the integral there exactly:
//   auto m = onnx_reinit::signal::gaussian_moments(
//       [](double z) { return z > 0 ? z : 0.0; }, {.mean = 0.0, .std = 1.0}, {0.0});
//   // m.mean = 1/sqrt(2 pi), m.second = 1/2
#pragma once

#include <functional>
#include <span>

namespace onnx_reinit::signal {

// A Gaussian's parameters: z ~ N(mean, std^2).
struct gaussian {
  double mean = 0.0;
  double std = 1.0;
};

// The first two moments of a value: its mean and its second moment E[x^2]
// (not the variance: what a following layer reads is the second moment).
struct moments {
  double mean = 0.0;
  double second = 1.0;
  double variance() const { return second - mean * mean; }
};

// E[f(z)] and E[f(z)^2] for z ~ `z`, to `relative_tolerance` (about 1e-10
// by default) for functions that grow at most exponentially. `kinks`: points
// (in z) where f or its derivative jumps; optional, they only split the
// integral. The moment pass asks for 1e-8: its predictions are compared
// with measurements to 1e-2, and deep models call it thousands of times.
// A non-finite value of f anywhere the Gaussian has mass gives NaN moments.
moments gaussian_moments(const std::function<double(double)>& f, gaussian z,
                         std::span<const double> kinks = {}, double relative_tolerance = 1e-11);

}  // namespace onnx_reinit::signal
