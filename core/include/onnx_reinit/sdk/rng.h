// Reproducible random streams: how a (seed, tensor name) pair becomes a
// Philox4x32-10 key, how counters are laid out, and the C++ view of the
// host-provided stream that strategies draw from. Part of the plugin SDK:
// standard library and Random123 only.
//
// The definition, so another implementation can reproduce every byte:
//
//   name_hash = FNV-1a 64 of the tensor name's bytes
//               (offset 0xcbf29ce484222325, prime 0x100000001b3)
//   key64     = splitmix64(splitmix64(seed) ^ name_hash)
//   key       = { low32(key64), high32(key64) }
//   counter   = { low32(block), high32(block), low32(stream), high32(stream) }
//   words     = Philox4x32-10(counter, key)      -> w[0..3]
//
// Element i of a fill maps to Philox blocks as follows (float = 24-bit
// mantissa draws, double = 53-bit draws; u53(hi, lo) = (((hi << 32) | lo)
// >> 11) * 2^-53):
//
//   uniform   double: block i/2, u = u53(w[2j+1], w[2j]) with j = i%2
//                     x = low + u * (high - low)
//   normal    double: block i/2, u1 = u53(w[1], w[0]) + 2^-53, u2 = u53(w[3], w[2])
//             r = sqrt(-2 ln u1), t = 2 pi u2, z = (i even) ? r cos t : r sin t
//             x = mean + std * z
//   truncated: [a, b] in units of std. When a > 0 the mirrored interval
//             [-b, -a] is sampled and z negated, so the CDF stays away from 1:
//             lo = a > 0 ? -b : a, hi = a > 0 ? -a : b, s = a > 0 ? -1 : 1,
//             cdf_lo = Phi(lo), width = Phi(hi) - Phi(lo) (in double, Boost erfc).
//             Inverse CDF: one counter, one value.
//      float, lo >= -5 (the fast range): block i/4, w = w[i%4], in float
//             arithmetic like the normal below, with c2 = (float)(2 cdf_lo),
//             d2 = (float)(2 width), lo_f = (float)lo, hi_f = (float)hi,
//             std_s = (float)(s * std):
//               f  = (float)((w >> 8) | 1)         (exact; u = f 2^-24 is in (0, 1))
//               p2 = c2 + f * d2s, d2s = d2 * 2^-24  (= 2p);  x = p2 - 1
//               e  = p2 * (2 - p2); if e < 2^-126: e = 2^-126    (= 1 - x^2)
//               lw = nlog_w(e)                                   (= -ln e)
//               q  = lw < 5 ? E1(lw - 2.5) : E2(sqrt(lw) - 3)   (Horner, from k = 0)
//               z  = q * x;  if z < lo_f: z = lo_f;  if z > hi_f: z = hi_f
//               x  = mean_f + std_s * z
//             E1, E2: Giles' single-precision erfinv polynomials (erfinv(x) =
//             x P(w)) times sqrt(2), so q x is the quantile: his decimals
//             2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
//             0.00021858087, -0.00125372503, -0.00417768164, 0.246640727,
//             1.50140941 and -0.000200214257, 0.000100950558, 0.00134934322,
//             -0.00367342844, 0.00573950773, -0.0076224613, 0.00943887047,
//             1.00167406, 2.83297682, each times sqrt(2) rounded once to float:
//             E1 = {0x1.5562e8p-25, 0x1.04a17ap-21, -0x1.4e643ep-18, -0x1.a0c81p-18,
//                   0x1.4422c6p-12, -0x1.d0ca5cp-10, -0x1.83320ap-8, 0x1.652c86p-2,
//                   0x1.0fc8bep+1}
//             E2 = {-0x1.28e65ap-12, 0x1.2b66bap-13, 0x1.f43d2p-10, -0x1.5475d8p-8,
//                   0x1.09f968p-7, -0x1.613b6ap-7, 0x1.b567fep-7, 0x1.6aa50ep+0,
//                   0x1.00696cp+2}
//             nlog_w(x), x > 0 normal: the range reduction of log_f below (e,
//             t, fe), then s = t / (t + 2); u = s * s;
//               y = -C0 * u + -C1; y = y * u + -2; y = s * y   (-2 atanh(s))
//               y = y + fe * -Q1;  nlog_w = y + fe * -Q2
//             C0 = 0x1.a6c8cap-2, C1 = 0x1.5543fap-1 (a minimax fit; absolute
//             error 3.5e-8, which w = -ln(1 - x^2) needs, not relative)
//     double, lo >= -8 (the fast range): block i/2, bits = (w[2j+1] << 32) | w[2j]
//             with j = i%2, in double arithmetic as the float above, with
//             c2 = 2 cdf_lo, d2 = 2 width (exact doublings):
//               u  = (double)(((bits >> 12) << 1) | 1) * 2^-53   (exact, in (0, 1))
//               p2 = c2 + u * d2;  x = p2 - 1
//               e  = p2 * (2 - p2); if e < 2^-1022: e = 2^-1022
//               lw = -log_d(e)
//               q  = lw < 6.25 ? D1(lw - 3.125)
//                  : lw < 16  ? D2(sqrt(lw) - 3.25) : D3(sqrt(lw) - 5)  (Horner, from k = 0)
//               z  = (q * x) * sqrt2_d;  if z < lo: z = lo;  if z > hi: z = hi
//               x  = mean + (s * std) * z
//             D1, D2, D3: Giles' double-precision erfinv polynomials (23, 19 and
//             17 decimal coefficients, listed in core/rng/kernels.h as
//             erfinv_d_central, erfinv_d_middle, erfinv_d_tail, rounded to
//             double), sqrt2_d = 0x1.6a09e667f3bcdp+0
//             outside the fast ranges (a bound of the nearer side below -5, or
//             -8): float block i/4, u = u24(w[i%4]) + 2^-25, u24(w) = (w >> 8) *
//             2^-24; double block i/2, u = u53(w[2j+1], w[2j]) + 2^-54;
//             z = Phi^-1(cdf_lo + u width) by Boost erfc_inv in double, clamped to
//             [lo, hi], x = mean + std * s * z rounded once
//
// The double uniform and normal compute with std::log/sqrt/cos/sin and round
// once at the end; every truncated normal computes its CDF bounds with Boost.
//
// Uniform and normal float32 compute in IEEE binary32 arithmetic, and the
// fast truncated normals in binary32 or binary64 (their type's), every
// operation rounded to nearest even, never a fused multiply-add, so the bits
// do not depend on the instruction set. With low_f = (float)low, width_f =
// (float)(high - low), mean_f = (float)mean, std_f = (float)std (roundings
// of doubles), "*" "+" "-" float operations in the order written and sqrt
// correctly rounded:
//
//   uniform   float : block i/4, m = w[i%4] >> 8, u = (float)m * 2^-24 (exact)
//                     x = low_f + u * width_f
//   normal    float : block i/4, pair j = (i%4)/2,
//                     u1 = (float)((w[2j] >> 8) + 1) * 2^-24 in (0, 1] (exact)
//                     r  = sqrt(-2 * log_f(u1))
//                     (s, c) = sincos_f(w[2j+1] >> 8)      ~ sin, cos of 2 pi u2
//                     x  = mean_f + std_f * (r * c)   for even i
//                     x  = mean_f + std_f * (r * s)   for odd i
//                     so |x - mean_f| <= std_f * 5.77 (u1 >= 2^-24)
//
//   log_f(x), x > 0 normal (Cephes logf; measured max error 0.83 ulp):
//     b = bits of x; e = (int)(b >> 23) - 126
//     m = the float with bits (b & 0x807FFFFF) | 0x3F000000    (in [0.5, 1))
//     small = m < sqrt_half; if small: e = e - 1
//     t = m - 1; t = t + (small ? m : 0); fe = (float)e; z = t * t
//     y = P[0]; y = y * t + P[k] for k = 1..8; y = y * t; y = y * z
//     y = y + fe * Q1; y = y - z * 0.5
//     log_f = (t + y) + fe * Q2
//     P = {0x1.204376p-4, -0x1.d7a37p-4, 0x1.de4a34p-4, -0x1.fcba9ep-4, 0x1.23d37ep-3,
//          -0x1.555cap-3, 0x1.999d58p-3, -0x1.fffff8p-3, 0x1.555554p-2}
//     Q1 = -0x1.bd0106p-13, Q2 = 0x1.63p-1, sqrt_half = 0x1.6a09e6p-1
//
//   sincos_f(m), m < 2^24, ~ sin and cos of 2 pi m 2^-24 (measured max error 1.72 ulp):
//     n = (m + 2^21) >> 22                  (the nearest quarter turn, 0..4)
//     f = (float)(int32)(m - (n << 22)) * 2^-22        (in [-0.5, 0.5), exact)
//     f2 = f * f; S = S[4]; S = S * f2 + S[k] for k = 3..0; S = S * f
//                 C = C[5]; C = C * f2 + C[k] for k = 4..0
//     S = {0x1.921fb6p+0, -0x1.4abbcep-1, 0x1.466bc6p-4, -0x1.32d2ccp-8, 0x1.507834p-13}
//     C = {0x1p+0, -0x1.3bd3ccp+0, 0x1.03c1fp-2, -0x1.55d3c8p-6, 0x1.e1f506p-11,
//          -0x1.a6d1f2p-16}  (Taylor coefficients of sin, cos of (pi/2) f)
//     (s, c) = (n odd) ? (C, S) : (S, C); then flip the sign bit of s when
//     n & 2, and of c when (n + 1) & 2
//
//   log_d(x), x > 0 normal (Cephes log; measured max error 0.92 ulp on [DBL_MIN, 1]):
//     b = bits of x; e = (int64)(b >> 52) - 1022
//     m = the double with bits (b & 0x800FFFFFFFFFFFFF) | 0x3FE0000000000000
//     small = m < sqrt_half_d; if small: e = e - 1
//     t = m - 1; t = t + (small ? m : 0); fe = (double)e; z = t * t
//     p = P[0]; p = p * t + P[k] for k = 1..5
//     q = t + Q[0]; q = q * t + Q[k] for k = 1..4
//     y = t * ((z * p) / q); y = y + fe * Q1; y = y - z * 0.5
//     log_d = (t + y) + fe * Q2
//     P = {1.01875663804580931796E-4, 4.97494994976747001425E-1, 4.70579119878881725854E0,
//          1.44989225341610930846E1, 1.79368678507819816313E1, 7.70838733755885391666E0}
//     Q = {1.12873587189167450590E1, 4.52279145837532221105E1, 8.29875266912776603211E1,
//          7.11544750618563894466E1, 2.31251620126765340583E1}
//     Q1 = -2.121944400546905827679e-4, Q2 = 0.693359375, sqrt_half_d = 0x1.6a09e667f3bcdp-1
//     (decimal constants rounded to double; "/" correctly rounded)
//
// core/rng/reference.cpp is the float definitions and the double truncated
// normal as scalar code; the vectorized kernels are tested to give its bytes
// on every instruction set.
#pragma once

