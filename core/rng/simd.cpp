// The vector kernels: Philox4x32-10 on N counters at once (one counter per
// lane, words in separate vectors), then float32 uniform or Box-Muller values
// with the float log and sin/cos of kernels.h, or inverse-CDF truncated
// normals in float32 or float64 with the float or double log and Giles'
// erfinv polynomials. Compiled once per Highway target (foreach_target.h)
// and chosen at run time, so one portable binary uses AVX-512 or AVX2 where
// present. Only separate multiplies, adds and divisions (never MulAdd, whose
// fusing differs per target), integer operations, exact conversions and
// Sqrt, so every target gives the reference's bits.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels.h"

HWY_BEFORE_NAMESPACE();
namespace onnx_reinit::rng_detail::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using du_t = hn::ScalableTag<std::uint32_t>;
using di_t = hn::ScalableTag<std::int32_t>;
using df_t = hn::ScalableTag<float>;
using vu_t = hn::Vec<du_t>;
using vf_t = hn::Vec<df_t>;
using dd_t = hn::ScalableTag<double>;
using dq_t = hn::ScalableTag<std::uint64_t>;
using dl_t = hn::ScalableTag<std::int64_t>;
using vd_t = hn::Vec<dd_t>;

constexpr std::size_t max_lanes = HWY_MAX_BYTES / sizeof(std::uint32_t);

// hi:lo = a * m for every u32 lane, from two 32x32->64 multiplies (even
// lanes, then odd lanes shifted down); `m` is the same in every lane.
HWY_INLINE void mul_hi_lo(vu_t a, vu_t m, vu_t& hi, vu_t& lo) {
  const du_t du;
#if HWY_TARGET == HWY_SCALAR
  // One lane: no u64 view of a u32 vector.
  const std::uint64_t p = std::uint64_t{hn::GetLane(a)} * hn::GetLane(m);
  lo = hn::Set(du, static_cast<std::uint32_t>(p));
  hi = hn::Set(du, static_cast<std::uint32_t>(p >> 32));
#else
  const hn::Repartition<std::uint64_t, du_t> d64;
  const auto even = hn::MulEven(a, m);
  const auto odd = hn::MulEven(hn::BitCast(du, hn::ShiftRight<32>(hn::BitCast(d64, a))), m);
  lo = hn::OddEven(hn::BitCast(du, hn::ShiftLeft<32>(odd)), hn::BitCast(du, even));
  hi = hn::OddEven(hn::BitCast(du, odd), hn::BitCast(du, hn::ShiftRight<32>(even)));
#endif
}

struct philox_words {
  vu_t w0, w1, w2, w3;
};

// Philox4x32-10 of counters {block + j, stream} for lanes j = 0..N-1.
HWY_INLINE philox_words philox(const philox_stream& s, std::uint64_t block) {
  const du_t du;
  const std::uint32_t lo = static_cast<std::uint32_t>(block);
  const std::uint32_t hi = static_cast<std::uint32_t>(block >> 32);
  vu_t c0 = hn::Add(hn::Set(du, lo), hn::Iota(du, 0));  // wraps modulo 2^32
  vu_t c1 = hn::Set(du, hi);
  const std::size_t n = hn::Lanes(du);
  if (HWY_UNLIKELY(lo > 0xFFFFFFFFu - (n - 1))) {
    // Lanes past the wrap of the low word carry into the high word.
    HWY_ALIGN std::uint32_t high[max_lanes];
    for (std::size_t j = 0; j < n; ++j)
      high[j] = hi + (static_cast<std::uint32_t>(lo + j) < lo ? 1u : 0u);
    c1 = hn::Load(du, high);
  }
  vu_t c2 = hn::Set(du, static_cast<std::uint32_t>(s.stream));
  vu_t c3 = hn::Set(du, static_cast<std::uint32_t>(s.stream >> 32));
  const vu_t m0 = hn::Set(du, philox_m0);
  const vu_t m1 = hn::Set(du, philox_m1);
  std::uint32_t k0 = s.key[0], k1 = s.key[1];
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += philox_w0;
      k1 += philox_w1;
    }
    vu_t hi0, lo0, hi1, lo1;
    mul_hi_lo(c0, m0, hi0, lo0);
    mul_hi_lo(c2, m1, hi1, lo1);
    c0 = hn::Xor(hn::Xor(hi1, c1), hn::Set(du, k0));
    c1 = lo1;
    c2 = hn::Xor(hn::Xor(hi0, c3), hn::Set(du, k1));
    c3 = lo0;
  }
  return {c0, c1, c2, c3};
}

