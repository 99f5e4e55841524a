// Shared checks of the standard strategies: every refusal names the
// strategy and the tensor, so the host can report it without more context.
#include <array>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "strategy_lists.h"

namespace onnx_reinit::standard {
namespace {

std::string shape_text(const tensor_info& tensor) {
  std::string result = "[";
  for (std::size_t i = 0; i < tensor.shape.size(); ++i)
    result += (i ? ", " : "") + text(tensor.shape[i]);
  return result + "]";
}

std::string where(std::string_view strategy, const tensor_info& tensor) {
  return std::string(strategy) + ": tensor '" + tensor.name + "' " + shape_text(tensor);
}

}  // namespace

std::string text(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.10g", value);
  return buffer;
}

std::string text(std::int64_t value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%lld", static_cast<long long>(value));
  return buffer;
}

std::string text(std::uint64_t value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%llu", static_cast<unsigned long long>(value));
  return buffer;
}

void require_finite(std::string_view strategy, std::string_view param, double value) {
  if (!std::isfinite(value))
    throw std::invalid_argument(std::string(strategy) + ": parameter '" + std::string(param) +
                                "' must be finite, got " + text(value));
}

void require_interval(std::string_view strategy, std::string_view low_name, double low,
                      std::string_view high_name, double high) {
  require_finite(strategy, low_name, low);
  require_finite(strategy, high_name, high);
  if (!(low < high))
    throw std::invalid_argument(std::string(strategy) + ": parameter '" + std::string(low_name) +
                                "' must be below '" + std::string(high_name) + "' (" +
                                std::string(low_name) + " = " + text(low) + ", " +
                                std::string(high_name) + " = " + text(high) + ")");
}

double checked_fan(std::string_view strategy, const tensor_info& tensor, std::string_view fan_name,
                   double fan) {
  if (tensor.element_count() <= 0)
    throw std::invalid_argument(where(strategy, tensor) + " is empty; " + std::string(fan_name) +
                                " is undefined");
  if (!std::isfinite(fan) || fan <= 0.0)
    throw std::invalid_argument(where(strategy, tensor) + " has " + std::string(fan_name) + " = " +
                                text(fan) + "; the formula needs a positive finite fan");
  return fan;
}

void require_whole_tensor(std::string_view strategy, const tensor_info& tensor, std::uint64_t first,
                          std::size_t count) {
  std::int64_t n = tensor.element_count();
  if (first != 0 || n < 0 || count != static_cast<std::uint64_t>(n))
    throw std::invalid_argument(where(strategy, tensor) + " must be filled whole (got " +
                                text(count) + " elements from index " + text(first) + " of " +
                                text(n) + ")");
}

matrix_view resolve_matrix_view(std::string_view strategy, const tensor_info& tensor,
                                default_rank rank) {
  std::int64_t n = tensor.element_count();
  if (n <= 0) throw std::invalid_argument(where(strategy, tensor) + " is empty");
  bool unset = tensor.block_count == 0 || (tensor.block_count == 1 && tensor.block_rows == 1 &&
                                           tensor.block_cols == 1 && n != 1);
  tensor_info flat = tensor;
  flat.set_default_blocks();
  matrix_view view{tensor.block_count, tensor.block_rows, tensor.block_cols};
  if (unset) view = {flat.block_count, flat.block_rows, flat.block_cols};
  bool is_default = view.count == 1 && view.rows == flat.block_rows && view.cols == flat.block_cols;
  std::size_t r = tensor.shape.size();
  // A per-gate or per-slice view makes any rank a stack of matrices; only the
  // plain shape[0] x rest view is held to PyTorch's rank rules.
  if (is_default && rank == default_rank::exactly_2 && r != 2)
    throw std::invalid_argument(where(strategy, tensor) +
                                ": needs a 2-D tensor or a matrix view from the analysis");
  if (is_default && rank == default_rank::at_least_2 && r < 2)
    throw std::invalid_argument(where(strategy, tensor) + ": needs at least 2 dimensions");
  if (view.count <= 0 || view.rows <= 0 || view.cols <= 0 ||
      checked_product(std::array{view.count, view.rows, view.cols}) != n)
    throw std::invalid_argument(where(strategy, tensor) + ": matrix view of " + text(view.count) +
                                " blocks of " + text(view.rows) + " x " + text(view.cols) +
                                " does not cover its " + text(n) + " elements");
  return view;
}

matrix_view whole_matrix_view(std::string_view strategy, const tensor_info& tensor,
                              std::uint64_t first, std::size_t count, default_rank rank) {
  require_whole_tensor(strategy, tensor, first, count);
  return resolve_matrix_view(strategy, tensor, rank);
}

}  // namespace onnx_reinit::standard
