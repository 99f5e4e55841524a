// Internal to the host RNG: the float32 sampling kernels in two forms, a
// plain scalar reference (reference.cpp) and Highway vector code with runtime
// dispatch (simd.cpp), and the constants both share. Both forms perform the
// very same sequence of IEEE float multiplies, adds, square roots, integer
// bit operations and exact conversions, and never a fused multiply-add
// (this library is built with -ffp-contract=off), so every instruction set
// gives the same bits as the reference. The definitions are in rng.h.
#pragma once

#include <cstdint>
#include <vector>

#include "onnx_reinit/sdk/plugin_abi.h"

namespace onnx_reinit::rng_detail {

// Philox4x32-10 constants (Random123).
inline constexpr std::uint32_t philox_m0 = 0xD2511F53u;
inline constexpr std::uint32_t philox_m1 = 0xCD9E8D57u;
inline constexpr std::uint32_t philox_w0 = 0x9E3779B9u;
inline constexpr std::uint32_t philox_w1 = 0xBB67AE85u;

// Natural logarithm, after Cephes logf: x = m 2^e with m in [sqrt(1/2),
// sqrt(2)), log(x) = (m - 1) - (m - 1)^2 / 2 + (m - 1)^3 P(m - 1) + e ln 2
// with ln 2 split into log_q2 + log_q1 so e ln 2 adds no rounding error.
// Cephes' decimal constants rounded to float, written exactly.
inline constexpr float log_p[9] = {0x1.204376p-4f,  -0x1.d7a37p-4f,  0x1.de4a34p-4f,
                                   -0x1.fcba9ep-4f, 0x1.23d37ep-3f,  -0x1.555cap-3f,
                                   0x1.999d58p-3f,  -0x1.fffff8p-3f, 0x1.555554p-2f};
inline constexpr float log_q1 = -0x1.bd0106p-13f;  // ln 2 - log_q2
inline constexpr float log_q2 = 0x1.63p-1f;        // 0.693359375
inline constexpr float sqrt_half = 0x1.6a09e6p-1f;

// sin(pi/2 f) = f S(f^2) and cos(pi/2 f) = C(f^2) for |f| <= 1/2: the Taylor
// coefficients (pi/2)^k / k! rounded to float, truncated where the remainder
// is below 1e-9.
inline constexpr float sin_c[5] = {0x1.921fb6p+0f, -0x1.4abbcep-1f, 0x1.466bc6p-4f, -0x1.32d2ccp-8f,
                                   0x1.507834p-13f};
inline constexpr float cos_c[6] = {0x1p+0f,         -0x1.3bd3ccp+0f, 0x1.03c1fp-2f,
                                   -0x1.55d3c8p-6f, 0x1.e1f506p-11f, -0x1.a6d1f2p-16f};

// erfinv(x) = x P(w), w = -ln((1 - x)(1 + x)), after Giles, "Approximating
// the erfinv function" (GPU Computing Gems, 2011), single precision: P is
// erfinv_central of w - 2.5 for w < 5, else erfinv_tail of sqrt(w) - 3,
// Horner from index 0. Accurate while w < 16, i.e. 1 - |x| above 2^-24.
inline constexpr float erfinv_central[9] = {2.81022636e-08f,  3.43273939e-07f, -3.5233877e-06f,
                                            -4.39150654e-06f, 0.00021858087f,  -0.00125372503f,
                                            -0.00417768164f,  0.246640727f,    1.50140941f};
inline constexpr float erfinv_tail[9] = {-0.000200214257f, 0.000100950558f, 0.00134934322f,
                                         -0.00367342844f,  0.00573950773f,  -0.0076224613f,
                                         0.00943887047f,   1.00167406f,     2.83297682f};
inline constexpr float sqrt2_f = 0x1.6a09e6p+0f;

// A float32 truncated normal fill's constants, rounded once from doubles
// (see rng.h): 2 Phi(lo), 2 (Phi(hi) - Phi(lo)), and
// x = mean + std_signed * clamp(z, lo, hi).
struct truncated_f32 {
  float cdf_lo2, cdf_width2, lo, hi, mean, std_signed;
};

// The scalar reference, one value at a time.
float reference_log(float x);  // positive normal x
struct sin_cos {
  float sin, cos;
};
sin_cos reference_sincos_turns(std::uint32_t m24);  // of 2 pi m24 / 2^24, m24 < 2^24
float reference_uniform(std::uint32_t w, float low, float width);
// Box-Muller: {mean + std r cos t, mean + std r sin t}.
void reference_normal_pair(std::uint32_t w_radius, std::uint32_t w_angle, float mean, float std,
                           float out[2]);

// The inverse-CDF truncated normal of one Philox word.
float reference_truncated_normal(std::uint32_t w, const truncated_f32& t);

// Reference fills of elements [first, first + count) of a float32 tensor.
void reference_fill_uniform(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                            std::uint64_t count, double low, double high);
void reference_fill_normal(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                           std::uint64_t count, double mean, double std);
void reference_fill_truncated_normal(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                                     std::uint64_t count, const truncated_f32& t);

// The vector kernels, dispatched to the best instruction set of this CPU.
struct philox_stream {
  std::uint32_t key[2];
  std::uint64_t stream;
};
void simd_philox_blocks(const philox_stream& s, std::uint64_t first_block, std::uint64_t count,
                        std::uint32_t* words);  // 4 words per block
void simd_fill_uniform(const philox_stream& s, float* out, std::uint64_t first, std::uint64_t count,
                       float low, float width);
void simd_fill_normal(const philox_stream& s, float* out, std::uint64_t first, std::uint64_t count,
                      float mean, float std);
void simd_fill_truncated_normal(const philox_stream& s, float* out, std::uint64_t first,
                                std::uint64_t count, const truncated_f32& t);
void simd_log(const float* x, float* out, std::uint64_t count);
void simd_sincos_turns(const std::uint32_t* m24, float* sin, float* cos, std::uint64_t count);
const char* simd_target_name();

// For tests: the Highway targets compiled in and supported by this CPU, and
// forcing dispatch to one of them (0 restores normal dispatch). Not thread-safe.
std::vector<std::int64_t> simd_targets();
void force_simd_target(std::int64_t target);
const char* simd_target_name(std::int64_t target);

}  // namespace onnx_reinit::rng_detail