// (w >> 8) as a float, exact.
HWY_INLINE vf_t top24(vu_t w) {
  return hn::ConvertTo(df_t(), hn::BitCast(di_t(), hn::ShiftRight<8>(w)));
}

// K vectors computed in lockstep: the logs and the erfinv polynomials are
// long chains of dependent multiplies and adds (23 of each for the double
// central polynomial), so each step is issued for all K vectors before the
// next and their latencies overlap. Lane for lane the operations are the
// reference's.
template <class V, std::size_t K>
using vecs = std::array<V, K>;
template <std::size_t K>
using vf_k = vecs<vf_t, K>;
template <std::size_t K>
using vd_k = vecs<vd_t, K>;

// f(j) for j = 0 .. K - 1, unrolled.
template <std::size_t K, class F>
HWY_INLINE void for_each_vector(const F& f) {
  [&]<std::size_t... J>(std::index_sequence<J...>) {
    (f(J), ...);
  }
  (std::make_index_sequence<K>());
}

// q = q * v + c[k] for k = from .. N - 1, for every vector.
template <class V, std::size_t K, class T, std::size_t N>
HWY_INLINE void horner_steps(vecs<V, K>& q, const T (&c)[N], std::size_t from,
                             const vecs<V, K>& v) {
  for (std::size_t k = from; k < N; ++k) {
    const V ck = hn::Set(hn::DFromV<V>(), c[k]);
    for_each_vector<K>([&](std::size_t j) { q[j] = hn::Add(hn::Mul(q[j], v[j]), ck); });
  }
}

// Horner from index 0, as the reference's.
template <class V, std::size_t K, class T, std::size_t N>
HWY_INLINE vecs<V, K> horner(const T (&c)[N], const vecs<V, K>& v) {
  vecs<V, K> q;
  for_each_vector<K>([&](std::size_t j) { q[j] = hn::Set(hn::DFromV<V>(), c[0]); });
  horner_steps(q, c, 1, v);
  return q;
}

// reference_log, lane-wise.
template <std::size_t K>
HWY_INLINE vf_k<K> log_f(const vf_k<K>& x) {
  const df_t df;
  const du_t du;
  const di_t di;
  vf_k<K> t, fe, z;
  for_each_vector<K>([&](std::size_t j) {
    const vu_t bits = hn::BitCast(du, x[j]);
    auto e = hn::Sub(hn::BitCast(di, hn::ShiftRight<23>(bits)), hn::Set(di, 126));
    const vf_t m =
        hn::BitCast(df, hn::Or(hn::And(bits, hn::Set(du, 0x807FFFFFu)), hn::Set(du, 0x3F000000u)));
    const auto small = hn::Lt(m, hn::Set(df, sqrt_half));
    e = hn::Sub(e, hn::IfThenElseZero(hn::RebindMask(di, small), hn::Set(di, 1)));
    t[j] = hn::Add(hn::Sub(m, hn::Set(df, 1.0f)), hn::IfThenElseZero(small, m));
    fe[j] = hn::ConvertTo(df, e);
    z[j] = hn::Mul(t[j], t[j]);
  });
  const vf_k<K> p = horner(log_p, t);
  vf_k<K> r;
  for_each_vector<K>([&](std::size_t j) {
    vf_t y = hn::Mul(hn::Mul(p[j], t[j]), z[j]);
    y = hn::Add(y, hn::Mul(fe[j], hn::Set(df, log_q1)));
    y = hn::Sub(y, hn::Mul(z[j], hn::Set(df, 0.5f)));
    r[j] = hn::Add(hn::Add(t[j], y), hn::Mul(fe[j], hn::Set(df, log_q2)));
  });
  return r;
}

