// Configured strategies: the host side of a plugin's fill, turning status
// codes into strategy_error with the strategy, tensor and plugin message.
#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/sdk/strategy.h"
#include "registry_internal.h"

namespace onnx_reinit {
namespace {

// The host's enums cross the plugin boundary as their numbers (to_c,
// from_c, the fill span's dtype): each is pinned to the C code
// plugin_abi.h gives it, and the lists of every value to the C enums'
// extent, so a value added on one side only does not compile.
template <class E>
constexpr std::uint32_t code(E e) {
  return static_cast<std::uint32_t>(e);
}

// values[i] has code i, for every i, and there are `count` of them.
template <class E, std::size_t N>
constexpr bool numbered_from_zero(const E (&values)[N], std::uint32_t count) {
  for (std::size_t i = 0; i < N; ++i)
    if (code(values[i]) != i) return false;
  return N == count;
}

static_assert(code(element_type::float32) == ONNX_REINIT_FLOAT32 &&
              code(element_type::float64) == ONNX_REINIT_FLOAT64 &&
              code(element_type::float16) == ONNX_REINIT_FLOAT16 &&
              code(element_type::bfloat16) == ONNX_REINIT_BFLOAT16);
static_assert(code(tensor_role::unknown) == ONNX_REINIT_ROLE_UNKNOWN &&
              code(tensor_role::weight) == ONNX_REINIT_ROLE_WEIGHT &&
              code(tensor_role::recurrent_weight) == ONNX_REINIT_ROLE_RECURRENT_WEIGHT &&
              code(tensor_role::bias) == ONNX_REINIT_ROLE_BIAS &&
              code(tensor_role::norm_scale) == ONNX_REINIT_ROLE_NORM_SCALE &&
              code(tensor_role::norm_bias) == ONNX_REINIT_ROLE_NORM_BIAS &&
              code(tensor_role::running_mean) == ONNX_REINIT_ROLE_RUNNING_MEAN &&
              code(tensor_role::running_var) == ONNX_REINIT_ROLE_RUNNING_VAR &&
              code(tensor_role::embedding) == ONNX_REINIT_ROLE_EMBEDDING &&
              code(tensor_role::prelu_slope) == ONNX_REINIT_ROLE_PRELU_SLOPE);
static_assert(numbered_from_zero(all_tensor_roles, ONNX_REINIT_ROLE_PRELU_SLOPE + 1));
static_assert(code(activation_kind::linear) == ONNX_REINIT_ACT_LINEAR &&
              code(activation_kind::relu) == ONNX_REINIT_ACT_RELU &&
              code(activation_kind::relu6) == ONNX_REINIT_ACT_RELU6 &&
              code(activation_kind::leaky_relu) == ONNX_REINIT_ACT_LEAKY_RELU &&
              code(activation_kind::prelu) == ONNX_REINIT_ACT_PRELU &&
              code(activation_kind::elu) == ONNX_REINIT_ACT_ELU &&
              code(activation_kind::selu) == ONNX_REINIT_ACT_SELU &&
              code(activation_kind::gelu) == ONNX_REINIT_ACT_GELU &&
              code(activation_kind::silu) == ONNX_REINIT_ACT_SILU &&
              code(activation_kind::hardswish) == ONNX_REINIT_ACT_HARDSWISH &&
              code(activation_kind::mish) == ONNX_REINIT_ACT_MISH &&
              code(activation_kind::softplus) == ONNX_REINIT_ACT_SOFTPLUS &&
              code(activation_kind::sigmoid) == ONNX_REINIT_ACT_SIGMOID &&
              code(activation_kind::hardsigmoid) == ONNX_REINIT_ACT_HARDSIGMOID &&
              code(activation_kind::tanh) == ONNX_REINIT_ACT_TANH);
static_assert(numbered_from_zero(all_activation_kinds, ONNX_REINIT_ACT_TANH + 1));

const configured_strategy::state& checked(const configured_strategy::state* s) {
  if (s == nullptr) throw usage_error("use of an empty configured_strategy", "");
  return *s;
}

template <class T>
void fill_span(const configured_strategy::state& s, const tensor_info& tensor,
               const onnx_reinit_rng& rng, std::uint64_t first, std::span<T> out) {
  if (!s.elementwise && first != 0)
    throw usage_error(fmt::format("strategy '{}' is not elementwise and must fill tensor '{}' "
                                  "whole (first element {}, not 0)",
                                  s.name, tensor.name, first),
                      tensor.name);
  // The plugin calls through this table; one too small would send it past
  // the end.
  if (rng.api == nullptr || rng.api->struct_size < ONNX_REINIT_RNG_API_MIN_SIZE)
    throw usage_error(
        fmt::format("random stream for tensor '{}' has {} (at least {} bytes needed)", tensor.name,
                    rng.api == nullptr ? std::string("no API table")
                                       : fmt::format("a {}-byte API table", rng.api->struct_size),
                    ONNX_REINIT_RNG_API_MIN_SIZE),
        tensor.name);
  onnx_reinit_tensor_info c_tensor = to_c(tensor);
  onnx_reinit_span span{out.data(), first, out.size(), dtype_code<T>()};
  char message[1024] = "";
  int status = s.fill(s.instance, &c_tensor, &rng, &span, message, sizeof message);
  if (status == ONNX_REINIT_OK) return;
  message[sizeof message - 1] = '\0';
  throw strategy_error(
      fmt::format("strategy '{}' ({}) failed on tensor '{}': {}", s.name, s.plugin_id, tensor.name,
                  *message != '\0' ? message : "no message"),
      tensor.name);
}

}  // namespace

const std::string& configured_strategy::name() const {
  return checked(state_.get()).name;
}
bool configured_strategy::elementwise() const {
  return checked(state_.get()).elementwise;
}
const std::string& configured_strategy::plugin_id() const {
  return checked(state_.get()).plugin_id;
}
const std::string& configured_strategy::plugin_path() const {
  return checked(state_.get()).plugin_path;
}
const std::vector<resolved_param>& configured_strategy::params() const {
  return checked(state_.get()).params;
}

std::optional<configured_strategy::moments> configured_strategy::target_moments(
    const tensor_info& tensor) const {
  const state& s = checked(state_.get());
  if (s.target_moments == nullptr) return std::nullopt;
  const onnx_reinit_tensor_info c_tensor = to_c(tensor);
  moments m;
  char message[1024] = "";
  int status = s.target_moments(s.instance, &c_tensor, &m.mean, &m.std, message, sizeof message);
  if (status == ONNX_REINIT_OK) return m;
  if (status == ONNX_REINIT_UNKNOWN) return std::nullopt;
  message[sizeof message - 1] = '\0';
  throw strategy_error(
      fmt::format("strategy '{}' ({}) failed to give the target moments of tensor "
                  "'{}': {}",
                  s.name, s.plugin_id, tensor.name, *message != '\0' ? message : "no message"),
      tensor.name);
}

std::string configured_strategy::description() const {
  const state& s = checked(state_.get());
  if (s.params.empty()) return s.name;
  return fmt::format("{}({})", s.name, to_string(s.params));
}

void configured_strategy::fill(const tensor_info& tensor, const onnx_reinit_rng& rng,
                               std::uint64_t first, std::span<float> out) const {
  fill_span(checked(state_.get()), tensor, rng, first, out);
}

void configured_strategy::fill(const tensor_info& tensor, const onnx_reinit_rng& rng,
                               std::uint64_t first, std::span<double> out) const {
  fill_span(checked(state_.get()), tensor, rng, first, out);
}

}  // namespace onnx_reinit
