// The fixed-constant detector alone: constants built here by their textbook
// formulas and taken from real models are recognised, random, orthogonal
// and Kaiming-like tensors of many shapes are not.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numbers>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "fixed_constants.h"
#include "onnx_reinit/analysis.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/report.h"
#include "onnx_reinit/rewrite.h"
#include "onnx_reinit/rules.h"
#include "support/corpus_dir.h"
#include "support/onnx_builder.h"
#include "support/standard_registry.h"

namespace {

using onnx_reinit::detail::fixed_constant_reason;
using shape = std::vector<std::int64_t>;
constexpr double pi = std::numbers::pi;

std::optional<std::string> reason(const std::vector<double>& v, const shape& s) {
  return fixed_constant_reason(v, s);
}

// Values as stored in a float32 model.
std::vector<double> as_float(std::vector<double> v) {
  for (double& x : v) x = static_cast<double>(static_cast<float>(x));
  return v;
}

double hann(std::size_t i, std::size_t n, bool periodic = true) {
  return 0.5 - 0.5 * std::cos(2 * pi * static_cast<double>(i) /
                              static_cast<double>(periodic ? n : n - 1));
}

// torch.stft-style basis as a Conv1d weight [2(n/2+1), 1, n]: real rows
// cos(2πkt/n)·w(t), then imaginary rows -sin(2πkt/n)·w(t).
std::vector<double> stft_basis(std::size_t n, bool windowed = true) {
  const std::size_t bins = n / 2 + 1;
  std::vector<double> v;
  for (int part = 0; part < 2; ++part)
    for (std::size_t k = 0; k < bins; ++k)
      for (std::size_t t = 0; t < n; ++t) {
        const double a = 2 * pi * static_cast<double>(k * t) / static_cast<double>(n);
        const double w = windowed ? hann(t, n) : 1.0;
        v.push_back((part == 0 ? std::cos(a) : -std::sin(a)) * w);
      }
  return as_float(v);
}

// HTK mel filterbank as librosa(htk=True) builds it: [n_fft/2+1, mels].
std::vector<double> mel_filterbank(std::size_t n_fft, std::size_t mels, double rate, double fmin,
                                   double fmax) {
  auto mel = [](double f) { return 2595.0 * std::log10(1.0 + f / 700.0); };
  auto hz = [](double m) { return 700.0 * (std::pow(10.0, m / 2595.0) - 1.0); };
  const std::size_t bins = n_fft / 2 + 1;
  std::vector<double> edges(mels + 2);
  for (std::size_t i = 0; i < edges.size(); ++i)
    edges[i] = hz(mel(fmin) +
                  (mel(fmax) - mel(fmin)) * static_cast<double>(i) / static_cast<double>(mels + 1));
  std::vector<double> w(bins * mels, 0.0);
  for (std::size_t b = 0; b < bins; ++b) {
    const double f = rate * static_cast<double>(b) / static_cast<double>(n_fft);
    for (std::size_t m = 0; m < mels; ++m) {
      const double lower = (f - edges[m]) / (edges[m + 1] - edges[m]);
      const double upper = (edges[m + 2] - f) / (edges[m + 2] - edges[m + 1]);
      // Slaney-style area normalisation, as in melspectrogram.onnx.
      w[b * mels + m] = std::max(0.0, std::min(lower, upper)) * 2.0 / (edges[m + 2] - edges[m]);
    }
  }
  return as_float(w);
}

std::vector<double> transposed(const std::vector<double>& v, std::size_t rows, std::size_t cols) {
  std::vector<double> t(v.size());
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) t[c * rows + r] = v[r * cols + c];
  return t;
}

// Vaswani et al.: pe[p, 2i] = sin(p / 10000^(2i/d)), pe[p, 2i+1] = cos(...),
// interleaved, or all sines then all cosines (tensor2tensor's layout).
std::vector<double> position_table(std::size_t positions, std::size_t d, bool interleaved) {
  std::vector<double> v(positions * d);
  for (std::size_t p = 0; p < positions; ++p)
    for (std::size_t i = 0; i < d / 2; ++i) {
      // float32 arithmetic, as PyTorch computes it.
      const float w =
          std::exp(static_cast<float>(2 * i) * (-std::log(10000.0F) / static_cast<float>(d)));
      const float a = static_cast<float>(p) * w;
      const std::size_t s = interleaved ? 2 * i : i, c = interleaved ? 2 * i + 1 : d / 2 + i;
      v[p * d + s] = std::sin(a);
      v[p * d + c] = std::cos(a);
    }
  return as_float(v);
}