// reference_neg_log_w, lane-wise: minus the truncated normal's logarithm.
template <std::size_t K>
HWY_INLINE vf_k<K> neg_log_w(const vf_k<K>& x) {
  const df_t df;
  const du_t du;
  const di_t di;
  vf_k<K> s, fe, u;
  for_each_vector<K>([&](std::size_t j) {
    const vu_t bits = hn::BitCast(du, x[j]);
    auto e = hn::Sub(hn::BitCast(di, hn::ShiftRight<23>(bits)), hn::Set(di, 126));
    const vf_t m =
        hn::BitCast(df, hn::Or(hn::And(bits, hn::Set(du, 0x807FFFFFu)), hn::Set(du, 0x3F000000u)));
    const auto small = hn::Lt(m, hn::Set(df, sqrt_half));
    e = hn::Sub(e, hn::IfThenElseZero(hn::RebindMask(di, small), hn::Set(di, 1)));
    const vf_t t = hn::Add(hn::Sub(m, hn::Set(df, 1.0f)), hn::IfThenElseZero(small, m));
    fe[j] = hn::ConvertTo(df, e);
    s[j] = hn::Div(t, hn::Add(t, hn::Set(df, 2.0f)));
    u[j] = hn::Mul(s[j], s[j]);
  });
  vf_k<K> r;
  for_each_vector<K>([&](std::size_t j) {
    vf_t p = hn::Add(hn::Mul(hn::Set(df, -log_w_c[0]), u[j]), hn::Set(df, -log_w_c[1]));
    p = hn::Add(hn::Mul(p, u[j]), hn::Set(df, -2.0f));
    vf_t y = hn::Mul(s[j], p);
    y = hn::Add(y, hn::Mul(fe[j], hn::Set(df, -log_q1)));
    r[j] = hn::Add(y, hn::Mul(fe[j], hn::Set(df, -log_q2)));
  });
  return r;
}

HWY_INLINE vf_t log_f(vf_t x) {
  return log_f<1>({x})[0];
}

// reference_sincos_turns, lane-wise, of m24 = w >> 8.
HWY_INLINE void sincos_turns(vu_t m24, vf_t& sin, vf_t& cos) {
  const df_t df;
  const du_t du;
  const di_t di;
  const vu_t n = hn::ShiftRight<22>(hn::Add(m24, hn::Set(du, 0x200000u)));
  const auto fi = hn::Sub(hn::BitCast(di, m24), hn::BitCast(di, hn::ShiftLeft<22>(n)));
  const vf_t f = hn::Mul(hn::ConvertTo(df, fi), hn::Set(df, 0x1p-22f));
  const vf_t f2 = hn::Mul(f, f);
  vf_t s = hn::Set(df, sin_c[4]);
  for (int k = 3; k >= 0; --k) s = hn::Add(hn::Mul(s, f2), hn::Set(df, sin_c[k]));
  s = hn::Mul(s, f);
  vf_t c = hn::Set(df, cos_c[5]);
  for (int k = 4; k >= 0; --k) c = hn::Add(hn::Mul(c, f2), hn::Set(df, cos_c[k]));
  const auto swap = hn::TestBit(n, hn::Set(du, 1u));
  const vu_t su = hn::BitCast(du, s), cu = hn::BitCast(du, c);
  const vu_t sin_sign = hn::ShiftLeft<30>(hn::And(n, hn::Set(du, 2u)));
  const vu_t cos_sign = hn::ShiftLeft<30>(hn::And(hn::Add(n, hn::Set(du, 1u)), hn::Set(du, 2u)));
  sin = hn::BitCast(df, hn::Xor(hn::IfThenElse(swap, cu, su), sin_sign));
  cos = hn::BitCast(df, hn::Xor(hn::IfThenElse(swap, su, cu), cos_sign));
}

HWY_INLINE vf_t uniform_values(vu_t w, vf_t low, vf_t width) {
  const vf_t u = hn::Mul(top24(w), hn::Set(df_t(), 0x1p-24f));
  return hn::Add(low, hn::Mul(u, width));
}