#include <Random123/philox.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include "onnx_reinit/sdk/plugin_abi.h"

namespace onnx_reinit {

constexpr std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The Philox key for one tensor under one seed.
constexpr std::array<std::uint32_t, 2> derive_key(std::uint64_t seed,
                                                  std::string_view tensor_name) {
  std::uint64_t k = splitmix64(splitmix64(seed) ^ fnv1a64(tensor_name));
  return {static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(k >> 32)};
}

// The four 32-bit words of one Philox4x32-10 block.
inline std::array<std::uint32_t, 4> philox_block(const std::array<std::uint32_t, 2>& key,
                                                 std::uint64_t stream, std::uint64_t block) {
  r123::Philox4x32 philox;
  r123::Philox4x32::ctr_type ctr = {
      {static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
       static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)}};
  r123::Philox4x32::key_type k = {{key[0], key[1]}};
  r123::Philox4x32::ctr_type out = philox(ctr, k);
  return {out[0], out[1], out[2], out[3]};
}

namespace sdk_detail {

// Decimal text of `value` for SDK error messages; not std::to_string, whose
// libstdc++ internals would add exported symbols to every plugin.
inline std::string decimal(std::uint64_t value) {
  char digits[24];
  std::size_t n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value != 0);
  return std::string(std::make_reverse_iterator(digits + n), std::make_reverse_iterator(digits));
}

}  // namespace sdk_detail

