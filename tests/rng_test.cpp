// Tests of the host random streams: the documented counter mapping, Philox
// known answers, determinism across chunking and threads, and distribution
// statistics with tolerances derived from the sample size.
#include <boost/math/special_functions/erf.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <latch>
#include <numbers>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "kernels.h"
#include "onnx_reinit/random.h"
#include "onnx_reinit/sdk/rng.h"

namespace ori = onnx_reinit;
namespace detail = onnx_reinit::rng_detail;

namespace {

template <class T>
std::vector<T> fill_uniform(const ori::rng_stream& s, std::size_t n, std::uint64_t first = 0,
                            double lo = 0.0, double hi = 1.0) {
  std::vector<T> v(n);
  s.uniform(std::span<T>(v), first, lo, hi);
  return v;
}

template <class T>
std::vector<T> fill_normal(const ori::rng_stream& s, std::size_t n, std::uint64_t first = 0) {
  std::vector<T> v(n);
  s.normal(std::span<T>(v), first, 0.0, 1.0);
  return v;
}

template <class T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  // Empty vectors may hold null pointers, which memcmp must not see.
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

struct moments {
  double mean = 0, var = 0, kurtosis = 0;
};

template <class T>
moments moments_of(const std::vector<T>& v) {
  moments m;
  const double n = static_cast<double>(v.size());
  for (T x : v) m.mean += x;
  m.mean /= n;
  double m2 = 0, m4 = 0;
  for (T x : v) {
    const double d = x - m.mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  m.var = m2 / (n - 1);
  m.kurtosis = (m4 / n) / ((m2 / n) * (m2 / n));
  return m;
}

ori::rng_stream stream(std::uint64_t seed, std::string_view name) {
  return ori::rng_stream(ori::make_tensor_rng(seed, name));
}

}  // namespace

TEST_CASE("philox_block matches the Random123 known answer") {
  // Random123 kat_vectors: philox4x32 10, counter 0, key 0.
  auto w = ori::philox_block({0, 0}, 0, 0);
  CHECK(w[0] == 0x6627e8d5u);
  CHECK(w[1] == 0xe169c58du);
  CHECK(w[2] == 0xbc57ac4cu);
  CHECK(w[3] == 0x9b00dbd8u);
}

TEST_CASE("key derivation follows the documented hash") {
  CHECK(ori::fnv1a64("") == 0xcbf29ce484222325ull);
  CHECK(ori::fnv1a64("a") == 0xaf63dc4c8601ec8cull);
  const std::uint64_t k = ori::splitmix64(ori::splitmix64(7) ^ ori::fnv1a64("conv1.weight"));
  auto key = ori::derive_key(7, "conv1.weight");
  CHECK(key[0] == static_cast<std::uint32_t>(k));
  CHECK(key[1] == static_cast<std::uint32_t>(k >> 32));
  CHECK(ori::derive_key(7, "a") != ori::derive_key(8, "a"));
  CHECK(ori::derive_key(7, "a") != ori::derive_key(7, "b"));
}

TEST_CASE("uniform values follow the documented counter mapping") {
  auto s = stream(3, "w");
  auto key = ori::derive_key(3, "w");
  auto f = fill_uniform<float>(s, 11, 0, -2.0, 3.0);
  auto d = fill_uniform<double>(s, 5, 0, -2.0, 3.0);
  for (std::uint64_t i = 0; i < f.size(); ++i) {
    auto w = ori::philox_block(key, 0, i / 4);
    // Float arithmetic, two roundings: low_f + u * width_f.
    const float u = static_cast<float>(w[i % 4] >> 8) * 0x1p-24f;
    CHECK(f[i] == -2.0f + u * 5.0f);
  }
  for (std::uint64_t i = 0; i < d.size(); ++i) {
    auto w = ori::philox_block(key, 0, i / 2);
    const std::uint64_t j = i % 2;
    const std::uint64_t bits = (std::uint64_t{w[2 * j + 1]} << 32) | w[2 * j];
    const double u = static_cast<double>(bits >> 11) * 0x1p-53;
    CHECK(d[i] == -2.0 + u * 5.0);
  }
}

TEST_CASE("normal values follow the documented Box-Muller mapping") {
  auto s = stream(5, "w");
  auto key = ori::derive_key(5, "w");
  std::vector<float> f(64);
  s.normal(std::span<float>(f), 0, 0.25, 2.0);
  for (std::uint64_t i = 0; i < f.size(); ++i) {
    auto w = ori::philox_block(key, 0, i / 4);
    const std::uint64_t pair = (i % 4) / 2;
    const float u1 = static_cast<float>((w[2 * pair] >> 8) + 1) * 0x1p-24f;
    const float r = std::sqrt(-2.0f * detail::reference_log(u1));
    const auto sc = detail::reference_sincos_turns(w[2 * pair + 1] >> 8);
    const float z = i % 2 == 0 ? r * sc.cos : r * sc.sin;
    CHECK(f[i] == 0.25f + 2.0f * z);
    // The float functions stand for the exact Box-Muller transform.
    const double u2 = static_cast<double>(w[2 * pair + 1] >> 8) * 0x1p-24;
    const double rd = std::sqrt(-2.0 * std::log(static_cast<double>(u1)));
    const double t = 2 * std::numbers::pi * u2;
    CHECK(std::abs(z - (i % 2 == 0 ? rd * std::cos(t) : rd * std::sin(t))) < 2e-6);
  }
}

TEST_CASE("any chunking gives the same bytes") {
  auto s = stream(11, "layer.weight");
  const std::size_t n = 1003;
  auto whole_u = fill_uniform<float>(s, n);
  auto whole_n = fill_normal<double>(s, n);
  std::vector<float> trunc_whole(n);
  s.truncated_normal(std::span<float>(trunc_whole), 0, 0.5, 2.0, -2.0, 2.0);
  std::vector<double> trunc_whole_d(n);
  s.truncated_normal(std::span<double>(trunc_whole_d), 0, 0.5, 2.0, -2.0, 2.0);
  for (std::size_t chunk : {1u, 2u, 3u, 5u, 64u, 1000u}) {
    std::vector<float> u(n), t(n);
    std::vector<double> nd(n), td(n);
    for (std::size_t start = 0; start < n; start += chunk) {
      const std::size_t len = std::min(chunk, n - start);
      s.uniform(std::span<float>(u).subspan(start, len), start, 0.0, 1.0);
      s.normal(std::span<double>(nd).subspan(start, len), start, 0.0, 1.0);
      s.truncated_normal(std::span<float>(t).subspan(start, len), start, 0.5, 2.0, -2.0, 2.0);
      s.truncated_normal(std::span<double>(td).subspan(start, len), start, 0.5, 2.0, -2.0, 2.0);
    }
    INFO("chunk " << chunk);
    CHECK(same_bytes(u, whole_u));
    CHECK(same_bytes(nd, whole_n));
    CHECK(same_bytes(t, trunc_whole));
    CHECK(same_bytes(td, trunc_whole_d));
  }
}

namespace {

// Fills elements [0, n) in chunks of `chunk` (the last one shorter), the way a
// pool of `workers` threads does: every worker takes the next chunk of a
// shuffled queue, all start together (a latch) so their fills overlap. Real
// OS threads, so 8 workers means 8 concurrent fills whatever the core count.
template <class T, class Fill>
std::vector<T> fill_by_workers(std::size_t n, std::size_t chunk, unsigned workers,
                               std::uint32_t shuffle_seed, const Fill& fill) {
  std::vector<T> out(n);
  std::vector<std::size_t> starts;
  for (std::size_t s = 0; s < n; s += chunk) starts.push_back(s);
  std::mt19937 order(shuffle_seed);
  std::shuffle(starts.begin(), starts.end(), order);
  std::atomic<std::size_t> next{0};
  std::latch go(workers);
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < workers; ++w)
    pool.emplace_back([&] {
      go.arrive_and_wait();
      for (std::size_t k; (k = next++) < starts.size();) {
        const std::size_t len = std::min(chunk, n - starts[k]);
        fill(std::span<T>(out).subspan(starts[k], len), starts[k]);
      }
    });
  for (auto& th : pool) th.join();
  return out;
}

}  // namespace