HWY_INLINE void normal_pairs(vu_t w_radius, vu_t w_angle, vf_t mean, vf_t std, vf_t& x_cos,
                             vf_t& x_sin) {
  const df_t df;
  const vu_t m1 = hn::Add(hn::ShiftRight<8>(w_radius), hn::Set(du_t(), 1u));
  const vf_t u1 = hn::Mul(hn::ConvertTo(df, hn::BitCast(di_t(), m1)), hn::Set(df, 0x1p-24f));
  const vf_t r = hn::Sqrt(hn::Mul(hn::Set(df, -2.0f), log_f(u1)));
  vf_t s, c;
  sincos_turns(hn::ShiftRight<8>(w_angle), s, c);
  x_cos = hn::Add(mean, hn::Mul(std, hn::Mul(r, c)));
  x_sin = hn::Add(mean, hn::Mul(std, hn::Mul(r, s)));
}

// A truncated_f32 as vectors, set once per fill: the output stores could
// alias the struct, so reading its fields in the loop would reload them.
struct truncated_vectors {
  vf_t cdf_lo2, cdf_width2_24, lo, hi, mean, std_signed;
};

HWY_INLINE truncated_vectors vectors_of(const truncated_f32& t) {
  const df_t df;
  return {hn::Set(df, t.cdf_lo2), hn::Set(df, t.cdf_width2 * 0x1p-24f),
          hn::Set(df, t.lo),      hn::Set(df, t.hi),
          hn::Set(df, t.mean),    hn::Set(df, t.std_signed)};
}

// reference_truncated_normal, lane-wise. The tail polynomial (w >= 5, |z|
// above about 2.9) is evaluated only when some lane needs it; each lane's
// value is the same either way.
template <std::size_t K>
HWY_INLINE vf_k<K> truncated_values(const vecs<vu_t, K>& w, const truncated_vectors& t) {
  const df_t df;
  vf_k<K> p2, e;
  for_each_vector<K>([&](std::size_t j) {
    const vu_t odd = hn::Or(hn::ShiftRight<8>(w[j]), hn::Set(du_t(), 1u));
    const vf_t f = hn::ConvertTo(df, hn::BitCast(di_t(), odd));
    p2[j] = hn::Add(t.cdf_lo2, hn::Mul(f, t.cdf_width2_24));
    const vf_t ej = hn::Mul(p2[j], hn::Sub(hn::Set(df, 2.0f), p2[j]));
    const vf_t tiny = hn::Set(df, 0x1p-126f);
    e[j] = hn::IfThenElse(hn::Lt(ej, tiny), tiny, ej);
  });
  const vf_k<K> lw = neg_log_w(e);
  vf_k<K> v;
  vf_t most = lw[0];
  for_each_vector<K>([&](std::size_t j) {
    v[j] = hn::Sub(lw[j], hn::Set(df, 2.5f));
    most = hn::Max(most, lw[j]);
  });
  vf_k<K> q = horner(erfinv2_central, v);
  if (HWY_UNLIKELY(!hn::AllTrue(df, hn::Lt(most, hn::Set(df, 5.0f))))) {
    vf_k<K> vt;
    for_each_vector<K>([&](std::size_t j) { vt[j] = hn::Sub(hn::Sqrt(lw[j]), hn::Set(df, 3.0f)); });
    const vf_k<K> qt = horner(erfinv2_tail, vt);
    for_each_vector<K>([&](std::size_t j) {
      q[j] = hn::IfThenElse(hn::Lt(lw[j], hn::Set(df, 5.0f)), q[j], qt[j]);
    });
  }
  vf_k<K> x;
  for_each_vector<K>([&](std::size_t j) {
    vf_t z = hn::Mul(q[j], hn::Sub(p2[j], hn::Set(df, 1.0f)));
    z = hn::IfThenElse(hn::Lt(z, t.lo), t.lo, z);
    z = hn::IfThenElse(hn::Gt(z, t.hi), t.hi, z);
    x[j] = hn::Add(t.mean, hn::Mul(t.std_signed, z));
  });
  return x;
}

