// The activation walk of docs/DESIGN.md section 6: from a layer's output, through
// bias/residual Adds, normalizations, layout ops, dropout and pooling, to the
// first nonlinearity. Decomposed norms and activations are matched in patterns.h.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "graph_index.h"
#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit::detail {

struct activation_result {
  activation_result(activation_kind k = activation_kind::linear, double p = 0.0,
                    std::string slope = {})
      : kind(k), param(p), prelu_slope(std::move(slope)) {}
  activation_kind kind = activation_kind::linear;
  double param = 0.0;
  // prelu: the slope tensor (a constant, possibly behind layout ops), so the
  // planner can take the gain from the slope it writes; "" otherwise.
  std::string prelu_slope;
  // Set by find_activation only: the value the nonlinearity applies to, and
  // its output where it is a single node ("" for a decomposed pattern).
  std::string input;
  std::string output;
};

// The value of a constant whose elements are all equal.
std::optional<double> uniform_constant(const model_index& index, const std::string& name,
                                       int scope);

// Walks forward from output 0 of node `layer`. Where a value feeds several
// paths, the first consumer in node order is followed (patterns such as
// x*Sigmoid(x) are recognised among all consumers first); a Shape or Size
// reading the value is no path (model_index::value_uses). Cast, in either
// direction, is a layout op and passed through.
activation_result find_activation(const model_index& index, int layer);

// An activation given by name, as in FusedConv's `activation` attribute or an
// RNN's `activations` list ("Relu", "LeakyRelu", "Tanh", ...). Unknown names
// give nullopt.
std::optional<activation_result> activation_from_name(std::string_view name,
                                                      const std::vector<float>& params);

}  // namespace onnx_reinit::detail
