// Norms and activations that exporters (PyTorch at opsets 9-17, tf2onnx,
// Paddle2ONNX) write as several nodes, recognised so that the analysis reads
// them as the fused op (docs/DESIGN.md section 6, "Decomposed ops"): decomposed
// LayerNorm, RMSNorm and GroupNorm give their scale and bias the norm roles
// and are walked through like the fused norms; decomposed activations give
// the activation of the fused one.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "activation.h"
#include "graph_index.h"
#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit::detail {

// A decomposed activation applied to `x` (a value seen from graph `scope`):
// GELU (Erf and Tanh forms, x*Sigmoid(1.702x)); swish x*Sigmoid(beta*x),
// silu with param beta; hardswish x*Clip(x+3,0,6)/6 (Div by 6 or Mul by 1/6
// before or after the product, relu6 as Clip, Min/Max or Relu/Min) and
// x*HardSigmoid(x); mish x*Tanh(Softplus(x)) with Softplus also as
// Log(Exp(x)+1); relu6 as Min(Max(x,0),6) or Min(Relu(x),6); relu as
// Max(x,0); leaky_relu as Max(x, alpha*x); softplus as Log(Exp(x)+1).
std::optional<activation_result> match_decomposed_activation(const model_index& index,
                                                             const std::string& x, int scope);

enum class norm_form { layer_norm, rms_norm, group_norm };
std::string_view to_string(norm_form f);

struct decomposed_norm {
  norm_form form = norm_form::layer_norm;
  std::string output;  // the normalised value, after the scale and shift when present
  int graph = 0;       // graph whose node produces `output`
  // Nodes and input slots where gamma and beta enter; node -1 when absent.
  value_use scale{-1, 0};
  value_use bias{-1, 0};
};

// A decomposed norm whose input is `x`:
// - LayerNorm: d = x - ReduceMean(x); var = ReduceMean(d^2) (Pow 2 or d*d);
//   d / Sqrt(var [+ eps]), or d * Reciprocal(Sqrt(...)), d * Pow(..., -0.5);
// - RMSNorm: the same without the mean: x / Sqrt(ReduceMean(x^2) [+ eps]) ...;
// - GroupNorm: Reshape, InstanceNormalization, Reshape;
// each optionally followed by Mul(gamma) then Add(beta) with constant
// operands (directly or through layout ops).
std::optional<decomposed_norm> match_decomposed_norm(const model_index& index, const std::string& x,
                                                     int scope);

// Roles of the gamma/beta operands of every decomposed norm in the model,
// keyed by (node, input slot) of the Mul/Add that takes them.
struct norm_parameter {
  tensor_role role = tensor_role::unknown;
  norm_form form = norm_form::layer_norm;
};
std::map<std::pair<int, int>, norm_parameter> find_decomposed_norm_parameters(
    const model_index& index);

// Clip's bounds: attributes (opset < 11) or constant inputs.
std::pair<std::optional<double>, std::optional<double>> clip_bounds(const model_index& index,
                                                                    const onnx::NodeProto& node,
                                                                    int scope);

// Whether `value` (seen from graph `scope`) goes into both a Sin and a Cos
// through layout ops (Concat and Cast included) and scaling or shifting by
// constants (Mul, Div, Add, Sub): sin(2π·x·G) and cos(2π·x·G), the random
// Fourier features of SAM's and NeRF-style positional encoders (and the
// angles of rotary embeddings). A product that does is a fixed projection,
// not a layer: nothing learned follows it before the sinusoids.
bool feeds_sin_and_cos(const model_index& index, const std::string& value, int scope);

// The name of the constant `value` is, directly or through layout-only ops
// (Identity, Cast, Reshape, Unsqueeze, Squeeze, Flatten, Transpose, Expand);
// "" when it is computed from anything else.
std::string constant_source(const model_index& index, const std::string& value, int scope);

}  // namespace onnx_reinit::detail
