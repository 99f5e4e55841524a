// Quantized weights and biases (docs/DESIGN.md section 6): what the
// DequantizeLinear between an integer tensor and its layer says about it,
// and whether --quantized requantize can rewrite it.
#pragma once

#include <optional>

#include "graph_index.h"
#include "onnx_reinit/analysis.h"

namespace onnx_reinit::detail {

// For a tensor traced through DequantizeLinear node `dequantize` (data
// input) to the weight or bias slot of layer node `layer`: its scale, zero
// point and axis, and for a bias the scales its own is the product of. A
// structure requantization cannot handle is described in `unsupported`.
// nullopt for anything else (not a weight or bias, no DequantizeLinear).
std::optional<quantized_tensor> describe_quantized(const model_index& index, int dequantize,
                                                   int layer, tensor_role role,
                                                   const onnx::TensorProto& tensor, int graph);

// A QuantizeLinear whose zero point is the lowest value of its output type
// (uint8 with zero point 0, the default, or int8 with -128) clamps every
// negative input to 0: ONNX Runtime's quantizer removes the Relu after a
// layer and leaves exactly this. True for such a node.
bool quantize_clamps_negatives(const model_index& index, const onnx::NodeProto& node, int scope);

}  // namespace onnx_reinit::detail
