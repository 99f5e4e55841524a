// The host's Philox kernels: every value is a pure function of (key, stream,
// element index), as defined in rng.h, so any chunking or thread count gives
// the same bytes. Uniform, normal and truncated normal float32 and truncated
// normal float64 run the vector kernels of simd.cpp; the other double paths
// are scalar here.
#include "onnx_reinit/random.h"

#include "kernels.h"
#include "parallel_for.h"

#include <boost/math/policies/policy.hpp>
#include <boost/math/special_functions/erf.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>

namespace onnx_reinit {
namespace {

constexpr double two_pi = 6.283185307179586476925286766559;
constexpr double sqrt2 = 1.4142135623730950488016887242097;

using words = std::array<std::uint32_t, 4>;

double u24(std::uint32_t w) {
  return static_cast<double>(w >> 8) * 0x1p-24;
}

double u53(std::uint32_t hi, std::uint32_t lo) {
  std::uint64_t bits = (static_cast<std::uint64_t>(hi) << 32) | lo;
  return static_cast<double>(bits >> 11) * 0x1p-53;
}

// Element i of a T fill lives in block i / values_per_block<T>.
template <class T>
constexpr std::uint64_t values_per_block = std::is_same_v<T, float> ? 4 : 2;

// Walks the blocks covering [first, first + count), calls `make(w, values)`
// once per block to compute all of its values, and copies the lanes that fall
// inside the span. Computing whole blocks keeps Box-Muller pairs together.
template <class T, class Make>
void fill_blocks(const onnx_reinit_rng& rng, const onnx_reinit_span& out, Make make) {
  constexpr std::uint64_t per_block = values_per_block<T>;
  const std::array<std::uint32_t, 2> key = {rng.key[0], rng.key[1]};
  T* data = static_cast<T*>(out.data);
  std::uint64_t i = out.first;
  const std::uint64_t end = out.first + out.count;
  while (i < end) {
    const std::uint64_t block = i / per_block;
    std::array<double, per_block> values;
    make(philox_block(key, rng.stream, block), values);
    const std::uint64_t block_end = std::min(end, (block + 1) * per_block);
    for (; i < block_end; ++i) data[i - out.first] = static_cast<T>(values[i % per_block]);
  }
}

// Uniform draws in [0, 1) for one block: 4 of 24 bits or 2 of 53 bits.
template <class T>
std::array<double, values_per_block<T>> unit_uniforms(const words& w) {
  if constexpr (std::is_same_v<T, float>)
    return {u24(w[0]), u24(w[1]), u24(w[2]), u24(w[3])};
  else
    return {u53(w[1], w[0]), u53(w[3], w[2])};
}

template <class T>
void uniform_impl(const onnx_reinit_rng& rng, const onnx_reinit_span& out, double low,
                  double high) {
  const double width = high - low;
  fill_blocks<T>(rng, out, [&](const words& w, auto& values) {
    auto u = unit_uniforms<T>(w);
    for (std::size_t k = 0; k < values.size(); ++k) values[k] = low + u[k] * width;
  });
}

template <class T>
void normal_impl(const onnx_reinit_rng& rng, const onnx_reinit_span& out, double mean, double std) {
  fill_blocks<T>(rng, out, [&](const words& w, auto& values) {
    // u1 is shifted into (0, 1] so the logarithm is finite.
    constexpr double step = std::is_same_v<T, float> ? 0x1p-24 : 0x1p-53;
    auto u = unit_uniforms<T>(w);
    for (std::size_t pair = 0; pair < values.size() / 2; ++pair) {
      const double u1 = u[2 * pair] + step;
      const double u2 = u[2 * pair + 1];
      const double r = std::sqrt(-2.0 * std::log(u1));
      const double t = two_pi * u2;
      values[2 * pair] = mean + std * r * std::cos(t);
      values[2 * pair + 1] = mean + std * r * std::sin(t);
    }
  });
}

// Boost.Math reports domain and overflow errors through errno instead of
// exceptions: these functions are called from C and must not throw.
using no_throw_policy = boost::math::policies::policy<
    boost::math::policies::domain_error<boost::math::policies::errno_on_error>,
    boost::math::policies::overflow_error<boost::math::policies::errno_on_error>,
    boost::math::policies::evaluation_error<boost::math::policies::errno_on_error>>;

double normal_cdf(double x) {
  return 0.5 * boost::math::erfc(-x / sqrt2, no_throw_policy());
}

double normal_quantile(double p) {
  return -sqrt2 * boost::math::erfc_inv(2.0 * p, no_throw_policy());
}

// The interval sampled: the side nearer zero, so that the CDF values stay
// away from 1 where floating point runs out; a right-side interval [a, b]
// is mirrored to [-b, -a] and the values negated. A reversed interval from
// a careless caller degenerates to its lower end.
struct truncation {
  bool mirror;
  double lo, hi, cdf_lo, cdf_width;
};

truncation truncation_of(double a, double b) {
  truncation t;
  t.mirror = a > 0.0;
  t.lo = t.mirror ? -b : a;
  t.hi = std::max(t.lo, t.mirror ? -a : b);
  t.cdf_lo = normal_cdf(t.lo);
  t.cdf_width = normal_cdf(t.hi) - t.cdf_lo;
  return t;
}

// Where the fast inverse CDFs hold their accuracy: float Giles erfinv while
// 1 - |2p - 1| stays above about 2^-22, double while above about 2^-50.
constexpr double fast_lo_f32 = -5.0;
constexpr double fast_lo_f64 = -8.0;

template <class T, class Quantile>
void truncated_by_quantile(const onnx_reinit_rng& rng, const onnx_reinit_span& out, double mean,
                           double std, const truncation& t, Quantile quantile) {
  fill_blocks<T>(rng, out, [&](const words& w, auto& values) {
    for (std::size_t k = 0; k < values.size(); ++k) {
      double z = quantile(w, k);
      z = std::isnan(z) ? t.lo : std::clamp(z, t.lo, t.hi);
      values[k] = mean + std * (t.mirror ? -z : z);
    }
  });
}

// Intervals reaching past the fast range: Boost's erfc_inv, scalar.
template <class T>
void truncated_normal_boost(const onnx_reinit_rng& rng, const onnx_reinit_span& out, double mean,
                            double std, const truncation& t) {
  constexpr double half_step = std::is_same_v<T, float> ? 0x1p-25 : 0x1p-54;
  truncated_by_quantile<T>(rng, out, mean, std, t, [&](const words& w, std::size_t k) {
    const double u = unit_uniforms<T>(w)[k] + half_step;
    return normal_quantile(t.cdf_lo + u * t.cdf_width);
  });
}

rng_detail::philox_stream philox_of(const onnx_reinit_rng& rng) {
  return {{rng.key[0], rng.key[1]}, rng.stream};
}

void truncated_normal_f64(const onnx_reinit_rng& rng, const onnx_reinit_span& out, double mean,
                          double std, double a, double b) {
  rng_detail::truncated_f64 params;
  if (!rng_detail::fast_truncated_f64(mean, std, a, b, params))
    return truncated_normal_boost<double>(rng, out, mean, std, truncation_of(a, b));
  rng_detail::simd_fill_truncated_normal(philox_of(rng), static_cast<double*>(out.data), out.first,
                                         out.count, params);
}

// C entry points of the function table: dispatch on the buffer's dtype.
// (uniform_impl and normal_impl serve float64 only; float32 has its own
// float-arithmetic definition, computed by the vector kernels.)
void c_uniform(const onnx_reinit_rng* rng, const onnx_reinit_span* out, double low, double high) {
  if (out->dtype == ONNX_REINIT_FLOAT32)
    fill_uniform_f32(*rng, static_cast<float*>(out->data), out->first, out->count, low, high);
  else if (out->dtype == ONNX_REINIT_FLOAT64)
    uniform_impl<double>(*rng, *out, low, high);
}

void c_normal(const onnx_reinit_rng* rng, const onnx_reinit_span* out, double mean, double std) {
  if (out->dtype == ONNX_REINIT_FLOAT32)
    fill_normal_f32(*rng, static_cast<float*>(out->data), out->first, out->count, mean, std);
  else if (out->dtype == ONNX_REINIT_FLOAT64)
    normal_impl<double>(*rng, *out, mean, std);
}

void c_truncated_normal(const onnx_reinit_rng* rng, const onnx_reinit_span* out, double mean,
                        double std, double a, double b) {
  if (out->dtype == ONNX_REINIT_FLOAT32)
    fill_truncated_normal_f32(*rng, static_cast<float*>(out->data), out->first, out->count, mean,
                              std, a, b);
  else if (out->dtype == ONNX_REINIT_FLOAT64)
    truncated_normal_f64(*rng, *out, mean, std, a, b);
}

// The host's parallel loop for plugins (sdk/parallel.h): TBB's, in the
// run's arena, with its ordering stated to ThreadSanitizer.
void c_parallel_for(std::uint64_t count, void (*body)(void* context, std::uint64_t index),
                    void* context) {
  parallel_for(std::uint64_t{0}, count, [&](std::uint64_t i) { body(context, i); });
}

constexpr onnx_reinit_rng_api api_table = {sizeof(onnx_reinit_rng_api), &c_uniform, &c_normal,
                                           &c_truncated_normal, &c_parallel_for};

}  // namespace

void fill_uniform_f32(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                      std::uint64_t count, double low, double high) {
  rng_detail::simd_fill_uniform(philox_of(rng), out, first, count, static_cast<float>(low),
                                static_cast<float>(high - low));
}

void fill_normal_f32(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                     std::uint64_t count, double mean, double std) {
  rng_detail::simd_fill_normal(philox_of(rng), out, first, count, static_cast<float>(mean),
                               static_cast<float>(std));
}

void fill_truncated_normal_f32(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                               std::uint64_t count, double mean, double std, double a, double b) {
  const truncation t = truncation_of(a, b);
  if (!(t.lo >= fast_lo_f32)) {
    const onnx_reinit_span span{out, first, count, ONNX_REINIT_FLOAT32};
    return truncated_normal_boost<float>(rng, span, mean, std, t);
  }
  const rng_detail::truncated_f32 params = {
      static_cast<float>(2.0 * t.cdf_lo), static_cast<float>(2.0 * t.cdf_width),
      static_cast<float>(t.lo),           static_cast<float>(t.hi),
      static_cast<float>(mean),           static_cast<float>(t.mirror ? -std : std)};
  rng_detail::simd_fill_truncated_normal(philox_of(rng), out, first, count, params);
}

bool rng_detail::fast_truncated_f64(double mean, double std, double a, double b,
                                    truncated_f64& out) {
  const truncation t = truncation_of(a, b);
  if (!(t.lo >= fast_lo_f64)) return false;
  out = {2.0 * t.cdf_lo, 2.0 * t.cdf_width, t.lo, t.hi, mean, t.mirror ? -std : std};
  return true;
}

const char* rng_simd_target() {
  return rng_detail::simd_target_name();
}

const onnx_reinit_rng_api& host_rng_api() {
  return api_table;
}

onnx_reinit_rng make_tensor_rng(std::uint64_t seed, std::string_view tensor_name) {
  const std::array<std::uint32_t, 2> key = derive_key(seed, tensor_name);
  return onnx_reinit_rng{{key[0], key[1]}, 0, &api_table};
}

}  // namespace onnx_reinit
