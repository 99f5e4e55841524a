// Finding the residual structure on the analysis' model index: the joins,
// their skips and branches, the streams, and where each weighted layer,
// norm scale and branch multiplier sits (onnx_reinit/residual.h has the
// values). Also the model's output layers, which `small-head` and `fixup`
// set apart.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "graph_index.h"
#include "onnx_reinit/residual.h"
#include "patterns.h"

namespace onnx_reinit::detail {

struct residual_lookup {
  residual_structure structure;
  // Weighted node -> its place: a layer of a branch, or a skip projection.
  // A node in nested branches gets the innermost (fewest layers).
  std::unordered_map<int, residual_position> layers;
  // Last norm scales and multipliers, by tensor name.
  std::unordered_map<std::string, residual_position> tensors;
  // Weighted nodes whose output, through a bias and layout ops only, is a
  // graph output or goes into a Softmax or a loss.
  std::unordered_set<int> output_layers;
};

// Inputs of node `n` that are computed (not constants behind layout ops).
std::vector<std::string> data_inputs(const model_index& index, int n);

// The weight tensor of weighted node `n`, "" when it has no constant weight.
std::string layer_weight(const model_index& index, int n);

residual_lookup find_residual_lookup(
    const model_index& index, const std::map<std::pair<int, int>, norm_parameter>& norm_parameters);

}  // namespace onnx_reinit::detail
