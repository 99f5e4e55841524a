// The activation walk of DESIGN.md section 6: from a layer's output, through
// bias/residual Adds, normalizations, layout ops, dropout and pooling, to the
// first nonlinearity (including decomposed GELU, SiLU, HardSwish and Mish).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "graph_index.h"
#include "onnx_reinit/tensor_info.h"

namespace onnx_reinit::detail {

struct activation_result {
  activation_kind kind = activation_kind::linear;
  double param = 0.0;
};

// Walks forward from output 0 of node `layer`. Where a value feeds several
// paths, the first consumer in node order is followed (patterns such as
// x*Sigmoid(x) are recognised among all consumers first).
activation_result find_activation(const model_index& index, int layer);

// An activation given by name, as in FusedConv's `activation` attribute or an
// RNN's `activations` list ("Relu", "LeakyRelu", "Tanh", ...). Unknown names
// give nullopt.
std::optional<activation_result> activation_from_name(std::string_view name,
                                                      const std::vector<float>& params);

}  // namespace onnx_reinit::detail