template <class T>
constexpr std::uint32_t dtype_code() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "fills are float or double");
  return std::is_same_v<T, float> ? ONNX_REINIT_FLOAT32 : ONNX_REINIT_FLOAT64;
}

// The C++ view of a host-provided random stream. Cheap to copy. Throws
// std::runtime_error for a missing API table or one smaller than this SDK's
// (a host older than the plugin), instead of calling past its end.
class rng_stream {
 public:
  explicit rng_stream(const onnx_reinit_rng& state) : state_(state) {
    if (state.api == nullptr) throw std::runtime_error("the random stream has no API table");
    if (state.api->struct_size < ONNX_REINIT_RNG_API_MIN_SIZE)
      throw std::runtime_error("the host's random stream API table is " +
                               sdk_detail::decimal(state.api->struct_size) +
                               " bytes, this plugin needs at least " +
                               sdk_detail::decimal(ONNX_REINIT_RNG_API_MIN_SIZE) +
                               " (is the host older than the plugin's SDK?)");
  }

  // Fills `out`, whose first element is element `first` of the tensor.
  template <class T>
  void uniform(std::span<T> out, std::uint64_t first, double low, double high) const {
    onnx_reinit_span s = make_span(out, first);
    state_.api->uniform(&state_, &s, low, high);
  }

  template <class T>
  void normal(std::span<T> out, std::uint64_t first, double mean, double std) const {
    onnx_reinit_span s = make_span(out, first);
    state_.api->normal(&state_, &s, mean, std);
  }

  // `a` and `b` are in units of `std` around `mean` (Keras/JAX semantics).
  template <class T>
  void truncated_normal(std::span<T> out, std::uint64_t first, double mean, double std,
                        double a = -2.0, double b = 2.0) const {
    onnx_reinit_span s = make_span(out, first);
    state_.api->truncated_normal(&state_, &s, mean, std, a, b);
  }

  // An independent stream for the same tensor (e.g. positions vs values).
  rng_stream substream(std::uint64_t id) const {
    onnx_reinit_rng next = state_;
    next.stream = id;
    return rng_stream(next);
  }

  // Raw Philox words of counter block `block` of this stream.
  std::array<std::uint32_t, 4> block(std::uint64_t index) const {
    return philox_block({state_.key[0], state_.key[1]}, state_.stream, index);
  }

  const onnx_reinit_rng& c_state() const { return state_; }

 private:
  template <class T>
  static onnx_reinit_span make_span(std::span<T> out, std::uint64_t first) {
    return onnx_reinit_span{out.data(), first, out.size(), dtype_code<T>()};
  }

  onnx_reinit_rng state_;
};

}  // namespace onnx_reinit
