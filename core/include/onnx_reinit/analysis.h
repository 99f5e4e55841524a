// What every float tensor of a model is: its role, fans, matrix view and the
// activation that follows it, worked out from the graph (docs/DESIGN.md sections
// 5 and 6). The CLI shows exactly this; a C++ user gets the same through here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/format.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/residual.h"
#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit {

enum class fan_convention { semantic, torch };

struct analysis_options {
  fan_convention convention = fan_convention::semantic;
};

// A quantized weight or bias (docs/DESIGN.md section 6): an integer tensor
// (int8, uint8 weight; int32 bias) that a DequantizeLinear turns into the
// weight or bias of a layer. Its role, fans and activation are the layer's.
struct quantized_tensor {
  std::string scale;          // the DequantizeLinear's scale tensor
  std::string zero_point;     // its zero point tensor; "" when absent (0)
  std::int64_t axis = 1;      // its axis, non-negative (meaningful per channel)
  std::int64_t channels = 1;  // elements of the scale: 1 per tensor, else per channel
  bool symmetric = true;      // every zero point is 0 (int8 weights, int32 biases)
  // Bias: its scale is input scale x weight scale, the scale of the
  // DequantizeLinear feeding the layer's data input and that of the layer's
  // quantized weight (named here).
  std::string input_scale;
  std::string weight;
  std::string weight_scale;
  // Non-empty: --quantized requantize cannot rewrite this tensor, and why.
  std::string unsupported;
};

struct tensor_analysis {
  tensor_ref ref;
  // name, shape, dtype, role, fans, receptive field, groups, gates, matrix
  // view, activation, gain. dtype is meaningful only when `is_float`.
  tensor_info info;
  bool is_float = false;             // float32/float16/bfloat16/float64
  std::string data_type;             // ONNX data type as stored: "float", "int64", "float16", ...
  std::string consumer_op;           // "Conv", "com.microsoft.FusedConv", "" when none
  std::int64_t consumer_input = -1;  // input slot at the real consumer
  std::string keep_reason;           // non-empty: must be kept byte for byte, and why
  // Non-empty: the values form a fixed, non-learned constant (DFT basis,
  // filterbank, window, position table, identity...), and why. Kept unless
  // a user rule names the tensor with a name glob other than `*`.
  std::string fixed_constant;
  std::vector<std::string> notes;  // e.g. shared tensor whose consumers imply other fans
  // Activation prelu: the name of the PReLU's slope tensor. The planner
  // takes the gain from the slope the plan writes for it, not the trained one.
  std::string prelu_slope_tensor;
  // Element ranges [begin, end) holding LSTM forget-gate input biases
  // (the default policy sets them to 1), already mapped through any
  // Slice/Concat gate reordering between the initializer and the LSTM.
  std::vector<std::pair<std::int64_t, std::int64_t>> forget_gate_ranges;
  // For a weight or recurrent weight whose layer (Conv, ConvTranspose, Gemm,
  // MatMul, LSTM/GRU/RNN) is a node of the main graph: the layer's output 0,
  // for measuring it (the runtime's inspection). Where the activation found
  // by the walk is a node of its own, the value it applies to and its output;
  // a decomposed activation has an input and no output; "" when none.
  std::string layer_output;
  std::string activation_input;
  std::string activation_output;
  // Where the tensor sits in the residual structure (residual.h): weight
  // or bias of a weighted layer in a branch or a skip projection, a
  // branch's last norm scale or its multiplier; nullopt elsewhere.
  std::optional<residual_position> residual;
  // Weight or bias of an output layer: its output, through a bias and
  // layout ops, is a graph output or goes into a Softmax or a loss.
  bool output_layer = false;
  // The model's attention structure and this tensor's place in it.
  transformer_place transformer;
  // Set for a quantized weight or bias (kept unless --quantized requantize).
  std::optional<quantized_tensor> quantized;
  // A scale or zero point of a QuantizeLinear/DequantizeLinear: never a
  // weight, never rewritten by a rule (requantize sets a quantized weight's
  // scale from its new values).
  bool quantization_parameter = false;
};

// One entry per tensor of collect_model_tensors(), in the same order. The
// values of constants (Clip bounds, PRelu slopes, shapes...) are read through
// model I/O's decode_tensor_values, so the plan is the same whatever their
// storage form, external data included. The checks for fixed constants run
// in parallel on TBB's threads (a tbb::global_control or task_arena of the
// caller bounds them); the result does not depend on the thread count.
std::vector<tensor_analysis> analyze_model(const loaded_model& model,
                                           const analysis_options& options = {});

// The same for a model held only in memory: with no loaded_model to read
// external data through, the values of external tensors are unknown (a Clip
// with external bounds is not recognised as relu6, for instance). Use the
// overload above for any model loaded from a file.
std::vector<tensor_analysis> analyze_model(const onnx::ModelProto& model,
                                           const analysis_options& options = {});

}  // namespace onnx_reinit

// "conv.w float32 [32, 16, 3, 3] weight fan_in=144 ... consumer=Conv:1", then
// "keep: <why>" / "fixed constant: <why>" when set.
template <>
struct fmt::formatter<onnx_reinit::tensor_analysis> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::tensor_analysis& t, Context& ctx) const {
    auto out = t.is_float ? fmt::format_to(ctx.out(), "{}", t.info)
                          : fmt::format_to(ctx.out(), "{} {} [{}]", t.info.name, t.data_type,
                                           fmt::join(t.info.shape, ", "));
    if (!t.ref.graph_path.empty()) out = fmt::format_to(out, " in {}", t.ref.graph_path);
    out = fmt::format_to(out, " consumer={}", t.consumer_op.empty() ? "none" : t.consumer_op);
    if (!t.consumer_op.empty()) out = fmt::format_to(out, ":{}", t.consumer_input);
    if (!t.keep_reason.empty()) out = fmt::format_to(out, " keep: {}", t.keep_reason);
    if (!t.fixed_constant.empty())
      out = fmt::format_to(out, " fixed constant: {}", t.fixed_constant);
    return out;
  }
};