// reference_log(double), lane-wise.
template <std::size_t K>
HWY_INLINE vd_k<K> log_d(const vd_k<K>& x) {
  const dd_t dd;
  const dq_t dq;
  const dl_t dl;
  vd_k<K> t, fe, z;
  for_each_vector<K>([&](std::size_t j) {
    const auto bits = hn::BitCast(dq, x[j]);
    auto e = hn::Sub(hn::BitCast(dl, hn::ShiftRight<52>(bits)), hn::Set(dl, 1022));
    const vd_t m = hn::BitCast(dd, hn::Or(hn::And(bits, hn::Set(dq, 0x800FFFFFFFFFFFFFull)),
                                          hn::Set(dq, 0x3FE0000000000000ull)));
    const auto small = hn::Lt(m, hn::Set(dd, sqrt_half_d));
    e = hn::Sub(e, hn::IfThenElseZero(hn::RebindMask(dl, small), hn::Set(dl, 1)));
    t[j] = hn::Add(hn::Sub(m, hn::Set(dd, 1.0)), hn::IfThenElseZero(small, m));
    fe[j] = hn::ConvertTo(dd, e);
    z[j] = hn::Mul(t[j], t[j]);
  });
  const vd_k<K> p = horner(log_d_p, t);
  vd_k<K> q;
  for_each_vector<K>([&](std::size_t j) { q[j] = hn::Add(t[j], hn::Set(dd, log_d_q[0])); });
  horner_steps(q, log_d_q, 1, t);
  vd_k<K> r;
  for_each_vector<K>([&](std::size_t j) {
    vd_t y = hn::Mul(t[j], hn::Div(hn::Mul(z[j], p[j]), q[j]));
    y = hn::Add(y, hn::Mul(fe[j], hn::Set(dd, log_d_q1)));
    y = hn::Sub(y, hn::Mul(z[j], hn::Set(dd, 0.5)));
    r[j] = hn::Add(hn::Add(t[j], y), hn::Mul(fe[j], hn::Set(dd, log_d_q2)));
  });
  return r;
}

// reference_quantile, lane-wise. The polynomials of sqrt(w) (w >= 6.25, |z|
// above about 3.1) are evaluated only when some lane needs them; each
// lane's value is the same either way.
template <std::size_t K>
HWY_INLINE vd_k<K> quantile_d(const vd_k<K>& p2) {
  const dd_t dd;
  vd_k<K> e, v;
  for_each_vector<K>([&](std::size_t j) {
    const vd_t ej = hn::Mul(p2[j], hn::Sub(hn::Set(dd, 2.0), p2[j]));
    const vd_t tiny = hn::Set(dd, 0x1p-1022);
    e[j] = hn::IfThenElse(hn::Lt(ej, tiny), tiny, ej);
  });
  vd_k<K> lw = log_d(e);
  bool beyond = false;
  for_each_vector<K>([&](std::size_t j) {
    lw[j] = hn::Neg(lw[j]);
    v[j] = hn::Sub(lw[j], hn::Set(dd, 3.125));
    beyond = beyond || !hn::AllTrue(dd, hn::Lt(lw[j], hn::Set(dd, 6.25)));
  });
  vd_k<K> q = horner(erfinv_d_central, v);
  if (HWY_UNLIKELY(beyond)) {
    vd_k<K> vm, vt;
    for_each_vector<K>([&](std::size_t j) {
      const vd_t s = hn::Sqrt(lw[j]);
      vm[j] = hn::Sub(s, hn::Set(dd, 3.25));
      vt[j] = hn::Sub(s, hn::Set(dd, 5.0));
    });
    const vd_k<K> middle = horner(erfinv_d_middle, vm);
    const vd_k<K> tail = horner(erfinv_d_tail, vt);
    for_each_vector<K>([&](std::size_t j) {
      const vd_t outer = hn::IfThenElse(hn::Lt(lw[j], hn::Set(dd, 16.0)), middle[j], tail[j]);
      q[j] = hn::IfThenElse(hn::Lt(lw[j], hn::Set(dd, 6.25)), q[j], outer);
    });
  }
  vd_k<K> z;
  for_each_vector<K>([&](std::size_t j) {
    const vd_t x = hn::Sub(p2[j], hn::Set(dd, 1.0));
    z[j] = hn::Mul(hn::Mul(q[j], x), hn::Set(dd, sqrt2_d));
  });
  return z;
}

struct truncated_vectors_d {
  vd_t cdf_lo2, cdf_width2, lo, hi, mean, std_signed;
};