TEST_CASE("any thread count gives the same bytes") {
  // 1, 2 and 8 workers, whatever the machine; chunks of 257 elements start
  // at every offset modulo the 4 (float) or 2 (double) values of a block.
  auto s = stream(2, "big");
  const std::size_t n = (1 << 16) + 3, chunk = 257;
  const auto u = fill_uniform<float>(s, n);
  const auto z = fill_normal<float>(s, n);
  const auto zd = fill_normal<double>(s, n);
  std::vector<float> t(n);
  s.truncated_normal(std::span<float>(t), 0, 0.0, 1.0);
  std::vector<double> td(n);
  s.truncated_normal(std::span<double>(td), 0, 0.0, 1.0);
  for (unsigned workers : {1u, 2u, 8u}) {
    for (std::uint32_t order = 1; order <= 16; ++order) {
      INFO(workers << " workers, order " << order);
      CHECK(same_bytes(u, fill_by_workers<float>(n, chunk, workers, order, [&](auto out, auto f) {
                         s.uniform(out, f, 0.0, 1.0);
                       })));
      CHECK(same_bytes(z, fill_by_workers<float>(n, chunk, workers, order, [&](auto out, auto f) {
                         s.normal(out, f, 0.0, 1.0);
                       })));
      CHECK(same_bytes(zd, fill_by_workers<double>(n, chunk, workers, order, [&](auto out, auto f) {
                         s.normal(out, f, 0.0, 1.0);
                       })));
      CHECK(same_bytes(t, fill_by_workers<float>(n, chunk, workers, order, [&](auto out, auto f) {
                         s.truncated_normal(out, f, 0.0, 1.0);
                       })));
      CHECK(same_bytes(td, fill_by_workers<double>(n, chunk, workers, order, [&](auto out, auto f) {
                         s.truncated_normal(out, f, 0.0, 1.0);
                       })));
    }
  }
}

TEST_CASE("seeds, names and substreams give different values") {
  auto a = fill_normal<float>(stream(1, "w"), 64);
  CHECK(same_bytes(a, fill_normal<float>(stream(1, "w"), 64)));
  CHECK_FALSE(same_bytes(a, fill_normal<float>(stream(2, "w"), 64)));
  CHECK_FALSE(same_bytes(a, fill_normal<float>(stream(1, "v"), 64)));
  CHECK_FALSE(same_bytes(a, fill_normal<float>(stream(1, "w").substream(1), 64)));
}

