// Internal to the host RNG: the float32 sampling kernels and the float64
// truncated normal in two forms, a plain scalar reference (reference.cpp) and
// Highway vector code with runtime dispatch (simd.cpp), and the constants
// both share. Both forms perform the very same sequence of IEEE multiplies,
// adds, divisions, square roots, integer bit operations and exact
// conversions, and never a fused multiply-add (this library is built with
// -ffp-contract=off), so every instruction set gives the same bits as the
// reference. The definitions are in rng.h.
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

// The truncated normal's logarithm, negated: x = m 2^e as for log_f,
// t = m - 1, s = t / (t + 2) (|s| <= 3 - 2 sqrt 2), log(m) = 2 atanh(s) =
// s (2 + C(s^2)) with C(u) = C0 u^2 + C1 u a minimax fit (absolute error
// 3.5e-8: the erfinv polynomials read w = -log(1 - x^2) to absolute, not
// relative, accuracy, and w's own rounding is of that order). About half
// the operations of log_f, so the truncated normal keeps pace with the
// normal, whose log_f is shared by two values.
inline constexpr float log_w_c[2] = {0x1.a6c8cap-2f, 0x1.5543fap-1f};

// sin(pi/2 f) = f S(f^2) and cos(pi/2 f) = C(f^2) for |f| <= 1/2: the Taylor
// coefficients (pi/2)^k / k! rounded to float, truncated where the remainder
// is below 1e-9.
inline constexpr float sin_c[5] = {0x1.921fb6p+0f, -0x1.4abbcep-1f, 0x1.466bc6p-4f, -0x1.32d2ccp-8f,
                                   0x1.507834p-13f};
inline constexpr float cos_c[6] = {0x1p+0f,         -0x1.3bd3ccp+0f, 0x1.03c1fp-2f,
                                   -0x1.55d3c8p-6f, 0x1.e1f506p-11f, -0x1.a6d1f2p-16f};

// erfinv(x) = x P(w), w = -ln((1 - x)(1 + x)), after Giles, "Approximating
// the erfinv function" (GPU Computing Gems, 2011), single precision: P is
// his central polynomial of w - 2.5 for w < 5, else his tail polynomial of
// sqrt(w) - 3, Horner from index 0. Accurate while w < 16, i.e. 1 - |x|
// above 2^-24. The quantile is sqrt(2) erfinv(x), so the truncated normal's
// polynomials are Giles' times sqrt(2) (his decimals times sqrt(2), rounded
// once to float): one multiply less per value.
inline constexpr float erfinv2_central[9] = {0x1.5562e8p-25f, 0x1.04a17ap-21f, -0x1.4e643ep-18f,
                                             -0x1.a0c81p-18f, 0x1.4422c6p-12f, -0x1.d0ca5cp-10f,
                                             -0x1.83320ap-8f, 0x1.652c86p-2f,  0x1.0fc8bep+1f};
inline constexpr float erfinv2_tail[9] = {-0x1.28e65ap-12f, 0x1.2b66bap-13f, 0x1.f43d2p-10f,
                                          -0x1.5475d8p-8f,  0x1.09f968p-7f,  -0x1.613b6ap-7f,
                                          0x1.b567fep-7f,   0x1.6aa50ep+0f,  0x1.00696cp+2f};

// A float32 truncated normal fill's constants, rounded once from doubles
// (see rng.h): 2 Phi(lo), 2 (Phi(hi) - Phi(lo)) (the kernels use it times
// 2^-24, a float multiply), and
// x = mean + std_signed * clamp(z, lo, hi).
struct truncated_f32 {
  float cdf_lo2, cdf_width2, lo, hi, mean, std_signed;
};

// Natural logarithm in double, after Cephes log: x = m 2^e with m in
// [sqrt(1/2), sqrt(2)), t = m - 1, log(x) = t - t^2 / 2 + t^3 P(t) / Q(t)
// + e ln 2, ln 2 split as for the float log. Cephes' decimal constants
// (correctly rounded by the compiler); Q has a leading 1. Cephes switches to
// another form for exponents beyond +-2; this one form is used throughout
// (measured max error 0.92 ulp over [DBL_MIN, 1], the inputs the truncated
// normal sees).
inline constexpr double log_d_p[6] = {1.01875663804580931796E-4, 4.97494994976747001425E-1,
                                      4.70579119878881725854E0,  1.44989225341610930846E1,
                                      1.79368678507819816313E1,  7.70838733755885391666E0};
inline constexpr double log_d_q[5] = {1.12873587189167450590E1, 4.52279145837532221105E1,
                                      8.29875266912776603211E1, 7.11544750618563894466E1,
                                      2.31251620126765340583E1};
inline constexpr double log_d_q1 = -2.121944400546905827679e-4;  // ln 2 - log_d_q2
inline constexpr double log_d_q2 = 0.693359375;
inline constexpr double sqrt_half_d = 0x1.6a09e667f3bcdp-1;

