// Internal: the descriptor lists of each source file, and the checks the
// strategies share (fans, whole-tensor fills, matrix views).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "onnx_reinit/sdk/plugin_abi.h"
#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit::standard {

// zeros, ones, constant, uniform, normal, truncated_normal
std::span<const onnx_reinit_strategy_desc> fixed_distribution_strategies();
// variance_scaling, xavier_*, kaiming_*, lecun_*, torch_default
std::span<const onnx_reinit_strategy_desc> fan_scaled_strategies();
// orthogonal, identity, dirac, sparse
std::span<const onnx_reinit_strategy_desc> structured_strategies();

// Numbers for error messages. snprintf rather than std::to_string, whose
// libstdc++ internals would add exported (even GNU-unique, never unloaded)
// symbols to the plugin.
std::string text(double value);
std::string text(std::int64_t value);
std::string text(std::uint64_t value);

// Throws std::invalid_argument unless `value` is finite: the host checks
// ranges, but an unbounded range still admits inf and nan.
void require_finite(std::string_view strategy, std::string_view param, double value);
// Both bounds finite and low < high; std::invalid_argument naming them
// otherwise ("'low' must be below 'high' (low = 2, high = 1)").
void require_interval(std::string_view strategy, std::string_view low_name, double low,
                      std::string_view high_name, double high);

// `fan` if the tensor is non-empty and the fan positive and finite; else
// throws std::invalid_argument naming the strategy, tensor and fan.
double checked_fan(std::string_view strategy, const tensor_info& tensor, std::string_view fan_name,
                   double fan);

// Throws unless the fill covers the whole tensor (strategies whose values
// depend on each other cannot be filled in chunks).
void require_whole_tensor(std::string_view strategy, const tensor_info& tensor, std::uint64_t first,
                          std::size_t count);

// The tensor as block_count contiguous row-major blocks of rows x cols.
struct matrix_view {
  std::int64_t count = 1;
  std::int64_t rows = 1;
  std::int64_t cols = 1;
};

// How strictly a strategy reads the tensor when no explicit view was set.
enum class default_rank {
  at_least_2,  // orthogonal: rows = shape[0], cols = the rest (PyTorch flattens)
  exactly_2,   // identity, sparse: PyTorch accepts only matrices
};

// The tensor's matrix view: tensor_info's blocks when set (block_count 0,
// or 1x1x1 on a larger tensor, mean "unset"), else shape[0] x rest.
matrix_view resolve_matrix_view(std::string_view strategy, const tensor_info& tensor,
                                default_rank rank);

// A fill's matrix view: require_whole_tensor, then resolve_matrix_view.
matrix_view whole_matrix_view(std::string_view strategy, const tensor_info& tensor,
                              std::uint64_t first, std::size_t count, default_rank rank);

}  // namespace onnx_reinit::standard
