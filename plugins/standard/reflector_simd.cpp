// The two matrix products of a block reflector application (blocked_qr.cpp),
// as Highway vector code dispatched at run time. Every output element is
// one accumulator that starts at zero and adds its products one at a time in
// a fixed order, with separate multiplies and adds (never MulAdd), and the
// vector lanes only hold different elements: so every instruction set, and
// the scalar loop for ragged edges, gives the same bytes.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "reflector_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cstdint>

#include "reflector_simd.h"

HWY_BEFORE_NAMESPACE();
namespace onnx_reinit::standard::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// out(r, j) = sum over i of vp[i * bp + r] * c[j * ldc + i], i ascending, for
// r < bp (bp a multiple of the lane count) and j < w; out is bp x w,
// column-major.
template <class T>
void products_vt_c(const T* vp, std::int64_t bp, std::int64_t m, const T* c, std::int64_t ldc,
                   std::int64_t w, T* out) {
  // At most reflector_row_bytes per vector, so the lanes divide bp.
  const hn::CappedTag<T, reflector_row_bytes / sizeof(T)> d;
  const std::int64_t n = static_cast<std::int64_t>(hn::Lanes(d));
  std::int64_t j = 0;
  for (; j + 4 <= w; j += 4) {
    const T* c0 = c + j * ldc;
    for (std::int64_t r = 0; r < bp; r += n) {
      auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
      for (std::int64_t i = 0; i < m; ++i) {
        const auto v = hn::LoadU(d, vp + i * bp + r);
        a0 = hn::Add(a0, hn::Mul(v, hn::Set(d, c0[i])));
        a1 = hn::Add(a1, hn::Mul(v, hn::Set(d, c0[ldc + i])));
        a2 = hn::Add(a2, hn::Mul(v, hn::Set(d, c0[2 * ldc + i])));
        a3 = hn::Add(a3, hn::Mul(v, hn::Set(d, c0[3 * ldc + i])));
      }
      hn::StoreU(a0, d, out + j * bp + r);
      hn::StoreU(a1, d, out + (j + 1) * bp + r);
      hn::StoreU(a2, d, out + (j + 2) * bp + r);
      hn::StoreU(a3, d, out + (j + 3) * bp + r);
    }
  }
  for (; j < w; ++j)
    for (std::int64_t r = 0; r < bp; r += n) {
      auto a = hn::Zero(d);
      for (std::int64_t i = 0; i < m; ++i)
        a = hn::Add(a, hn::Mul(hn::LoadU(d, vp + i * bp + r), hn::Set(d, c[j * ldc + i])));
      hn::StoreU(a, d, out + j * bp + r);
    }
}

// c(i, j) -= sum over k of v[k * ldv + i] * x[j * ldx + k], k ascending (the
// sum first, then one subtraction), for i < m, j < w, k < b.
template <class T>
void products_c_minus_v_x(const T* v, std::int64_t ldv, std::int64_t m, std::int64_t b, const T* x,
                          std::int64_t ldx, T* c, std::int64_t ldc, std::int64_t w) {
  const hn::ScalableTag<T> d;
  const std::int64_t n = static_cast<std::int64_t>(hn::Lanes(d));
  const std::int64_t vector_rows = m / n * n;
  for (std::int64_t j = 0; j < w; j += 4) {
    const std::int64_t cols = w - j < 4 ? w - j : 4;
    const T* x0 = x + j * ldx;
    T* c0 = c + j * ldc;
    for (std::int64_t i = 0; i < vector_rows; i += n) {
      auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
      for (std::int64_t k = 0; k < b; ++k) {
        const auto vk = hn::LoadU(d, v + k * ldv + i);
        a0 = hn::Add(a0, hn::Mul(vk, hn::Set(d, x0[k])));
        if (cols > 1) a1 = hn::Add(a1, hn::Mul(vk, hn::Set(d, x0[ldx + k])));
        if (cols > 2) a2 = hn::Add(a2, hn::Mul(vk, hn::Set(d, x0[2 * ldx + k])));
        if (cols > 3) a3 = hn::Add(a3, hn::Mul(vk, hn::Set(d, x0[3 * ldx + k])));
      }
      hn::StoreU(hn::Sub(hn::LoadU(d, c0 + i), a0), d, c0 + i);
      if (cols > 1) hn::StoreU(hn::Sub(hn::LoadU(d, c0 + ldc + i), a1), d, c0 + ldc + i);
      if (cols > 2) hn::StoreU(hn::Sub(hn::LoadU(d, c0 + 2 * ldc + i), a2), d, c0 + 2 * ldc + i);
      if (cols > 3) hn::StoreU(hn::Sub(hn::LoadU(d, c0 + 3 * ldc + i), a3), d, c0 + 3 * ldc + i);
    }
    // The ragged rows, one element at a time with the same operations.
    for (std::int64_t col = 0; col < cols; ++col)
      for (std::int64_t i = vector_rows; i < m; ++i) {
        T a = T(0);
        for (std::int64_t k = 0; k < b; ++k) a = a + v[k * ldv + i] * x0[col * ldx + k];
        c0[col * ldc + i] = c0[col * ldc + i] - a;
      }
  }
}

