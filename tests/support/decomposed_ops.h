// Test support: norms and activations written as several nodes, the way
// PyTorch (opsets 9-17), tf2onnx and Paddle2ONNX export them, appended to a
// graph_builder. Each helper reads value `x` and writes value `y`; internal
// values and constants are prefixed with `y` so several can share a graph.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "onnx_builder.h"

namespace onnx_reinit::test {

// A scalar float constant initializer named `name`.
inline std::string scalar(graph_builder& b, const std::string& name, float v) {
  b.add_initializer(name, {1}, {v});
  return name;
}

// How a decomposed LayerNorm/RMSNorm divides by the standard deviation.
enum class rstd_form {
  div_sqrt,         // base / Sqrt(var + eps)            (PyTorch, Paddle2ONNX)
  mul_reciprocal,   // base * Reciprocal(Sqrt(var + eps))
  mul_one_over,     // base * (1 / Sqrt(var + eps))
  mul_pow_neg_half  // base * Pow(var + eps, -0.5)
};

struct norm_options {
  rstd_form rstd = rstd_form::div_sqrt;
  bool eps = true;          // the Add of epsilon before the square root
  bool square_pow = true;   // d^2 as Pow(d, 2); otherwise Mul(d, d)
  std::string gamma, beta;  // initializer names; "" for none
};

// base * rstd(var) or base / sqrt(var), per `o`; returns the output name.
inline std::string add_rstd(graph_builder& b, const std::string& base, const std::string& var,
                            const std::string& y, const norm_options& o) {
  std::string v = var;
  if (o.eps) {
    b.add_node("Add", {var, scalar(b, y + ".eps", 1e-5f)}, {y + ".ve"});
    v = y + ".ve";
  }
  const std::string n = y + ".n";
  switch (o.rstd) {
    case rstd_form::div_sqrt:
      b.add_node("Sqrt", {v}, {y + ".s"});
      b.add_node("Div", {base, y + ".s"}, {n});
      break;
    case rstd_form::mul_reciprocal:
      b.add_node("Sqrt", {v}, {y + ".s"});
      b.add_node("Reciprocal", {y + ".s"}, {y + ".r"});
      b.add_node("Mul", {y + ".r", base}, {n});
      break;
    case rstd_form::mul_one_over:
      b.add_node("Sqrt", {v}, {y + ".s"});
      b.add_node("Div", {scalar(b, y + ".one", 1.0f), y + ".s"}, {y + ".r"});
      b.add_node("Mul", {base, y + ".r"}, {n});
      break;
    case rstd_form::mul_pow_neg_half:
      b.add_node("Pow", {v, scalar(b, y + ".mhalf", -0.5f)}, {y + ".r"});
      b.add_node("Mul", {base, y + ".r"}, {n});
      break;
  }
  return n;
}

// Mul(gamma) and Add(beta) when named; the last node writes `y`.
inline void add_affine(graph_builder& b, std::string n, const std::string& y,
                       const norm_options& o) {
  if (!o.gamma.empty()) {
    std::string out = o.beta.empty() ? y : y + ".g";
    b.add_node("Mul", {n, o.gamma}, {out});
    n = out;
  }
  if (!o.beta.empty()) b.add_node("Add", {n, o.beta}, {y});
  if (o.gamma.empty() && o.beta.empty()) b.add_node("Identity", {n}, {y});
}

inline std::vector<onnx::AttributeProto> last_axis() {
  return {make_attribute("axes", std::vector<std::int64_t>{-1})};
}

// LayerNorm over the last axis: ReduceMean, Sub, Pow/Mul, ReduceMean, ...
// (ReduceMean with an `axes` attribute: opset <= 17).
inline void add_decomposed_layer_norm(graph_builder& b, const std::string& x, const std::string& y,
                                      const norm_options& o) {
  b.add_node("ReduceMean", {x}, {y + ".mean"}, last_axis());
  b.add_node("Sub", {x, y + ".mean"}, {y + ".d"});
  if (o.square_pow)
    b.add_node("Pow", {y + ".d", scalar(b, y + ".two", 2.0f)}, {y + ".sq"});
  else
    b.add_node("Mul", {y + ".d", y + ".d"}, {y + ".sq"});
  b.add_node("ReduceMean", {y + ".sq"}, {y + ".var"}, last_axis());
  add_affine(b, add_rstd(b, y + ".d", y + ".var", y, o), y, o);
}

// RMSNorm: x * rstd(ReduceMean(x^2)).
inline void add_decomposed_rms_norm(graph_builder& b, const std::string& x, const std::string& y,
                                    const norm_options& o) {
  if (o.square_pow)
    b.add_node("Pow", {x, scalar(b, y + ".two", 2.0f)}, {y + ".sq"});
  else
    b.add_node("Mul", {x, x}, {y + ".sq"});
  b.add_node("ReduceMean", {y + ".sq"}, {y + ".ms"}, last_axis());
  add_affine(b, add_rstd(b, x, y + ".ms", y, o), y, o);
}

// GroupNorm as PyTorch exports it: Reshape to [N, G, -1],
// InstanceNormalization with unit scale and zero bias of size G, Reshape
// back (to `shape`), then Mul(gamma [C,1,1]) and Add(beta [C,1,1]).
inline void add_decomposed_group_norm(graph_builder& b, const std::string& x, const std::string& y,
                                      std::int64_t groups, const std::vector<std::int64_t>& shape,
                                      const norm_options& o) {
  b.add_initializer(make_int64_tensor(y + ".gshape", {3}, {0, groups, -1}));
  b.add_initializer(
      make_int64_tensor(y + ".shape", {static_cast<std::int64_t>(shape.size())}, shape));
  b.add_initializer(y + ".in_scale", {groups}, std::vector<float>(groups, 1.0f));
  b.add_initializer(y + ".in_bias", {groups}, std::vector<float>(groups, 0.0f));
  b.add_node("Reshape", {x, y + ".gshape"}, {y + ".r"});
  b.add_node("InstanceNormalization", {y + ".r", y + ".in_scale", y + ".in_bias"}, {y + ".in"});
  b.add_node("Reshape", {y + ".in", y + ".shape"}, {y + ".n"});
  add_affine(b, y + ".n", y, o);
}

}  // namespace onnx_reinit::test
