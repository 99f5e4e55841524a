// fixed_constant_reason: structure tests that fixed constants pass exactly
// and random or trained weights fail by orders of magnitude. Every tolerance
// below is set by float16/float32 rounding of the constant (what a true
// constant can be off by), far below what a learned tensor would need to
// pass by chance; each test's comment gives the numbers.
#include "fixed_constants.h"

#include <kiss_fft.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numbers>
#include <set>
#include <vector>

#include <fmt/format.h>

#include "checked_math.h"

namespace onnx_reinit::detail {
namespace {

constexpr double pi = std::numbers::pi;

// A row-major matrix view of the values: `rows` vectors of `cols` values.
struct matrix {
  std::span<const double> v;
  std::size_t rows = 0, cols = 0;
  double at(std::size_t r, std::size_t c) const { return v[r * cols + c]; }
  // The i-th vector along rows (by_rows) or columns, element j.
  double get(bool by_rows, std::size_t i, std::size_t j) const {
    return by_rows ? at(i, j) : at(j, i);
  }
  std::size_t count(bool by_rows) const { return by_rows ? rows : cols; }
  std::size_t length(bool by_rows) const { return by_rows ? cols : rows; }
};

// Eight independent maxima: a single one would wait on every comparison
// (and these run over up to 2^18 values per tensor).
double max_abs(std::span<const double> v) {
  constexpr std::size_t lanes = 8;
  double m[lanes] = {};
  std::size_t i = 0;
  for (; i + lanes <= v.size(); i += lanes)
    for (std::size_t k = 0; k < lanes; ++k) m[k] = std::max(m[k], std::abs(v[i + k]));
  for (; i < v.size(); ++i) m[0] = std::max(m[0], std::abs(v[i]));
  return *std::max_element(std::begin(m), std::end(m));
}

std::string percent(double fraction) {
  return fmt::format("{}%", static_cast<int>(std::floor(fraction * 100.0)));
}

// ---- exact matrices ----------------------------------------------------

std::optional<std::string> identity_like(const matrix& m) {
  if (m.rows != m.cols || m.rows < 2) return std::nullopt;
  const double d = m.at(0, 0);
  bool identity = d != 0.0, permutation = true;
  std::vector<int> column_ones(m.cols, 0);
  for (std::size_t r = 0; r < m.rows && (identity || permutation); ++r) {
    int ones = 0;
    for (std::size_t c = 0; c < m.cols; ++c) {
      const double x = m.at(r, c);
      if (r == c ? x != d : x != 0.0) identity = false;
      if (x == 1.0) {
        ++ones;
        ++column_ones[c];
      } else if (x != 0.0) {
        permutation = false;
      }
    }
    if (ones != 1) permutation = false;
  }
  if (identity)
    return d == 1.0 ? "values are an identity matrix" : "values are a scaled identity matrix";
  if (permutation &&
      std::all_of(column_ones.begin(), column_ones.end(), [](int n) { return n == 1; }))
    return "values are a permutation matrix";
  return std::nullopt;
}

// Every vector holds exactly one non-zero, equal to 1.
bool one_hot(const matrix& m, bool by_rows) {
  if (m.count(by_rows) < 2 || m.length(by_rows) < 2) return false;
  for (std::size_t i = 0; i < m.count(by_rows); ++i) {
    int nonzero = 0;
    for (std::size_t j = 0; j < m.length(by_rows); ++j) {
      const double x = m.get(by_rows, i, j);
      if (x == 0.0) continue;
      if (x != 1.0 || ++nonzero > 1) return false;
    }
    if (nonzero != 1) return false;
  }
  return true;
}

// Trained float weights are never all integers: a weight of std 0.05 lands
// on an integer with probability ~2^-23 per value in float32 (only 0 itself
// is representable nearby). Quantised-then-dequantised weights are
// scale·int, not integers. Binarised (±1) float weights do pass: documented.
bool all_integers(std::span<const double> v) {
  return std::all_of(v.begin(), v.end(),
                     [](double x) { return std::abs(x) <= 16777216.0 && x == std::round(x); });
}

// ---- coordinate grids ----------------------------------------------------

// One coordinate of a grid, as laid out in memory: s[i] = a + b·((i / inner)
// mod n), i.e. an arithmetic progression of n values along one axis
// (stride `inner`), repeated along the axes outside it. inner = 0: the
// vector is not one (or is constant).
struct grid_axis {
  std::size_t inner = 0, n = 0;
};

// A meshgrid repeats each coordinate exactly (the same value computed
// again, or copied): runs and restarts are found by equality. The values
// along the axis are compared with the line through the first and the last
// of the progression, within three float16 roundings (4.9e-4 of the peak
// each) and never more than half a step, so a fine grid's neighbours stay
// apart. A random or trained vector has no repeats at all (inner stride
// 1 for every coordinate, which the nesting test below rejects), and
// matches a line at its L-2 other values to 0.2% of its range with
// probability ~0.004^(L-2).
grid_axis progression(std::span<const double> s) {
  const std::size_t length = s.size();
  const double a = s[0];
  std::size_t inner = 1;
  while (inner < length && s[inner] == a) ++inner;
  if (inner == length) return {};
  // The progression restarts where its first value comes back; else it
  // runs to the end (the outermost axis, or a prefix of rows).
  std::size_t n = 2;
  while (n * inner < length && s[n * inner] != a) ++n;
  const double b = (s[(n - 1) * inner] - a) / static_cast<double>(n - 1);
  const double tol = std::min(2e-3 * max_abs(s), 0.5 * std::abs(b));
  for (std::size_t i = 0; i < length; ++i)
    if (std::abs(s[i] - (a + b * static_cast<double>((i / inner) % n))) > tol) return {};
  return {inner, n};
}

// A meshgrid: D coordinates (D = 2..4) stored along the last axis
// ([H, W, 2], [H·W, 2]: interleaved) or the first ([2, H, W]), each an
// arithmetic progression along an axis of its own, the axes nesting
// (inner strides 1, n0, n0·n1, ...), coordinates constant along the other
// axes. A coordinate that is constant everywhere (a homogeneous 1) may
// join; at least two must vary. Integer grids are caught before as
// integers; this is for normalised ones ((i + 0.5) / W mapped to [-1, 1]).
std::optional<std::string> coordinate_grid(std::span<const double> v,
                                           std::span<const std::int64_t> dims, bool complete) {
  for (bool last : {true, false}) {
    if (!last && !complete) break;  // the prefix may lack whole coordinates
    const auto d = static_cast<std::size_t>(last ? dims.back() : dims.front());
    if (d < 2 || d > 4 || v.size() % d != 0) continue;
    const std::size_t length = v.size() / d;
    if (length < 8) continue;
    std::vector<grid_axis> axes;
    std::vector<double> c(length);
    bool ok = true;
    for (std::size_t k = 0; k < d && ok; ++k) {
      for (std::size_t i = 0; i < length; ++i) c[i] = last ? v[i * d + k] : v[k * length + i];
      const grid_axis g = progression(c);
      if (g.inner > 0)
        axes.push_back(g);
      else
        ok = std::all_of(c.begin(), c.end(), [&](double x) { return x == c[0]; });
    }
    if (!ok || axes.size() < 2) continue;
    std::sort(axes.begin(), axes.end(),
              [](const grid_axis& x, const grid_axis& y) { return x.inner < y.inner; });
    std::size_t stride = 1;
    for (const grid_axis& g : axes) {
      ok = ok && g.inner == stride;
      stride *= g.n;
    }
    if (ok && (!complete || stride == length))
      return fmt::format(
          "values form a coordinate grid ({} coordinates, each an arithmetic progression along "
          "an axis of its own)",
          axes.size());
  }
  return std::nullopt;
}

// ---- windows and smoothing kernels -------------------------------------

struct named_window {
  const char* name;
  std::function<double(double)> shape;  // of t = i / N in [0, 1]
};

const std::vector<named_window>& windows() {
  static const std::vector<named_window> w = {
      {"Hann", [](double t) { return 0.5 - 0.5 * std::cos(2 * pi * t); }},
      {"Hamming", [](double t) { return 0.54 - 0.46 * std::cos(2 * pi * t); }},
      {"Blackman",
       [](double t) { return 0.42 - 0.5 * std::cos(2 * pi * t) + 0.08 * std::cos(4 * pi * t); }},
      {"Bartlett", [](double t) { return 1.0 - std::abs(2.0 * t - 1.0); }},
  };
  return w;
}

// A named window (symmetric, N = n-1, or periodic, N = n, as torch and
// numpy make them), up to a positive scale fitted by least squares. The
// tolerance, 2e-3 of the peak, is 4x float16's relative rounding (4.9e-4);
// a learned vector of n >= 4 values matching a fixed curve that closely is
// out of the question (each value would have to fall in a band 0.4% of its
// range wide).
std::optional<std::string> window_function(std::span<const double> v) {
  const std::size_t n = v.size();
  if (n < 4) return std::nullopt;
  const double peak = max_abs(v);
  for (const auto& w : windows()) {
    for (double denominator : {static_cast<double>(n - 1), static_cast<double>(n)}) {
      std::vector<double> ref(n);
      double vw = 0.0, ww = 0.0;
      for (std::size_t i = 0; i < n; ++i) {
        ref[i] = w.shape(static_cast<double>(i) / denominator);
        vw += v[i] * ref[i];
        ww += ref[i] * ref[i];
      }
      if (ww == 0.0 || vw <= 0.0) continue;
      const double s = vw / ww;
      bool fits = true;
      for (std::size_t i = 0; i < n && fits; ++i) fits = std::abs(v[i] - s * ref[i]) <= 2e-3 * peak;
      if (fits) return fmt::format("values form a window function ({})", w.name);
    }
  }
  return std::nullopt;
}

// Each kernel slice (Conv [M, C, k...]: every [m, c] over the spatial dims;
// otherwise the whole tensor) is non-negative, mirror-symmetric along every
// spatial axis and sums to 1. Symmetric values computed by one formula round
// to the same float, so symmetry is checked to 1e-5 of the peak; the sum to
// 1e-3 (k float16 roundings of values ~1/k add up to ~5e-4). A trained
// kernel is non-negative with probability 2^-k and exactly symmetric never.
std::optional<std::string> smoothing_kernel(std::span<const double> v,
                                            std::span<const std::int64_t> shape) {
  std::vector<std::size_t> spatial;
  std::size_t slices = 1;
  if (shape.size() >= 3) {
    slices = static_cast<std::size_t>(shape[0] * shape[1]);
    for (std::size_t i = 2; i < shape.size(); ++i)
      spatial.push_back(static_cast<std::size_t>(shape[i]));
  } else {
    for (auto d : shape) spatial.push_back(static_cast<std::size_t>(d));
  }
  std::size_t k = 1;
  for (auto d : spatial) k *= d;
  if (k < 2 || slices * k != v.size()) return std::nullopt;
  // Learned kernels have negative values: out before anything else.
  if (std::any_of(v.begin(), v.end(), [](double x) { return x < 0.0; })) return std::nullopt;
  const double peak = max_abs(v);
  bool box = true;
  for (std::size_t s = 0; s < slices; ++s) {
    auto kernel = v.subspan(s * k, k);
    double sum = 0.0;
    for (double x : kernel) {
      if (x < 0.0) return std::nullopt;
      sum += x;
      box = box && x == kernel[0];
    }
    if (std::abs(sum - 1.0) > 1e-3) return std::nullopt;
    // Mirror along each axis: index i with coordinate c on axis a maps to
    // the one with coordinate dim-1-c.
    std::size_t stride = k;
    for (std::size_t a = 0; a < spatial.size(); ++a) {
      const std::size_t dim = spatial[a];
      stride /= dim;
      for (std::size_t i = 0; i < k; ++i) {
        const std::size_t c = (i / stride) % dim;
        const std::size_t j = i + (dim - 1 - 2 * c) * stride;
        if (std::abs(kernel[i] - kernel[j]) > 1e-5 * peak) return std::nullopt;
      }
    }
  }
  if (box) return "values form a box (average) kernel (all equal, sums to 1)";
  return "values form a normalised smoothing kernel (symmetric, sums to 1)";
}

// ---- filterbanks -------------------------------------------------------

// Non-negative, at least half exact zeros, and along one axis every vector's
// non-zeros form one contiguous band, with bands in at least two places.
// Trained weights have no exact zeros (float32 lands on 0 with probability
// ~1e-9 per value); pruned weights have zeros but keep both signs and
// scattered support.
std::optional<std::string> filterbank(const matrix& m) {
  if (m.rows < 2 || m.cols < 2) return std::nullopt;
  std::size_t zeros = 0;
  for (double x : m.v) {
    if (x < 0.0) return std::nullopt;
    zeros += x == 0.0 ? 1 : 0;
  }
  const double zero_fraction = static_cast<double>(zeros) / static_cast<double>(m.v.size());
  if (zero_fraction < 0.5) return std::nullopt;
  for (bool by_rows : {false, true}) {
    std::set<std::size_t> starts;
    bool contiguous = true;
    for (std::size_t i = 0; i < m.count(by_rows) && contiguous; ++i) {
      int runs = 0;
      bool in_run = false;
      for (std::size_t j = 0; j < m.length(by_rows); ++j) {
        const bool nz = m.get(by_rows, i, j) != 0.0;
        if (nz && !in_run) {
          ++runs;
          starts.insert(j);
        }
        in_run = nz;
      }
      contiguous = runs <= 1;
    }
    if (contiguous && starts.size() >= 2)
      return fmt::format("values form a filterbank (non-negative, {} zeros, contiguous bands)",
                         percent(zero_fraction));
  }
  return std::nullopt;
}

// ---- pure sinusoids: position tables and DFT matrices ------------------

// A pure sinusoid x[p] = a·sin(w·p + phi) satisfies x[p+1] + x[p-1] =
// 2cos(w)·x[p] exactly. Fit c = 2cos(w) by least squares and require every
// residual within tol: 4 roundings of a float16 value (4 · 4.9e-4 of the
// amplitude), plus float32's error in the argument w·p (6e-8·p, up to the
// vector length). A learned vector misses by about its own scale.
// Returns w, or nullopt when the vector is not a sinusoid.
std::optional<double> sinusoid_frequency(const matrix& m, bool by_rows, std::size_t i,
                                         double amplitude) {
  const std::size_t n = m.length(by_rows);
  double num = 0.0, den = 0.0;
  double peak = std::max(std::abs(m.get(by_rows, i, 0)), std::abs(m.get(by_rows, i, n - 1)));
  for (std::size_t p = 1; p + 1 < n; ++p) {
    const double x = m.get(by_rows, i, p);
    num += (m.get(by_rows, i, p + 1) + m.get(by_rows, i, p - 1)) * x;
    den += x * x;
    peak = std::max(peak, std::abs(x));
  }
  const double tol = amplitude * (2e-3 + 3e-7 * static_cast<double>(n));
  // A vector within rounding of zero (sin(πp) computed in floating point)
  // fits, with no frequency of its own.
  if (peak <= tol) return 0.0;
  const double c = den > 0.0 ? num / den : 2.0;
  for (std::size_t p = 1; p + 1 < n; ++p) {
    const double r = m.get(by_rows, i, p + 1) + m.get(by_rows, i, p - 1) - c * m.get(by_rows, i, p);
    if (std::abs(r) > tol) return std::nullopt;
  }
  return std::acos(std::clamp(c / 2.0, -1.0, 1.0));
}

// Frequencies all integer multiples of the smallest: a DFT matrix (bins
// k·2π/N); geometric frequencies (1/10000^(2i/d)) are a position table.
bool equally_spaced(std::vector<double> w) {
  std::sort(w.begin(), w.end());
  const auto first = std::find_if(w.begin(), w.end(), [](double x) { return x > 1e-4; });
  if (first == w.end()) return false;
  const double step = *first;
  return std::all_of(first, w.end(), [&](double x) {
    const double k = x / step;
    return std::abs(k - std::round(k)) < 0.02;
  });
}

std::optional<std::string> sinusoid_table(const matrix& m, double amplitude) {
  for (bool by_rows : {false, true}) {
    const std::size_t n = m.length(by_rows), count = m.count(by_rows);
    if (n < 8 || count < 2) continue;
    std::vector<double> frequencies;
    std::size_t fits = 0, misses = 0;
    for (std::size_t i = 0; i < count; ++i) {
      auto w = sinusoid_frequency(m, by_rows, i, amplitude);
      // More than 5% of the vectors missed: fewer than 95% can fit, which
      // the test below then finds; the remaining vectors cannot change it.
      if (!w && ++misses * 20 > count) break;
      if (!w) continue;
      ++fits;
      // Oscillating: at least a quarter period over the vector. Constant and
      // linear vectors fit the recurrence with w = 0, or with a w of
      // rounding noise (a float32 ramp gives w ~ 3e-4: 0.02 rad over 64).
      if (*w * static_cast<double>(n) >= pi / 2) frequencies.push_back(*w);
    }
    // 95% of vectors, and at least two that oscillate.
    if (fits * 20 < count * 19 || frequencies.size() < 2) continue;
    const char* what = by_rows ? "rows" : "columns";
    if (equally_spaced(frequencies))
      return fmt::format(
          "values form a DFT matrix ({} are sinusoids of equally spaced frequencies)", what);
    if (!by_rows && amplitude <= 1.0 + 1e-3)
      return "values form a sinusoidal position table (every column is a sinusoid of the "
             "position)";
    return fmt::format("values form a sinusoid table ({} are pure sinusoids)", what);
  }
  return std::nullopt;
}

// ---- windowed sinusoid banks (STFT/DFT bases): spectral test ------------

class fft {
 public:
  explicit fft(int n) : n_(n), cfg_(kiss_fft_alloc(n, 0, nullptr, nullptr)), in_(n), out_(n) {
    if (cfg_ == nullptr) throw std::bad_alloc();
  }
  ~fft() { kiss_fft_free(cfg_); }
  fft(const fft&) = delete;
  fft& operator=(const fft&) = delete;

