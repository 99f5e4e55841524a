// The activation walk: pattern matching for decomposed activations and the
// forward walk through pass-through ops.
#include "activation.h"

#include <cmath>
#include <unordered_set>

#include "onnx_reinit/gains.h"

namespace onnx_reinit::detail {
namespace {

bool near(double a, double b) {
  return std::abs(a - b) <= 1e-3 * std::abs(b);
}

// The value of a constant whose elements are all equal.
std::optional<double> uniform_constant(const model_index& index, const std::string& name,
                                       int scope) {
  if (name.empty()) return std::nullopt;
  const auto* t = index.constant(name, scope);
  if (t == nullptr) return std::nullopt;
  auto v = index.values(*t);
  if (!v || v->empty()) return std::nullopt;
  for (double x : *v)
    if (x != (*v)[0]) return std::nullopt;
  return (*v)[0];
}

const std::string& other_input(const onnx::NodeProto& node, int slot) {
  static const std::string none;
  if (node.input_size() != 2) return none;
  return node.input(1 - slot);
}

// Does some use of `value` satisfy `pred(node_index, slot)`?
template <class Pred>
bool any_use(const model_index& index, const std::string& value, int scope, Pred&& pred) {
  for (const auto& u : index.uses(value, scope))
    if (pred(u.node, u.slot)) return true;
  return false;
}

// f(x) whose output is multiplied by x: x*Sigmoid(x), x*HardSigmoid(x),
// x*Tanh(Softplus(x)) (the inner chain given as op names).
bool gated_by(const model_index& index, const std::string& x, int scope,
              const std::vector<std::string_view>& chain) {
  return any_use(index, x, scope, [&](int n, int slot) {
    if (slot != 0) return false;
    int cur = n;
    for (std::size_t i = 0; i < chain.size(); ++i) {
      const auto& node = index.node(cur);
      if (!is_op(node, chain[i]) || node.output_size() == 0) return false;
      if (i + 1 == chain.size()) break;
      auto next = index.uses(node.output(0), scope);
      if (next.empty()) return false;
      cur = next.front().node;
    }
    return any_use(index, index.node(cur).output(0), scope, [&](int m, int s) {
      const auto& mul = index.node(m);
      return is_op(mul, "Mul") && other_input(mul, s) == x;
    });
  });
}

// Erf form: x / 1.4142 (or x * 0.7071) then Erf.
bool erf_gelu(const model_index& index, const std::string& x, int scope) {
  return any_use(index, x, scope, [&](int n, int slot) {
    const auto& node = index.node(n);
    auto c = uniform_constant(index, other_input(node, slot), scope);
    bool scaled = slot == 0 && c &&
                  ((is_op(node, "Div") && near(*c, std::sqrt(2.0))) ||
                   (is_op(node, "Mul") && near(*c, std::sqrt(0.5))));
    if (!scaled) return false;
    return any_use(index, node.output(0), scope,
                   [&](int m, int) { return is_op(index.node(m), "Erf"); });
  });
}

// Tanh form: x^3 (Pow 3) feeding, within a few elementwise steps, a Tanh.
bool tanh_gelu(const model_index& index, const std::string& x, int scope) {
  return any_use(index, x, scope, [&](int n, int slot) {
    const auto& node = index.node(n);
    auto c = uniform_constant(index, other_input(node, slot), scope);
    if (!is_op(node, "Pow") || slot != 0 || !c || *c != 3.0) return false;
    std::string v = node.output(0);
    for (int step = 0; step < 4; ++step) {
      auto next = index.uses(v, scope);
      if (next.empty()) return false;
      const auto& m = index.node(next.front().node);
      if (is_op(m, "Tanh")) return true;
      if (!(is_op(m, "Mul") || is_op(m, "Add")) || m.output_size() == 0) return false;
      v = m.output(0);
    }
    return false;
  });
}

std::optional<activation_result> decomposed(const model_index& index, const std::string& x,
                                            int scope) {
  if (erf_gelu(index, x, scope) || tanh_gelu(index, x, scope))
    return activation_result{activation_kind::gelu, 0.0};
  if (gated_by(index, x, scope, {"Sigmoid"})) return activation_result{activation_kind::silu, 0.0};
  if (gated_by(index, x, scope, {"HardSigmoid"}))
    return activation_result{activation_kind::hardswish, 0.0};
  if (gated_by(index, x, scope, {"Softplus", "Tanh"}))
    return activation_result{activation_kind::mish, 0.0};
  return std::nullopt;
}

// Clip as ReLU6 or ReLU; bounds are attributes (opset < 11) or inputs.
activation_result clip_activation(const model_index& index, const onnx::NodeProto& node,
                                  int scope) {
  std::optional<double> lo, hi;
  if (auto a = float_attribute(node, "min")) lo = *a;
  if (auto a = float_attribute(node, "max")) hi = *a;
  if (node.input_size() > 1) lo = uniform_constant(index, node.input(1), scope);
  if (node.input_size() > 2) hi = uniform_constant(index, node.input(2), scope);
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
  if (op == "PRelu") {
    auto slope =
        node.input_size() > 1 ? uniform_constant(index, node.input(1), scope) : std::nullopt;
    return activation_result{activation_kind::prelu, slope.value_or(default_prelu_slope)};
  }
  std::vector<float> params;
  if (auto a = float_attribute(node, "alpha")) params.push_back(*a);
  if (op == "Gelu" || op == "FastGelu" || op == "BiasGelu")
    return activation_result{activation_kind::gelu, 0.0};
  return activation_from_name(op, params);
}

bool pass_through(const model_index& index, const onnx::NodeProto& node, int slot, int scope) {
  if (node.domain() == "com.microsoft")
    return node.op_type() == "LayerNormalization" || node.op_type() == "SkipLayerNormalization" ||
           node.op_type() == "SimplifiedLayerNormalization";
  if (!is_default_domain(node)) return false;
  static const std::unordered_set<std::string> ops = {"Add",
                                                      "BatchNormalization",
                                                      "LayerNormalization",
                                                      "InstanceNormalization",
                                                      "GroupNormalization",
                                                      "Identity",
                                                      "Cast",
                                                      "Transpose",
                                                      "Reshape",
                                                      "Squeeze",
                                                      "Unsqueeze",
                                                      "Flatten",
                                                      "Dropout",
                                                      "MaxPool",
                                                      "AveragePool",
                                                      "GlobalMaxPool",
                                                      "GlobalAveragePool",
                                                      "Pad",
                                                      "Resize",
                                                      "Upsample",
                                                      "DepthToSpace",
                                                      "SpaceToDepth",
                                                      "Concat",
                                                      "Split",
                                                      "Slice",
                                                      "Expand",
                                                      "Tile",
                                                      "LpPool"};
  if (ops.count(node.op_type()) != 0) return true;
  // Scaling by a constant keeps the walk going; a product of two activations
  // (gating) does not.
  if (node.op_type() == "Mul" || (node.op_type() == "Div" && slot == 0))
    return index.constant(other_input(node, slot), scope) != nullptr;
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
    if (auto d = decomposed(index, value, graph)) return *d;
    auto uses = index.uses(value, graph);
    if (uses.empty()) return {};
    const auto& next = index.node(uses.front().node);
    int next_graph = index.node_graph(uses.front().node);
    if (auto a = nonlinearity(index, next, next_graph)) return *a;
    if (!pass_through(index, next, uses.front().slot, next_graph) || next.output_size() == 0)
      return {};
    value = next.output(0);
    scope = next_graph;
  }
  return {};
}

}  // namespace onnx_reinit::detail