void vt_c_f32(const float* vp, std::int64_t bp, std::int64_t m, const float* c, std::int64_t ldc,
              std::int64_t w, float* out) {
  products_vt_c(vp, bp, m, c, ldc, w, out);
}
void vt_c_f64(const double* vp, std::int64_t bp, std::int64_t m, const double* c, std::int64_t ldc,
              std::int64_t w, double* out) {
  products_vt_c(vp, bp, m, c, ldc, w, out);
}
void c_minus_v_x_f32(const float* v, std::int64_t ldv, std::int64_t m, std::int64_t b,
                     const float* x, std::int64_t ldx, float* c, std::int64_t ldc, std::int64_t w) {
  products_c_minus_v_x(v, ldv, m, b, x, ldx, c, ldc, w);
}
void c_minus_v_x_f64(const double* v, std::int64_t ldv, std::int64_t m, std::int64_t b,
                     const double* x, std::int64_t ldx, double* c, std::int64_t ldc,
                     std::int64_t w) {
  products_c_minus_v_x(v, ldv, m, b, x, ldx, c, ldc, w);
}

}  // namespace onnx_reinit::standard::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace onnx_reinit::standard {

HWY_EXPORT(vt_c_f32);
HWY_EXPORT(vt_c_f64);
HWY_EXPORT(c_minus_v_x_f32);
HWY_EXPORT(c_minus_v_x_f64);

void reflector_vt_c(const float* vp, std::int64_t bp, std::int64_t m, const float* c,
                    std::int64_t ldc, std::int64_t w, float* out) {
  HWY_DYNAMIC_DISPATCH(vt_c_f32)(vp, bp, m, c, ldc, w, out);
}
void reflector_vt_c(const double* vp, std::int64_t bp, std::int64_t m, const double* c,
                    std::int64_t ldc, std::int64_t w, double* out) {
  HWY_DYNAMIC_DISPATCH(vt_c_f64)(vp, bp, m, c, ldc, w, out);
}
void reflector_c_minus_v_x(const float* v, std::int64_t ldv, std::int64_t m, std::int64_t b,
                           const float* x, std::int64_t ldx, float* c, std::int64_t ldc,
                           std::int64_t w) {
  HWY_DYNAMIC_DISPATCH(c_minus_v_x_f32)(v, ldv, m, b, x, ldx, c, ldc, w);
}
void reflector_c_minus_v_x(const double* v, std::int64_t ldv, std::int64_t m, std::int64_t b,
                           const double* x, std::int64_t ldx, double* c, std::int64_t ldc,
                           std::int64_t w) {
  HWY_DYNAMIC_DISPATCH(c_minus_v_x_f64)(v, ldv, m, b, x, ldx, c, ldc, w);
}

}  // namespace onnx_reinit::standard
#endif  // HWY_ONCE