std::vector<double> gaussian_kernel(std::size_t k, double sigma) {
  std::vector<double> v(k);
  double sum = 0.0;
  for (std::size_t i = 0; i < k; ++i) {
    const double x = static_cast<double>(i) - static_cast<double>(k - 1) / 2.0;
    v[i] = std::exp(-x * x / (2 * sigma * sigma));
    sum += v[i];
  }
  for (double& x : v) x /= sum;
  return as_float(v);
}

std::vector<double> normal(std::size_t n, double std, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d(0.0, std);
  std::vector<double> v(n);
  for (double& x : v) x = d(rng);
  return as_float(v);
}

std::vector<double> uniform(std::size_t n, double bound, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> d(-bound, bound);
  std::vector<double> v(n);
  for (double& x : v) x = d(rng);
  return as_float(v);
}

// Rows orthonormalised by modified Gram-Schmidt (rows <= cols).
std::vector<double> orthogonal(std::size_t rows, std::size_t cols, std::uint32_t seed) {
  std::vector<double> v = normal(rows * cols, 1.0, seed);
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t q = 0; q < r; ++q) {
      double dot = 0.0;
      for (std::size_t c = 0; c < cols; ++c) dot += v[r * cols + c] * v[q * cols + c];
      for (std::size_t c = 0; c < cols; ++c) v[r * cols + c] -= dot * v[q * cols + c];
    }
    double norm = 0.0;
    for (std::size_t c = 0; c < cols; ++c) norm += v[r * cols + c] * v[r * cols + c];
    for (std::size_t c = 0; c < cols; ++c) v[r * cols + c] /= std::sqrt(norm);
  }
  return as_float(v);
}

// SAM's PositionEmbeddingRandom grid, [h, w, 2] (x then y) in float32:
// ((cumsum(ones) - 0.5) / size) mapped to [-1, 1], as segment_anything
// computes it; `coords_first` gives [2, h, w] (torch.meshgrid stacked on
// dim 0). `extra` appends a constant coordinate (homogeneous 1).
std::vector<double> sam_grid(std::size_t h, std::size_t w, bool coords_first = false,
                             bool extra = false) {
  const std::size_t d = extra ? 3 : 2;
  std::vector<double> v(h * w * d);
  for (std::size_t y = 0; y < h; ++y)
    for (std::size_t x = 0; x < w; ++x) {
      const float cx = 2.0F * ((static_cast<float>(x + 1) - 0.5F) / static_cast<float>(w)) - 1.0F;
      const float cy = 2.0F * ((static_cast<float>(y + 1) - 0.5F) / static_cast<float>(h)) - 1.0F;
      const double c[3] = {cx, cy, 1.0};
      for (std::size_t k = 0; k < d; ++k)
        v[coords_first ? (k * h + y) * w + x : (y * w + x) * d + k] = c[k];
    }
  return as_float(v);
}

std::vector<double> as_half(std::vector<double> v) {
  for (double& x : v)
    x = static_cast<double>(
        onnx_reinit::half_bits_to_float(onnx_reinit::float_to_half_bits(static_cast<float>(x))));
  return v;
}

bool contains(const std::optional<std::string>& r, const std::string& what) {
  if (!r || r->find(what) == std::string::npos) UNSCOPED_INFO("reason: " << r.value_or("(none)"));
  return r && r->find(what) != std::string::npos;
}

}  // namespace

TEST_CASE("STFT/DFT bases are fixed constants", "[fixed_constants]") {
  for (std::size_t n : {64U, 128U, 256U, 512U}) {
    CAPTURE(n);
    const std::int64_t rows = static_cast<std::int64_t>(2 * (n / 2 + 1));
    const auto r = reason(stft_basis(n), {rows, 1, static_cast<std::int64_t>(n)});
    CHECK(contains(r, "DFT basis (rows are windowed sinusoids)"));
    // Without a window (a rectangular one).
    CHECK(contains(reason(stft_basis(n, false), {rows, 1, static_cast<std::int64_t>(n)}),
                   "DFT basis (rows are windowed sinusoids)"));
  }
  // The real and imaginary halves as two tensors (melspectrogram.onnx).
  std::vector<double> both = stft_basis(512);
  std::vector<double> real(both.begin(), both.begin() + 257 * 512);
  std::vector<double> imag(both.begin() + 257 * 512, both.end());
  CHECK(contains(reason(real, {257, 1, 512}), "DFT basis"));
  CHECK(contains(reason(imag, {257, 1, 512}), "DFT basis"));
  // As a MatMul weight x·W, [n, bins]: the sinusoids are the columns.
  std::vector<double> t = transposed(real, 257, 512);
  CHECK(contains(reason(t, {512, 257}), "values form a DFT"));
  // A DFT matrix as a MatMul weight [n, bins]: pure sinusoids along both axes.
  std::vector<double> dft;
  for (std::size_t t = 0; t < 64; ++t)
    for (std::size_t k = 0; k < 33; ++k)
      dft.push_back(std::cos(2 * pi * static_cast<double>(k * t) / 64.0));
  CHECK(contains(reason(as_float(dft), {64, 33}), "values form a DFT"));
  // A prefix of rows (large tensors are decoded only up to the cap).
  std::vector<double> prefix(both.begin(), both.begin() + 40 * 512);
  CHECK(contains(reason(prefix, {514, 1, 512}), "DFT basis"));
}

