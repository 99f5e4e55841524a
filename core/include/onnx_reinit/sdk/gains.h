// The one table of recommended gains, following PyTorch's
// torch.nn.init.calculate_gain, extended to the activations the ONNX analysis
// recognises. Used by strategies (kaiming `nonlinearity`) and by the analysis
// (tensor_info::gain). Part of the plugin SDK: standard library only.
#pragma once

#include <cmath>
#include <optional>
#include <string_view>

#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit {

// PyTorch's default negative slope for leaky_relu in calculate_gain.
inline constexpr double default_leaky_relu_slope = 0.01;
// PyTorch's PReLU initial slope; used when the slope is not known.
inline constexpr double default_prelu_slope = 0.25;

// Gain for an activation; `param` is the slope for leaky_relu and prelu and is
// ignored otherwise.
inline double activation_gain(activation_kind a, double param) {
  switch (a) {
    case activation_kind::linear:
    case activation_kind::sigmoid:
    case activation_kind::hardsigmoid:
      return 1.0;
    case activation_kind::tanh:
      return 5.0 / 3.0;
    case activation_kind::selu:
      return 3.0 / 4.0;  // PyTorch's choice for self-normalising nets
    case activation_kind::leaky_relu:
    case activation_kind::prelu:
      return std::sqrt(2.0 / (1.0 + param * param));
    case activation_kind::relu:
    case activation_kind::relu6:
    case activation_kind::elu:
    case activation_kind::gelu:
    case activation_kind::silu:
    case activation_kind::mish:
    case activation_kind::softplus:
    case activation_kind::hardswish:
      return std::sqrt(2.0);
  }
  return 1.0;
}

// Gain for a PyTorch-style nonlinearity name, as accepted by
// calculate_gain, plus every activation_kind name. Returns nullopt for an
// unknown name. `param` is the negative slope for leaky_relu/prelu; pass
// nullopt to use PyTorch's defaults (0.01 for leaky_relu, 0.25 for prelu).
inline std::optional<double> nonlinearity_gain(std::string_view name,
                                               std::optional<double> param = std::nullopt) {
  constexpr std::string_view linear_like[] = {
      "linear",           "identity",         "conv1d",           "conv2d", "conv3d",
      "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "conv"};
  for (std::string_view n : linear_like)
    if (name == n) return 1.0;
  std::optional<activation_kind> kind = parse_activation_kind(name);
  if (!kind) return std::nullopt;
  double slope = param.value_or(*kind == activation_kind::prelu ? default_prelu_slope
                                                                : default_leaky_relu_slope);
  return activation_gain(*kind, slope);
}

}  // namespace onnx_reinit
