// The figures the writer returns for each tensor it writes (save_result):
// mean and population std of the values as stored, measured from the bytes
// as they go to the file.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "io_internal.h"
#include "parallel_for.h"

namespace onnx_reinit {
namespace {

double stored_value(element_type type, const std::byte* p) {
  switch (type) {
    case element_type::float32: {
      float v;
      std::memcpy(&v, p, sizeof v);
      return v;
    }
    case element_type::float64: {
      double v;
      std::memcpy(&v, p, sizeof v);
      return v;
    }
    case element_type::float16:
    case element_type::bfloat16: {
      std::uint16_t bits;
      std::memcpy(&bits, p, sizeof bits);
      return type == element_type::float16 ? half_bits_to_float(bits)
                                           : bfloat16_bits_to_float(bits);
    }
  }
  return 0.0;
}

}  // namespace

void value_stats::add(std::span<const std::byte> bytes) {
  const std::size_t size = element_size(type_);
  std::size_t n = bytes.size() / size;
  const std::byte* p = bytes.data();
  while (n > 0) {
    if (in_block_ == 0 && n >= 2 * block) {
      const std::size_t blocks = n / block;
      add_blocks(p, blocks);
      p += blocks * block * size;
      n -= blocks * block;
      continue;
    }
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(n, block - in_block_));
    add_values(p, take);
    p += take * size;
    n -= take;
    if (in_block_ == block) {
      const block_figures b = open_block();
      merge(b.count, b.mean, b.m2);
      in_block_ = 0;
      std::fill(std::begin(sum_), std::end(sum_), 0.0);
      std::fill(std::begin(squares_), std::end(squares_), 0.0);
    }
  }
}

// Element j of the block always lands in lane j % 8: independent sums keep
// the loop pipelined (and let it vectorise), and the split into calls
// changes nothing.
template <class Decode>
void value_stats::add_run(const std::byte* p, std::size_t n, std::size_t size, Decode decode) {
  if (n > 0 && in_block_ == 0) shift_ = decode(p);
  auto one = [&](std::size_t i) {
    const double d = decode(p + i * size) - shift_;
    const auto lane = static_cast<std::size_t>((in_block_ + i) % lanes);
    sum_[lane] += d;
    squares_[lane] += d * d;
  };
  std::size_t i = 0;
  for (; i < n && (in_block_ + i) % lanes != 0; ++i) one(i);
  // Local copies: the sums stay in registers, clear of any aliasing.
  double sum[lanes], squares[lanes];
  std::copy(std::begin(sum_), std::end(sum_), sum);
  std::copy(std::begin(squares_), std::end(squares_), squares);
  const double shift = shift_;
  for (; i + lanes <= n; i += lanes)  // lane-aligned: element i + k goes to lane k
    for (std::size_t k = 0; k < lanes; ++k) {
      const double d = decode(p + (i + k) * size) - shift;
      sum[k] += d;
      squares[k] += d * d;
    }
  std::copy(sum, sum + lanes, sum_);
  std::copy(squares, squares + lanes, squares_);
  for (; i < n; ++i) one(i);
  in_block_ += n;
}

void value_stats::add_values(const std::byte* p, std::size_t n) {
  switch (type_) {
    case element_type::float32:
      return add_run(p, n, 4, [](const std::byte* q) {
        float v;
        std::memcpy(&v, q, sizeof v);
        return static_cast<double>(v);
      });
    case element_type::float64:
      return add_run(p, n, 8, [](const std::byte* q) {
        double v;
        std::memcpy(&v, q, sizeof v);
        return v;
      });
    case element_type::float16:
    case element_type::bfloat16:
      return add_run(p, n, 2, [type = type_](const std::byte* q) { return stored_value(type, q); });
  }
}

// Each block measured alone, as add() measures it when it reaches the
// block's end, then merged in block order.
void value_stats::add_blocks(const std::byte* p, std::size_t blocks) {
  const std::size_t stride = static_cast<std::size_t>(block) * element_size(type_);
  std::vector<block_figures> figures(blocks);
  parallel_for(std::size_t{0}, blocks, [&](std::size_t i) {
    value_stats one(type_);
    one.add_values(p + i * stride, static_cast<std::size_t>(block));
    figures[i] = one.open_block();
  });
  for (const block_figures& b : figures) merge(b.count, b.mean, b.m2);
}

value_stats::block_figures value_stats::open_block() const {
  if (in_block_ == 0) return {0.0, 0.0, 0.0};
  const double count = static_cast<double>(in_block_);
  double sum = 0.0, squares = 0.0;
  for (std::size_t k = 0; k < lanes; ++k) {
    sum += sum_[k];
    squares += squares_[k];
  }
  return {count, shift_ + sum / count, std::max(0.0, squares - sum * sum / count)};
}

void value_stats::merge(double count, double mean, double m2) {
  if (count == 0.0) return;
  const double before = static_cast<double>(total_count_);
  if (total_count_ == 0) {
    total_mean_ = mean;
    total_m2_ = m2;
  } else {
    const double n = before + count;
    const double delta = mean - total_mean_;
    total_mean_ += delta * count / n;
    total_m2_ += m2 + delta * delta * before * count / n;
  }
  total_count_ += static_cast<std::uint64_t>(count);
}

double value_stats::mean() const {
  value_stats all = *this;
  const block_figures b = open_block();
  all.merge(b.count, b.mean, b.m2);
  return all.total_count_ > 0 ? all.total_mean_ : std::numeric_limits<double>::quiet_NaN();
}

double value_stats::std() const {
  value_stats all = *this;
  const block_figures b = open_block();
  all.merge(b.count, b.mean, b.m2);
  return all.total_count_ > 0 ? std::sqrt(all.total_m2_ / static_cast<double>(all.total_count_))
                              : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace onnx_reinit