TEST_CASE("banks of windowed sinusoids at chosen frequencies", "[fixed_constants]") {
  // 24 Hann-windowed cosines at frequencies off the FFT bins, 400 taps.
  std::vector<double> v;
  for (int k = 0; k < 24; ++k)
    for (std::size_t t = 0; t < 400; ++t)
      v.push_back(std::cos(2 * pi * (3.3 + 7.1 * k) * static_cast<double>(t) / 400.0) *
                  hann(t, 400, false));
  CHECK(contains(reason(as_float(v), {24, 1, 400}), "windowed sinusoids"));
}

TEST_CASE("mel filterbanks are fixed constants in either orientation", "[fixed_constants]") {
  const auto fb = mel_filterbank(512, 32, 16000, 60, 3800);
  const auto r = reason(fb, {257, 32});
  CHECK(contains(r, "filterbank (non-negative, 9"));
  CHECK(contains(r, "zeros, contiguous bands)"));
  CHECK(contains(reason(transposed(fb, 257, 32), {32, 257}), "filterbank"));
  CHECK(contains(reason(mel_filterbank(400, 80, 16000, 0, 8000), {201, 80}), "filterbank"));
  // One negative value and it is not a filterbank (nor anything else).
  auto broken = fb;
  broken[5 * 32 + 1] = -1e-3;
  CHECK_FALSE(reason(broken, {257, 32}));
}

TEST_CASE("smoothing kernels and windows", "[fixed_constants]") {
  CHECK(contains(reason(gaussian_kernel(7, 1.5), {1, 1, 7}), "normalised smoothing kernel"));
  CHECK(contains(reason(gaussian_kernel(5, 1.0), {5}), "normalised smoothing kernel"));
  // A 2-D Gaussian, and the same kernel per channel of a depthwise Conv.
  const auto g = gaussian_kernel(5, 1.2);
  std::vector<double> g2, depthwise;
  for (double a : g)
    for (double b : g) g2.push_back(static_cast<double>(static_cast<float>(a * b)));
  for (int c = 0; c < 4; ++c) depthwise.insert(depthwise.end(), g2.begin(), g2.end());
  CHECK(contains(reason(g2, {1, 1, 5, 5}), "smoothing kernel"));
  CHECK(contains(reason(depthwise, {4, 1, 5, 5}), "smoothing kernel"));
  CHECK(contains(reason(as_float(std::vector<double>(5, 0.2)), {1, 1, 5}), "box (average) kernel"));
  CHECK(contains(reason(as_float(std::vector<double>(9, 1.0 / 9)), {1, 1, 3, 3}), "box"));
  // An asymmetric normalised kernel is not a smoothing kernel.
  CHECK_FALSE(reason(as_float({0.1, 0.2, 0.3, 0.4}), {1, 1, 4}));

  for (std::size_t n : {16U, 400U, 512U}) {
    std::vector<double> h(n), hs(n), hm(n);
    for (std::size_t i = 0; i < n; ++i) {
      h[i] = hann(i, n);
      hs[i] = hann(i, n, false);
      hm[i] = 0.54 - 0.46 * std::cos(2 * pi * static_cast<double>(i) / static_cast<double>(n));
    }
    CHECK(reason(as_float(h), {static_cast<std::int64_t>(n)}) ==
          "values form a window function (Hann)");
    CHECK(reason(as_float(hs), {1, 1, static_cast<std::int64_t>(n)}) ==
          "values form a window function (Hann)");
    CHECK(reason(as_float(hm), {static_cast<std::int64_t>(n)}) ==
          "values form a window function (Hamming)");
  }
}

TEST_CASE("identity, permutation, one-hot and integer matrices", "[fixed_constants]") {
  std::vector<double> eye(16 * 16, 0.0), perm(16 * 16, 0.0), hot(10 * 32, 0.0);
  for (std::size_t i = 0; i < 16; ++i) {
    eye[i * 16 + i] = 1.0;
    perm[i * 16 + (i * 5 + 3) % 16] = 1.0;
  }
  for (std::size_t i = 0; i < 10; ++i) hot[i * 32 + (i * 7) % 32] = 1.0;
  CHECK(reason(eye, {16, 16}) == "values are an identity matrix");
  CHECK(reason(eye, {16, 16, 1, 1}) == "values are an identity matrix");
  CHECK(reason(perm, {16, 16}) == "values are a permutation matrix");
  CHECK(reason(hot, {10, 32}) == "values are one-hot rows");
  CHECK(reason(transposed(hot, 10, 32), {32, 10}) == "values are one-hot columns");
  CHECK(reason({-1, 0, 1, -2, 0, 2, -1, 0, 1}, {1, 1, 3, 3}) == "all values are integers");
  // All zeros is zero initialisation, not a constant to keep.
  CHECK_FALSE(reason(std::vector<double>(64, 0.0), {8, 8}));
  CHECK_FALSE(reason({1.0, NAN, 0.0, 1.0}, {2, 2}));
}

