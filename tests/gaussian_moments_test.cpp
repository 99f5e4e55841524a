// gaussian_moments against closed forms (ReLU at any mean, exp, erf) and an
// independent dense trapezoid rule (tanh, SiLU), kinks found with and
// without being told.
#include "gaussian_moments.h"

#include <cmath>
#include <numbers>
#include <vector>

#include <catch2/catch.hpp>

namespace sig = onnx_reinit::signal;

namespace {

double phi(double t) {
  return std::exp(-0.5 * t * t) / std::sqrt(2.0 * std::numbers::pi);
}
double cdf(double t) {
  return 0.5 * std::erfc(-t / std::numbers::sqrt2);
}
double relu(double z) {
  return z > 0 ? z : 0.0;
}

// E[f(z)^k] by the trapezoid rule on 400,001 points over +-16 sigma: a
// different method from the library's, exact to ~1e-13 for smooth f.
double trapezoid(double (*f)(double), sig::gaussian z, int k) {
  const int n = 400000;
  const double h = 32.0 / n;
  double sum = 0.0;
  for (int i = 0; i <= n; ++i) {
    const double t = -16.0 + h * i;
    const double v = std::pow(f(z.mean + z.std * t), k) * phi(t);
    sum += (i == 0 || i == n) ? 0.5 * v : v;
  }
  return sum * h;
}

}  // namespace

TEST_CASE("ReLU's moments match the closed form at any mean, kink told or not") {
  for (const sig::gaussian z : {sig::gaussian{0.0, 1.0}, sig::gaussian{0.3, 0.7},
                                sig::gaussian{-2.0, 0.5}, sig::gaussian{5.0, 3.0}}) {
    const double a = z.mean / z.std;
    const double mean = z.mean * cdf(a) + z.std * phi(a);
    const double second = (z.mean * z.mean + z.std * z.std) * cdf(a) + z.mean * z.std * phi(a);
    const double kink[] = {0.0};
    for (const bool told : {true, false}) {
      CAPTURE(z.mean, z.std, told);
      const sig::moments m =
          told ? sig::gaussian_moments(relu, z, kink) : sig::gaussian_moments(relu, z);
      CHECK(m.mean == Approx(mean).epsilon(1e-9));
      CHECK(m.second == Approx(second).epsilon(1e-9));
    }
  }
  // The textbook case: half the input's second moment.
  CHECK(sig::gaussian_moments(relu, {0.0, 2.0}).second == Approx(2.0).epsilon(1e-10));
}

TEST_CASE("exp and erf moments match the closed forms, tails included") {
  for (const sig::gaussian z : {sig::gaussian{0.0, 1.0}, sig::gaussian{0.5, 2.0}}) {
    const sig::moments m = sig::gaussian_moments([](double x) { return std::exp(x); }, z);
    CHECK(m.mean == Approx(std::exp(z.mean + z.std * z.std / 2)).epsilon(1e-9));
    CHECK(m.second == Approx(std::exp(2 * z.mean + 2 * z.std * z.std)).epsilon(1e-9));
  }
  // E[erf(k z)] = erf(k mu / sqrt(1 + 2 k^2 s^2)); at mu = 0,
  // E[erf(k z)^2] = (2 / pi) asin(2 k^2 s^2 / (1 + 2 k^2 s^2)).
  const double k = 1.3;
  const sig::gaussian shifted{0.4, 0.8};
  const auto erf_k = [k](double x) { return std::erf(k * x); };
  CHECK(sig::gaussian_moments(erf_k, shifted).mean ==
        Approx(std::erf(k * 0.4 / std::sqrt(1 + 2 * k * k * 0.64))).epsilon(1e-9));
  const double s2 = 2 * k * k * 1.5 * 1.5;
  CHECK(sig::gaussian_moments(erf_k, {0.0, 1.5}).second ==
        Approx(2 / std::numbers::pi * std::asin(s2 / (1 + s2))).epsilon(1e-9));
}

TEST_CASE("smooth activations agree with a dense trapezoid rule") {
  double (*tanh_f)(double) = [](double x) { return std::tanh(x); };
  double (*silu)(double) = [](double x) { return x / (1 + std::exp(-x)); };
  for (auto* f : {tanh_f, silu})
    for (const sig::gaussian z :
         {sig::gaussian{0.0, 1.0}, sig::gaussian{-0.7, 0.1}, sig::gaussian{1.0, 4.0}}) {
      const sig::moments m = sig::gaussian_moments(f, z);
      CHECK(m.mean == Approx(trapezoid(f, z, 1)).margin(1e-11).epsilon(1e-9));
      CHECK(m.second == Approx(trapezoid(f, z, 2)).epsilon(1e-9));
    }
}

TEST_CASE("a point mass and a non-finite function") {
  const sig::moments point = sig::gaussian_moments(relu, {3.0, 0.0});
  CHECK(point.mean == 3.0);
  CHECK(point.second == 9.0);
  const sig::moments bad = sig::gaussian_moments([](double x) { return std::log(x); }, {0.0, 1.0});
  CHECK(std::isnan(bad.mean));
  CHECK(std::isnan(bad.second));
}