// Tolerances: for n i.i.d. draws with variance s2 and kurtosis k, the sample
// mean has standard error sqrt(s2/n) and the sample variance sqrt(s2^2 (k-1)/n).
// Checks allow 6 standard errors, a false-failure rate below 1e-8 per check;
// with n = 400k a variance off by a factor of 2 is hundreds of errors away.
constexpr std::size_t sample_size = 400000;

TEST_CASE("uniform draws have the uniform moments") {
  auto v = fill_uniform<float>(stream(9, "u"), sample_size, 0, -3.0, 5.0);
  const double width = 8.0, var = width * width / 12.0;
  const double n = static_cast<double>(v.size());
  auto m = moments_of(v);
  CHECK(std::abs(m.mean - 1.0) < 6 * std::sqrt(var / n));
  CHECK(std::abs(m.var - var) < 6 * var * std::sqrt((1.8 - 1.0) / n));
  CHECK(std::abs(m.kurtosis - 1.8) < 0.02);
  CHECK(*std::min_element(v.begin(), v.end()) >= -3.0f);
  CHECK(*std::max_element(v.begin(), v.end()) <= 5.0f);
}

TEST_CASE("normal draws have the normal moments, float and double") {
  const double n = static_cast<double>(sample_size);
  auto check = [&](const moments& m) {
    CHECK(std::abs(m.mean) < 6 * std::sqrt(1.0 / n));
    CHECK(std::abs(m.var - 1.0) < 6 * std::sqrt(2.0 / n));
    // Kurtosis 3: its standard error is about sqrt(24/n).
    CHECK(std::abs(m.kurtosis - 3.0) < 6 * std::sqrt(24.0 / n));
  };
  check(moments_of(fill_normal<float>(stream(4, "n"), sample_size)));
  check(moments_of(fill_normal<double>(stream(4, "n"), sample_size)));
}

TEST_CASE("a variance off by a factor of 2 fails the normal check") {
  auto v = fill_normal<float>(stream(4, "n"), sample_size);
  for (float& x : v) x *= static_cast<float>(std::sqrt(2.0));
  const double n = static_cast<double>(sample_size);
  CHECK_FALSE(std::abs(moments_of(v).var - 1.0) < 6 * std::sqrt(2.0 / n));
}

namespace {

double std_normal_pdf(double x) {
  return std::exp(-0.5 * x * x) / std::sqrt(2 * std::numbers::pi);
}

double std_normal_cdf(double x) {
  return 0.5 * std::erfc(-x / std::numbers::sqrt2);
}

// Mean and variance of the standard normal truncated to [a, b]:
// Z = Phi(b) - Phi(a), mean = (phi(a) - phi(b)) / Z,
// var = 1 + (a phi(a) - b phi(b)) / Z - mean^2.
moments truncated_moments(double a, double b) {
  const double z = std_normal_cdf(b) - std_normal_cdf(a);
  moments m;
  m.mean = (std_normal_pdf(a) - std_normal_pdf(b)) / z;
  m.var = 1 + (a * std_normal_pdf(a) - b * std_normal_pdf(b)) / z - m.mean * m.mean;
  return m;
}

// Whether sample moments match mean + std Z for Z truncated to [a, b], within
// 6 standard errors; the truncated kurtosis is below 4, so the variance's
// error bound uses (4 - 1).
bool matches_truncated(const moments& got, double mean, double std, double a, double b,
                       std::size_t n) {
  const moments want = truncated_moments(a, b);
  const double nd = static_cast<double>(n);
  return std::abs(got.mean - (mean + std * want.mean)) < 6 * std * std::sqrt(want.var / nd) &&
         std::abs(got.var - std * std * want.var) < 6 * std * std * want.var * std::sqrt(3.0 / nd);
}

struct interval {
  double a, b;
};

// Symmetric, one-sided, mirrored (a > 0), left-only, reaching the float tail
// polynomial (|z| > 2.9), past the float fast range (-6, the Boost fallback
// for float), and in the double's last polynomial (|z| > 5.4).
constexpr interval test_intervals[] = {{-2, 2},   {-1, 3},  {0.5, 4}, {-4, -1},
                                       {-4.9, 5}, {3, 4.5}, {-6, -2}, {-7.5, -5.5}};

}  // namespace

TEMPLATE_TEST_CASE("truncated normal matches the truncated distribution", "", float, double) {
  for (interval ab : test_intervals) {
    std::vector<TestType> v(sample_size);
    stream(8, "t").truncated_normal(std::span<TestType>(v), 0, 1.0, 0.5, ab.a, ab.b);
    INFO("a=" << ab.a << " b=" << ab.b);
    CHECK(matches_truncated(moments_of(v), 1.0, 0.5, ab.a, ab.b, v.size()));
    // Never outside the bounds, as the type rounds them.
    const TestType lo =
        static_cast<TestType>(1.0) + static_cast<TestType>(0.5) * static_cast<TestType>(ab.a);
    const TestType hi =
        static_cast<TestType>(1.0) + static_cast<TestType>(0.5) * static_cast<TestType>(ab.b);
    CHECK(*std::min_element(v.begin(), v.end()) >= lo);
    CHECK(*std::max_element(v.begin(), v.end()) <= hi);
  }
}