TEST_CASE("sinusoidal position tables in both layouts", "[fixed_constants]") {
  for (bool interleaved : {true, false}) {
    CAPTURE(interleaved);
    CHECK(reason(position_table(128, 64, interleaved), {128, 64}) ==
          "values form a sinusoidal position table (every column is a sinusoid of the position)");
    CHECK(contains(reason(position_table(512, 256, interleaved), {1, 512, 256}), "position table"));
    // Prefix of a long table: positions beyond the cap are not decoded.
    auto big = position_table(64, 512, interleaved);
    CHECK(contains(fixed_constant_reason(big, shape{4096, 512}), "position table"));
  }
}

// The false-positive bound: none of these must be flagged. With N
// independent random tensors and no flag, the rate is below 3/N at 95%
// confidence (rule of three); N is printed.
TEST_CASE("random, orthogonal and Kaiming-like tensors are not constants", "[fixed_constants]") {
  const std::vector<shape> shapes = {
      {3, 3},         {4, 4},      {8, 8},        {16, 16},     {17, 5},       {32, 16},
      {64, 64},       {128, 32},   {257, 32},     {32, 257},    {512, 128},    {16, 512},
      {1, 1, 3},      {1, 1, 5},   {1, 1, 7},     {1, 1, 16},   {1, 1, 64},    {8, 1, 3, 3},
      {32, 1, 3, 3},  {16, 1, 5},  {64, 1, 16},   {64, 1, 64},  {258, 1, 256}, {32, 16, 3},
      {64, 32, 3, 3}, {128, 1, 1}, {24, 8, 1, 1}, {1, 128, 64}, {100, 16},     {4, 64, 16}};
  std::size_t tested = 0;
  for (const auto& s : shapes) {
    std::size_t n = 1;
    for (auto d : s) n *= static_cast<std::size_t>(d);
    const double fan_in = static_cast<double>(n / static_cast<std::size_t>(s[0]));
    for (std::uint32_t seed = 1; seed <= 20; ++seed) {
      CAPTURE(s, seed);
      // Kaiming normal, and PyTorch's default uniform(-1/sqrt(fan_in), ...).
      CHECK_FALSE(reason(normal(n, std::sqrt(2.0 / fan_in), seed), s));
      CHECK_FALSE(reason(uniform(n, 1.0 / std::sqrt(fan_in), seed + 1000), s));
      tested += 2;
    }
  }
  for (std::size_t rows : {4U, 16U, 64U, 128U})
    for (std::size_t cols : {16U, 64U, 128U, 256U}) {
      if (rows > cols) continue;
      for (std::uint32_t seed = 1; seed <= 10; ++seed) {
        CAPTURE(rows, cols, seed);
        CHECK_FALSE(reason(orthogonal(rows, cols, seed),
                           {static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)}));
        ++tested;
      }
    }
  // Smooth (low-pass) random rows: a random walk per row, the hardest case
  // for the spectral test short of a real sinusoid.
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    auto v = normal(64 * 32, 1.0, seed);
    for (std::size_t r = 0; r < 64; ++r)
      for (std::size_t t = 1; t < 32; ++t) v[r * 32 + t] += v[r * 32 + t - 1];
    CAPTURE(seed);
    CHECK_FALSE(reason(v, {64, 1, 32}));
    ++tested;
  }
  // float32 ramps (test fixtures, arange-like tables): linear columns fit
  // the sinusoid recurrence with a frequency of rounding noise.
  for (float step : {0.001F, 0.25F, 0.01F}) {
    std::vector<double> ramp;
    for (int i = 0; i < 640; ++i)
      ramp.push_back(static_cast<double>(0.1F + step * static_cast<float>(i)));
    CAPTURE(step);
    CHECK_FALSE(reason(ramp, {64, 10}));
    CHECK_FALSE(reason(ramp, {10, 64}));
    tested += 2;
  }
  WARN("random tensors checked: " << tested << " (false-positive rate < " << 3.0 / tested
                                  << " at 95%)");
}

