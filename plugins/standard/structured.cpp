// Structured strategies: orthogonal, identity, dirac and sparse. Their
// values depend on each other (a QR, a permutation), so the host always
// passes the whole tensor.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "blocked_qr.h"
#include "onnx_reinit/sdk/parallel.h"
#include "onnx_reinit/sdk/plugin.h"
#include "strategy_lists.h"

namespace onnx_reinit::standard {
namespace {

// One rows x cols block of torch.nn.init.orthogonal_, in T: the Gaussian
// draw G from counters `first` on (row-major), QR of the tall orientation
// (G, or G^T when rows < cols), Q's columns flipped by sign(diag(R)) so the
// result is Haar distributed, transposed back when wide, times gain.
template <class T>
void orthogonal_block(const rng_stream& rng, const host_threads& threads, std::uint64_t first,
                      std::int64_t rows, std::int64_t cols, double gain, T* out) {
  const std::size_t size = static_cast<std::size_t>(rows * cols);
  std::vector<T> g(size);
  rng.normal(std::span<T>(g), first, 0.0, 1.0);
  const T scale = static_cast<T>(gain);
  if (rows < cols) {
    // Row-major G is column-major G^T, and column-major Q is row-major Q^T.
    sign_corrected_q(g.data(), cols, rows, threads);
    for (std::size_t i = 0; i < size; ++i) out[i] = scale * g[i];
    return;
  }
  std::vector<T> tall(size);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) tall[j * rows + i] = g[i * cols + j];
  sign_corrected_q(tall.data(), rows, cols, threads);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) out[i * cols + j] = scale * tall[j * rows + i];
}

class orthogonal_strategy : public basic_strategy<orthogonal_strategy> {
 public:
  explicit orthogonal_strategy(const param_values& p) : gain_(p.number("gain")) {
    require_finite("orthogonal", "gain", gain_);
  }
  template <class T>
  void fill_values(const tensor_info& t, const rng_stream& rng, std::uint64_t first,
                   std::span<T> out) const {
    const matrix_view v =
        whole_matrix_view("orthogonal", t, first, out.size(), default_rank::at_least_2);
    const std::int64_t block_size = v.rows * v.cols;
    // Blocks in parallel on the host's threads (each also parallel inside);
    // each block writes only its own range from its own counters.
    const host_threads threads(rng);
    threads.parallel_for(static_cast<std::uint64_t>(v.count), [&](std::uint64_t block) {
      const auto b = static_cast<std::int64_t>(block);
      // Counters start at the block's first element, so blocks differ.
      orthogonal_block<T>(rng, threads, static_cast<std::uint64_t>(b * block_size), v.rows, v.cols,
                          gain_, out.data() + b * block_size);
    });
  }
  // Orthonormal rows (or columns) give a mean square of 1 / max(rows, cols).
  std::optional<strategy::moments> target_moments(const tensor_info& t) const override {
    matrix_view v = resolve_matrix_view("orthogonal", t, default_rank::at_least_2);
    return strategy::moments{0.0, gain_ / std::sqrt(static_cast<double>(std::max(v.rows, v.cols)))};
  }

 private:
  double gain_;
};

class identity_strategy : public basic_strategy<identity_strategy> {
 public:
  explicit identity_strategy(const param_values& p) : gain_(p.number("gain")) {
    require_finite("identity", "gain", gain_);
  }
  template <class T>
  void fill_values(const tensor_info& t, const rng_stream&, std::uint64_t first,
                   std::span<T> out) const {
    const matrix_view v =
        whole_matrix_view("identity", t, first, out.size(), default_rank::exactly_2);
    std::fill(out.begin(), out.end(), T(0));
    for (std::int64_t b = 0; b < v.count; ++b)
      for (std::int64_t i = 0; i < std::min(v.rows, v.cols); ++i)
        out[static_cast<std::size_t>((b * v.rows + i) * v.cols + i)] = static_cast<T>(gain_);
  }

 private:
  double gain_;
};