HWY_INLINE truncated_vectors_d vectors_of(const truncated_f64& t) {
  const dd_t dd;
  return {hn::Set(dd, t.cdf_lo2), hn::Set(dd, t.cdf_width2), hn::Set(dd, t.lo),
          hn::Set(dd, t.hi),      hn::Set(dd, t.mean),       hn::Set(dd, t.std_signed)};
}

// reference_truncated_normal(bits, t) of the K vectors of u64 at `bits`,
// lane-wise, stored to dst.
template <std::size_t K>
HWY_INLINE void truncated_values_d(const std::uint64_t* bits, const truncated_vectors_d& t,
                                   double* dst) {
  const dd_t dd;
  const dq_t dq;
  const std::size_t n = hn::Lanes(dq);
  vd_k<K> p2;
  for_each_vector<K>([&](std::size_t j) {
    // (2 (bits >> 12) + 1) 2^-53 as (1 + (bits >> 12) 2^-52) - 1 + 2^-53,
    // every step exact: the same value as the reference's conversion.
    const vd_t one_m = hn::BitCast(dd, hn::Or(hn::ShiftRight<12>(hn::Load(dq, bits + j * n)),
                                              hn::Set(dq, 0x3FF0000000000000ull)));
    const vd_t u = hn::Add(hn::Sub(one_m, hn::Set(dd, 1.0)), hn::Set(dd, 0x1p-53));
    p2[j] = hn::Add(t.cdf_lo2, hn::Mul(u, t.cdf_width2));
  });
  const vd_k<K> z = quantile_d(p2);
  for_each_vector<K>([&](std::size_t j) {
    vd_t zj = hn::IfThenElse(hn::Lt(z[j], t.lo), t.lo, z[j]);
    zj = hn::IfThenElse(hn::Gt(zj, t.hi), t.hi, zj);
    hn::StoreU(hn::Add(t.mean, hn::Mul(t.std_signed, zj)), dd, dst + j * n);
  });
}

// Fills elements [first, first + count) of a T tensor from `values(words,
// dst)`, which turns the Philox words of blocks [block, block + N) (four per
// lane) into their values at dst: 4 N floats or 2 N doubles. Whole aligned
// groups go straight to `out`; a ragged head or tail goes through a small
// buffer.
template <class T, class Values>
HWY_INLINE void fill_values(const philox_stream& s, T* out, std::uint64_t first,
                            std::uint64_t count, Values values) {
  constexpr std::uint64_t per_block = 4 * sizeof(std::uint32_t) / sizeof(T);
  const std::uint64_t per_step = per_block * hn::Lanes(du_t());
  HWY_ALIGN T buffer[per_block * max_lanes];
  std::uint64_t i = first;
  const std::uint64_t end = first + count;
  while (i < end) {
    const std::uint64_t block = i / per_block;
    if (i % per_block == 0 && end - i >= per_step) {
      values(philox(s, block), out + (i - first));
      i += per_step;
      continue;
    }
    values(philox(s, block), buffer);
    const std::uint64_t stop = std::min(end, per_block * block + per_step);
    std::memcpy(out + (i - first), buffer + (i - per_block * block), (stop - i) * sizeof(T));
    i = stop;
  }
}

// fill_values for distributions with one word per value: `value(word)`
// maps a vector of words to a vector of values.
template <class Value>
HWY_INLINE void fill_word_values(const philox_stream& s, float* out, std::uint64_t first,
                                 std::uint64_t count, Value value) {
  fill_values(s, out, first, count, [&](const philox_words& w, float* dst) {
    hn::StoreInterleaved4(value(w.w0), value(w.w1), value(w.w2), value(w.w3), df_t(), dst);
  });
}

void fill_uniform_impl(const philox_stream& s, float* out, std::uint64_t first, std::uint64_t count,
                       float low, float width) {
  const vf_t lo = hn::Set(df_t(), low), wi = hn::Set(df_t(), width);
  fill_word_values(s, out, first, count, [&](vu_t w) { return uniform_values(w, lo, wi); });
}

void fill_normal_impl(const philox_stream& s, float* out, std::uint64_t first, std::uint64_t count,
                      float mean, float std) {
  const vf_t mu = hn::Set(df_t(), mean), sigma = hn::Set(df_t(), std);
  fill_values(s, out, first, count, [&](const philox_words& w, float* dst) {
    vf_t x0, x1, x2, x3;
    normal_pairs(w.w0, w.w1, mu, sigma, x0, x1);
    normal_pairs(w.w2, w.w3, mu, sigma, x2, x3);
    hn::StoreInterleaved4(x0, x1, x2, x3, df_t(), dst);
  });
}

