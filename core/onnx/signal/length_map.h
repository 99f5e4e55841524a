// The length map of a layer followed by an elementwise function
// (docs/DESIGN.md section 14): what second moment the next layer reads
// for a given pre-activation second moment, the weight-variance factor that
// holds it at a target, and how fast an error in it grows with depth.
//   auto f = activation_function(activation_kind::tanh, 0.0);
//   double factor = variance_factor(f, 1.0);  // weight variance = factor / fan_in
//   double depth = tenfold_error_depth(f, 1.0);  // +inf for ReLU
#pragma once

#include "elementwise.h"
#include "gaussian_moments.h"

namespace onnx_reinit::signal {

// E[f(z)^2] for z ~ N(0, q): the second moment a layer reading f's output
// sees per unit of fan-in weight variance.
double post_activation_second_moment(const scalar_function& f, double q);

// The factor c such that weights of variance c / fan_in, reading f(z) with
// z ~ N(0, q), give a pre-activation of second moment q again: the
// per-layer scale that holds the signal at q through the chain. 2 for ReLU
// (He), 1 for SELU at q = 1 (LeCun), 1/E[tanh(z)^2] for tanh.
double variance_factor(const scalar_function& f, double q);

// With that factor fixed, the map q' = c E[f(z)^2] has q as a fixed point;
// its elasticity d ln q' / d ln q there says how a relative error in the
// signal's scale grows (> 1) or fades (< 1) per layer.
double elasticity(const scalar_function& f, double q);

// The depth at which a relative error grows or shrinks 10-fold:
// ln 10 / |ln elasticity|; +inf when the map is scale-free (ReLU, leaky
// ReLU, linear).
double tenfold_error_depth(const scalar_function& f, double q);

}  // namespace onnx_reinit::signal
