// The op table: one entry per op kind (docs/DESIGN.md section 6, "The op
// table"). An op missing here has no parameter roles, stops every walk and
// has no moment rule; teaching the analysis an op is adding its entry.
#include "ops.h"

#include <unordered_map>
#include <utility>

// Entries are designated initializers: the fields an entry leaves out keep
// their defaults (no slots, walk stops, no rule), which GCC would warn about.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace onnx_reinit::detail {
namespace {

using fk = fan_kind;
using lk = layout_kind;
using mr = moment_rule;
using wk = walk_kind;
using role = tensor_role;

constexpr std::string_view ms = "com.microsoft";

// A weight read by the op's fan function; `min_rank` dims at least.
constexpr slot_entry weight(int slot, int min_rank, std::string_view layout) {
  return {.slot = slot,
          .role = role::weight,
          .fans = slot_fans::own,
          .min_rank = min_rank,
          .layout = layout};
}
// A bias with the fans of the layer's weight.
constexpr slot_entry layer_bias(int slot, std::string_view layout) {
  return {.slot = slot, .role = role::bias, .fans = slot_fans::weight, .layout = layout};
}
// A recurrent cell's tensor, read per gate block by the recurrent fan function.
constexpr slot_entry cell(int slot, tensor_role r, std::string_view layout,
                          std::string_view note = {}) {
  return {.slot = slot, .role = r, .fans = slot_fans::own, .layout = layout, .note = note};
}
// A parameter whose fans are its element count (norm scales, running stats).
constexpr slot_entry param(int slot, tensor_role r, std::string_view layout) {
  return {.slot = slot, .role = r, .layout = layout};
}

// A norm with its scale (gamma) at input 1 and shift (beta) at input 2.
constexpr op_entry norm(std::string_view domain, std::string_view op) {
  op_entry e;
  e.domain = domain;
  e.op = op;
  e.slots[0] = param(1, role::norm_scale, "[normalized dims] or [C]");
  e.slots[1] = param(2, role::norm_bias, "as the scale");
  e.walk = wk::transparent;
  e.moments = mr::norm;
  e.traits.skip_path = true;
  return e;
}

// A layout op: relabels, reorders, selects or repeats elements; the walks pass it.
constexpr op_entry layout(std::string_view op, layout_kind kind, op_traits traits = {}) {
  op_entry e;
  e.op = op;
  e.layout = kind;
  e.walk = wk::transparent;
  e.moments = kind == lk::concat ? mr::concat : mr::layout;
  e.traits = traits;
  e.traits.skip_path = kind != lk::broadcast;
  return e;
}

// An op the activation walk passes that keeps the statistics the activation sees.
constexpr op_entry passed(std::string_view op, moment_rule moments, op_traits traits = {}) {
  op_entry e;
  e.op = op;
  e.walk = wk::transparent;
  e.moments = moments;
  e.traits = traits;
  return e;
}

// An elementwise function: the activation walk recognises it (activation.cpp)
// and ends there; its moments come from quadrature against a Gaussian.
constexpr op_entry pointwise(std::string_view op, std::string_view domain = {}) {
  op_entry e;
  e.domain = domain;
  e.op = op;
  e.moments = mr::pointwise;
  return e;
}

constexpr op_entry table[] = {
    // Weighted layers (docs/DESIGN.md section 5).
    {.op = "Conv",
     .fans = fk::conv,
     .slots = {weight(1, 3, "[M, C/g, k...]"), layer_bias(2, "[M]")},
     .moments = mr::weighted},
    {.domain = ms,
     .op = "FusedConv",
     .fans = fk::conv,
     .slots = {weight(1, 3, "[M, C/g, k...]"), layer_bias(2, "[M]")},
     .moments = mr::weighted,
     .traits = {.activation_attribute = true}},
    {.op = "ConvTranspose",
     .fans = fk::conv_transpose,
     .slots = {weight(1, 3, "[C, M/g, k...]"), layer_bias(2, "[M]")},
     .moments = mr::weighted},
    {.op = "Gemm",
     .fans = fk::gemm,
     .slots = {weight(1, 1, "B [K, N], [N, K] if transB"),
               weight(0, 1, "A [M, K], [K, M] if transA"), layer_bias(2, "C [N] or [M, N]")},
     .moments = mr::weighted},
    {.domain = ms,
     .op = "FusedGemm",
     .fans = fk::gemm,
     .slots = {weight(1, 1, "B [K, N], [N, K] if transB"),
               weight(0, 1, "A [M, K], [K, M] if transA"), layer_bias(2, "C [N] or [M, N]")},
     .moments = mr::weighted,
     .traits = {.activation_attribute = true}},
    {.op = "MatMul",
     .fans = fk::matmul,
     .slots = {weight(1, 1, "x·W: [..., K, N]"), weight(0, 1, "W·x: [..., M, K]")},
     .moments = mr::weighted},
    {.domain = ms,
     .op = "FusedMatMul",
     .fans = fk::matmul,
     .slots = {weight(1, 1, "x·W: [..., K, N]"), weight(0, 1, "W·x: [..., M, K]")},
     .moments = mr::weighted},

    // Recurrent cells: gates i, o, f, c (LSTM), z, r, h (GRU); B holds Wb then Rb.
    {.op = "LSTM",
     .fans = fk::recurrent,
     .slots = {cell(1, role::weight, "W [dirs, 4H, I]"),
               cell(2, role::recurrent_weight, "R [dirs, 4H, H]"),
               cell(3, role::bias, "B [dirs, 8H]"),
               // ONNX-only peepholes (PyTorch has none): start them at zero like a bias.
               cell(7, role::bias, "P [dirs, 3H]", "LSTM peephole weights, treated as a bias")},
     .moments = mr::recurrent,
     .gates = 4,
     .forget_gate = 2,
     .cell_activation = 1,
     .other_inputs = "initial state or lengths"},
    {.op = "GRU",
     .fans = fk::recurrent,
     .slots = {cell(1, role::weight, "W [dirs, 3H, I]"),
               cell(2, role::recurrent_weight, "R [dirs, 3H, H]"),
               cell(3, role::bias, "B [dirs, 6H]")},
     .moments = mr::recurrent,
     .gates = 3,
     .cell_activation = 1,
     .other_inputs = "initial state or lengths"},
    {.op = "RNN",
     .fans = fk::recurrent,
     .slots = {cell(1, role::weight, "W [dirs, H, I]"),
               cell(2, role::recurrent_weight, "R [dirs, H, H]"),
               cell(3, role::bias, "B [dirs, 2H]")},
     .moments = mr::recurrent,
     .other_inputs = "initial state or lengths"},

    // Embedding tables, and head picks in attention.
    {.op = "Gather",
     .fans = fk::embedding,
     .slots = {{.slot = 0,
                .role = role::embedding,
                .fans = slot_fans::own,
                .min_rank = 2,
                .max_rank = 2,
                .layout = "[V, D]"}},
     .moments = mr::gather,
     .traits = {.index_select = true}},

    // Norms.
    {.op = "BatchNormalization",
     .slots = {param(1, role::norm_scale, "[C]"), param(2, role::norm_bias, "[C]"),
               param(3, role::running_mean, "[C]"), param(4, role::running_var, "[C]")},
     .walk = wk::transparent,
     .moments = mr::norm,
     .traits = {.skip_path = true}},
    norm({}, "LayerNormalization"),
    norm({}, "InstanceNormalization"),
    norm({}, "GroupNormalization"),
    // Opset 23: X, scale; no bias, no mean (attributes axis, epsilon, stash_type).
    {.op = "RMSNormalization",
     .slots = {param(1, role::norm_scale, "[normalized dims]")},
     .walk = wk::transparent,
     .moments = mr::norm,
     .traits = {.skip_path = true}},
    norm(ms, "LayerNormalization"),
    {.domain = ms,
     .op = "SimplifiedLayerNormalization",
     .slots = {param(1, role::norm_scale, "[normalized dims]")},
     .walk = wk::transparent,
     .moments = mr::norm,
     .traits = {.skip_path = true}},
    // Its gamma and beta (inputs 2, 3) get no role yet: it adds its skip input first.
    {.domain = ms, .op = "SkipLayerNormalization", .walk = wk::transparent, .moments = mr::norm},

    // Arithmetic.
    {.op = "Add",
     .walk = wk::transparent,
     .moments = mr::sum,
     .traits = {.arithmetic = true, .bias_add = true}},
    {.op = "Sum", .moments = mr::sum},
    {.op = "Sub", .moments = mr::difference, .traits = {.arithmetic = true}},
    {.op = "Mul", .walk = wk::gating, .moments = mr::gate, .traits = {.arithmetic = true}},
    {.op = "Div",
     .walk = wk::scaling,
     .moments = mr::scale_by_constant,
     .traits = {.arithmetic = true}},
    {.op = "Where", .traits = {.mask = true}},

    // Dropout, pooling, padding and resampling.
    passed("Dropout", mr::dropout, {.skip_path = true, .identity = true}),
    passed("MaxPool", mr::max_pool, {.skip_path = true}),
    passed("AveragePool", mr::average_pool, {.skip_path = true}),
    passed("GlobalMaxPool", mr::global_pool),
    passed("GlobalAveragePool", mr::global_pool),
    passed("LpPool", mr::unknown),
    {.op = "ReduceMean", .moments = mr::mean_reduce},
    passed("Pad", mr::layout, {.skip_path = true}),
    passed("Resize", mr::layout),
    passed("Upsample", mr::layout),
    passed("DepthToSpace", mr::layout),
    passed("SpaceToDepth", mr::layout),
    passed("Tile", mr::layout),

    // A quantize/dequantize pair between layers keeps the values (up to
    // rounding); a clamping QuantizeLinear is a nonlinearity, found first.
    {.op = "QuantizeLinear",
     .walk = wk::data_only,
     .moments = mr::layout,
     .traits = {.quantize = true}},
    {.op = "DequantizeLinear",
     .walk = wk::data_only,
     .moments = mr::layout,
     .traits = {.quantize = true}},

    // Layout ops (layout.h).
    layout("Identity", lk::flat_order, {.identity = true}),
    layout("Cast", lk::flat_order, {.identity = true}),
    layout("Reshape", lk::flat_order),
    layout("Squeeze", lk::flat_order),
    layout("Unsqueeze", lk::flat_order),
    layout("Flatten", lk::flat_order),
    layout("Transpose", lk::permute),
    layout("Slice", lk::select),
    layout("Split", lk::select),
    layout("Concat", lk::concat),
    layout("Expand", lk::broadcast),

    // Shape readers.
    {.op = "Shape", .traits = {.shape_only = true}},
    {.op = "Size", .traits = {.shape_only = true}},

    // Softmax and the ends of a network.
    {.op = "Softmax", .moments = mr::softmax, .traits = {.output_end = true}},
    {.op = "LogSoftmax", .traits = {.output_end = true}},
    {.op = "SoftmaxCrossEntropyLoss", .traits = {.output_end = true}},
    {.op = "NegativeLogLikelihoodLoss", .traits = {.output_end = true}},

    // Fused attention blocks (their projections get no role yet).
    {.op = "Attention", .moments = mr::attention},
    {.domain = ms, .op = "Attention", .moments = mr::attention},
    {.domain = ms, .op = "MultiHeadAttention", .moments = mr::attention},
    {.domain = ms, .op = "GroupQueryAttention", .moments = mr::attention},

    // Activations and other elementwise functions.
    {.op = "PRelu",
     .slots = {param(1, role::prelu_slope, "[C] or broadcastable")},
     .moments = mr::pointwise},
    pointwise("Relu"),
    pointwise("LeakyRelu"),
    pointwise("Elu"),
    pointwise("Selu"),
    pointwise("Celu"),
    pointwise("ThresholdedRelu"),
    pointwise("Gelu"),
    pointwise("HardSwish"),
    pointwise("HardSigmoid"),
    pointwise("Sigmoid"),
    pointwise("Tanh"),
    pointwise("Softplus"),
    pointwise("Softsign"),
    pointwise("Mish"),
    pointwise("Clip"),
    pointwise("Erf"),
    pointwise("Exp"),
    pointwise("Log"),
    pointwise("Sqrt"),
    pointwise("Abs"),
    pointwise("Neg"),
    pointwise("Reciprocal"),
    pointwise("Pow"),
    pointwise("Sin"),
    pointwise("Cos"),
    pointwise("Gelu", ms),
    pointwise("FastGelu", ms),
    pointwise("BiasGelu", ms),
    pointwise("QuickGelu", ms),
};

// Entries by op name: the ai.onnx one and the com.microsoft one.
using entry_pair = std::pair<const op_entry*, const op_entry*>;

const std::unordered_map<std::string_view, entry_pair>& entries_by_name() {
  static const auto by_name = [] {
    std::unordered_map<std::string_view, entry_pair> m;
    for (const op_entry& e : table) {
      entry_pair& p = m[e.op];
      (e.domain.empty() ? p.first : p.second) = &e;
    }
    return m;
  }();
  return by_name;
}

}  // namespace

