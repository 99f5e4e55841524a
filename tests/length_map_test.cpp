// The length map: factors against the textbook (He 2, LeCun 1 for SELU)
// and against Monte Carlo with a tolerance from the sample size; the
// tenfold-error depth against iterating the map itself.
#include "length_map.h"

#include <cmath>
#include <limits>
#include <random>

#include <catch2/catch.hpp>

namespace sig = onnx_reinit::signal;
using onnx_reinit::activation_kind;

namespace {

sig::scalar_function named(activation_kind kind, double param = 0.0) {
  return sig::activation_function(kind, param);
}

}  // namespace

TEST_CASE("ReLU, leaky ReLU and SELU give the textbook factors and never drift") {
  CHECK(sig::variance_factor(named(activation_kind::relu), 1.0) == Approx(2.0).epsilon(1e-9));
  CHECK(sig::variance_factor(named(activation_kind::relu), 7.0) == Approx(2.0).epsilon(1e-9));
  CHECK(sig::variance_factor(named(activation_kind::leaky_relu, 0.2), 1.0) ==
        Approx(2.0 / 1.04).epsilon(1e-9));
  CHECK(sig::variance_factor(named(activation_kind::selu), 1.0) == Approx(1.0).epsilon(1e-6));
  CHECK(sig::tenfold_error_depth(named(activation_kind::relu), 1.0) ==
        std::numeric_limits<double>::infinity());
  CHECK(sig::tenfold_error_depth(named(activation_kind::linear), 3.0) ==
        std::numeric_limits<double>::infinity());
}

TEST_CASE("tanh, GELU and SiLU factors agree with Monte Carlo within 5 standard errors") {
  std::mt19937_64 rng(12345);
  std::normal_distribution<double> normal;
  const int n = 400000;
  for (const activation_kind kind :
       {activation_kind::tanh, activation_kind::gelu, activation_kind::silu}) {
    const sig::scalar_function f = named(kind);
    double sum = 0.0, sum_sq = 0.0;
    for (int i = 0; i < n; ++i) {
      const double v = f(normal(rng));
      sum += v * v;
      sum_sq += v * v * v * v;
    }
    const double mean = sum / n;
    const double standard_error = std::sqrt((sum_sq / n - mean * mean) / n);
    CAPTURE(to_string(kind), mean, standard_error);
    CHECK(std::abs(sig::post_activation_second_moment(f, 1.0) - mean) < 5 * standard_error);
    // Their factors are not the table's gain squared: tanh 2.54 (not
    // 25/9), GELU and SiLU above 2 (their second moment is below ReLU's).
    CHECK(std::abs(sig::variance_factor(f, 1.0) - 1.0 / mean) < 5 * standard_error / (mean * mean));
  }
  CHECK(sig::variance_factor(named(activation_kind::gelu), 1.0) > 2.2);
  CHECK(sig::variance_factor(named(activation_kind::silu), 1.0) > 2.2);
}

TEST_CASE("the tenfold-error depth matches iterating the fixed-gain map") {
  for (const activation_kind kind :
       {activation_kind::gelu, activation_kind::silu, activation_kind::tanh}) {
    const sig::scalar_function f = named(kind);
    const double factor = sig::variance_factor(f, 1.0);
    const double predicted = sig::tenfold_error_depth(f, 1.0);
    // A 0.1% error in the scale, iterated until it passes 1% (or below
    // 0.01%): the depth, against the prediction from the elasticity.
    double q = 1.001;
    int depth = 0;
    while (std::abs(std::log(q)) < 10 * std::log(1.001) &&
           std::abs(std::log(q)) > 0.1 * std::log(1.001) && depth < 100000) {
      q = factor * sig::post_activation_second_moment(f, q);
      ++depth;
    }
    CAPTURE(to_string(kind), predicted, depth);
    REQUIRE(std::isfinite(predicted));
    CHECK(std::abs(depth - predicted) <= 0.05 * predicted + 1);
  }
}
