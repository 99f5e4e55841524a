// What a strategy knows about the tensor it fills: shape, dtype, role, fans,
// matrix view and the activation that follows it. Part of the plugin SDK:
// standard library only.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace onnx_reinit {

// a * b, or nullopt when it overflows int64.
constexpr std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// The product of dims, the one place a product of dims is formed: nullopt
// for a negative dim or when the product of the non-zero dims overflows
// int64. An overflow counts even after a zero dim, so every partial product
// of a list this accepts is defined too.
constexpr std::optional<std::int64_t> checked_product(std::span<const std::int64_t> dims) noexcept {
  std::int64_t nonzero = 1;
  bool empty = false;
  for (std::int64_t d : dims) {
    if (d < 0) return std::nullopt;
    if (d == 0) {
      empty = true;
      continue;
    }
    auto n = checked_mul(nonzero, d);
    if (!n) return std::nullopt;
    nonzero = *n;
  }
  return empty ? 0 : nonzero;
}

// Storage element type of the tensor in the model. Strategies always fill
// float (for float32/float16/bfloat16) or double (for float64); the host
// rounds to 16-bit types with round-to-nearest-even.
enum class element_type : std::uint32_t {
  float32 = 1,
  float64 = 2,
  float16 = 3,
  bfloat16 = 4,
};

// What the tensor is, judged from the op and input slot that really use it
// (docs/DESIGN.md section 6).
enum class tensor_role : std::uint32_t {
  unknown = 0,
  weight,
  recurrent_weight,
  bias,
  norm_scale,
  norm_bias,
  running_mean,
  running_var,
  embedding,
  prelu_slope,
};

// The first nonlinearity after a layer's output. `linear` also stands for
// "none found" (softmax, another weighted layer, a graph output).
enum class activation_kind : std::uint32_t {
  linear = 0,
  relu,
  relu6,
  leaky_relu,
  prelu,
  elu,
  selu,
  gelu,
  silu,
  hardswish,
  mish,
  softplus,
  sigmoid,
  hardsigmoid,
  tanh,
};

inline constexpr tensor_role all_tensor_roles[] = {
    tensor_role::unknown,      tensor_role::weight,      tensor_role::recurrent_weight,
    tensor_role::bias,         tensor_role::norm_scale,  tensor_role::norm_bias,
    tensor_role::running_mean, tensor_role::running_var, tensor_role::embedding,
    tensor_role::prelu_slope,
};

inline constexpr activation_kind all_activation_kinds[] = {
    activation_kind::linear,     activation_kind::relu,        activation_kind::relu6,
    activation_kind::leaky_relu, activation_kind::prelu,       activation_kind::elu,
    activation_kind::selu,       activation_kind::gelu,        activation_kind::silu,
    activation_kind::hardswish,  activation_kind::mish,        activation_kind::softplus,
    activation_kind::sigmoid,    activation_kind::hardsigmoid, activation_kind::tanh,
};

constexpr std::string_view to_string(element_type t) {
  switch (t) {
    case element_type::float32:
      return "float32";
    case element_type::float64:
      return "float64";
    case element_type::float16:
      return "float16";
    case element_type::bfloat16:
      return "bfloat16";
  }
  return "invalid";
}

constexpr std::string_view to_string(tensor_role r) {
  switch (r) {
    case tensor_role::unknown:
      return "unknown";
    case tensor_role::weight:
      return "weight";
    case tensor_role::recurrent_weight:
      return "recurrent_weight";
    case tensor_role::bias:
      return "bias";
    case tensor_role::norm_scale:
      return "norm_scale";
    case tensor_role::norm_bias:
      return "norm_bias";
    case tensor_role::running_mean:
      return "running_mean";
    case tensor_role::running_var:
      return "running_var";
    case tensor_role::embedding:
      return "embedding";
    case tensor_role::prelu_slope:
      return "prelu_slope";
  }
  return "invalid";
}

constexpr std::string_view to_string(activation_kind a) {
  switch (a) {
    case activation_kind::linear:
      return "linear";
    case activation_kind::relu:
      return "relu";
    case activation_kind::relu6:
      return "relu6";
    case activation_kind::leaky_relu:
      return "leaky_relu";
    case activation_kind::prelu:
      return "prelu";
    case activation_kind::elu:
      return "elu";
    case activation_kind::selu:
      return "selu";
    case activation_kind::gelu:
      return "gelu";
    case activation_kind::silu:
      return "silu";
    case activation_kind::hardswish:
      return "hardswish";
    case activation_kind::mish:
      return "mish";
    case activation_kind::softplus:
      return "softplus";
    case activation_kind::sigmoid:
      return "sigmoid";
    case activation_kind::hardsigmoid:
      return "hardsigmoid";
    case activation_kind::tanh:
      return "tanh";
  }
  return "invalid";
}

inline std::optional<tensor_role> parse_tensor_role(std::string_view text) {
  for (tensor_role r : all_tensor_roles)
    if (to_string(r) == text) return r;
  return std::nullopt;
}

inline std::optional<activation_kind> parse_activation_kind(std::string_view text) {
  for (activation_kind a : all_activation_kinds)
    if (to_string(a) == text) return a;
  return std::nullopt;
}

// Everything the analysis learned about one tensor. Fans are doubles because
// strided convolutions give fractional fans (docs/DESIGN.md section 5).
struct tensor_info {
  std::string name;
  std::vector<std::int64_t> shape;
  element_type dtype = element_type::float32;
  tensor_role role = tensor_role::unknown;
  double fan_in = 1.0;
  double fan_out = 1.0;
  double receptive_field = 1.0;  // product of kernel dims; 1 for matrices
  std::int64_t groups = 1;       // Conv `group`
  std::int64_t gate_count = 1;   // LSTM 4, GRU 3, RNN 1, else 1
  activation_kind activation = activation_kind::linear;
  double activation_param = 0.0;  // leaky_relu / prelu alpha, elu alpha, ...
  double gain = 1.0;              // gain of `activation` (gains.h)

  // Matrix view used by matrix strategies (orthogonal, identity, sparse):
  // the tensor is `block_count` contiguous blocks of block_rows x block_cols.
  // Default: one block, rows = shape[0], cols = the rest. LSTM weights are
  // one block per direction and gate; batched MatMul weights one per slice.
  std::int64_t block_count = 1;
  std::int64_t block_rows = 1;
  std::int64_t block_cols = 1;

  // -1 for a negative dim or a product over int64: the host never passes
  // such a tensor, but a plugin must not overflow on one either.
  std::int64_t element_count() const { return checked_product(shape).value_or(-1); }

  // Sets the default matrix view from `shape`: rows = shape[0], cols = rest
  // (-1 when the rest's product is not defined, as in element_count()).
  void set_default_blocks() {
    block_count = 1;
    block_rows = shape.empty() ? 1 : shape[0];
    block_cols = shape.empty() ? 1 : checked_product(std::span(shape).subspan(1)).value_or(-1);
  }
};

}  // namespace onnx_reinit