const slot_entry* op_entry::find_slot(int slot) const {
  for (const slot_entry& s : slots)
    if (s.slot >= 0 && s.slot == slot) return &s;
  return nullptr;
}

const slot_entry* op_entry::first_slot(tensor_role r) const {
  for (const slot_entry& s : slots)
    if (s.slot >= 0 && s.role == r) return &s;
  return nullptr;
}

const op_entry& op_info(const onnx::NodeProto& node) {
  static const op_entry unknown{};
  const auto& by_name = entries_by_name();
  const auto it = by_name.find(std::string_view(node.op_type()));
  if (it == by_name.end()) return unknown;
  const std::string& domain = node.domain();
  const op_entry* e = domain.empty() || domain == "ai.onnx" ? it->second.first
                      : domain == ms                        ? it->second.second
                                                            : nullptr;
  return e != nullptr ? *e : unknown;
}

std::span<const op_entry> op_table() {
  return table;
}

bool is_weighted(const onnx::NodeProto& n) {
  const fan_kind f = op_info(n).fans;
  return f == fk::conv || f == fk::conv_transpose || f == fk::gemm || f == fk::matmul;
}
bool is_gemm(const onnx::NodeProto& n) {
  return op_info(n).fans == fk::gemm;
}
bool is_matmul(const onnx::NodeProto& n) {
  return op_info(n).fans == fk::matmul;
}
bool reads_shape_only(const onnx::NodeProto& n) {
  return op_info(n).traits.shape_only;
}

layout_kind layout_op_kind(const onnx::NodeProto& node) {
  return op_info(node).layout;
}

bool is_layout_op(const onnx::NodeProto& node, int slot) {
  switch (layout_op_kind(node)) {
    case layout_kind::concat:
      return true;
    case layout_kind::flat_order:
    case layout_kind::permute:
    case layout_kind::select:
      return slot == 0;
    case layout_kind::none:
    case layout_kind::broadcast:
      return false;
  }
  return false;
}

std::optional<int> norm_scale_slot(const onnx::NodeProto& node) {
  if (const slot_entry* s = op_info(node).first_slot(role::norm_scale)) return s->slot;
  return std::nullopt;
}

}  // namespace onnx_reinit::detail