// torch.nn.init.dirac_: for each group g and d < min(out/groups, in), a 1 at
// [g * out/groups + d, d, k1//2, k2//2, ...], zeros elsewhere.
class dirac_strategy : public basic_strategy<dirac_strategy> {
 public:
  explicit dirac_strategy(const param_values& p) : groups_(p.integer("groups")) {
    if (groups_ < 0)
      throw std::invalid_argument("dirac: parameter 'groups' must be >= 0 (0 = the tensor's)");
  }
  template <class T>
  void fill_values(const tensor_info& t, const rng_stream&, std::uint64_t first,
                   std::span<T> out) const {
    require_whole_tensor("dirac", t, first, out.size());
    std::int64_t groups = checked_groups(t);
    std::int64_t per_group = t.shape[0] / groups;
    std::int64_t spatial = 1, centre = 0;
    for (std::size_t i = 2; i < t.shape.size(); ++i) {
      centre = centre * t.shape[i] + t.shape[i] / 2;  // row-major offset of the centre tap
      spatial *= t.shape[i];
    }
    std::fill(out.begin(), out.end(), T(0));
    for (std::int64_t g = 0; g < groups; ++g)
      for (std::int64_t d = 0; d < std::min(per_group, t.shape[1]); ++d)
        out[static_cast<std::size_t>(((g * per_group + d) * t.shape[1] + d) * spatial + centre)] =
            T(1);
  }

 private:
  std::int64_t checked_groups(const tensor_info& t) const {
    std::string where = "dirac: tensor '" + t.name + "'";
    std::size_t rank = t.shape.size();
    if (rank < 3 || rank > 5)
      throw std::invalid_argument(where + " has rank " + text(rank) +
                                  "; dirac needs a 3-, 4- or 5-D convolution weight");
    if (t.element_count() <= 0) throw std::invalid_argument(where + " is empty");
    std::int64_t groups = groups_ == 0 ? t.groups : groups_;
    if (groups <= 0 || t.shape[0] % groups != 0)
      throw std::invalid_argument(where + ": " + text(t.shape[0]) +
                                  " output channels are not divisible by groups = " + text(groups));
    return groups;
  }

  std::int64_t groups_;
};

// torch.nn.init.sparse_ per matrix block: N(0, std^2), then in every column
// ceil(sparsity * rows) rows, the head of a random permutation, set to 0.
class sparse_strategy : public basic_strategy<sparse_strategy> {
 public:
  explicit sparse_strategy(const param_values& p)
      : sparsity_(p.number("sparsity")), std_(p.number("std")) {
    if (!(sparsity_ >= 0.0 && sparsity_ < 1.0))
      throw std::invalid_argument("sparse: parameter 'sparsity' must be in [0, 1)");
    require_finite("sparse", "std", std_);
  }
  template <class T>
  void fill_values(const tensor_info& t, const rng_stream& rng, std::uint64_t first,
                   std::span<T> out) const {
    const matrix_view v =
        whole_matrix_view("sparse", t, first, out.size(), default_rank::exactly_2);
    if (v.rows > std::numeric_limits<std::uint32_t>::max())
      throw std::invalid_argument("sparse: tensor '" + t.name + "' has too many rows");
    rng.normal(out, 0, 0.0, std_);
    // Positions come from another stream, so the values are the same bytes
    // as a plain normal fill.
    rng_stream positions = rng.substream(rng.c_state().stream + 1);
    std::int64_t zeros = static_cast<std::int64_t>(std::ceil(sparsity_ * double(v.rows)));
    std::vector<std::int64_t> perm(static_cast<std::size_t>(v.rows));
    for (std::int64_t column = 0; column < v.count * v.cols; ++column) {
      std::int64_t b = column / v.cols, c = column % v.cols;
      draw_rows(positions, static_cast<std::uint64_t>(column * v.rows), zeros, perm);
      for (std::int64_t k = 0; k < zeros; ++k)
        out[static_cast<std::size_t>((b * v.rows + perm[k]) * v.cols + c)] = T(0);
    }
  }
  // A fraction zeros/rows of each column is zero, the rest N(0, std^2).
  std::optional<strategy::moments> target_moments(const tensor_info& t) const override {
    matrix_view v = resolve_matrix_view("sparse", t, default_rank::exactly_2);
    const double zeros = std::ceil(sparsity_ * double(v.rows));
    return strategy::moments{0.0, std_ * std::sqrt(1.0 - zeros / double(v.rows))};
  }