// Giles' double-precision erfinv: erfinv(x) = x P(w), w = -ln((1 - x)(1 + x)),
// P = erfinv_d_central of w - 3.125 for w < 6.25, erfinv_d_middle of
// sqrt(w) - 3.25 for w < 16, else erfinv_d_tail of sqrt(w) - 5; Horner from
// index 0. Accurate while 1 - |x| stays above about 2^-52.
inline constexpr double erfinv_d_central[23] = {
    -3.6444120640178196996e-21, -1.685059138182016589e-19,  1.2858480715256400167e-18,
    1.115787767802518096e-17,   -1.333171662854620906e-16,  2.0972767875968561637e-17,
    6.6376381343583238325e-15,  -4.0545662729752068639e-14, -8.1519341976054721522e-14,
    2.6335093153082322977e-12,  -1.2975133253453532498e-11, -5.4154120542946279317e-11,
    1.051212273321532285e-09,   -4.1126339803469836976e-09, -2.9070369957882005086e-08,
    4.2347877827932403518e-07,  -1.3654692000834678645e-06, -1.3882523362786468719e-05,
    0.0001867342080340571352,   -0.00074070253416626697512, -0.0060336708714301490533,
    0.24015818242558961693,     1.6536545626831027356};
inline constexpr double erfinv_d_middle[19] = {
    2.2137376921775787049e-09, 9.0756561938885390979e-08, -2.7517406297064545428e-07,
    1.8239629214389227755e-08, 1.5027403968909827627e-06, -4.013867526981545969e-06,
    2.9234449089955446044e-06, 1.2475304481671778723e-05, -4.7318229009055733981e-05,
    6.8284851459573175448e-05, 2.4031110387097893999e-05, -0.0003550375203628474796,
    0.00095328937973738049703, -0.0016882755560235047313, 0.0024914420961078508066,
    -0.0037512085075692412107, 0.005370914553590063617,   1.0052589676941592334,
    3.0838856104922207635};
inline constexpr double erfinv_d_tail[17] = {
    -2.7109920616438573243e-11, -2.5556418169965252055e-10, 1.5076572693500548083e-09,
    -3.7894654401267369937e-09, 7.6157012080783393804e-09,  -1.4960026627149240478e-08,
    2.9147953450901080826e-08,  -6.7711997758452339498e-08, 2.2900482228026654717e-07,
    -9.9298272942317002539e-07, 4.5260625972231537039e-06,  -1.9681778105531670567e-05,
    7.5995277030017761139e-05,  -0.00021503011930044477347, -0.00013871931833623122026,
    1.0103004648645343977,      4.8499064014085844221};
inline constexpr double sqrt2_d = 0x1.6a09e667f3bcdp+0;

// A float64 truncated normal fill's constants (see rng.h): 2 Phi(lo),
// 2 (Phi(hi) - Phi(lo)), and x = mean + std_signed * clamp(z, lo, hi).
struct truncated_f64 {
  double cdf_lo2, cdf_width2, lo, hi, mean, std_signed;
};

// The constants of a float64 fill of [a, b] (in units of std around mean)
// when the nearer side's bound is in the fast range (at or above -8), as
// random.cpp computes them; false when the fill takes the Boost path.
bool fast_truncated_f64(double mean, double std, double a, double b, truncated_f64& out);

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

// Minus the truncated normal's logarithm (log_w_c), positive normal x.
float reference_neg_log_w(float x);
// The inverse-CDF truncated normal of one Philox word.
float reference_truncated_normal(std::uint32_t w, const truncated_f32& t);

double reference_log(double x);  // positive normal x
// The standard normal quantile of p = p2 / 2 before clamping, p2 in (0, 2).
double reference_quantile(double p2);
// The inverse-CDF truncated normal of one Philox word pair, bits = (w[2j+1]
// << 32) | w[2j].
double reference_truncated_normal(std::uint64_t bits, const truncated_f64& t);

// Reference fills of elements [first, first + count) of a float32 tensor.
void reference_fill_uniform(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                            std::uint64_t count, double low, double high);
void reference_fill_normal(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                           std::uint64_t count, double mean, double std);
void reference_fill_truncated_normal(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                                     std::uint64_t count, const truncated_f32& t);
// The same of a float64 tensor.
void reference_fill_truncated_normal(const onnx_reinit_rng& rng, double* out, std::uint64_t first,
                                     std::uint64_t count, const truncated_f64& t);

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
void simd_fill_truncated_normal(const philox_stream& s, double* out, std::uint64_t first,
                                std::uint64_t count, const truncated_f64& t);
void simd_log(const float* x, float* out, std::uint64_t count);
void simd_log(const double* x, double* out, std::uint64_t count);
void simd_quantile(const double* p2, double* out, std::uint64_t count);  // reference_quantile
void simd_sincos_turns(const std::uint32_t* m24, float* sin, float* cos, std::uint64_t count);
const char* simd_target_name();

// For tests: the Highway targets compiled in and supported by this CPU, and
// forcing dispatch to one of them (0 restores normal dispatch). Not thread-safe.
std::vector<std::int64_t> simd_targets();
void force_simd_target(std::int64_t target);
const char* simd_target_name(std::int64_t target);

}  // namespace onnx_reinit::rng_detail