void fill_truncated_normal_impl(const philox_stream& s, float* out, std::uint64_t first,
                                std::uint64_t count, const truncated_f32& t) {
  const truncated_vectors v = vectors_of(t);
  fill_values(s, out, first, count, [&](const philox_words& w, float* dst) {
    const vf_k<4> x = truncated_values<4>({w.w0, w.w1, w.w2, w.w3}, v);
    hn::StoreInterleaved4(x[0], x[1], x[2], x[3], df_t(), dst);
  });
}

void fill_truncated_normal_d_impl(const philox_stream& s, double* out, std::uint64_t first,
                                  std::uint64_t count, const truncated_f64& t) {
  static_assert(std::endian::native == std::endian::little,
                "words 2j and 2j + 1 are read as one little-endian u64");
  // The 4 N words of a step are 2 N doubles: this many vectors of them.
  constexpr std::size_t vectors = 2 * hn::MaxLanes(du_t()) / hn::MaxLanes(dq_t());
  static_assert(!HWY_HAVE_SCALABLE, "the vector count is a compile-time constant");
  const truncated_vectors_d v = vectors_of(t);
  fill_values(s, out, first, count, [&](const philox_words& w, double* dst) {
    // Interleaved, the words of block b are u64 elements 2b (w0, w1) and
    // 2b + 1 (w2, w3): the values' order.
    HWY_ALIGN std::uint32_t words[4 * max_lanes];
    hn::StoreInterleaved4(w.w0, w.w1, w.w2, w.w3, du_t(), words);
    truncated_values_d<vectors>(reinterpret_cast<const std::uint64_t*>(words), v, dst);
  });
}

void philox_blocks_impl(const philox_stream& s, std::uint64_t first_block, std::uint64_t count,
                        std::uint32_t* words) {
  const du_t du;
  const std::uint64_t n = hn::Lanes(du);
  HWY_ALIGN std::uint32_t buffer[4 * max_lanes];
  for (std::uint64_t b = 0; b < count; b += n) {
    const philox_words w = philox(s, first_block + b);
    hn::StoreInterleaved4(w.w0, w.w1, w.w2, w.w3, du, buffer);
    std::memcpy(words + 4 * b, buffer, 4 * std::min(n, count - b) * sizeof(std::uint32_t));
  }
}

void log_impl(const float* x, float* out, std::uint64_t count) {
  const df_t df;
  const std::uint64_t n = hn::Lanes(df);
  HWY_ALIGN float buffer[max_lanes];
  for (std::uint64_t i = 0; i < count; i += n) {
    const std::uint64_t len = std::min(n, count - i);
    std::fill(buffer, buffer + n, 1.0f);
    std::memcpy(buffer, x + i, len * sizeof(float));
    hn::Store(log_f(hn::Load(df, buffer)), df, buffer);
    std::memcpy(out + i, buffer, len * sizeof(float));
  }
}

// Applies `f` to count doubles through an aligned buffer of one vector,
// padding a ragged tail with `pad`.
template <class F>
HWY_INLINE void map_doubles(const double* x, double* out, std::uint64_t count, double pad, F f) {
  const dd_t dd;
  const std::uint64_t n = hn::Lanes(dd);
  HWY_ALIGN double buffer[max_lanes];
  for (std::uint64_t i = 0; i < count; i += n) {
    const std::uint64_t len = std::min(n, count - i);
    std::fill(buffer, buffer + n, pad);
    std::memcpy(buffer, x + i, len * sizeof(double));
    hn::Store(f(hn::Load(dd, buffer)), dd, buffer);
    std::memcpy(out + i, buffer, len * sizeof(double));
  }
}

void log_d_impl(const double* x, double* out, std::uint64_t count) {
  map_doubles(x, out, count, 1.0, [](vd_t v) { return log_d<1>({v})[0]; });
}

void quantile_d_impl(const double* p2, double* out, std::uint64_t count) {
  map_doubles(p2, out, count, 1.0, [](vd_t v) { return quantile_d<1>({v})[0]; });
}