TEMPLATE_TEST_CASE("a variance off by a factor of 2 fails the truncated normal check", "", float,
                   double) {
  std::vector<TestType> v(sample_size);
  stream(8, "t").truncated_normal(std::span<TestType>(v), 0, 0.0, 1.0, -2.0, 2.0);
  REQUIRE(matches_truncated(moments_of(v), 0.0, 1.0, -2.0, 2.0, v.size()));
  for (TestType& x : v) x *= static_cast<TestType>(std::sqrt(2.0));
  CHECK_FALSE(matches_truncated(moments_of(v), 0.0, 1.0, -2.0, 2.0, v.size()));
}

TEST_CASE("the standard truncation constant is the std of N(0,1) cut at +-2") {
  std::vector<double> v(sample_size);
  stream(8, "c").truncated_normal(std::span<double>(v), 0, 0.0, 1.0, -2.0, 2.0);
  const double expected = 0.87962566103423978;
  const double n = static_cast<double>(sample_size);
  CHECK(std::abs(std::sqrt(moments_of(v).var) - expected) < 6 * expected * std::sqrt(3.0 / n) / 2);
}

namespace {

// Runs `body` once per Highway target compiled in and supported here, with
// dispatch forced to that target, and restores normal dispatch afterwards.
template <class Body>
void for_each_target(Body body) {
  detail::force_simd_target(0);
  const std::vector<std::int64_t> targets = detail::simd_targets();
  REQUIRE(!targets.empty());
  for (std::int64_t target : targets) {
    detail::force_simd_target(target);
    const std::string name = detail::simd_target_name(target);
    INFO("target " << name);
    CHECK(name == detail::simd_target_name());
    body();
  }
  detail::force_simd_target(0);
}

// Distance in units in the last place of `expected` (the exact value rounded
// to float), so 0.5 is the best a float function can do.
double ulp_error(float actual, double expected) {
  const float rounded = static_cast<float>(expected);
  const float next = std::nextafter(std::abs(rounded), 1e30f);
  const double ulp = static_cast<double>(next) - std::abs(rounded);
  return std::abs(static_cast<double>(actual) - expected) / ulp;
}

}  // namespace

TEST_CASE("vector Philox gives Random123's words on every target") {
  std::mt19937_64 gen(42);
  std::vector<detail::philox_stream> streams = {{{0, 0}, 0}, {{0xFFFFFFFFu, 0xFFFFFFFFu}, ~0ull}};
  for (int k = 0; k < 6; ++k)
    streams.push_back(
        {{static_cast<std::uint32_t>(gen()), static_cast<std::uint32_t>(gen())}, gen()});
  // Starts include a low counter word about to wrap into the high word.
  const std::uint64_t starts[] = {0, 1, 7, 0xFFFFFFFFull - 5, 0x1FFFFFFF0ull, gen() >> 4};
  for_each_target([&] {
    for (const auto& ps : streams) {
      for (std::uint64_t start : starts) {
        const std::uint64_t count = 45;
        std::vector<std::uint32_t> words(4 * count);
        detail::simd_philox_blocks(ps, start, count, words.data());
        bool all_equal = true;
        for (std::uint64_t b = 0; b < count; ++b) {
          auto w = ori::philox_block({ps.key[0], ps.key[1]}, ps.stream, start + b);
          for (int j = 0; j < 4; ++j) all_equal = all_equal && words[4 * b + j] == w[j];
        }
        INFO("stream " << ps.stream << " start " << start);
        CHECK(all_equal);
      }
    }
  });
}

TEST_CASE("vector fills give the scalar reference's bytes on every target") {
  const onnx_reinit_rng rng = ori::make_tensor_rng(17, "decoder.0.attn.weight");
  onnx_reinit_rng other = ori::make_tensor_rng(3, "x");
  other.stream = 0x100000007ull;
  auto check_range = [](const onnx_reinit_rng& r, std::uint64_t first, std::uint64_t count) {
    std::vector<float> got(count), want(count);
    ori::fill_uniform_f32(r, got.data(), first, count, -0.3, 1.7);
    detail::reference_fill_uniform(r, want.data(), first, count, -0.3, 1.7);
    INFO("uniform first " << first << " count " << count);
    CHECK(same_bytes(got, want));
    ori::fill_normal_f32(r, got.data(), first, count, 0.1, 0.02);
    detail::reference_fill_normal(r, want.data(), first, count, 0.1, 0.02);
    INFO("normal first " << first << " count " << count);
    CHECK(same_bytes(got, want));
  };
  for_each_target([&] {
    for (std::uint64_t first = 0; first < 37; ++first)
      for (std::uint64_t count = 0; count <= 100; count += first % 2 == 0 ? 1 : 7)
        check_range(rng, first, count);
    check_range(rng, 0, 100000);
    check_range(rng, 12345, 54321);
    check_range(other, (1ull << 34) - 301, 1003);  // across a low-word wrap
  });
}