 private:
  // The first `count` entries of a Fisher-Yates shuffle of 0..rows-1; draw i
  // uses Philox word `counter + i`, so each column has its own draws.
  static void draw_rows(const rng_stream& positions, std::uint64_t counter, std::int64_t count,
                        std::vector<std::int64_t>& perm) {
    std::iota(perm.begin(), perm.end(), std::int64_t{0});
    std::uint64_t rows = perm.size();
    for (std::int64_t i = 0; i < count; ++i) {
      std::uint64_t k = counter + static_cast<std::uint64_t>(i);
      std::uint32_t word = positions.block(k / 4)[k % 4];
      // Multiply-shift maps a 32-bit word onto [0, rows - i); the bias,
      // under rows / 2^32, is irrelevant for choosing zero positions.
      std::uint64_t j = static_cast<std::uint64_t>(i) +
                        ((std::uint64_t{word} * (rows - static_cast<std::uint64_t>(i))) >> 32);
      std::swap(perm[static_cast<std::size_t>(i)], perm[j]);
    }
  }

  double sparsity_, std_;
};

constexpr onnx_reinit_param_schema orthogonal_params[] = {
    param::number("gain", 1.0, "multiplier of the orthogonal matrix", 0.0)};
constexpr onnx_reinit_param_schema identity_params[] = {
    param::number("gain", 1.0, "value on the diagonal", 0.0)};
constexpr onnx_reinit_param_schema dirac_params[] = {param::integer(
    "groups", 0, "number of groups (output channels split evenly); 0 = the tensor's group", 0.0)};
constexpr onnx_reinit_param_schema sparse_params[] = {
    param::number("sparsity", 0.1, "fraction of each column set to zero, in [0, 1)", 0.0, 1.0,
                  ONNX_REINIT_RANGE_MAX_EXCLUSIVE),
    param::positive("std", 0.01, "standard deviation of the non-zero values")};

const onnx_reinit_strategy_desc descriptors[] = {
    describe_strategy<orthogonal_strategy>(
        "orthogonal", "(Semi-)orthogonal matrix per block (torch.nn.init.orthogonal_)",
        "per matrix block (rows = shape[0], cols = the rest, or the analysis' per-gate blocks): "
        "G ~ N(0, 1)^(rows x cols); Q R = qr(G, or G^T when rows < cols); Q *= sign(diag(R)); "
        "x = gain * Q (transposed back), so Q Q^T = gain^2 I when rows <= cols, Q^T Q = gain^2 I "
        "otherwise; G and the (blocked Householder) QR in the tensor's precision",
        orthogonal_params, 0),
    describe_strategy<identity_strategy>(
        "identity", "Identity matrix per 2-D block (torch.nn.init.eye_)",
        "x[i][j] = gain if i == j else 0, for a 2-D tensor or each matrix block", identity_params,
        0),
    describe_strategy<dirac_strategy>(
        "dirac", "Identity convolution (torch.nn.init.dirac_)",
        "3-5-D weight [out, in, k...]: x = 1 at [g * out/groups + d, d, k1//2, ...] for each "
        "group g and d < min(out/groups, in), 0 elsewhere",
        dirac_params, 0),
    describe_strategy<sparse_strategy>(
        "sparse", "Sparse normal matrix per 2-D block (torch.nn.init.sparse_)",
        "x ~ N(0, std^2), then in every column ceil(sparsity * rows) rows, chosen by a random "
        "permutation, set to 0",
        sparse_params, 0),
};

}  // namespace

std::span<const onnx_reinit_strategy_desc> structured_strategies() {
  return descriptors;
}

}  // namespace onnx_reinit::standard