  // One-sided power spectrum, bins 0..n/2 (the two mirrored bins summed).
  template <class Values>
  std::vector<double> power(const Values& x) {
    for (int i = 0; i < n_; ++i) in_[i] = {static_cast<float>(x(i)), 0.0F};
    kiss_fft(cfg_, in_.data(), out_.data());
    std::vector<double> p(static_cast<std::size_t>(n_ / 2 + 1), 0.0);
    for (int k = 0; k < n_; ++k) {
      const double e =
          static_cast<double>(out_[k].r) * out_[k].r + static_cast<double>(out_[k].i) * out_[k].i;
      p[static_cast<std::size_t>(std::min(k, n_ - k))] += e;
    }
    return p;
  }

 private:
  int n_;
  kiss_fft_cfg cfg_;
  std::vector<kiss_fft_cpx> in_, out_;
};

// A row is a windowed sinusoid when at least 90% of its energy lies within
// ±2 bins of its peak (one-sided spectrum). A windowed sinusoid on a bin
// puts all of it there (Hann: ±1 bin, Blackman: ±2); off a bin, Hann keeps
// over 99% and even a rectangular window ~92%. A random or trained row of
// length L spreads its energy over L/2+1 bins, ~5/(L/2+1) in any 5: 0.04
// at L = 256, 0.55 at L = 16, the shortest length tested. Rows are flagged
// as a bank only when at least 4 non-zero rows, 90% of them, pass and their
// peaks sit at different frequencies (distinct peaks >= a quarter of the
// rows: real and imaginary halves share each bin), so smooth trained rows
// all peaking at DC do not pass. fixed_constants_test measures the false
// positives on random and orthogonal matrices of every length from 16.
//
// Random and trained rows fail at once, so the test stops as soon as the
// rows seen already decide it: a row that is spread (not concentrated) and
// holds more than 1e-6 of an upper bound on the largest row energy is
// non-zero and spread whatever the other rows hold, and once more than a
// tenth of all rows are such, fewer than 90% of the non-zero rows can be
// concentrated. The bound is Parseval's with the largest magnitude `peak`:
// a row's spectrum total is n times its sum of squares, at most n·n·peak²,
// which float rounding in the FFT changes by far less than the 1% margin.
// Stopping early thus gives the same answer as the full test
// (fixed_constants_test compares them at the thresholds).
std::optional<std::string> sinusoid_bank(const matrix& m, bool rows, bool columns, double peak,
                                         bool stop_early) {
  for (bool by_rows : {true, false}) {
    if (by_rows ? !rows : !columns) continue;
    const std::size_t n = m.length(by_rows), count = m.count(by_rows);
    if (n < 16 || count < 4 || n > (1U << 16)) continue;
    fft f(static_cast<int>(n));
    struct row {
      double total = 0.0, near = 0.0;
      std::size_t peak = 0;
    };
    std::vector<row> spectra(count);
    double most = 0.0;
    const double bound = 1.01 * static_cast<double>(n) * static_cast<double>(n) * peak * peak;
    std::size_t surely_spread = 0;
    bool decided = false;
    for (std::size_t i = 0; i < count && !decided; ++i) {
      auto p = f.power([&](int j) { return m.get(by_rows, i, static_cast<std::size_t>(j)); });
      row& r = spectra[i];
      for (double e : p) r.total += e;
      r.peak = static_cast<std::size_t>(std::max_element(p.begin(), p.end()) - p.begin());
      for (std::size_t k = r.peak >= 2 ? r.peak - 2 : 0; k <= std::min(r.peak + 2, p.size() - 1);
           ++k)
        r.near += p[k];
      most = std::max(most, r.total);
      if (stop_early && !(r.near >= 0.9 * r.total) && r.total > 1e-6 * bound)
        decided = ++surely_spread * 10 > count;
    }
    if (decided) continue;
    std::size_t nonzero = 0, concentrated = 0;
    std::set<std::size_t> peaks;
    for (const row& r : spectra) {
      // The sin(0·t) and sin(πt) rows of a basis are zero, or float noise
      // (1e-6 of the energy is an amplitude of 1e-3: float32 rounding of sin).
      if (r.total <= 1e-6 * most) continue;
      ++nonzero;
      if (r.near >= 0.9 * r.total) {
        ++concentrated;
        peaks.insert(r.peak);
      }
    }
    if (nonzero < 4 || concentrated * 10 < nonzero * 9 || peaks.size() * 4 < concentrated ||
        peaks.size() < 2)
      continue;
    const char* what = by_rows ? "rows" : "columns";
    // The peaks cover the bins between the lowest and the highest (a
    // frequency per bin): a DFT basis; otherwise a bank of chosen
    // frequencies.
    const std::size_t span = *peaks.rbegin() - *peaks.begin() + 1;
    if (peaks.size() * 5 >= span * 4)
      return fmt::format("values form a DFT basis ({} are windowed sinusoids)", what);
    return fmt::format(
        "values form a bank of windowed sinusoids ({} each concentrated at one frequency)", what);
  }
  return std::nullopt;
}

}  // namespace

bool fixed_constant_check_applies(tensor_role role, std::span<const std::int64_t> shape) {
  switch (role) {
    case tensor_role::weight:
    case tensor_role::recurrent_weight:
    case tensor_role::embedding:
      return true;
    case tensor_role::bias:
      return std::count_if(shape.begin(), shape.end(), [](std::int64_t d) { return d > 1; }) >= 2;
    default:
      return false;
  }
}

std::optional<std::string> fixed_constant_reason(std::span<const double> values,
                                                 std::span<const std::int64_t> shape,
                                                 const constant_context& context) {
  // Leading unit dims are batch dims of one: [1, P, d] is a [P, d] table.
  std::vector<std::int64_t> dims(shape.begin(), shape.end());
  while (dims.size() > 1 && dims.front() == 1) dims.erase(dims.begin());
  const std::optional<std::int64_t> count = checked_product(dims);
  if (!count || dims.empty() || *count < 3) return std::nullopt;
  std::size_t numel = static_cast<std::size_t>(*count);
  bool complete = values.size() >= numel;
  if (!complete) {
    const std::size_t slice = numel / static_cast<std::size_t>(dims[0]);
    const std::size_t rows = values.size() / slice;
    if (rows < 2) return std::nullopt;
    dims[0] = static_cast<std::int64_t>(rows);
    numel = rows * slice;
  }
  values = values.first(numel);
  if (!std::all_of(values.begin(), values.end(), [](double x) { return std::isfinite(x); }))
    return std::nullopt;
  if (std::all_of(values.begin(), values.end(), [](double x) { return x == 0.0; }))
    return std::nullopt;

  const double peak = max_abs(values);
  // [d0, rest]: rows of a table or matrix, output channels of a Conv.
  const matrix first{values, static_cast<std::size_t>(dims[0]),
                     numel / static_cast<std::size_t>(dims[0])};
  if (complete)
    if (auto r = identity_like(first)) return r;
  if (one_hot(first, true)) return "values are one-hot rows";
  if (one_hot(first, false)) return "values are one-hot columns";
  if (all_integers(values)) return "all values are integers";
  if (auto r = coordinate_grid(values, dims, complete)) return r;

  const auto non_unit =
      std::count_if(dims.begin(), dims.end(), [](std::int64_t d) { return d > 1; });
  if (complete && non_unit == 1)
    if (auto r = window_function(values)) return r;
  if (complete)
    if (auto r = smoothing_kernel(values, shape)) return r;
  if (auto r = filterbank(first)) return r;
  // Windowed sinusoids along the last axis (a Conv1d basis [F, 1, n] or
  // [F, C, n]) first: a windowed basis's columns are pure sinusoids too
  // (w(t)·cos(2πkt/n) over k), which the table test would name first.
  const auto last = static_cast<std::size_t>(dims.back());
  const matrix along_last{values, numel / last, last};
  if (auto r = sinusoid_bank(along_last, true, false, peak, context.stop_early)) return r;
  if (auto r = sinusoid_table(first, peak)) return r;
  // And along columns of a matrix (x·W with W [n, F]).
  if (dims.size() == 2)
    if (auto r = sinusoid_bank(first, false, true, peak, context.stop_early)) return r;
  return std::nullopt;
}

}  // namespace onnx_reinit::detail
