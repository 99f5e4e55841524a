// Matching of decomposed norms and activations. Each matcher lists, for a
// value, the outputs of the nodes that continue a pattern from it; nested
// loops over those lists try every branch, so a value with several uses
// (x feeds both the mean and the subtraction of a LayerNorm) is matched
// whatever the node order.
#include "patterns.h"

#include <cmath>
#include <functional>
#include <unordered_set>
#include <vector>

#include "layout.h"
#include "ops.h"

namespace onnx_reinit::detail {
namespace {

using strings = std::vector<std::string>;

bool near(double a, double b) {
  return std::abs(a - b) <= 1e-3 * std::abs(b);
}

const std::string& output0(const onnx::NodeProto& node) {
  static const std::string none;
  return node.output_size() > 0 ? node.output(0) : none;
}

const std::string& other_input(const onnx::NodeProto& node, int slot) {
  static const std::string none;
  if (node.input_size() != 2) return none;
  return node.input(1 - slot);
}

// Outputs of the uses of `value` that satisfy `pred(node, slot)`.
strings outputs_where(const model_index& index, const std::string& value, int scope,
                      const std::function<bool(const onnx::NodeProto&, int)>& pred) {
  strings out;
  if (value.empty()) return out;
  for (const auto& u : index.uses(value, scope)) {
    const auto& node = index.node(u.node);
    if (!output0(node).empty() && pred(node, u.slot)) out.push_back(output0(node));
  }
  return out;
}

// op(value) for a unary op.
strings unary(const model_index& index, const std::string& value, int scope, std::string_view op) {
  return outputs_where(index, value, scope, [&](const onnx::NodeProto& n, int slot) {
    return is_op(n, op) && slot == 0;
  });
}

// op(value, c) (either order when `commutative`) with c a uniform constant
// satisfying `ok`.
strings with_constant(const model_index& index, const std::string& value, int scope,
                      std::string_view op, bool commutative,
                      const std::function<bool(double)>& ok) {
  return outputs_where(index, value, scope, [&](const onnx::NodeProto& n, int slot) {
    if (!is_op(n, op) || (!commutative && slot != 0)) return false;
    auto c = uniform_constant(index, other_input(n, slot), scope);
    return c && ok(*c);
  });
}

// op(a, b), or op(b, a) when `commutative`.
strings binary(const model_index& index, const std::string& a, const std::string& b, int scope,
               std::string_view op, bool commutative) {
  return outputs_where(index, a, scope, [&](const onnx::NodeProto& n, int slot) {
    return is_op(n, op) && (commutative || slot == 0) && other_input(n, slot) == b;
  });
}

auto equals(double v) {
  return [v](double c) { return c == v; };
}

// v/6 or v*(1/6).
strings sixth(const model_index& index, const std::string& v, int scope) {
  strings out = with_constant(index, v, scope, "Div", false, equals(6.0));
  for (auto& s :
       with_constant(index, v, scope, "Mul", true, [](double c) { return near(c, 1.0 / 6.0); }))
    out.push_back(s);
  return out;
}

// Is some use of `gate` a product with x?
bool gates(const model_index& index, const std::string& x, const std::string& gate, int scope) {
  return !binary(index, gate, x, scope, "Mul", true).empty();
}

// relu6(h) as Clip(h,0,6) (when `with_clip`), Min(Max(h,0),6),
// Max(Min(h,6),0), Min(Relu(h),6), Clip(Relu(h),0,6) (PyTorch's F.relu6).
strings relu6_of(const model_index& index, const std::string& h, int scope, bool with_clip) {
  strings out;
  if (with_clip)
    out = outputs_where(index, h, scope, [&](const onnx::NodeProto& n, int slot) {
      if (!is_op(n, "Clip") || slot != 0) return false;
      auto [lo, hi] = clip_bounds(index, n, scope);
      return lo && *lo == 0.0 && hi && *hi == 6.0;
    });
  auto append = [&](const strings& s) { out.insert(out.end(), s.begin(), s.end()); };
  for (auto& m : with_constant(index, h, scope, "Max", true, equals(0.0)))
    append(with_constant(index, m, scope, "Min", true, equals(6.0)));
  for (auto& m : with_constant(index, h, scope, "Min", true, equals(6.0)))
    append(with_constant(index, m, scope, "Max", true, equals(0.0)));
  for (auto& r : unary(index, h, scope, "Relu")) {
    append(with_constant(index, r, scope, "Min", true, equals(6.0)));
    append(outputs_where(index, r, scope, [&](const onnx::NodeProto& n, int slot) {
      if (!is_op(n, "Clip") || slot != 0) return false;
      auto [lo, hi] = clip_bounds(index, n, scope);
      return (!lo || *lo <= 0.0) && hi && *hi == 6.0;
    }));
  }
  return out;
}

// Erf form: x / 1.4142 (or x * 0.7071) then Erf.
bool erf_gelu(const model_index& index, const std::string& x, int scope) {
  strings scaled = with_constant(index, x, scope, "Div", false,
                                 [](double c) { return near(c, std::sqrt(2.0)); });
  for (auto& s : with_constant(index, x, scope, "Mul", true,
                               [](double c) { return near(c, std::sqrt(0.5)); }))
    scaled.push_back(s);
  for (auto& s : scaled)
    if (!unary(index, s, scope, "Erf").empty()) return true;
  return false;
}

// Tanh form: x^3 (Pow 3) feeding, within a few elementwise steps, a Tanh.
bool tanh_gelu(const model_index& index, const std::string& x, int scope) {
  for (auto v : with_constant(index, x, scope, "Pow", false, equals(3.0))) {
    for (int step = 0; step < 4; ++step) {
      auto next = index.value_uses(v, scope);
      if (next.empty()) break;
      const auto& m = index.node(next.front().node);
      if (is_op(m, "Tanh")) return true;
      if (!(is_op(m, "Mul") || is_op(m, "Add")) || m.output_size() == 0) break;
      v = m.output(0);
    }
  }
  return false;
}

// x*Sigmoid(beta*x): beta (1 for x*Sigmoid(x)). Paddle2ONNX writes
// swish with an explicit Mul by 1.0.
std::optional<double> swish_beta(const model_index& index, const std::string& x, int scope) {
  for (auto& s : unary(index, x, scope, "Sigmoid"))
    if (gates(index, x, s, scope)) return 1.0;
  for (const auto& u : index.uses(x, scope)) {
    const auto& n = index.node(u.node);
    if (!is_op(n, "Mul")) continue;
    auto beta = uniform_constant(index, other_input(n, u.slot), scope);
    if (!beta || *beta == 0.0) continue;
    for (auto& s : unary(index, output0(n), scope, "Sigmoid"))
      if (gates(index, x, s, scope)) return *beta;
  }
  return std::nullopt;
}

// x * relu6(x+3) / 6 with the division by 6 (or Mul by 1/6) applied to
// either factor or to the product.
bool hardswish(const model_index& index, const std::string& x, int scope) {
  std::vector<std::pair<std::string, int>> xs{{x, 0}};
  for (auto& s : sixth(index, x, scope)) xs.emplace_back(s, 1);
  for (auto& h : with_constant(index, x, scope, "Add", true, equals(3.0))) {
    for (auto& r : relu6_of(index, h, scope, true)) {
      std::vector<std::pair<std::string, int>> rs{{r, 0}};
      for (auto& s : sixth(index, r, scope)) rs.emplace_back(s, 1);
      for (auto& [rv, rn] : rs)
        for (auto& [xv, xn] : xs)
          for (auto& p : binary(index, rv, xv, scope, "Mul", true)) {
            if (rn + xn == 1) return true;
            if (rn + xn == 0 && !sixth(index, p, scope).empty()) return true;
          }
    }
  }
  return false;
}

// Softplus(x), or Log(Exp(x) + 1).
strings softplus_of(const model_index& index, const std::string& x, int scope) {
  strings out = unary(index, x, scope, "Softplus");
  for (auto& e : unary(index, x, scope, "Exp"))
    for (auto& a : with_constant(index, e, scope, "Add", true, equals(1.0)))
      for (auto& l : unary(index, a, scope, "Log")) out.push_back(l);
  return out;
}

bool mish(const model_index& index, const std::string& x, int scope) {
  for (auto& sp : softplus_of(index, x, scope))
    for (auto& t : unary(index, sp, scope, "Tanh"))
      if (gates(index, x, t, scope)) return true;
  return false;
}

// Max(x, alpha*x) with 0 < alpha < 1 (tf2onnx's LeakyRelu): alpha.
std::optional<double> max_leaky_relu(const model_index& index, const std::string& x, int scope) {
  for (const auto& u : index.uses(x, scope)) {
    const auto& n = index.node(u.node);
    if (!is_op(n, "Mul")) continue;
    auto alpha = uniform_constant(index, other_input(n, u.slot), scope);
    if (!alpha || *alpha <= 0.0 || *alpha >= 1.0) continue;
    if (!binary(index, output0(n), x, scope, "Max", true).empty()) return *alpha;
  }
  return std::nullopt;
}

// Min/Max forms of relu6 and relu.
std::optional<activation_kind> min_max_relu(const model_index& index, const std::string& x,
                                            int scope) {
  // Clip(x,0,6) itself is the walk's business; here only the Min/Max forms.
  if (!relu6_of(index, x, scope, false).empty()) return activation_kind::relu6;
  if (!with_constant(index, x, scope, "Max", true, equals(0.0)).empty())
    return activation_kind::relu;
  return std::nullopt;
}

// f(x) whose output is multiplied by x: x*HardSigmoid(x) (any alpha: gating
// by x makes it a hard swish shape).
bool hardsigmoid_gated(const model_index& index, const std::string& x, int scope) {
  for (auto& s : unary(index, x, scope, "HardSigmoid"))
    if (gates(index, x, s, scope)) return true;
  return false;
}

// Is `value` a constant, directly or through layout-only ops?
bool constant_like(const model_index& index, const std::string& value, int scope) {
  return !constant_source(index, value, scope).empty();
}

// The normalised value: base / Sqrt(var [+ eps]), base * Reciprocal(Sqrt(...)),
// base * (1 / Sqrt(...)) or base * Pow(..., -0.5).
strings normalized(const model_index& index, const std::string& var, const std::string& base,
                   int scope) {
  strings vars{var};
  for (auto& v : outputs_where(index, var, scope, [&](const onnx::NodeProto&n, int slot) {
         return is_op(n, "Add") && constant_like(index, other_input(n, slot), scope);
       }))
    vars.push_back(v);
  strings out;
  auto append = [&](const strings& s) { out.insert(out.end(), s.begin(), s.end()); };
  for (auto& v : vars) {
    for (auto& s : unary(index, v, scope, "Sqrt")) {
      append(binary(index, base, s, scope, "Div", false));
      for (auto& r : unary(index, s, scope, "Reciprocal"))
        append(binary(index, base, r, scope, "Mul", true));
      for (const auto& u : index.uses(s, scope)) {
        const auto& n = index.node(u.node);
        auto one = uniform_constant(index, other_input(n, u.slot), scope);
        if (is_op(n, "Div") && u.slot == 1 && one && *one == 1.0)
          append(binary(index, base, output0(n), scope, "Mul", true));
      }
    }
    for (auto& r : with_constant(index, v, scope, "Pow", false, equals(-0.5)))
      append(binary(index, base, r, scope, "Mul", true));
  }
  return out;
}

// x^2 as Pow(x, 2) or Mul(x, x).
strings squared(const model_index& index, const std::string& x, int scope) {
  strings out = with_constant(index, x, scope, "Pow", false, equals(2.0));
  for (auto& s : binary(index, x, x, scope, "Mul", true)) out.push_back(s);
  return out;
}

// The optional Mul(gamma) and Add(beta) after the normalised value.
decomposed_norm with_affine(const model_index& index, norm_form form, const std::string& n,
                            int scope) {
  decomposed_norm r;
  r.form = form;
  r.output = n;
  r.graph = scope;
  auto affine = [&](std::string_view op, value_use& where) {
    for (const auto& u : index.uses(r.output, scope)) {
      const auto& node = index.node(u.node);
      if (!is_op(node, op) || node.input_size() != 2 || output0(node).empty()) continue;
      if (!constant_like(index, other_input(node, u.slot), scope)) continue;
      where = {u.node, 1 - u.slot};
      r.output = output0(node);
      r.graph = index.node_graph(u.node);
      return;
    }
  };
  affine("Mul", r.scale);
  affine("Add", r.bias);
  return r;
}

std::optional<decomposed_norm> layer_norm(const model_index& index, const std::string& x,
                                          int scope) {
  for (auto& mean : unary(index, x, scope, "ReduceMean"))
    for (auto& d : binary(index, x, mean, scope, "Sub", false))
      for (auto& sq : squared(index, d, scope))
        for (auto& var : unary(index, sq, scope, "ReduceMean"))
          for (auto& n : normalized(index, var, d, scope))
            return with_affine(index, norm_form::layer_norm, n, scope);
  return std::nullopt;
}

std::optional<decomposed_norm> rms_norm(const model_index& index, const std::string& x, int scope) {
  for (auto& sq : squared(index, x, scope))
    for (auto& ms : unary(index, sq, scope, "ReduceMean"))
      for (auto& n : normalized(index, ms, x, scope))
        return with_affine(index, norm_form::rms_norm, n, scope);
  return std::nullopt;
}

std::optional<decomposed_norm> group_norm(const model_index& index, const std::string& x,
                                          int scope) {
  for (auto& r : unary(index, x, scope, "Reshape"))
    for (auto& in : unary(index, r, scope, "InstanceNormalization"))
      for (auto& y : unary(index, in, scope, "Reshape"))
        return with_affine(index, norm_form::group_norm, y, scope);
  return std::nullopt;
}

}  // namespace

std::pair<std::optional<double>, std::optional<double>> clip_bounds(const model_index& index,
                                                                    const onnx::NodeProto& node,
                                                                    int scope) {
  std::optional<double> lo, hi;
  if (auto a = float_attribute(node, "min")) lo = *a;
  if (auto a = float_attribute(node, "max")) hi = *a;
  if (node.input_size() > 1) lo = uniform_constant(index, node.input(1), scope);
  if (node.input_size() > 2) hi = uniform_constant(index, node.input(2), scope);
  return {lo, hi};
}

std::string constant_source(const model_index& index, const std::string& value, int scope) {
  std::string v = value;
  for (int step = 0; step < 8 && !v.empty(); ++step) {
    if (index.constant(v, scope) != nullptr) return v;
    int p = index.producer(v, scope);
    if (p < 0) return {};
    const auto& n = index.node(p);
    // Ops that keep every value of a single input: a uniform constant stays
    // uniform through them.
    const layout_kind kind = layout_op_kind(n);
    const bool ok = kind == layout_kind::flat_order || kind == layout_kind::permute ||
                    kind == layout_kind::broadcast;
    if (!ok || n.input_size() == 0) return {};
    v = n.input(0);
    scope = index.node_graph(p);
  }
  return {};
}

bool feeds_sin_and_cos(const model_index& index, const std::string& value, int scope) {
  // The angle reaches its sinusoids within a few nodes; the bound keeps a
  // walk over a large graph short.
  constexpr std::size_t max_values = 64;
  bool sin = false, cos = false;
  std::vector<std::pair<std::string, int>> queue{{value, scope}};
  std::unordered_set<std::string> seen{value};
  for (std::size_t q = 0; q < queue.size() && q < max_values && !(sin && cos); ++q) {
    const auto [v, g] = queue[q];
    for (const auto& u : index.value_uses(v, g)) {
      const auto& node = index.node(u.node);
      sin = sin || is_op(node, "Sin");
      cos = cos || is_op(node, "Cos");
      const bool by_constant =
          op_info(node).traits.arithmetic && constant_like(index, other_input(node, u.slot), g);
      const bool pass =
          (layout_op_kind(node) != layout_kind::none && is_layout_op(node, u.slot)) || by_constant;
      if (!pass || output0(node).empty()) continue;
      if (seen.insert(output0(node)).second)
        queue.emplace_back(output0(node), index.node_graph(u.node));
    }
  }
  return sin && cos;
}

std::string_view to_string(norm_form f) {
  switch (f) {
    case norm_form::layer_norm:
      return "LayerNormalization";
    case norm_form::rms_norm:
      return "RMSNormalization";
    case norm_form::group_norm:
      return "GroupNormalization";
  }
  return "";
}

std::optional<activation_result> match_decomposed_activation(const model_index& index,
                                                             const std::string& x, int scope) {
  if (x.empty()) return std::nullopt;
  if (erf_gelu(index, x, scope) || tanh_gelu(index, x, scope))
    return activation_result{activation_kind::gelu, 0.0, {}};
  if (auto beta = swish_beta(index, x, scope)) {
    // x*Sigmoid(1.702x) is the sigmoid approximation of GELU.
    if (near(*beta, 1.702)) return activation_result{activation_kind::gelu, 0.0, {}};
    return activation_result{activation_kind::silu, *beta, {}};
  }
  if (hardswish(index, x, scope) || hardsigmoid_gated(index, x, scope))
    return activation_result{activation_kind::hardswish, 0.0, {}};
  if (mish(index, x, scope)) return activation_result{activation_kind::mish, 0.0, {}};
  if (auto alpha = max_leaky_relu(index, x, scope))
    return activation_result{activation_kind::leaky_relu, *alpha, {}};
  if (auto k = min_max_relu(index, x, scope)) return activation_result{*k, 0.0, {}};
  if (!softplus_of(index, x, scope).empty() && unary(index, x, scope, "Softplus").empty())
    return activation_result{activation_kind::softplus, 0.0, {}};
  return std::nullopt;
}

std::optional<decomposed_norm> match_decomposed_norm(const model_index& index, const std::string& x,
                                                     int scope) {
  if (x.empty()) return std::nullopt;
  if (auto n = layer_norm(index, x, scope)) return n;
  if (auto n = rms_norm(index, x, scope)) return n;
  return group_norm(index, x, scope);
}

std::map<std::pair<int, int>, norm_parameter> find_decomposed_norm_parameters(
    const model_index& index) {
  std::map<std::pair<int, int>, norm_parameter> out;
  auto record = [&](const decomposed_norm& n) {
    if (n.scale.node >= 0)
      out.emplace(std::pair{n.scale.node, n.scale.slot},
                  norm_parameter{tensor_role::norm_scale, n.form});
    if (n.bias.node >= 0)
      out.emplace(std::pair{n.bias.node, n.bias.slot},
                  norm_parameter{tensor_role::norm_bias, n.form});
  };
  // A norm's input feeds a ReduceMean (LayerNorm), a Pow/Mul (RMSNorm) or a
  // Reshape (GroupNorm). LayerNorms are recorded first: the centred value
  // inside one also reads as an RMSNorm, with the same gamma and beta.
  const int count = static_cast<int>(index.nodes().size());
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < count; ++i) {
      const auto& node = index.node(i);
      if (node.input_size() == 0 || node.input(0).empty()) continue;
      int g = index.node_graph(i);
      std::optional<decomposed_norm> n;
      if (pass == 0 && is_op(node, "ReduceMean"))
        n = layer_norm(index, node.input(0), g);
      else if (pass == 1 && (is_op(node, "Pow") || is_op(node, "Mul")))
        n = rms_norm(index, node.input(0), g);
      else if (pass == 1 && is_op(node, "Reshape"))
        n = group_norm(index, node.input(0), g);
      if (n) record(*n);
    }
  }
  return out;
}

}  // namespace onnx_reinit::detail