// Issue 17, defect 3: a positional grid [64, 64, 2] (a meshgrid of two
// arithmetic progressions) was rewritten with xavier_uniform.
TEST_CASE("coordinate grids are fixed constants in every layout", "[fixed_constants]") {
  const std::string grid = "values form a coordinate grid";
  CHECK(reason(sam_grid(64, 64), {64, 64, 2}) ==
        "values form a coordinate grid (2 coordinates, each an arithmetic progression along an "
        "axis of its own)");
  CHECK(contains(reason(sam_grid(32, 48), {1, 32, 48, 2}), grid));
  CHECK(contains(reason(sam_grid(16, 24), {16 * 24, 2}), grid));  // flattened
  CHECK(contains(reason(sam_grid(16, 24, true), {2, 16, 24}), grid));
  CHECK(contains(reason(sam_grid(8, 8, false, true), {8, 8, 3}), grid));
  CHECK(contains(reason(as_half(sam_grid(64, 64)), {64, 64, 2}), grid));  // float16 model
  // A grid too large to decode whole is judged on its first rows.
  const auto big = sam_grid(64, 1024);
  CHECK(contains(fixed_constant_reason(big, shape{1024, 1024, 2}), grid));

  // Not grids: random values of grid shapes, a grid with 1% noise, a grid
  // whose y axis is not arithmetic (log-spaced), two interleaved ramps (both
  // coordinates along the same axis), a smooth random walk.
  for (std::uint32_t seed = 1; seed <= 20; ++seed) {
    CAPTURE(seed);
    CHECK_FALSE(reason(normal(64 * 64 * 2, 1.0, seed), {64, 64, 2}));
    CHECK_FALSE(reason(uniform(2 * 16 * 16, 1.0, seed), {2, 16, 16}));
    CHECK_FALSE(reason(normal(256 * 2, 0.1, seed), {256, 2}));
    auto noisy = sam_grid(16, 16);
    const auto noise = normal(noisy.size(), 0.01, seed);
    for (std::size_t i = 0; i < noisy.size(); ++i) noisy[i] += noise[i];
    CHECK_FALSE(reason(noisy, {16, 16, 2}));
  }
  auto logspaced = sam_grid(16, 16);
  for (std::size_t i = 1; i < logspaced.size(); i += 2) logspaced[i] = std::exp(logspaced[i]);
  CHECK_FALSE(reason(logspaced, {16, 16, 2}));
  std::vector<double> ramps;
  for (int i = 0; i < 64; ++i)
    ramps.push_back(static_cast<double>(0.1F + 0.01F * static_cast<float>(i)));
  CHECK_FALSE(reason(ramps, {32, 2}));
  CHECK_FALSE(reason(ramps, {2, 32}));
  auto walk = normal(32 * 2, 1.0, 3);
  for (std::size_t i = 2; i < walk.size(); ++i) walk[i] += walk[i - 2];
  CHECK_FALSE(reason(walk, {32, 2}));
}

TEST_CASE("stopping the spectral test early gives the full test's answer", "[fixed_constants]") {
  using onnx_reinit::detail::constant_context;
  const auto both_ways = [](const std::vector<double>& v, const shape& s) {
    const auto early = fixed_constant_reason(v, s, constant_context{});
    const auto full = fixed_constant_reason(v, s, constant_context{.stop_early = false});
    CHECK(early == full);
    return full;
  };
  std::size_t flagged = 0, cases = 0;
  const auto count = [&](const std::optional<std::string>& r) {
    flagged += r ? 1 : 0;
    ++cases;
  };
  // Learned-looking tensors, where the early stop fires.
  for (std::uint32_t seed = 1; seed <= 10; ++seed)
    for (const shape& s : {shape{64, 1, 32}, shape{258, 1, 256}, shape{128, 64}, shape{32, 257}}) {
      std::size_t n = 1;
      for (auto d : s) n *= static_cast<std::size_t>(d);
      CAPTURE(s, seed);
      count(both_ways(normal(n, 0.1, seed), s));
    }
  // A DFT basis (128 taps, 130 rows) whose first `noisy` rows are replaced by
  // noise of relative energy `level`: the decision turns at 10% of the rows
  // and at 1e-6 of the largest row's energy, where the early stop's bound
  // must hold.
  const std::vector<double> basis = stft_basis(128);
  for (std::size_t noisy : {5U, 12U, 13U, 14U, 20U, 60U})
    for (double level : {1e-9, 1e-8, 1e-7, 1e-5, 1e-2, 1.0}) {
      std::vector<double> v = basis;
      const auto noise = normal(noisy * 128, std::sqrt(level * 0.375), 7);
      std::copy(noise.begin(), noise.end(), v.begin());
      CAPTURE(noisy, level);
      count(both_ways(v, {130, 1, 128}));
    }
  // The largest row last: rows that look spread against the energy seen so
  // far are zero against the final largest (a bound taken from the rows
  // seen so far would stop wrongly here).
  for (double scale : {1e2, 1e4, 1e6}) {
    std::vector<double> v = basis;
    const auto noise = normal(20 * 128, 1e-3, 9);
    std::copy(noise.begin(), noise.end(), v.begin());
    for (std::size_t i = 129 * 128; i < 130 * 128; ++i) v[i] *= scale;
    CAPTURE(scale);
    count(both_ways(v, {130, 1, 128}));
  }
  // Both answers occur, so the comparison is not between two nothings.
  CHECK(flagged > 0);
  CHECK(flagged < cases);
}