void sincos_turns_impl(const std::uint32_t* m24, float* sin, float* cos, std::uint64_t count) {
  const df_t df;
  const du_t du;
  const std::uint64_t n = hn::Lanes(df);
  HWY_ALIGN std::uint32_t in[max_lanes];
  HWY_ALIGN float s_out[max_lanes], c_out[max_lanes];
  for (std::uint64_t i = 0; i < count; i += n) {
    const std::uint64_t len = std::min(n, count - i);
    std::fill(in, in + n, 0u);
    std::memcpy(in, m24 + i, len * sizeof(std::uint32_t));
    vf_t s, c;
    sincos_turns(hn::Load(du, in), s, c);
    hn::Store(s, df, s_out);
    hn::Store(c, df, c_out);
    std::memcpy(sin + i, s_out, len * sizeof(float));
    std::memcpy(cos + i, c_out, len * sizeof(float));
  }
}

const char* target_name_impl() {
  return hwy::TargetName(HWY_TARGET);
}

}  // namespace onnx_reinit::rng_detail::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace onnx_reinit::rng_detail {

HWY_EXPORT(fill_uniform_impl);
HWY_EXPORT(fill_normal_impl);
HWY_EXPORT(fill_truncated_normal_impl);
HWY_EXPORT(fill_truncated_normal_d_impl);
HWY_EXPORT(philox_blocks_impl);
HWY_EXPORT(log_impl);
HWY_EXPORT(log_d_impl);
HWY_EXPORT(quantile_d_impl);
HWY_EXPORT(sincos_turns_impl);
HWY_EXPORT(target_name_impl);

void simd_philox_blocks(const philox_stream& s, std::uint64_t first_block, std::uint64_t count,
                        std::uint32_t* words) {
  HWY_DYNAMIC_DISPATCH(philox_blocks_impl)(s, first_block, count, words);
}

void simd_fill_uniform(const philox_stream& s, float* out, std::uint64_t first, std::uint64_t count,
                       float low, float width) {
  HWY_DYNAMIC_DISPATCH(fill_uniform_impl)(s, out, first, count, low, width);
}

void simd_fill_normal(const philox_stream& s, float* out, std::uint64_t first, std::uint64_t count,
                      float mean, float std) {
  HWY_DYNAMIC_DISPATCH(fill_normal_impl)(s, out, first, count, mean, std);
}

void simd_fill_truncated_normal(const philox_stream& s, float* out, std::uint64_t first,
                                std::uint64_t count, const truncated_f32& t) {
  HWY_DYNAMIC_DISPATCH(fill_truncated_normal_impl)(s, out, first, count, t);
}

void simd_fill_truncated_normal(const philox_stream& s, double* out, std::uint64_t first,
                                std::uint64_t count, const truncated_f64& t) {
  HWY_DYNAMIC_DISPATCH(fill_truncated_normal_d_impl)(s, out, first, count, t);
}

void simd_log(const double* x, double* out, std::uint64_t count) {
  HWY_DYNAMIC_DISPATCH(log_d_impl)(x, out, count);
}

void simd_quantile(const double* p2, double* out, std::uint64_t count) {
  HWY_DYNAMIC_DISPATCH(quantile_d_impl)(p2, out, count);
}

void simd_log(const float* x, float* out, std::uint64_t count) {
  HWY_DYNAMIC_DISPATCH(log_impl)(x, out, count);
}

void simd_sincos_turns(const std::uint32_t* m24, float* sin, float* cos, std::uint64_t count) {
  HWY_DYNAMIC_DISPATCH(sincos_turns_impl)(m24, sin, cos, count);
}

const char* simd_target_name() {
  return HWY_DYNAMIC_DISPATCH(target_name_impl)();
}

std::vector<std::int64_t> simd_targets() {
  return hwy::SupportedAndGeneratedTargets();
}

void force_simd_target(std::int64_t target) {
  hwy::SetSupportedTargetsForTest(target);
}

const char* simd_target_name(std::int64_t target) {
  return hwy::TargetName(target);
}

}  // namespace onnx_reinit::rng_detail
#endif  // HWY_ONCE
