// Tests of the host random streams: the documented counter mapping, Philox
// known answers, determinism across chunking and threads, and distribution
// statistics with tolerances derived from the sample size.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numbers>
#include <numeric>
#include <span>
#include <thread>
#include <vector>

#include "onnx_reinit/random.h"
#include "onnx_reinit/rng.h"

namespace ori = onnx_reinit;

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
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
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
    const double u = static_cast<double>(w[i % 4] >> 8) * 0x1p-24;
    CHECK(f[i] == static_cast<float>(-2.0 + u * 5.0));
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
  auto f = fill_normal<float>(s, 8);
  for (std::uint64_t i = 0; i < f.size(); ++i) {
    auto w = ori::philox_block(key, 0, i / 4);
    const std::uint64_t pair = (i % 4) / 2;
    const double u1 = static_cast<double>(w[2 * pair] >> 8) * 0x1p-24 + 0x1p-24;
    const double u2 = static_cast<double>(w[2 * pair + 1] >> 8) * 0x1p-24;
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double t = 6.283185307179586476925286766559 * u2;
    CHECK(f[i] == static_cast<float>(i % 2 == 0 ? r * std::cos(t) : r * std::sin(t)));
  }
}

TEST_CASE("any chunking gives the same bytes") {
  auto s = stream(11, "layer.weight");
  const std::size_t n = 1003;
  auto whole_u = fill_uniform<float>(s, n);
  auto whole_n = fill_normal<double>(s, n);
  std::vector<float> trunc_whole(n);
  s.truncated_normal(std::span<float>(trunc_whole), 0, 0.5, 2.0, -2.0, 2.0);
  for (std::size_t chunk : {1u, 2u, 3u, 5u, 64u, 1000u}) {
    std::vector<float> u(n), t(n);
    std::vector<double> nd(n);
    for (std::size_t start = 0; start < n; start += chunk) {
      const std::size_t len = std::min(chunk, n - start);
      s.uniform(std::span<float>(u).subspan(start, len), start, 0.0, 1.0);
      s.normal(std::span<double>(nd).subspan(start, len), start, 0.0, 1.0);
      s.truncated_normal(std::span<float>(t).subspan(start, len), start, 0.5, 2.0, -2.0, 2.0);
    }
    INFO("chunk " << chunk);
    CHECK(same_bytes(u, whole_u));
    CHECK(same_bytes(nd, whole_n));
    CHECK(same_bytes(t, trunc_whole));
  }
}

TEST_CASE("any thread count gives the same bytes") {
  auto s = stream(2, "big");
  const std::size_t n = 1 << 16;
  auto reference = fill_normal<float>(s, n);
  for (unsigned threads : {1u, 2u, 8u}) {
    std::vector<float> out(n);
    std::vector<std::thread> pool;
    const std::size_t per = (n + threads - 1) / threads;
    for (unsigned t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const std::size_t start = t * per;
        const std::size_t len = std::min(per, n - start);
        s.normal(std::span<float>(out).subspan(start, len), start, 0.0, 1.0);
      });
    }
    for (auto& th : pool) th.join();
    INFO(threads << " threads");
    CHECK(same_bytes(out, reference));
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

TEST_CASE("truncated normal matches the truncated distribution") {
  // Truncated standard normal on [a, b]: Z = Phi(b) - Phi(a),
  // var = 1 + (a phi(a) - b phi(b)) / Z - ((phi(a) - phi(b)) / Z)^2.
  auto phi = [](double x) { return std::exp(-0.5 * x * x) / std::sqrt(2 * std::numbers::pi); };
  auto cdf = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  struct bounds {
    double a, b;
  };
  for (bounds ab : {bounds{-2, 2}, bounds{-1, 3}, bounds{0.5, 4}, bounds{-4, -1}}) {
    const double z = cdf(ab.b) - cdf(ab.a);
    const double mean = (phi(ab.a) - phi(ab.b)) / z;
    const double var = 1 + (ab.a * phi(ab.a) - ab.b * phi(ab.b)) / z - mean * mean;
    std::vector<double> v(sample_size);
    stream(8, "t").truncated_normal(std::span<double>(v), 0, 1.0, 0.5, ab.a, ab.b);
    auto m = moments_of(v);
    const double n = static_cast<double>(sample_size);
    INFO("a=" << ab.a << " b=" << ab.b);
    // Scaled by std 0.5 around mean 1; truncated kurtosis is below 4, so the
    // variance error bound uses (4 - 1).
    CHECK(std::abs(m.mean - (1.0 + 0.5 * mean)) < 6 * 0.5 * std::sqrt(var / n));
    CHECK(std::abs(m.var - 0.25 * var) < 6 * 0.25 * var * std::sqrt(3.0 / n));
    CHECK(*std::min_element(v.begin(), v.end()) >= 1.0 + 0.5 * ab.a);
    CHECK(*std::max_element(v.begin(), v.end()) <= 1.0 + 0.5 * ab.b);
  }
}

TEST_CASE("the standard truncation constant is the std of N(0,1) cut at +-2") {
  std::vector<double> v(sample_size);
  stream(8, "c").truncated_normal(std::span<double>(v), 0, 0.0, 1.0, -2.0, 2.0);
  const double expected = 0.87962566103423978;
  const double n = static_cast<double>(sample_size);
  CHECK(std::abs(std::sqrt(moments_of(v).var) - expected) <
        6 * expected * std::sqrt(3.0 / n) / 2);
}