namespace {

// The float kernel's constants for [a, b] around mean with std, as
// fill_truncated_normal_f32 rounds them (its fast range: the nearer side's
// bound at or above -5).
detail::truncated_f32 truncated_constants(double mean, double std, double a, double b) {
  const bool mirror = a > 0;
  const double lo = mirror ? -b : a, hi = mirror ? -a : b;
  const double cdf_lo = std_normal_cdf(lo);
  return {static_cast<float>(2 * cdf_lo), static_cast<float>(2 * (std_normal_cdf(hi) - cdf_lo)),
          static_cast<float>(lo),         static_cast<float>(hi),
          static_cast<float>(mean),       static_cast<float>(mirror ? -std : std)};
}

}  // namespace

TEST_CASE("vector truncated normals give the scalar reference's bytes on every target") {
  const onnx_reinit_rng rng = ori::make_tensor_rng(23, "blocks.3.mlp.fc1.weight");
  const interval intervals[] = {{-2, 2}, {0.5, 4}, {-4.9, 5}, {-1, 10}, {0, 0.25}};
  for_each_target([&] {
    for (interval ab : intervals) {
      const auto t = truncated_constants(0.1, 0.02, ab.a, ab.b);
      auto check_range = [&](std::uint64_t first, std::uint64_t count) {
        std::vector<float> got(count), want(count);
        ori::fill_truncated_normal_f32(rng, got.data(), first, count, 0.1, 0.02, ab.a, ab.b);
        detail::reference_fill_truncated_normal(rng, want.data(), first, count, t);
        INFO("a=" << ab.a << " b=" << ab.b << " first " << first << " count " << count);
        CHECK(same_bytes(got, want));
      };
      for (std::uint64_t first = 0; first < 9; ++first)
        for (std::uint64_t count = 0; count <= 70; count += 1 + first) check_range(first, count);
      check_range(7, 200003);
    }
  });
}

TEST_CASE("the float truncated normal is the inverse CDF of its uniform within float error") {
  // For every 1 in 61 of the 2^23 uniforms u: z against the exact quantile
  // (Newton-refined in double) of the exact p = cdf_lo + u width, in units
  // of what float resolves: z's own spacing plus p's spacing seen through
  // the density, p's spacing / phi(z).
  for (interval ab : {interval{-2, 2}, interval{-5, 0}, interval{-1, 10}, interval{0.5, 4}}) {
    const auto t = truncated_constants(0.0, 1.0, ab.a, ab.b);
    double worst = 0;
    for (std::uint32_t m = 0; m < (1u << 23); m += 61) {
      const float x = detail::reference_truncated_normal(m << 9, t);
      const double z = t.std_signed < 0 ? -static_cast<double>(x) : x;  // before mirroring
      const double u = static_cast<double>(2 * m + 1) * 0x1p-24;
      const double p = (static_cast<double>(t.cdf_lo2) + u * static_cast<double>(t.cdf_width2)) / 2;
      double exact = z;
      for (int k = 0; k < 4; ++k) exact -= (std_normal_cdf(exact) - p) / std_normal_pdf(exact);
      exact = std::clamp(exact, static_cast<double>(t.lo), static_cast<double>(t.hi));
      const float pf = static_cast<float>(p), zf = static_cast<float>(exact);
      const double resolution = (std::nextafter(std::abs(zf), 1e30f) - std::abs(zf)) +
                                (std::nextafter(pf, 2.0f) - pf) / std_normal_pdf(exact);
      worst = std::max(worst, std::abs(z - exact) / resolution);
    }
    INFO("a=" << ab.a << " b=" << ab.b << ": worst " << worst << " resolutions");
    CHECK(worst < 4.0);
  }
}

TEST_CASE("the double truncated normal follows the documented mapping and inverts the CDF") {
  auto s = stream(29, "w");
  const auto key = ori::derive_key(29, "w");
  for (interval ab : {interval{-2, 2}, interval{-8, 1}, interval{1, 3}}) {
    std::vector<double> v(4001);
    s.truncated_normal(std::span<double>(v), 0, 0.0, 1.0, ab.a, ab.b);
    const bool mirror = ab.a > 0;
    const double lo = mirror ? -ab.b : ab.a, hi = mirror ? -ab.a : ab.b;
    double worst = 0;
    for (std::uint64_t i = 0; i < v.size(); ++i) {
      const auto w = ori::philox_block(key, 0, i / 2);
      const std::uint64_t j = i % 2;
      const std::uint64_t bits = (std::uint64_t{w[2 * j + 1]} << 32) | w[2 * j];
      const double u = static_cast<double>(((bits >> 12) << 1) | 1u) * 0x1p-53;
      const double p = std_normal_cdf(lo) + u * (std_normal_cdf(hi) - std_normal_cdf(lo));
      const double z = mirror ? -v[i] : v[i];
      double exact = z;
      for (int k = 0; k < 3; ++k) exact -= (std_normal_cdf(exact) - p) / std_normal_pdf(exact);
      // Resolution: z's relative 2^-52 and p's relative 2^-52 through the density.
      const double resolution = 0x1p-52 * (std::abs(exact) + p / std_normal_pdf(exact));
      worst = std::max(worst, std::abs(z - exact) / resolution);
    }
    INFO("a=" << ab.a << " b=" << ab.b << ": worst " << worst << " resolutions");
    CHECK(worst < 8.0);
  }
}

