// Blocked Householder QR and the forming of Q (see blocked_qr.h). The large
// products are reflector_simd.cpp's vector kernels, the same bytes on every
// instruction set; the small ones (panels, triangular factors) are Eigen's,
// built for the baseline instruction set without fused multiply-adds and
// with its cache blocking pinned, so every x86-64 machine gives the same
// bytes.
#include "blocked_qr.h"

#include <Eigen/Core>
#include <Eigen/Householder>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "reflector_simd.h"

namespace onnx_reinit::standard {
namespace {

using Eigen::Index;

template <class T>
using mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
template <class T>
using vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
template <class T>
using mat_ref = Eigen::Ref<mat<T>, 0, Eigen::OuterStride<>>;

// Columns per panel: wide enough that most work is in the block products,
// narrow enough that the panel's own (matrix-vector) work stays small.
constexpr Index panel_width = 48;
// Columns per parallel chunk of a block application; fixed, never derived
// from the thread count.
constexpr Index chunk_width = 128;

// Eigen sizes its product blocking from the CPU's caches, which would make
// the sums' grouping, and so the bytes, depend on the machine; pinning them
// keeps the arithmetic the same everywhere.
void pin_cache_sizes() {
  static const bool pinned = [] {
    Eigen::setCpuCacheSizes(32 * 1024, 256 * 1024, 2 * 1024 * 1024);
    return true;
  }();
  (void)pinned;
}

// The reflectors of one panel: H = H_1 ... H_b = I - V F V^T with V unit
// lower trapezoidal (rows from the panel's first row on) and F upper
// triangular.
template <class T>
struct reflector_block {
  Index first = 0;
  mat<T> v, f;
  // V row by row, each row padded to `padded` entries with zeros.
  Index padded = 0;
  std::vector<T> rows;
};

// A row length that is a whole number of vectors on every target (the
// kernel's vectors are at most reflector_row_bytes).
template <class T>
Index padded_width(Index b) {
  constexpr Index lanes = reflector_row_bytes / sizeof(T);
  return (b + lanes - 1) / lanes * lanes;
}

// Unblocked Householder QR of a panel in place: R on and above the
// diagonal, the reflectors' essential parts below; tau and R's diagonal out.
template <class T>
void factor_panel(mat_ref<T> p, T* tau, T* diagonal) {
  vec<T> work(p.cols());
  for (Index j = 0; j < p.cols(); ++j) {
    const Index below = p.rows() - j;
    T beta;
    p.col(j).tail(below).makeHouseholderInPlace(tau[j], beta);
    p(j, j) = beta;
    diagonal[j] = beta;
    if (j + 1 < p.cols())
      p.bottomRightCorner(below, p.cols() - j - 1)
          .applyHouseholderOnTheLeft(p.col(j).tail(below - 1), tau[j], work.data());
  }
}

// V and F of a factored panel: F(i, i) = tau_i and F(0:i, i) = -tau_i
// F(0:i, 0:i) V(:, 0:i)^T V(:, i) (LAPACK's larft, forward, columnwise).
template <class T>
reflector_block<T> make_block(const mat_ref<T>& p, const T* tau, Index first) {
  reflector_block<T> r;
  r.first = first;
  const Index b = p.cols();
  r.v = p.template triangularView<Eigen::StrictlyLower>();
  r.v.diagonal().setOnes();
  r.padded = padded_width<T>(b);
  r.rows.assign(static_cast<std::size_t>(r.v.rows() * r.padded), T(0));
  for (Index i = 0; i < r.v.rows(); ++i)
    for (Index k = 0; k < b; ++k) r.rows[static_cast<std::size_t>(i * r.padded + k)] = r.v(i, k);
  const mat<T> gram = r.v.transpose() * r.v;
  r.f = mat<T>::Zero(b, b);
  for (Index i = 0; i < b; ++i) {
    r.f(i, i) = tau[i];
    if (i > 0) {
      const vec<T> t =
          r.f.topLeftCorner(i, i).template triangularView<Eigen::Upper>() * gram.col(i).head(i);
      r.f.col(i).head(i) = -tau[i] * t;
    }
  }
  return r;
}

// c = H^T c (transpose, as the factorization applies the panel to the
// columns after it) or c = H c (forming Q), in fixed chunks of columns.
template <class T>
void apply_block(const reflector_block<T>& r, mat_ref<T> c, bool transpose,
                 const host_threads& threads) {
  const Index chunks = (c.cols() + chunk_width - 1) / chunk_width;
  const Index b = r.v.cols();
  threads.parallel_for(static_cast<std::uint64_t>(chunks), [&](std::uint64_t chunk) {
    const Index first = static_cast<Index>(chunk) * chunk_width;
    const Index width = std::min(chunk_width, c.cols() - first);
    T* part = c.data() + first * c.outerStride();
    std::vector<T> w(static_cast<std::size_t>(r.padded * width));
    reflector_vt_c(r.rows.data(), r.padded, c.rows(), part, c.outerStride(), width, w.data());
    const Eigen::Map<const mat<T>, 0, Eigen::OuterStride<>> vt_c(w.data(), b, width,
                                                                 Eigen::OuterStride<>(r.padded));
    mat<T> x;
    if (transpose)
      x = r.f.transpose().template triangularView<Eigen::Lower>() * vt_c;
    else
      x = r.f.template triangularView<Eigen::Upper>() * vt_c;
    reflector_c_minus_v_x(r.v.data(), r.v.rows(), c.rows(), b, x.data(), b, part, c.outerStride(),
                          width);
  });
}

}  // namespace

template <class T>
void sign_corrected_q(T* data, std::int64_t m, std::int64_t n, const host_threads& threads) {
  pin_cache_sizes();
  Eigen::Map<mat<T>> a(data, m, n);
  vec<T> tau(n), diagonal(n);
  std::vector<reflector_block<T>> blocks;
  for (Index k = 0; k < n; k += panel_width) {
    const Index b = std::min(panel_width, n - k);
    mat_ref<T> p = a.block(k, k, m - k, b);
    factor_panel<T>(p, tau.data() + k, diagonal.data() + k);
    blocks.push_back(make_block<T>(p, tau.data() + k, k));
    if (k + b < n)
      apply_block<T>(blocks.back(), a.block(k, k + b, m - k, n - k - b), true, threads);
  }
  // Q = H_1 ... H_n I, from the last block: a block starting at column k
  // changes only rows and columns k on, the rest is still the identity's.
  a.setIdentity();
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it)
    apply_block<T>(*it, a.block(it->first, it->first, m - it->first, n - it->first), false,
                   threads);
  for (Index j = 0; j < n; ++j)
    if (diagonal[j] < T(0)) a.col(j) *= T(-1);
}

template void sign_corrected_q<float>(float*, std::int64_t, std::int64_t, const host_threads&);
template void sign_corrected_q<double>(double*, std::int64_t, std::int64_t, const host_threads&);

}  // namespace onnx_reinit::standard
