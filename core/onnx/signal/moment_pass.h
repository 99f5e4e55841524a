// The analytic moment pass (docs/DESIGN.md section 14): the mean and second
// moment of every value of a model's main graph, from the graph inputs'
// assumed moments, each node by the rule its op-table entry states
// (ops.h, moment_rule). Chains of elementwise nodes from one value are
// compiled (elementwise_program) and integrated against a Gaussian, so a
// decomposed activation needs no code; decomposed norms are recognised
// (patterns.h) and reset the signal like the fused ones. An op without a
// rule passes its first input's moments on and is listed as an assumption.
//
// The pass asks its caller for the moments of every constant (a rewritten
// weight's come from its plan, a kept one's from its bytes) and stops at each
// weighted layer before computing its output, so a solver can choose the
// layer's weight variance from the moments the layer reads:
//   signal::moment_pass_hooks hooks{.constant = ..., .layer = ...};
//   signal::moment_pass_result r =
//       signal::run_moment_pass(index, model, hooks);
//   fmt::print("{}\n", r.values.at("fc1_out").second);
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "elementwise.h"
#include "gaussian_moments.h"
#include "graph_index.h"

namespace onnx_reinit::signal {

// What the pass knows of a value.
struct value_moments {
  moments m;
  // Probabilities (a Softmax output, through layout ops): a MatMul reading
  // them averages its other operand over the softmax axis.
  bool probabilities = false;
};

// A weighted layer (Conv, ConvTranspose, Gemm, MatMul x W and the fused
// forms) whose weight is a constant, as the pass reaches it.
struct layer_visit {
  int node = -1;              // index into the model_index
  std::string weight;         // the weight's constant name (through layout ops)
  std::string output;         // the layer's output 0
  double fan_in = 1.0;        // products summed per output element
  double output_scale = 1.0;  // Gemm's alpha (the output is alpha x W...)
  moments input;              // what the layer reads
  // A norm reads the layer's output (through a bias Add and layout ops):
  // fused, or decomposed as exporters write it.
  bool norm_follows = false;
  // The moments of any value the pass has reached so far.
  std::function<std::optional<moments>(const std::string&)> known;
};

struct moment_pass_hooks {
  // The moments of constant `name` (an initializer or a Constant node's
  // output) of main-graph scope; nullopt when unknown.
  std::function<std::optional<moments>(const std::string& name)> constant;
  // Called at each weighted layer before its output is computed; the
  // constant hook is asked for the weight's moments afterwards, so a solver
  // may decide them here. Optional.
  std::function<void(const layer_visit&)> layer;
  // Moments assumed for graph input `name` (default N(0, 1)).
  std::function<moments(const std::string& name)> input;
};

struct moment_pass_result {
  std::unordered_map<std::string, value_moments> values;
  // Ops whose outputs were given their input's moments for want of a rule
  // (or of the shapes the rule needs), with a count: "LSTM x2 (recurrent:
  // left to its textbook rule)".
  std::map<std::string, int> assumptions;
};

// The pass over the main graph of `index`, in node order. Values of
// subgraphs are not followed (their nodes count as assumptions of the If or
// Loop holding them).
// `model` is the model `index` indexes: the shapes pooling, concat, softmax
// and computed products need come from infer_value_shapes on it, on first use.
moment_pass_result run_moment_pass(const detail::model_index& index, const onnx::ModelProto& model,
                                   const moment_pass_hooks& hooks);

// E[f(x)] and E[f(x)^2] for x Gaussian with moments `x`, to the pass's
// accuracy (relative 1e-8).
moments moments_after(const scalar_function& f, const moments& x);

// The moments of a tensor's values: mean and mean square.
moments moments_of(const std::vector<double>& values);

// Shapes of the main graph's values by ONNX shape inference on a copy of
// the graph that holds no stored tensor bytes (small integer constants are
// rebuilt from their decoded values, others become typed inputs; subgraph
// holders are left out); unknown dims are -1. Values inference cannot type
// are absent. `index` indexes `model`.
std::unordered_map<std::string, std::vector<std::int64_t>> infer_value_shapes(
    const detail::model_index& index, const onnx::ModelProto& model);

}  // namespace onnx_reinit::signal