namespace {

// The float64 kernel's constants for [a, b] around mean with std, as the
// host computes them for its fast range.
detail::truncated_f64 truncated_constants_f64(double mean, double std, double a, double b) {
  detail::truncated_f64 t{};
  REQUIRE(detail::fast_truncated_f64(mean, std, a, b, t));
  return t;
}

}  // namespace

TEST_CASE("vector float64 truncated normals give the scalar reference's bytes on every target") {
  const onnx_reinit_rng rng = ori::make_tensor_rng(31, "encoder.layers.5.fc2.weight");
  const detail::philox_stream ps{{rng.key[0], rng.key[1]}, rng.stream};
  // The central polynomial alone, mirrored, all three polynomials, the
  // middle one (|z| in 3.1 .. 5.4), the tail one alone, a narrow interval,
  // and an upper bound far enough that p comes within 2^-52 of 1.
  const interval intervals[] = {{-2, 2},  {0.5, 4},  {-7.9, 8}, {-6, -3},
                                {-8, -6}, {0, 0.25}, {-1, 40}};
  for_each_target([&] {
    for (interval ab : intervals) {
      const auto t = truncated_constants_f64(0.1, 0.02, ab.a, ab.b);
      auto check_range = [&](std::uint64_t first, std::uint64_t count) {
        std::vector<double> got(count), want(count);
        detail::simd_fill_truncated_normal(ps, got.data(), first, count, t);
        detail::reference_fill_truncated_normal(rng, want.data(), first, count, t);
        INFO("a=" << ab.a << " b=" << ab.b << " first " << first << " count " << count);
        CHECK(same_bytes(got, want));
      };
      // Every start modulo a block and a vector, counts that are not
      // multiples of the vector width, and one long run.
      for (std::uint64_t first = 0; first < 19; ++first)
        for (std::uint64_t count = 0; count <= 70; count += 1 + first % 5)
          check_range(first, count);
      check_range(7, 100003);
      check_range((1ull << 33) - 5, 301);  // the block counter's low word wraps
    }
    // The stream API's float64 fill is this kernel.
    std::vector<double> got(1001), want(1001);
    ori::rng_stream(rng).truncated_normal(std::span<double>(got), 3, 0.1, 0.02, -2.0, 2.0);
    detail::reference_fill_truncated_normal(rng, want.data(), 3, got.size(),
                                            truncated_constants_f64(0.1, 0.02, -2.0, 2.0));
    CHECK(same_bytes(got, want));
  });
}

TEST_CASE("the double quantile matches on every target at the edges of its range") {
  // Inputs no sampled interval reaches in a test run: p2 at the ends of
  // (0, 2), where 4 p (1 - p) rounds to zero or to 1, and around the
  // polynomials' switch points w = 6.25 and w = 16 on both sides.
  std::vector<double> p2 = {0x1p-1074,
                            0x1p-1022,
                            1e-300,
                            1e-17,
                            2e-16,
                            2.0,
                            0x1.fffffffffffffp0,
                            0x1.ffffffffffffep0,
                            1.0,
                            0x1.fffffffffffffp-1,
                            0x1.0000000000001p0};
  for (double w : {6.25, 16.0}) {
    // e = p2 (2 - p2) = exp(-w) at p2 = 1 - sqrt(1 - exp(-w)), and nearby.
    const double at = 1.0 - std::sqrt(1.0 - std::exp(-w));
    for (int k = -40; k <= 40; ++k) {
      const double x = at * (1.0 + k * 0x1p-50);
      p2.push_back(x);
      p2.push_back(2.0 - x);
    }
  }
  std::mt19937_64 gen(7);
  for (int k = 0; k < 20000; ++k) {
    const double u = static_cast<double>(gen() >> 11) * 0x1p-53;
    p2.push_back(std::ldexp(1.0 + u, -static_cast<int>(gen() % 60)));
    p2.push_back(2.0 * u);
  }
  for_each_target([&] {
    std::vector<double> got(p2.size()), want(p2.size());
    detail::simd_quantile(p2.data(), got.data(), p2.size());
    for (std::size_t i = 0; i < p2.size(); ++i) want[i] = detail::reference_quantile(p2[i]);
    CHECK(same_bytes(got, want));
  });
  CHECK(std::all_of(p2.begin(), p2.end(),
                    [](double x) { return std::isfinite(detail::reference_quantile(x)); }));
}

namespace {

// The exact standard normal quantile of p = p2 / 2, from Boost's erfc_inv in
// long double (64-bit significand here), and what double resolves there: the
// spacing of z plus the spacing of p seen through the density.
struct exact_quantile {
  long double z, resolution;
};

exact_quantile exact_quantile_of(double p2) {
  const long double z = -std::sqrt(2.0L) * boost::math::erfc_inv(static_cast<long double>(p2));
  const long double density = std::exp(-z * z / 2) / std::sqrt(2 * std::numbers::pi_v<long double>);
  const long double p = static_cast<long double>(p2) / 2;
  return {z, 0x1p-52L * (std::abs(z) + std::min(p, 1 - p) / density)};
}

}  // namespace

