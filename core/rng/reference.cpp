// The scalar reference of the float32 kernels and of the float64 truncated
// normal: one value at a time, with the operation sequence of the vector code
// in simd.cpp, written out as the definition in rng.h states it. Tests compare
// the vector code against it.
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>

#include "kernels.h"
#include "onnx_reinit/sdk/rng.h"

namespace onnx_reinit::rng_detail {

float reference_log(float x) {
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
  // x = m 2^e with m in [0.5, 1); the exponent field gives e directly.
  std::int32_t e = static_cast<std::int32_t>(bits >> 23) - 126;
  const float m = std::bit_cast<float>((bits & 0x807FFFFFu) | 0x3F000000u);
  // Below sqrt(1/2), use 2m and e - 1 so that the series argument stays
  // within [sqrt(1/2) - 1, sqrt(2) - 1); both subtractions are exact.
  const bool small = m < sqrt_half;
  e -= small ? 1 : 0;
  float t = m - 1.0f;
  t = t + (small ? m : 0.0f);
  const float fe = static_cast<float>(e);
  const float z = t * t;
  float y = log_p[0];
  for (int k = 1; k < 9; ++k) y = y * t + log_p[k];
  y = y * t;
  y = y * z;
  y = y + fe * log_q1;
  y = y - z * 0.5f;
  float r = t + y;
  r = r + fe * log_q2;
  return r;
}

sin_cos reference_sincos_turns(std::uint32_t m24) {
  // The angle is 2 pi m24 2^-24 = (pi/2) (n + f) with n the nearest quarter
  // turn and f = m24 2^-22 - n in [-1/2, 1/2): an exact integer reduction.
  const std::uint32_t n = (m24 + 0x200000u) >> 22;
  const std::int32_t fi = static_cast<std::int32_t>(m24) - static_cast<std::int32_t>(n << 22);
  const float f = static_cast<float>(fi) * 0x1p-22f;
  const float f2 = f * f;
  float s = sin_c[4];
  for (int k = 3; k >= 0; --k) s = s * f2 + sin_c[k];
  s = s * f;
  float c = cos_c[5];
  for (int k = 4; k >= 0; --k) c = c * f2 + cos_c[k];
  // Quarter turn n: odd n swaps sin and cos; sin is negated for n = 2, 3 and
  // cos for n = 1, 2 (sign-bit flips, so -0 and +0 follow the same rule).
  const bool swap = (n & 1u) != 0;
  const std::uint32_t sin_sign = (n & 2u) << 30;
  const std::uint32_t cos_sign = ((n + 1u) & 2u) << 30;
  const float sv = swap ? c : s;
  const float cv = swap ? s : c;
  return {std::bit_cast<float>(std::bit_cast<std::uint32_t>(sv) ^ sin_sign),
          std::bit_cast<float>(std::bit_cast<std::uint32_t>(cv) ^ cos_sign)};
}

float reference_uniform(std::uint32_t w, float low, float width) {
  const float u = static_cast<float>(w >> 8) * 0x1p-24f;  // exact
  return low + u * width;
}

void reference_normal_pair(std::uint32_t w_radius, std::uint32_t w_angle, float mean, float std,
                           float out[2]) {
  // u1 in (0, 1] keeps the logarithm finite; the product is exact.
  const float u1 = static_cast<float>((w_radius >> 8) + 1u) * 0x1p-24f;
  const float r = std::sqrt(-2.0f * reference_log(u1));
  const sin_cos sc = reference_sincos_turns(w_angle >> 8);
  out[0] = mean + std * (r * sc.cos);
  out[1] = mean + std * (r * sc.sin);
}

float reference_neg_log_w(float x) {
  // The range reduction of reference_log.
  const std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
  std::int32_t e = static_cast<std::int32_t>(bits >> 23) - 126;
  const float m = std::bit_cast<float>((bits & 0x807FFFFFu) | 0x3F000000u);
  const bool small = m < sqrt_half;
  e -= small ? 1 : 0;
  float t = m - 1.0f;
  t = t + (small ? m : 0.0f);
  const float fe = static_cast<float>(e);
  // -log(m) = s (-2 - C(s^2)) for s = t / (t + 2), negated constants (exact).
  const float s = t / (t + 2.0f);
  const float u = s * s;
  float p = -log_w_c[0] * u + -log_w_c[1];
  p = p * u + -2.0f;
  float y = s * p;
  y = y + fe * -log_q1;
  return y + fe * -log_q2;
}

float reference_truncated_normal(std::uint32_t w, const truncated_f32& t) {
  // f = (w >> 8) | 1: 23 random bits, odd, exact as a float; u = f 2^-24 is
  // centred in (0, 1). p2 = 2 p for p = cdf_lo + u width, the constants
  // doubled beforehand and the width scaled by 2^-24 (exact).
  const float f = static_cast<float>((w >> 8) | 1u);
  const float p2 = t.cdf_lo2 + f * (t.cdf_width2 * 0x1p-24f);
  // 1 - x^2 = 4 p (1 - p) for x = 2 p - 1, formed from p so a small p keeps
  // its precision; FLT_MIN keeps the logarithm finite when p rounds to 1.
  const float x = p2 - 1.0f;
  float e = p2 * (2.0f - p2);
  e = e < 0x1p-126f ? 0x1p-126f : e;
  const float lw = reference_neg_log_w(e);
  float q;
  if (lw < 5.0f) {
    const float v = lw - 2.5f;
    q = erfinv2_central[0];
    for (int k = 1; k < 9; ++k) q = q * v + erfinv2_central[k];
  } else {
    const float v = std::sqrt(lw) - 3.0f;
    q = erfinv2_tail[0];
    for (int k = 1; k < 9; ++k) q = q * v + erfinv2_tail[k];
  }
  // Comparisons and selects, not min/max, whose choice between -0 and +0
  // differs between instruction sets.
  float z = q * x;
  z = z < t.lo ? t.lo : z;
  z = z > t.hi ? t.hi : z;
  return t.mean + t.std_signed * z;
}

double reference_log(double x) {
  const std::uint64_t bits = std::bit_cast<std::uint64_t>(x);
  // As the float log: m in [0.5, 1) from the exponent field, then 2m - 1
  // (exact) and e - 1 below sqrt(1/2).
  std::int64_t e = static_cast<std::int64_t>(bits >> 52) - 1022;
  const double m = std::bit_cast<double>((bits & 0x800FFFFFFFFFFFFFull) | 0x3FE0000000000000ull);
  const bool small = m < sqrt_half_d;
  e -= small ? 1 : 0;
  double t = m - 1.0;
  t = t + (small ? m : 0.0);
  const double fe = static_cast<double>(e);
  const double z = t * t;
  double p = log_d_p[0];
  for (int k = 1; k < 6; ++k) p = p * t + log_d_p[k];
  double q = t + log_d_q[0];
  for (int k = 1; k < 5; ++k) q = q * t + log_d_q[k];
  double y = t * ((z * p) / q);
  y = y + fe * log_d_q1;
  y = y - z * 0.5;
  double r = t + y;
  r = r + fe * log_d_q2;
  return r;
}

namespace {

template <std::size_t N>
double horner(const double (&c)[N], double v) {
  double q = c[0];
  for (std::size_t k = 1; k < N; ++k) q = q * v + c[k];
  return q;
}

}  // namespace

double reference_quantile(double p2) {
  // As the float kernel: x = 2p - 1 and 1 - x^2 = 4 p (1 - p) formed from
  // p, with DBL_MIN keeping the logarithm finite when p2 rounds to 2.
  const double x = p2 - 1.0;
  double e = p2 * (2.0 - p2);
  e = e < 0x1p-1022 ? 0x1p-1022 : e;
  const double lw = -reference_log(e);
  double q;
  if (lw < 6.25) {
    q = horner(erfinv_d_central, lw - 3.125);
  } else {
    const double s = std::sqrt(lw);
    q = lw < 16.0 ? horner(erfinv_d_middle, s - 3.25) : horner(erfinv_d_tail, s - 5.0);
  }
  return (q * x) * sqrt2_d;
}

double reference_truncated_normal(std::uint64_t bits, const truncated_f64& t) {
  // u = (2 (bits >> 12) + 1) 2^-53: 52 random bits, centred in (0, 1), exact.
  const double u = static_cast<double>(((bits >> 12) << 1) | 1u) * 0x1p-53;
  double z = reference_quantile(t.cdf_lo2 + u * t.cdf_width2);
  z = z < t.lo ? t.lo : z;
  z = z > t.hi ? t.hi : z;
  return t.mean + t.std_signed * z;
}

namespace {

std::array<std::uint32_t, 4> block_words(const onnx_reinit_rng& rng, std::uint64_t block) {
  return philox_block({rng.key[0], rng.key[1]}, rng.stream, block);
}

}  // namespace

void reference_fill_uniform(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                            std::uint64_t count, double low, double high) {
  const float low_f = static_cast<float>(low);
  const float width_f = static_cast<float>(high - low);
  for (std::uint64_t i = first; i < first + count; ++i)
    out[i - first] = reference_uniform(block_words(rng, i / 4)[i % 4], low_f, width_f);
}

void reference_fill_normal(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                           std::uint64_t count, double mean, double std) {
  const float mean_f = static_cast<float>(mean);
  const float std_f = static_cast<float>(std);
  for (std::uint64_t i = first; i < first + count; ++i) {
    const auto w = block_words(rng, i / 4);
    const std::uint64_t pair = (i % 4) / 2;
    float values[2];
    reference_normal_pair(w[2 * pair], w[2 * pair + 1], mean_f, std_f, values);
    out[i - first] = values[i % 2];
  }
}

void reference_fill_truncated_normal(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                                     std::uint64_t count, const truncated_f32& t) {
  for (std::uint64_t i = first; i < first + count; ++i)
    out[i - first] = reference_truncated_normal(block_words(rng, i / 4)[i % 4], t);
}

void reference_fill_truncated_normal(const onnx_reinit_rng& rng, double* out, std::uint64_t first,
                                     std::uint64_t count, const truncated_f64& t) {
  for (std::uint64_t i = first; i < first + count; ++i) {
    const auto w = block_words(rng, i / 2);
    const std::uint64_t j = i % 2;
    out[i - first] = reference_truncated_normal((std::uint64_t{w[2 * j + 1]} << 32) | w[2 * j], t);
  }
}

}  // namespace onnx_reinit::rng_detail
