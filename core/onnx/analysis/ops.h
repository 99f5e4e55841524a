// The one table of op knowledge (docs/DESIGN.md section 6, "The op table"):
// per op kind, its parameter slots with their roles and layouts, the fan
// function of its weights, how the activation walk passes it, its layout
// kind, the traits the residual, attention and shape walks ask about, and
// the rule by which it transforms the mean and second moment of its inputs
// (for the moment pass of section 14). Every walker of the analysis asks
// this table; teaching the analysis an op is one entry in ops.cpp.
//
//   const op_entry& e = op_info(node);
//   if (const slot_entry* s = e.find_slot(slot)) role = s->role;
//   if (e.traits.skip_path) ...;
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit::detail {

// The layout ops: they only relabel, reorder, select or repeat the elements
// of input 0 (Concat: of every input). Initializers are traced through them
// to their real consumer (every kind but broadcast).
enum class layout_kind {
  none,        // not a layout op
  flat_order,  // Identity, Cast, Reshape, Squeeze, Unsqueeze, Flatten
  permute,     // Transpose
  select,      // Slice, Split: one block of the input
  concat,      // Concat: each input is a block of the output
  broadcast,   // Expand: repeats the input's elements
};

// The fan function of an op's weight slots (docs/DESIGN.md section 5).
enum class fan_kind {
  none,
  conv,            // [M, C/g, k...]: fan_in (C/g)·rf, fan_out (M/g)·rf / s
  conv_transpose,  // [C, M/g, k...]: fan_in (C/g)·rf / s, fan_out (M/g)·rf
  gemm,            // 2-D, transA/transB say which dim is the input dim
  matmul,          // x·W [..., K, N] or W·x [..., M, K]; leading dims are batch slices
  recurrent,       // LSTM/GRU/RNN: per gate block, [dirs, G·H, I or H]
  embedding,       // Gather table [V, D]: fan_in V, fan_out D
};

// How the activation walk (activation.cpp) goes on from a value this op reads.
enum class walk_kind {
  stop,         // the walk ends: a layer, an activation (found before the table
                // is asked), Softmax, or an op that changes the statistics
  transparent,  // passes from any input (layout ops, norms, pooling, bias Add)
  data_only,    // passes from input 0 only; the others are parameters (Q/DQ)
  scaling,      // passes from input 0 when input 1 is a constant (Div)
  gating,       // passes from either input when the other is a constant (a
                // scale); a product of two computed values gates, and stops
};

// How the op transforms the mean and second moment of its inputs: what
// the moment pass of issue 19 (docs/DESIGN.md section 14) dispatches on.
enum class moment_rule {
  unknown,            // no rule: input 0's moments pass through, listed as an assumption
  weighted,           // fan_in · Var(w) · E[x²] (+ bias); grouped, transposed, batched
  pointwise,          // E[f(z)], E[f(z)²] for z ~ N(μ, σ²), by quadrature
  sum,                // independent inputs: means and variances add
  difference,         // independent inputs: means subtract, variances add
  concat,             // element-count-weighted mixture of the inputs
  gate,               // product: of the second moments (a constant operand scales)
  scale_by_constant,  // input 0 divided by a constant operand
  average_pool,       // mean kept, variance over the window's correlation
  max_pool,           // order statistics of the window
  global_pool,        // one value per channel (average or max over space)
  mean_reduce,        // mean kept, variance over the count of reduced elements
  dropout,            // identity at inference
  layout,             // values moved, selected, repeated or resampled: unchanged
  norm,               // reset: mean β, second moment γ² + β²
  softmax,            // probabilities: an average (the value path of attention)
  attention,          // a fused attention block: the value path, softmax as an average
  gather,             // rows of a table: the table's moments
  recurrent,          // left to the cell's textbook rule, and said so
};

// What the walks other than the activation walk ask about an op.
struct op_traits {
  // May lie on a residual skip path (residual.cpp): norms, layout ops
  // (Expand aside), dropout, pooling, padding.
  bool skip_path = false;
  // Output 0 is input 0 at inference, up to its type (Identity, Cast,
  // Dropout): the shape evaluator, the output-layer walk and attention's
  // walks pass it.
  bool identity = false;
  // Output 0 is input 0 up to rounding and type (QuantizeLinear,
  // DequantizeLinear): the shape evaluator passes it.
  bool quantize = false;
  // A layer feeding it is an output layer (Softmax, losses).
  bool output_end = false;
  // Binary arithmetic (Add, Sub, Mul, Div): attention and the Fourier-feature
  // walk trace an operand through it when the other is a constant.
  bool arithmetic = false;
  // Selects between a computed value and a mask (Where): attention reads masks at it.
  bool mask = false;
  // A constant operand may be the bias of the weighted layer before it (Add).
  bool bias_add = false;
  // Reads only its input's shape (Shape, Size): no walk along values stops at it.
  bool shape_only = false;
  // Its `activation` attribute names the nonlinearity it applies
  // (com.microsoft FusedConv, FusedGemm).
  bool activation_attribute = false;
  // Picks elements of input 0 by an index (Gather): attention passes a head pick.
  bool index_select = false;
};

// Where a slot's fans come from.
enum class slot_fans {
  elements,  // fan_in = fan_out = the tensor's element count
  own,       // the op's fan function, at this slot
  weight,    // the fans of the layer's weight (PyTorch scales a bias by them)
};

// One parameter input of an op.
struct slot_entry {
  int slot = -1;  // input index; -1: unused
  tensor_role role = tensor_role::unknown;
  slot_fans fans = slot_fans::elements;
  int min_rank = 0;         // the role needs at least this many dims...
  int max_rank = 0;         // ...and at most this many (0: any)
  std::string_view layout;  // the stored layout, as docs/DESIGN.md section 5 writes it
  std::string_view note;    // said in the tensor's notes
};

struct op_entry {
  std::string_view domain;  // "" for ai.onnx, or "com.microsoft"
  std::string_view op;
  fan_kind fans = fan_kind::none;
  // Parameter slots. Weight slots come in the order a layer's weight is
  // looked for: the first, else a later one when the first is computed.
  slot_entry slots[4] = {};
  layout_kind layout = layout_kind::none;
  walk_kind walk = walk_kind::stop;
  moment_rule moments = moment_rule::unknown;
  op_traits traits = {};
  // Recurrent cells: gate blocks per unit, the forget gate's block (-1:
  // none), and the index in the `activations` attribute of the cell's own
  // nonlinearity (g; RNN has only f).
  std::int64_t gates = 1;
  std::int64_t forget_gate = -1;
  int cell_activation = 0;
  std::string_view other_inputs;  // why the other inputs have no role ("" : generic)

  // The entry for `slot`, or nullptr.
  const slot_entry* find_slot(int slot) const;
  // The first slot with `role`, or nullptr.
  const slot_entry* first_slot(tensor_role role) const;
};

// The entry for the node's op (ai.onnx or com.microsoft), or an empty entry
// (no slots, walk stops, no rule) for an op the table does not know.
const op_entry& op_info(const onnx::NodeProto& node);
// The whole table, for tests and documentation.
std::span<const op_entry> op_table();

// Predicates the walks share, read from the table.
// Layers with a weight input: Conv, ConvTranspose, Gemm, MatMul and the
// fused com.microsoft forms.
bool is_weighted(const onnx::NodeProto& n);
bool is_gemm(const onnx::NodeProto& n);
bool is_matmul(const onnx::NodeProto& n);
// Shape and Size: the input's shape is all they read.
bool reads_shape_only(const onnx::NodeProto& n);
layout_kind layout_op_kind(const onnx::NodeProto& node);
// Layout ops an initializer is traced through to its real consumer (every
// kind but broadcast). `slot` is the input slot.
bool is_layout_op(const onnx::NodeProto& node, int slot);
// The input holding the node's norm scale (gamma), when it has one.
std::optional<int> norm_scale_slot(const onnx::NodeProto& node);

}  // namespace onnx_reinit::detail