TEST_CASE("the double quantile is within 4 resolutions of Boost's erfc_inv over its range") {
  // p2 = 2p over what the fast path draws, [2 Phi(-8), 2): evenly spaced
  // points and points evenly spaced in log p2 and log (2 - p2), so each of
  // the three polynomials and both sides are covered. Measured worst on 6
  // million such points: 1.90 (central), 2.56 (middle), 3.42 (tail)
  // resolutions, the same as the path with libm's log this kernel replaced
  // (the polynomials' own error); on these 450000, 1.83, 2.40, 3.03. A
  // relative change of 1e-3 in any coefficient fails this test, of 1e-15 in
  // the constant terms.
  const double lowest = std::erfc(8.0 / std::numbers::sqrt2);  // 2 Phi(-8)
  std::mt19937_64 gen(11);
  double worst[3] = {0, 0, 0};  // by polynomial: central, middle, tail
  double worst_p2[3] = {0, 0, 0};
  auto check = [&](double p2) {
    const exact_quantile want = exact_quantile_of(p2);
    const double err = static_cast<double>(
        std::abs(static_cast<long double>(detail::reference_quantile(p2)) - want.z) /
        want.resolution);
    const double lw = -std::log(p2 * (2 - p2));
    const int piece = lw < 6.25 ? 0 : lw < 16 ? 1 : 2;
    if (err > worst[piece]) worst[piece] = err, worst_p2[piece] = p2;
  };
  for (int k = 0; k < 150000; ++k) {
    const double u = static_cast<double>(gen() >> 11) * 0x1p-53;
    check(lowest + u * (2 - lowest));
    const double v = std::exp(std::log(lowest) * static_cast<double>(gen() >> 11) * 0x1p-53);
    check(v);
    check(2 - v);
  }
  for (int piece = 0; piece < 3; ++piece) {
    INFO("polynomial " << piece << ": worst " << worst[piece]
                       << " resolutions at p2 = " << worst_p2[piece]);
    CHECK(worst[piece] > 0);
    CHECK(worst[piece] < 4.0);
  }
}

TEST_CASE("the double log is within 1 ulp over the quantile's inputs and matches on every target") {
  // The quantile takes the log of 4 p (1 - p) in [DBL_MIN, 1]: every
  // binade, and densely just below 1 where most draws land. Against the
  // long double log: measured worst 0.92 ulp on 25 million such points
  // (just below sqrt(1/2)), 0.74 on these.
  std::mt19937_64 gen(13);
  std::vector<double> xs;
  for (int k = 0; k < 400000; ++k) {
    const double u = static_cast<double>(gen() >> 11) * 0x1p-53;
    xs.push_back(std::ldexp(1.0 + u, -1 - static_cast<int>(gen() % 1022)));
    xs.push_back(1.0 - u * 0x1p-8);
  }
  xs.push_back(1.0);
  double worst = 0, worst_x = 0;
  for (double x : xs) {
    const long double want = std::log(static_cast<long double>(x));
    const double got = detail::reference_log(x);
    if (want == 0) {
      CHECK(got == 0.0);
      continue;
    }
    const double rounded = static_cast<double>(want);
    const long double ulp = std::nextafter(std::abs(rounded), 1e300) - std::abs(rounded);
    const double err = static_cast<double>(std::abs(got - want) / ulp);
    if (err > worst) worst = err, worst_x = x;
  }
  INFO("worst " << worst << " ulp at " << worst_x);
  CHECK(worst < 1.0);
  for_each_target([&] {
    std::vector<double> got(xs.size()), want(xs.size());
    detail::simd_log(xs.data(), got.data(), xs.size());
    for (std::size_t i = 0; i < xs.size(); ++i) want[i] = detail::reference_log(xs[i]);
    CHECK(same_bytes(got, want));
  });
}

TEST_CASE("every target gives the same bytes for any chunking") {
  const onnx_reinit_rng rng = ori::make_tensor_rng(5, "emb");
  const std::size_t n = 5003;
  std::vector<float> whole_u(n), whole_n(n);
  detail::reference_fill_uniform(rng, whole_u.data(), 0, n, 0.0, 1.0);
  detail::reference_fill_normal(rng, whole_n.data(), 0, n, 0.0, 1.0);
  for_each_target([&] {
    for (std::size_t chunk : {1u, 3u, 4u, 17u, 64u, 1001u}) {
      std::vector<float> u(n), z(n);
      for (std::size_t start = 0; start < n; start += chunk) {
        const std::size_t len = std::min(chunk, n - start);
        ori::fill_uniform_f32(rng, u.data() + start, start, len, 0.0, 1.0);
        ori::fill_normal_f32(rng, z.data() + start, start, len, 0.0, 1.0);
      }
      INFO("chunk " << chunk);
      CHECK(same_bytes(u, whole_u));
      CHECK(same_bytes(z, whole_n));
    }
  });
}