TEST_CASE("which roles are checked", "[fixed_constants]") {
  using onnx_reinit::tensor_role;
  using onnx_reinit::detail::fixed_constant_check_applies;
  CHECK(fixed_constant_check_applies(tensor_role::weight, shape{257, 1, 512}));
  CHECK(fixed_constant_check_applies(tensor_role::recurrent_weight, shape{1, 64, 16}));
  CHECK(fixed_constant_check_applies(tensor_role::embedding, shape{512, 64}));
  CHECK(fixed_constant_check_applies(tensor_role::bias, shape{1, 128, 64}));
  CHECK_FALSE(fixed_constant_check_applies(tensor_role::bias, shape{1, 128}));
  CHECK_FALSE(fixed_constant_check_applies(tensor_role::norm_scale, shape{64}));
  CHECK_FALSE(fixed_constant_check_applies(tensor_role::running_var, shape{64}));
  CHECK_FALSE(fixed_constant_check_applies(tensor_role::unknown, shape{64, 64}));
}

// Constants of real models. The Gaussian smoothing filter of silero_vad
// (model.adaptive_normalization.filter_, [1, 1, 7]) is copied here; the
// larger ones are read from the real-model corpus (tools/fetch_corpus.sh).
TEST_CASE("constants taken from real models", "[fixed_constants][real]") {
  const std::vector<double> silero_filter = {
      0.03663284704089165, 0.11128076165914536, 0.2167453169822693, 0.270682156085968,
      0.2167453169822693,  0.11128076165914536, 0.03663284704089165};
  CHECK(contains(reason(silero_filter, {1, 1, 7}), "normalised smoothing kernel"));

  const std::filesystem::path root = onnx_reinit::test::corpus_dir();
  struct expected {
    const char* model;
    const char* tensor;
    const char* reason;
  };
  const std::vector<expected> cases = {
      {"melspectrogram.onnx", "0.stft.conv_real.weight", "DFT basis"},
      {"melspectrogram.onnx", "0.stft.conv_imag.weight", "DFT basis"},
      {"melspectrogram.onnx", "1.melW", "filterbank"},
      {"silero_vad_legacy.onnx", "model.feature_extractor.forward_basis_buffer", "DFT basis"},
      {"silero_vad_legacy.onnx", "model.adaptive_normalization.filter_", "smoothing kernel"},
      // Inside If branches, one basis per sample rate.
      {"silero_vad_v5.onnx", "stft.forward_basis_buffer", "DFT basis"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.model, c.tensor);
    // real_models_test fails (under CI always) when the corpus is missing.
    if (!std::filesystem::exists(root / c.model)) {
      WARN("skipped, model not present: " << (root / c.model).string());
      continue;
    }
    auto model = onnx_reinit::load_model(root / c.model);
    int found = 0;
    for (const auto& t : onnx_reinit::collect_model_tensors(std::as_const(model).proto())) {
      if (!t.ref.name.ends_with(c.tensor)) continue;
      ++found;
      const auto values = onnx_reinit::read_tensor_values<double>(model, *t.proto);
      const shape dims(t.proto->dims().begin(), t.proto->dims().end());
      CHECK(contains(reason(values, dims), c.reason));
    }
    CHECK(found >= 1);
  }
}

namespace {

// x [1, 1, 4096] -> Conv1d STFT front-end (basis [130, 1, 128], stride 64)
// -> learned Conv1d [16, 130, 3] -> Relu.
onnx::ModelProto stft_model() {
  using namespace onnx_reinit::test;
  graph_builder b;
  b.add_input("x", {1, 1, 4096});
  const auto basis = stft_basis(128);
  b.add_initializer("stft_basis", {130, 1, 128}, std::vector<float>(basis.begin(), basis.end()));
  const auto learned = normal(16 * 130 * 3, 0.05, 7);
  b.add_initializer("conv.weight", {16, 130, 3},
                    std::vector<float>(learned.begin(), learned.end()));
  b.add_node("Conv", {"x", "stft_basis"}, {"spec"},
             {make_attribute("strides", std::vector<std::int64_t>{64})});
  b.add_node("Conv", {"spec", "conv.weight"}, {"h"});
  b.add_node("Relu", {"h"}, {"y"});
  b.add_output("y", {1, 16, -1});
  return b.model();
}

const onnx_reinit::tensor_plan& plan_of(const std::vector<onnx_reinit::tensor_plan>& plans,
                                        const std::string& name) {
  for (const auto& p : plans)
    if (p.tensor.info.name == name) return p;
  FAIL("no plan for " << name);
  throw 0;
}

// The plan with `rules` given as --rule 1, --rule 2, ...
std::vector<onnx_reinit::tensor_plan> plan_with_rules(
    const std::vector<onnx_reinit::tensor_analysis>& analysis,
    const std::vector<std::string>& rules) {
  onnx_reinit::plan_options options;
  for (std::size_t i = 0; i < rules.size(); ++i)
    options.rules.push_back(onnx_reinit::parse_rule(rules[i], "--rule " + std::to_string(i + 1)));
  return onnx_reinit::make_plan(analysis, options);
}

}  // namespace

