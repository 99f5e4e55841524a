// The matrix products of a block reflector application, for blocked_qr.cpp:
// Highway vector code chosen at run time, the same bytes on every
// instruction set (see reflector_simd.cpp). Column-major throughout.
//
//   reflector_vt_c(vp, bp, m, c, ldc, w, out);         // out = V^T C
//   reflector_c_minus_v_x(v, ldv, m, b, x, ldx, c, ldc, w);  // C -= V X
#pragma once

#include <cstdint>

namespace onnx_reinit::standard {

// reflector_vt_c's vectors are at most this many bytes (AVX-512's).
inline constexpr std::int64_t reflector_row_bytes = 64;

// out (bp x w, leading dimension bp) = V^T C for V given row by row in `vp`
// (row i at vp + i * bp, bp a multiple of reflector_row_bytes / sizeof(T),
// zero padded past V's columns) and C m x w with leading dimension ldc.
void reflector_vt_c(const float* vp, std::int64_t bp, std::int64_t m, const float* c,
                    std::int64_t ldc, std::int64_t w, float* out);
void reflector_vt_c(const double* vp, std::int64_t bp, std::int64_t m, const double* c,
                    std::int64_t ldc, std::int64_t w, double* out);

// C (m x w, leading dimension ldc) -= V X for V m x b (ldv) and X b x w (ldx).
void reflector_c_minus_v_x(const float* v, std::int64_t ldv, std::int64_t m, std::int64_t b,
                           const float* x, std::int64_t ldx, float* c, std::int64_t ldc,
                           std::int64_t w);
void reflector_c_minus_v_x(const double* v, std::int64_t ldv, std::int64_t m, std::int64_t b,
                           const double* x, std::int64_t ldx, double* c, std::int64_t ldc,
                           std::int64_t w);

}  // namespace onnx_reinit::standard