TEST_CASE("the float log is within 1 ulp over every u1 and matches on every target") {
  // Every input Box-Muller can see, k 2^-24 for k = 1 .. 2^24, and more
  // exponents below; then the vector versions on a strided subset.
  std::vector<float> xs;
  for (std::uint32_t k = 1; k <= (1u << 24); ++k) xs.push_back(static_cast<float>(k) * 0x1p-24f);
  for (float x = 0x1p-100f; x < 1e30f; x *= 1.0001f) xs.push_back(x);
  double worst = 0;
  float worst_x = 0;
  for (float x : xs) {
    const float got = detail::reference_log(x);
    const double want = std::log(static_cast<double>(x));
    const double err = want == 0 ? std::abs(got) : ulp_error(got, want);
    if (err > worst) {
      worst = err;
      worst_x = x;
    }
  }
  INFO("worst " << worst << " ulp at " << worst_x);
  CHECK(worst < 1.0);
  CHECK(detail::reference_log(1.0f) == 0.0f);
  std::vector<float> some;
  for (std::size_t i = 0; i < xs.size(); i += 97) some.push_back(xs[i]);
  for_each_target([&] {
    std::vector<float> got(some.size());
    detail::simd_log(some.data(), got.data(), some.size());
    bool all_equal = true;
    for (std::size_t i = 0; i < some.size(); ++i)
      all_equal = all_equal && std::bit_cast<std::uint32_t>(got[i]) ==
                                   std::bit_cast<std::uint32_t>(detail::reference_log(some[i]));
    CHECK(all_equal);
  });
}

TEST_CASE("the float sin and cos of 2 pi u2 are within 2 ulp and match on every target") {
  // The reduction is exact; the error is the rounding of pi/2 and of the
  // polynomial evaluation in float (measured worst: 1.72 ulp).
  double worst_sin = 0, worst_cos = 0;
  std::uint32_t worst_sin_m = 0, worst_cos_m = 0;
  for (std::uint32_t m = 0; m < (1u << 24); ++m) {
    const auto sc = detail::reference_sincos_turns(m);
    const double t = 2 * std::numbers::pi * (static_cast<double>(m) * 0x1p-24);
    // Exact zeros at the quarter turns; elsewhere the error in ulps.
    const bool sin_zero = m % (1u << 23) == 0, cos_zero = (m + (1u << 22)) % (1u << 23) == 0;
    const double es = sin_zero ? std::abs(sc.sin) * 1e30 : ulp_error(sc.sin, std::sin(t));
    const double ec = cos_zero ? std::abs(sc.cos) * 1e30 : ulp_error(sc.cos, std::cos(t));
    if (es > worst_sin) worst_sin = es, worst_sin_m = m;
    if (ec > worst_cos) worst_cos = ec, worst_cos_m = m;
  }
  INFO("sin: worst " << worst_sin << " ulp at m " << worst_sin_m);
  INFO("cos: worst " << worst_cos << " ulp at m " << worst_cos_m);
  CHECK(worst_sin < 2.0);
  CHECK(worst_cos < 2.0);
  std::vector<std::uint32_t> ms;
  for (std::uint32_t m = 0; m < (1u << 24); m += 61) ms.push_back(m);
  for (std::uint32_t m = (1u << 24) - 40; m < (1u << 24); ++m) ms.push_back(m);
  for_each_target([&] {
    std::vector<float> s(ms.size()), c(ms.size());
    detail::simd_sincos_turns(ms.data(), s.data(), c.data(), ms.size());
    bool all_equal = true;
    for (std::size_t i = 0; i < ms.size(); ++i) {
      const auto sc = detail::reference_sincos_turns(ms[i]);
      all_equal = all_equal &&
                  std::bit_cast<std::uint32_t>(s[i]) == std::bit_cast<std::uint32_t>(sc.sin) &&
                  std::bit_cast<std::uint32_t>(c[i]) == std::bit_cast<std::uint32_t>(sc.cos);
    }
    CHECK(all_equal);
  });
}

TEST_CASE("float normals have the normal distribution function and tails") {
  const std::size_t n = 1000000;
  auto v = fill_normal<float>(stream(21, "tails"), n);
  const double nd = static_cast<double>(n);
  // Kolmogorov-Smirnov: sup |F_n - Phi| exceeds sqrt(ln(2 / alpha) / 2 n)
  // with probability below alpha; alpha = 1e-8.
  std::vector<float> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  double d = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double cdf = 0.5 * std::erfc(-sorted[i] / std::numbers::sqrt2);
    d = std::max({d, std::abs(cdf - static_cast<double>(i) / nd),
                  std::abs(static_cast<double>(i + 1) / nd - cdf)});
  }
  CHECK(d < std::sqrt(std::log(2 / 1e-8) / (2 * nd)));
  // Tail counts are binomial: within 6 standard deviations of n p.
  for (double cut : {2.0, 3.0, 4.0}) {
    const double p = std::erfc(cut / std::numbers::sqrt2);
    const auto count =
        std::count_if(v.begin(), v.end(), [&](float x) { return std::abs(x) > cut; });
    INFO("P(|z| > " << cut << ")");
    CHECK(std::abs(static_cast<double>(count) - nd * p) < 6 * std::sqrt(nd * p * (1 - p)));
  }
  // u1 >= 2^-24 bounds |z| by sqrt(48 ln 2) = 5.77.
  CHECK(std::abs(sorted.front()) < 5.8f);
  CHECK(std::abs(sorted.back()) < 5.8f);
}

TEST_CASE("the SIMD target is reported") {
  const std::string name = ori::rng_simd_target();
  CHECK_FALSE(name.empty());
  CHECK(name == detail::simd_target_name(detail::simd_targets().front()));
}
