// The activation walk: the forward walk through pass-through ops to the
// first nonlinearity; decomposed patterns come from patterns.cpp.
#include "activation.h"

#include "layout.h"
#include "ops.h"
#include "patterns.h"
#include "quantized.h"

#include <cmath>
#include <unordered_set>

#include "onnx_reinit/sdk/gains.h"

namespace onnx_reinit::detail {

// The value of a constant whose elements are all equal.
std::optional<double> uniform_constant(const model_index& index, const std::string& name,
                                       int scope) {
  if (name.empty()) return std::nullopt;
  // Exporters pass constants through Cast, Reshape, Unsqueeze... (PyTorch
  // casts Clip bounds to the input type); none of these changes a uniform
  // value.
  const auto* t = index.constant(constant_source(index, name, scope), scope);
  if (t == nullptr) return std::nullopt;
  auto v = index.values(*t);
  if (!v || v->empty()) return std::nullopt;
  for (double x : *v)
    if (x != (*v)[0]) return std::nullopt;
  return (*v)[0];
}

namespace {

const std::string& other_input(const onnx::NodeProto& node, int slot) {
  static const std::string none;
  if (node.input_size() != 2) return none;
  return node.input(1 - slot);
}

// Clip as ReLU6 or ReLU; bounds are attributes (opset < 11) or inputs.
activation_result clip_activation(const model_index& index, const onnx::NodeProto& node,
                                  int scope) {
  auto [lo, hi] = clip_bounds(index, node, scope);
  if (lo && *lo == 0.0 && hi && *hi == 6.0) return {activation_kind::relu6, 0.0};
  if (lo && *lo == 0.0 && (!hi || *hi >= 1e30)) return {activation_kind::relu, 0.0};
  return {};
}

std::optional<activation_result> nonlinearity(const model_index& index, const onnx::NodeProto& node,
                                              int scope) {
  const std::string& op = node.op_type();
  bool ms = node.domain() == "com.microsoft";
  if (!is_default_domain(node) && !ms) return std::nullopt;
  if (op == "Clip") return clip_activation(index, node, scope);
  // ONNX Runtime's QDQ models: a Relu removed into its QuantizeLinear. The
  // integer output is no activation to measure: input only, as a
  // decomposed activation.
  if (quantize_clamps_negatives(index, node, scope))
    return activation_result{activation_kind::relu, 0.0};
  if (op == "PRelu") {
    auto slope =
        node.input_size() > 1 ? uniform_constant(index, node.input(1), scope) : std::nullopt;
    return activation_result{
        activation_kind::prelu, slope.value_or(default_prelu_slope),
        node.input_size() > 1 ? constant_source(index, node.input(1), scope) : std::string{}};
  }
  std::vector<float> params;
  if (auto a = float_attribute(node, "alpha")) params.push_back(*a);
  if (op == "Gelu" || op == "FastGelu" || op == "BiasGelu")
    return activation_result{activation_kind::gelu, 0.0};
  return activation_from_name(op, params);
}

// Whether the walk goes on from input `slot` of `node`: the op table's walk
// kind (layout ops, bias/residual Add, norms, pooling, resampling, tiling
// pass; scaling by a constant passes, a product of two activations gates).
bool pass_through(const model_index& index, const onnx::NodeProto& node, int slot, int scope) {
  switch (op_info(node).walk) {
    case walk_kind::stop:
      return false;
    case walk_kind::transparent:
      return true;
    case walk_kind::data_only:
      return slot == 0;
    case walk_kind::scaling:
      return slot == 0 && index.constant(other_input(node, slot), scope) != nullptr;
    case walk_kind::gating:
      return index.constant(other_input(node, slot), scope) != nullptr;
  }
  return false;
}

}  // namespace

std::optional<activation_result> activation_from_name(std::string_view name,
                                                      const std::vector<float>& params) {
  auto p0 = [&](double d) { return params.empty() ? d : static_cast<double>(params[0]); };
  if (name == "Relu") return activation_result{activation_kind::relu, 0.0};
  if (name == "LeakyRelu") return activation_result{activation_kind::leaky_relu, p0(0.01)};
  if (name == "Elu") return activation_result{activation_kind::elu, p0(1.0)};
  if (name == "Selu") return activation_result{activation_kind::selu, 0.0};
  if (name == "Gelu") return activation_result{activation_kind::gelu, 0.0};
  if (name == "HardSwish") return activation_result{activation_kind::hardswish, 0.0};
  if (name == "Mish") return activation_result{activation_kind::mish, 0.0};
  if (name == "Softplus") return activation_result{activation_kind::softplus, 0.0};
  if (name == "Sigmoid") return activation_result{activation_kind::sigmoid, 0.0};
  if (name == "HardSigmoid") return activation_result{activation_kind::hardsigmoid, 0.0};
  if (name == "Tanh") return activation_result{activation_kind::tanh, 0.0};
  if (name == "Clip" && params.size() >= 2 && params[0] == 0.0f && params[1] == 6.0f)
    return activation_result{activation_kind::relu6, 0.0};
  return std::nullopt;
}

activation_result find_activation(const model_index& index, int layer) {
  const auto& start = index.node(layer);
  if (start.output_size() == 0) return {};
  int scope = index.node_graph(layer);
  std::string value = start.output(0);
  std::unordered_set<std::string> visited;
  // Each step moves to a new value; the visited set ends cycles.
  while (visited.insert(value).second) {
    int producer = index.producer(value, scope);
    int graph = producer >= 0 ? index.node_graph(producer) : scope;
    if (index.is_graph_output(value, graph)) return {};
    if (auto d = match_decomposed_activation(index, value, graph)) {
      d->input = value;
      return *d;
    }
    // A decomposed norm is passed through like a fused one.
    if (auto n = match_decomposed_norm(index, value, graph)) {
      value = n->output;
      scope = n->graph;
      continue;
    }
    auto uses = index.value_uses(value, graph);
    if (uses.empty()) return {};
    const auto& next = index.node(uses.front().node);
    int next_graph = index.node_graph(uses.front().node);
    if (auto a = nonlinearity(index, next, next_graph)) {
      a->input = value;
      if (next.output_size() > 0 && !is_op(next, "QuantizeLinear")) a->output = next.output(0);
      return *a;
    }
    if (!pass_through(index, next, uses.front().slot, next_graph) || next.output_size() == 0)
      return {};
    value = next.output(0);
    scope = next_graph;
  }
  return {};
}

}  // namespace onnx_reinit::detail