TEST_CASE("an STFT front-end is kept, the learned conv rewritten, a name rule overrides",
          "[fixed_constants][plan]") {
  namespace ori = onnx_reinit;
  auto model = ori::loaded_model::from_proto(stft_model());
  const auto analysis = ori::analyze_model(model);
  auto plan_with = [&](const std::vector<std::string>& rules) {
    return plan_with_rules(analysis, rules);
  };

  const auto plans = plan_with({});
  const auto& basis = plan_of(plans, "stft_basis");
  CHECK(basis.tensor.info.role == ori::tensor_role::weight);
  CHECK(basis.action == ori::plan_action::keep);
  CHECK(basis.reason == "values form a DFT basis (rows are windowed sinusoids)");
  CHECK(plan_of(plans, "conv.weight").action == ori::plan_action::rewrite);
  CHECK(plan_of(plans, "conv.weight").tensor.fixed_constant.empty());
  // What --plan and the report show.
  const auto outcomes = ori::preview_outcomes(plans, onnx_reinit::test::standard_registry());
  CHECK_THAT(ori::plan_table(plans, outcomes, false),
             Catch::Contains("keep: values form a DFT basis (rows are windowed sinusoids)"));
  CHECK_THAT(
      ori::report_json({}, plans, outcomes),
      Catch::Contains(R"j("reason":"values form a DFT basis (rows are windowed sinusoids)")j") ||
          Catch::Contains(
              R"j("reason": "values form a DFT basis (rows are windowed sinusoids)")j"));

  // Rewriting leaves the basis byte for byte and changes the learned conv.
  const auto before = ori::read_tensor_values<double>(model, model.proto().graph().initializer(0));
  const auto learned_before =
      ori::read_tensor_values<double>(model, model.proto().graph().initializer(1));
  ori::rewrite_model(model, plans, onnx_reinit::test::standard_registry(), {});
  CHECK(ori::read_tensor_values<double>(model, model.proto().graph().initializer(0)) == before);
  CHECK(ori::read_tensor_values<double>(model, model.proto().graph().initializer(1)) !=
        learned_before);

  // Role, op and `*` rules describe learned layers: the basis stays kept.
  for (const char* r : {"op:Conv&role:weight=normal", "role:weight=zeros", "*=normal"}) {
    CAPTURE(r);
    const auto p = plan_with({r});
    CHECK(plan_of(p, "stft_basis").action == ori::plan_action::keep);
    CHECK(plan_of(p, "conv.weight").action == ori::plan_action::rewrite);
  }
  // A rule naming the tensor rewrites it.
  for (const char* r : {"stft_basis=normal", "stft*=normal"}) {
    CAPTURE(r);
    const auto plans_with_rule = plan_with({r});
    const auto& p = plan_of(plans_with_rule, "stft_basis");
    CHECK(p.action == ori::plan_action::rewrite);
    CHECK(p.call.strategy == "normal");
  }
}

namespace {

// SAM/NeRF-style random Fourier features: coords [1, 256, 2] · G [2, 16],
// times 2π, then sin and cos (cos through a Cast, as a mixed-precision
// export writes it), concatenated, then a learned Linear W [32, 8] and Relu.
// Beside it, two learned layers on the same coordinates: W_relu [2, 16]
// feeding a Relu, and a SIREN layer W_siren [2, 16] feeding sin only.
onnx::ModelProto fourier_model() {
  using namespace onnx_reinit::test;
  graph_builder b;
  b.add_input("coords", {1, 256, 2});
  auto values = [](std::size_t n, std::uint32_t seed) {
    const auto v = normal(n, 1.0, seed);
    return std::vector<float>(v.begin(), v.end());
  };
  b.add_initializer("G", {2, 16}, values(32, 11));
  b.add_initializer("two_pi", {}, {static_cast<float>(2 * pi)});
  b.add_initializer("W", {32, 8}, values(256, 12));
  b.add_initializer("W_relu", {2, 16}, values(32, 13));
  b.add_initializer("W_siren", {2, 16}, values(32, 14));
  b.add_initializer("thirty", {}, {30.0F});
  b.add_node("MatMul", {"coords", "G"}, {"proj"});
  b.add_node("Mul", {"two_pi", "proj"}, {"angle"});
  b.add_node("Sin", {"angle"}, {"s"});
  b.add_node("Cast", {"angle"}, {"angle16"},
             {make_attribute("to", std::int64_t{onnx::TensorProto::FLOAT16})});
  b.add_node("Cos", {"angle16"}, {"c16"});
  b.add_node("Cast", {"c16"}, {"c"},
             {make_attribute("to", std::int64_t{onnx::TensorProto::FLOAT})});
  b.add_node("Concat", {"s", "c"}, {"features"}, {make_attribute("axis", std::int64_t{-1})});
  b.add_node("MatMul", {"features", "W"}, {"h"});
  b.add_node("Relu", {"h"}, {"y"});
  b.add_node("MatMul", {"coords", "W_relu"}, {"h2"});
  b.add_node("Relu", {"h2"}, {"y2"});
  b.add_node("MatMul", {"coords", "W_siren"}, {"h3"});
  b.add_node("Mul", {"h3", "thirty"}, {"h3s"});
  b.add_node("Sin", {"h3s"}, {"y3"});
  b.add_output("y", {1, 256, 8});
  b.add_output("y2", {1, 256, 16});
  b.add_output("y3", {1, 256, 16});
  return b.model();
}

}  // namespace

// Issue 17, defect 3: the Fourier-feature projection G of coords @ G, then
// sin/cos, is a fixed buffer (random by design, so its values cannot tell):
// it was rewritten without a word.
TEST_CASE("a random Fourier-feature projection is kept; learned layers are not",
          "[fixed_constants][plan]") {
  namespace ori = onnx_reinit;
  auto model = ori::loaded_model::from_proto(fourier_model());
  const auto analysis = ori::analyze_model(model);
  auto plan_with = [&](const std::vector<std::string>& rules) {
    return plan_with_rules(analysis, rules);
  };
  const auto plans = plan_with({});
  const auto& g = plan_of(plans, "G");
  CHECK(g.tensor.info.role == ori::tensor_role::weight);
  CHECK(g.action == ori::plan_action::keep);
  CHECK(g.reason ==
        "a random Fourier-feature projection (the layer's product feeds both sin and cos)");
  for (const char* learned : {"W", "W_relu", "W_siren"}) {
    CAPTURE(learned);
    CHECK(plan_of(plans, learned).tensor.fixed_constant.empty());
    CHECK(plan_of(plans, learned).action == ori::plan_action::rewrite);
  }
  // Only a rule naming it rewrites it.
  CHECK(plan_of(plan_with({"role:weight=normal"}), "G").action == ori::plan_action::keep);
  const auto named = plan_with({"G=normal(std=1)"});
  CHECK(plan_of(named, "G").action == ori::plan_action::rewrite);
  CHECK(plan_of(named, "G").call.strategy == "normal");
}

// Trained weights of real models are not flagged, the fixed constants among
// them are: every tensor the analysis flags in the real-model corpus is
// one of the known constants (hand-checked), and every other weight is left
// to the policy.
TEST_CASE("real models: only the fixed constants are flagged", "[fixed_constants][real]") {
  const std::filesystem::path root = onnx_reinit::test::corpus_dir();
  if (!std::filesystem::exists(root)) {
    WARN("skipped, models not present: " << root.string());
    return;
  }
  auto is_known_constant = [](const std::string& name) {
    for (const char* suffix :
         {"stft.forward_basis_buffer", "feature_extractor.forward_basis_buffer",
          "adaptive_normalization.filter_", "stft.conv_real.weight", "stft.conv_imag.weight",
          "1.melW"})
      if (name.ends_with(suffix)) return true;
    return false;
  };
  std::size_t weights = 0, flagged = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.path().extension() != ".onnx") continue;
    auto model = onnx_reinit::load_model(e.path());
    for (const auto& a : onnx_reinit::analyze_model(model)) {
      if (!a.is_float || !a.keep_reason.empty() ||
          !onnx_reinit::detail::fixed_constant_check_applies(a.info.role, a.info.shape))
        continue;
      CAPTURE(e.path().string(), a.info.name, a.fixed_constant);
      ++weights;
      flagged += a.fixed_constant.empty() ? 0 : 1;
      CHECK(a.fixed_constant.empty() != is_known_constant(a.info.name));
    }
  }
  WARN("real-model tensors checked: " << weights << ", flagged: " << flagged);
  CHECK(flagged > 0);
}
