// analyze_model: traces every tensor to its real consumer, derives role,
// fans and matrix view from that consumer (docs/DESIGN.md section 5) and the
// activation that follows the layer (section 6).
#include "onnx_reinit/analysis.h"
#include "onnx_reinit/model_io.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <optional>
#include <span>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "activation.h"
#include "attention.h"
#include "checked_math.h"
#include "fixed_constants.h"
#include "graph_index.h"
#include "layout.h"
#include "onnx_reinit/sdk/gains.h"
#include "ops.h"
#include "parallel_for.h"
#include "patterns.h"
#include "quantized.h"
#include "residual.h"

namespace onnx_reinit {
namespace {

using namespace detail;

struct consumer {
  int node = -1;
  int slot = 0;
};

struct trace_result {
  std::vector<consumer> consumers;  // real consumers, node order
  bool quantized = false;           // reaches DequantizeLinear as the data
  int dequantize = -1;              // the first such DequantizeLinear node
};

// What one consumer makes of the tensor.
struct view {
  tensor_role role = tensor_role::unknown;
  std::string reason;  // why the role is unknown
  double fan_in = 1.0, fan_out = 1.0, rf = 1.0;
  std::int64_t groups = 1, gates = 1;
  std::int64_t block_count = 0, block_rows = 1, block_cols = 1;  // 0: default view
  int layer = -1;  // node whose output the activation walk starts from
  bool recurrent_cell = false;
  std::string note;
};

// Forward over layout ops, breadth-first with a visited set: cycles and long
// chains end. Non-data inputs of layout ops (Reshape's shape, Slice's
// starts) count as real uses, which get no weight role.
trace_result trace(const model_index& index, const std::string& name, int scope) {
  trace_result r;
  std::unordered_set<std::string> visited{name};
  std::vector<std::pair<std::string, int>> queue{{name, scope}};
  for (std::size_t q = 0; q < queue.size(); ++q) {
    auto [value, g] = queue[q];
    for (const auto& u : index.uses(value, g)) {
      const auto& node = index.node(u.node);
      bool dequant = is_op(node, "DequantizeLinear") && u.slot == 0;
      if (!dequant && !is_layout_op(node, u.slot)) {
        r.consumers.push_back({u.node, u.slot});
        continue;
      }
      r.quantized = r.quantized || dequant;
      if (dequant && r.dequantize < 0) r.dequantize = u.node;
      for (const auto& out : node.output())
        if (!out.empty() && visited.insert(out).second)
          queue.emplace_back(out, index.node_graph(u.node));
    }
  }
  std::sort(r.consumers.begin(), r.consumers.end(), [](const consumer& a, const consumer& b) {
    return a.node != b.node ? a.node < b.node : a.slot < b.slot;
  });
  return r;
}

std::int64_t dim(const shape_t& s, std::ptrdiff_t i) {
  if (i < 0) i += static_cast<std::ptrdiff_t>(s.size());
  return i >= 0 && i < static_cast<std::ptrdiff_t>(s.size()) ? s[static_cast<std::size_t>(i)] : 1;
}

// Attribute checks below: a stride this large is no real model's, and
// bounding each keeps their product meaningful.
constexpr std::int64_t max_stride = std::int64_t{1} << 31;
// An LSTM bias with more directions than this is no real model's; bounds
// the forget-gate range list built from it.
constexpr std::int64_t max_directions = std::int64_t{1} << 16;

void add_note(std::string& notes, const std::string& note) {
  notes += notes.empty() ? note : "; " + note;
}

std::string ints_text(const std::vector<std::int64_t>& v) {
  return fmt::format("[{}]", fmt::join(v, ", "));
}

struct analyzer {
  const model_index& index;
  layout_evaluator& layout;
  fan_convention convention;
  // gamma/beta operands of decomposed norms, by (node, slot)
  std::map<std::pair<int, int>, norm_parameter> norm_parameters;

  bool torch() const { return convention == fan_convention::torch; }

  // Conv [M, C/g, k...] or ConvTranspose [C, M/g, k...]. The attributes are
  // checked against the weight's dims (what a strategy fills); one that
  // disagrees with them is ignored with a note.
  void conv_fans(const onnx::NodeProto& node, const shape_t& s, view& v) const {
    const bool transposed = op_info(node).fans == fan_kind::conv_transpose;
    const shape_t kernel(s.begin() + std::min<std::ptrdiff_t>(2, std::ssize(s)), s.end());
    const std::int64_t d0 = dim(s, 0), d1 = dim(s, 1);
    v.rf = static_cast<double>(checked_product(kernel).value_or(1));
    if (auto k = ints_attribute(node, "kernel_shape"); k && *k != kernel)
      add_note(v.note, fmt::format("kernel_shape {} disagrees with the weight's kernel {}; used "
                                   "the weight's",
                                   ints_text(*k), ints_text(kernel)));
    // The weight's first dim holds all groups: M for Conv, C for ConvTranspose.
    v.groups = 1;
    if (auto g = int_attribute(node, "group"); g && *g != 1) {
      if (*g > 0 && d0 > 0 && d0 % *g == 0)
        v.groups = *g;
      else
        add_note(v.note, fmt::format("group {} does not divide the weight's {} channels; read as 1",
                                     *g, d0));
    }
    std::int64_t stride = 1;
    if (auto st = ints_attribute(node, "strides")) {
      std::optional<std::int64_t> p =
          st->size() == kernel.size() &&
                  std::all_of(st->begin(), st->end(),
                              [](std::int64_t x) { return x >= 1 && x <= max_stride; })
              ? checked_product(*st)
              : std::nullopt;
      if (p)
        stride = *p;
      else
        add_note(v.note, fmt::format("strides {} are not one positive stride per kernel axis {}; "
                                     "read as 1",
                                     ints_text(*st), ints_text(kernel)));
    }
    auto f0 = static_cast<double>(d0), f1 = static_cast<double>(d1);
    auto g = static_cast<double>(v.groups), st = static_cast<double>(stride);
    if (torch()) {
      v.fan_in = f1 * v.rf;
      v.fan_out = f0 * v.rf;
    } else if (!transposed) {
      v.fan_in = f1 * v.rf;
      v.fan_out = f0 / g * v.rf / st;
    } else {
      v.fan_in = f0 / g * v.rf / st;
      v.fan_out = f1 * v.rf;
    }
  }

  // Gemm and MatMul: which of the last two dims is the input dim.
  void matrix_fans(const onnx::NodeProto& node, int slot, const shape_t& s, const shape_t& orig,
                   view& v) const {
    if (s.size() < 2) {
      v.fan_in = static_cast<double>(dim(s, 0));
      v.fan_out = 1.0;
      return;
    }
    const char* trans_name = slot == 0 ? "transA" : "transB";
    const std::int64_t trans_value = int_attribute(node, trans_name).value_or(0);
    // ONNX Runtime transposes for any non-zero value; say so for odd ones.
    bool trans = trans_value != 0;
    if (trans_value != 0 && trans_value != 1 && is_gemm(node))
      add_note(v.note, fmt::format("{} {} is not 0 or 1; read as 1", trans_name, trans_value));
    // x·W: W is [K, N], input dim first; W·x: W is [M, K], input dim last.
    bool input_first = (slot == 1) != trans;
    auto a = static_cast<double>(dim(s, -2)), b = static_cast<double>(dim(s, -1));
    v.fan_in = input_first ? a : b;
    v.fan_out = input_first ? b : a;
    if (s.size() > 2 && orig.size() == s.size() &&
        std::equal(s.begin(), s.end() - 2, orig.begin())) {
      // Leading dims are batch: one matrix per slice.
      auto count = checked_product(std::span(orig).first(orig.size() - 2));
      if (count && checked_product(orig)) {
        v.block_count = *count;
        v.block_rows = dim(orig, -2);
        v.block_cols = dim(orig, -1);
      }
    }
  }

  // W, R [dirs, G·H, I or H], B [dirs, 2·G·H], P [dirs, 3·H]. hidden_size is
  // checked against the dims at the consumer; without it, H comes from them.
  // Anything that does not fit gives the default matrix view and a note.
  void rnn_fans(const onnx::NodeProto& node, int slot, const shape_t& s, const shape_t& orig,
                view& v) const {
    v.gates = op_info(node).gates;
    v.recurrent_cell = true;
    const bool vector = slot == 3 || slot == 7;
    const std::int64_t rows = vector ? dim(s, -1) : dim(s, -2);
    const std::int64_t per_unit = slot == 3 ? 2 * v.gates : slot == 7 ? 3 : v.gates;
    const auto attr = int_attribute(node, "hidden_size");
    std::int64_t hidden = 0;
    if (!attr) {
      if (rows > 0 && rows % per_unit == 0) hidden = rows / per_unit;
    } else if (*attr > 0 && checked_mul(*attr, per_unit) == rows) {
      hidden = *attr;
    }
    if (hidden > 0 && slot == 2 && dim(s, -1) != hidden) hidden = 0;
    if (hidden <= 0) {
      v.gates = 1;
      v.fan_in = static_cast<double>(std::max<std::int64_t>(1, dim(s, -1)));
      v.fan_out = static_cast<double>(std::max<std::int64_t>(1, rows));
      add_note(v.note,
               attr ? fmt::format("hidden_size {} does not fit the {} {} {} of {}; "
                                  "default matrix view",
                                  *attr, node.op_type(), vector ? "length" : "shape", ints_text(s),
                                  slot == 3   ? "B"
                                  : slot == 7 ? "P"
                                              : "W/R")
                    : std::string("gate blocks do not tile the stored tensor; default "
                                  "matrix view"));
      return;
    }
    auto h = static_cast<double>(hidden);
    v.fan_in = v.fan_out = h;
    if (vector) return;
    std::int64_t cols = slot == 1 ? dim(s, -1) : hidden;
    v.fan_in = static_cast<double>(cols);
    if (torch()) v.fan_out = h * static_cast<double>(v.gates);
    const auto block = checked_mul(hidden, cols);
    const auto total = checked_product(orig);
    if (block && *block > 0 && total && *total % *block == 0) {
      v.block_count = *total / *block;
      v.block_rows = hidden;
      v.block_cols = cols;
    } else {
      add_note(v.note, "gate blocks do not tile the stored tensor; default matrix view");
    }
  }

  std::optional<shape_t> input_shape(int n, int slot) const {
    const auto& node = index.node(n);
    if (slot >= node.input_size() || node.input(slot).empty()) return std::nullopt;
    return layout.shape_of(node.input(slot), index.node_graph(n));
  }

  // Fans of the weight of layer `n`, used for its bias (PyTorch scales a
  // default bias by the weight's fan_in). The weight is at the op's first
  // weight slot, or at a later one when the first is computed and it is a
  // constant (W·x).
  void bias_fans(int n, view& v) const {
    const auto& node = index.node(n);
    const op_entry& op = op_info(node);
    const slot_entry* first = op.first_slot(tensor_role::weight);
    if (first == nullptr) return;
    int weight_slot = first->slot;
    const int g = index.node_graph(n);
    auto constant_at = [&](int slot) {
      return slot < node.input_size() && index.constant(node.input(slot), g) != nullptr;
    };
    if (weight_slot < node.input_size() && !constant_at(weight_slot)) {
      for (const slot_entry& s : op.slots) {
        if (s.slot >= 0 && s.role == tensor_role::weight && s.slot != first->slot &&
            constant_at(s.slot)) {
          weight_slot = s.slot;
          break;
        }
      }
    }
    auto ws = input_shape(n, weight_slot);
    if (!ws) return;
    view w;
    layer_fans(node, weight_slot, *ws, *ws, w);
    v.fan_in = w.fan_in;
    v.fan_out = w.fan_out;
  }

  // The op's fan function (docs/DESIGN.md section 5) at input `slot`.
  void layer_fans(const onnx::NodeProto& node, int slot, const shape_t& s, const shape_t& orig,
                  view& v) const {
    switch (op_info(node).fans) {
      case fan_kind::conv:
      case fan_kind::conv_transpose:
        conv_fans(node, s, v);
        break;
      case fan_kind::gemm:
      case fan_kind::matmul:
        matrix_fans(node, slot, s, orig, v);
        break;
      case fan_kind::recurrent:
        rnn_fans(node, slot, s, orig, v);
        break;
      case fan_kind::embedding:
        v.fan_in = static_cast<double>(torch() ? s[1] : s[0]);
        v.fan_out = static_cast<double>(torch() ? s[0] : s[1]);
        break;
      case fan_kind::none:
        break;
    }
  }

  static bool rank_fits(const slot_entry& e, const shape_t& s) {
    const auto rank = std::ssize(s);
    return rank >= e.min_rank && (e.max_rank == 0 || rank <= e.max_rank);
  }

  // The role, fans and layer of the tensor at consumer `c`: the slot's
  // entry in the op table; else a decomposed norm's gamma/beta; else a
  // constant added after a layer (add_bias).
  view describe(const consumer& c, const shape_t& orig) const {
    view v;
    const auto& node = index.node(c.node);
    shape_t s = input_shape(c.node, c.slot).value_or(orig);
    auto numel = static_cast<double>(element_count(s));
    v.fan_in = v.fan_out = numel;
    v.layer = c.node;
    const op_entry& op = op_info(node);
    const slot_entry* slot = op.find_slot(c.slot);
    if (slot != nullptr) {
      if (rank_fits(*slot, s)) describe_slot(node, c, *slot, s, orig, v);
    } else if (!op.other_inputs.empty()) {
      v.reason = fmt::format("input {} of {} ({})", c.slot, node.op_type(), op.other_inputs);
    } else if (auto p = norm_parameters.find({c.node, c.slot}); p != norm_parameters.end()) {
      v.role = p->second.role;
      v.layer = -1;
      v.note = fmt::format("{} of a decomposed {}",
                           p->second.role == tensor_role::norm_scale ? "scale" : "bias",
                           to_string(p->second.form));
    } else if (op.traits.bias_add && c.slot <= 1) {
      add_bias(c, s, v);
    }
    if (v.role == tensor_role::unknown) {
      v.layer = -1;
      if (v.reason.empty()) v.reason = unknown_reason(c, s);
    }
    return v;
  }

  void describe_slot(const onnx::NodeProto& node, const consumer& c, const slot_entry& slot,
                     const shape_t& s, const shape_t& orig, view& v) const {
    v.role = slot.role;
    switch (slot.fans) {
      case slot_fans::own:
        layer_fans(node, c.slot, s, orig, v);
        break;
      case slot_fans::weight:
        bias_fans(c.node, v);
        break;
      case slot_fans::elements:
        break;
    }
    if (!slot.note.empty()) v.note = slot.note;
    // The activation walk starts from a layer's output for its weights and
    // biases only.
    if (v.role != tensor_role::weight && v.role != tensor_role::recurrent_weight &&
        v.role != tensor_role::bias)
      v.layer = -1;
  }

  // Output features of weighted layer `n` and the axis holding them,
  // counted from the output's last: Conv/ConvTranspose [N, M, spatial...],
  // x·W [..., N], W·x [..., M, K]. nullopt when the layer has no weight
  // made from constants (through layout ops or DequantizeLinear) of known
  // shape.
  struct feature_axis {
    std::int64_t features = 0;
    std::size_t from_end = 0;
  };
  std::optional<feature_axis> output_features(int n) const {
    const auto& node = index.node(n);
    auto weight = [&](int slot) { return input_shape(n, slot); };
    const fan_kind fans = op_info(node).fans;
    if (fans == fan_kind::conv || fans == fan_kind::conv_transpose) {
      const auto w = weight(1);
      if (!w || w->size() < 3) return std::nullopt;
      std::optional<std::int64_t> m = (*w)[0];
      if (fans == fan_kind::conv_transpose)
        m = checked_mul((*w)[1],
                        std::max<std::int64_t>(1, int_attribute(node, "group").value_or(1)));
      if (!m) return std::nullopt;
      return feature_axis{*m, w->size() - 2};
    }
    if (!is_gemm(node) && !is_matmul(node)) return std::nullopt;
    // x·W: W's last dim (Gemm: its first when transB); W·x: W's second to
    // last (Gemm: its last when transA), the output's second to last axis.
    if (const auto w = weight(1); w && w->size() >= 2) {
      const bool trans = is_gemm(node) && int_attribute(node, "transB").value_or(0) != 0;
      return feature_axis{trans ? (*w)[w->size() - 2] : w->back(), 0};
    }
    if (const auto w = weight(0); w && w->size() >= 2) {
      const bool trans = is_gemm(node) && int_attribute(node, "transA").value_or(0) != 0;
      return feature_axis{trans ? w->back() : (*w)[w->size() - 2], 1};
    }
    return std::nullopt;
  }

  // A bias holds one value per output feature: `features` values along one
  // axis, the output's feature axis when added to the output as it is (after
  // layout ops the axis may have moved; the count still decides).
  static bool per_feature(const shape_t& s, const feature_axis& f, bool direct) {
    if (element_count(s) != f.features) return false;
    if (f.features == 1) return true;
    const auto non_unit = std::count_if(s.begin(), s.end(), [](std::int64_t d) { return d != 1; });
    if (non_unit != 1) return false;
    const auto axis = std::find_if(s.rbegin(), s.rend(), [](std::int64_t d) { return d != 1; });
    return !direct || static_cast<std::size_t>(axis - s.rbegin()) == f.from_end;
  }

  // MatMul/Conv followed by Add of a constant: PyTorch's Linear on 3-D
  // inputs exports exactly this; the constant is the layer's bias when it
  // holds one value per output feature. Anything else added there (the
  // epsilon of log(x + 1e-6), an accumulator's starting 0.0, a position
  // table) is an operand: unknown role, kept, with the reason.
  void add_bias(const consumer& c, const shape_t& s, view& v) const {
    const auto& node = index.node(c.node);
    if (node.input_size() != 2) return;
    int g = index.node_graph(c.node);
    std::string other = node.input(1 - c.slot);
    for (int step = 0; step < 4; ++step) {
      int p = index.producer(other, g);
      if (p < 0) return;
      const auto& prod = index.node(p);
      if (is_weighted(prod)) {
        const auto f = output_features(p);
        if (f && per_feature(s, *f, step == 0)) {
          v.role = tensor_role::bias;
          v.layer = p;
          bias_fans(p, v);
          return;
        }
        const std::int64_t count = element_count(s);
        v.reason = fmt::format(
            "an operand, not a bias: {} value{} added after {} '{}', {}", count,
            count == 1 ? "" : "s", qualified_op(prod),
            prod.name().empty() && prod.output_size() > 0 ? prod.output(0) : prod.name(),
            f ? fmt::format("which has {} output features (a bias holds one value per feature)",
                            f->features)
              : std::string("whose output features are not known (no constant weight)"));
        return;
      }
      const layout_kind kind = layout_op_kind(prod);
      if ((kind != layout_kind::flat_order && kind != layout_kind::permute) ||
          prod.input_size() == 0)
        return;
      other = prod.input(0);
    }
  }

  std::string unknown_reason(const consumer& c, const shape_t& s) const {
    const auto& node = index.node(c.node);
    const std::string op = qualified_op(node);
    if (is_op(node, "DequantizeLinear") || is_op(node, "QuantizeLinear") ||
        node.op_type().starts_with("QLinear") || node.op_type().ends_with("Integer"))
      return c.slot == 1 || c.slot == 2
                 ? fmt::format("quantization {} of {}", c.slot == 1 ? "scale" : "zero point", op)
                 : fmt::format("input {} of quantized op {}", c.slot, op);
    if (is_layout_op(node, 0) && c.slot > 0)
      return fmt::format("shape/index input {} of {}", c.slot, op);
    if (element_count(s) <= 1) return fmt::format("scalar operand of {}", op);
    return fmt::format("unknown role: input {} of {}", c.slot, op);
  }

  activation_result activation_of(const view& v) const {
    if (v.layer < 0 || (v.role != tensor_role::weight && v.role != tensor_role::bias &&
                        v.role != tensor_role::recurrent_weight))
      return {};
    const auto& node = index.node(v.layer);
    if (v.recurrent_cell) return cell_activation(node);
    if (op_info(node).traits.activation_attribute) {
      if (auto name = string_attribute(node, "activation")) {
        std::vector<float> params;
        if (const auto* a = find_attribute(node, "activation_params"))
          params.assign(a->floats().begin(), a->floats().end());
        if (auto alpha = float_attribute(node, "activation_alpha"))
          params.insert(params.begin(), *alpha);
        return activation_from_name(*name, params).value_or(activation_result{});
      }
    }
    return find_activation(index, v.layer);
  }

  // The cell's own nonlinearity, not what follows the layer: tanh (the cell
  // input/output activation g), or what the `activations` attribute says.
  activation_result cell_activation(const onnx::NodeProto& node) const {
    const auto i = static_cast<std::size_t>(op_info(node).cell_activation);
    if (const auto* a = find_attribute(node, "activations");
        a != nullptr && a->strings_size() > static_cast<int>(i)) {
      std::vector<float> params;
      if (a->strings(static_cast<int>(i)) == "LeakyRelu") {
        if (const auto* al = find_attribute(node, "activation_alpha");
            al != nullptr && al->floats_size() > static_cast<int>(i))
          params.push_back(al->floats(static_cast<int>(i)));
      }
      if (auto r = activation_from_name(a->strings(static_cast<int>(i)), params)) return *r;
    }
    return {activation_kind::tanh, 0.0};
  }
};

std::string dtype_name(int t) {
  return onnx::TensorProto::DataType_IsValid(t)
             ? onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(t))
             : fmt::format("type {}", t);
}

range_list merged(range_list r) {
  std::sort(r.begin(), r.end());
  range_list out;
  for (auto p : r) {
    if (!out.empty() && p.first <= out.back().second)
      out.back().second = std::max(out.back().second, p.second);
    else
      out.push_back(p);
  }
  return out;
}

// Forget-gate input-bias rows of every cell with a forget gate (LSTM), mapped back to the constants
// its B input is made of. LSTM nodes whose B cannot be mapped are listed.
struct forget_gates {
  std::map<const onnx::TensorProto*, range_list> ranges;
  std::unordered_set<int> unmapped;
};

forget_gates find_forget_gates(const model_index& index, layout_evaluator& layout) {
  forget_gates out;
  for (int n = 0; n < static_cast<int>(index.nodes().size()); ++n) {
    const auto& node = index.node(n);
    const op_entry& op = op_info(node);
    const slot_entry* bias = op.first_slot(tensor_role::bias);
    if (op.forget_gate < 0 || bias == nullptr || node.input_size() <= bias->slot ||
        node.input(bias->slot).empty())
      continue;
    const std::string& b = node.input(bias->slot);
    int g = index.node_graph(n);
    auto s = layout.shape_of(b, g);
    // B is [dirs, 2·G·H]: Wb (G gate blocks, the op table's forget_gate
    // among them) then Rb. H is checked against B's length as in rnn_fans.
    const std::int64_t length = s && !s->empty() ? s->back() : 0;
    const std::int64_t blocks = 2 * op.gates;
    const auto attr = int_attribute(node, "hidden_size");
    std::int64_t hidden = 0;
    if (!attr && length > 0 && length % blocks == 0) hidden = length / blocks;
    if (attr && *attr > 0 && checked_mul(*attr, blocks) == length) hidden = *attr;
    const auto dirs =
        s && !s->empty() ? checked_product(std::span(*s).first(s->size() - 1)) : std::nullopt;
    std::optional<std::vector<source_ranges>> sources;
    if (hidden > 0 && dirs && *dirs <= max_directions) {
      range_list r;
      for (std::int64_t d = 0; d < *dirs; ++d)
        r.emplace_back(d * length + op.forget_gate * hidden,
                       d * length + (op.forget_gate + 1) * hidden);
      sources = layout.map_back(b, g, r);
    }
    if (!sources) {
      out.unmapped.insert(n);
      continue;
    }
    for (auto& src : *sources) {
      auto& dst = out.ranges[src.proto];
      dst.insert(dst.end(), src.ranges.begin(), src.ranges.end());
    }
  }
  for (auto& [proto, r] : out.ranges) r = merged(std::move(r));
  return out;
}

std::string describe_consumer(const model_index& index, const consumer& c) {
  const auto& node = index.node(c.node);
  return fmt::format(
      "{} '{}' input {}", qualified_op(node),
      node.name().empty() ? (node.output_size() > 0 ? node.output(0) : "") : node.name(), c.slot);
}

void apply_view(tensor_analysis& a, const view& v) {
  a.info.role = v.role;
  a.info.fan_in = v.fan_in;
  a.info.fan_out = v.fan_out;
  a.info.receptive_field = v.rf;
  a.info.groups = v.groups;
  a.info.gate_count = v.gates;
  if (v.block_count > 0) {
    a.info.block_count = v.block_count;
    a.info.block_rows = v.block_rows;
    a.info.block_cols = v.block_cols;
  }
  if (!v.note.empty()) a.notes.push_back(v.note);
}

void place_in_residual(const residual_lookup& residual, const attention_lookup& attention,
                       int graph, const view& v, tensor_analysis& a) {
  a.transformer = attention.model;
  if (graph != 0) return;
  if (v.layer >= 0 && (v.role == tensor_role::weight || v.role == tensor_role::bias)) {
    if (auto it = residual.layers.find(v.layer); it != residual.layers.end())
      a.residual = it->second;
    if (auto it = attention.layers.find(v.layer); it != attention.layers.end())
      a.transformer = it->second;
    a.output_layer = residual.output_layers.count(v.layer) != 0;
  } else if (auto it = residual.tensors.find(a.info.name); it != residual.tensors.end()) {
    a.residual = it->second;
  }
}

// Learned or fixed, from the original values (docs/DESIGN.md section 6). The
// checks read and test each tensor's values alone, so they run in parallel
// (they are most of the analysis's time on a large model); each writes only
// its own entry, so the result does not depend on the thread count.
struct fixed_check {
  std::size_t entry;
  const onnx::TensorProto* proto;
  bool fourier = false;  // the layer's product feeds sin and cos
};

// The reason given to a random Fourier-feature projection, whose values are
// random by design: only the graph tells it from a learned weight.
constexpr const char* fourier_projection_reason =
    "a random Fourier-feature projection (the layer's product feeds both sin and cos)";

// A weight whose layer's output goes into sin and cos (feeds_sin_and_cos).
bool is_fourier_projection(const model_index& index, const view& v) {
  if (v.role != tensor_role::weight || v.layer < 0) return false;
  const auto& layer = index.node(v.layer);
  return layer.output_size() > 0 &&
         feeds_sin_and_cos(index, layer.output(0), index.node_graph(v.layer));
}

void check_fixed_constants(const model_index& index, std::span<const fixed_check> checks,
                           std::vector<tensor_analysis>& out) {
  parallel_for(std::size_t{0}, checks.size(), [&](std::size_t i) {
    tensor_analysis& a = out[checks[i].entry];
    if (auto values = index.value_prefix(*checks[i].proto, fixed_constant_max_elements))
      a.fixed_constant = fixed_constant_reason(*values, a.info.shape, {a.info.role}).value_or("");
    // What the values say (a grid, a DFT basis) is the more telling reason.
    if (a.fixed_constant.empty() && checks[i].fourier) a.fixed_constant = fourier_projection_reason;
  });
}

std::vector<tensor_analysis> analyze(const onnx::ModelProto& model, const loaded_model* loaded,
                                     const analysis_options& options) {
  model_index index(model, loaded);
  layout_evaluator layout(index);
  analyzer an{index, layout, options.convention, find_decomposed_norm_parameters(index)};
  forget_gates gates = find_forget_gates(index, layout);
  const residual_lookup residual = find_residual_lookup(index, an.norm_parameters);
  const attention_lookup attention = find_attention_lookup(index, residual);
  std::vector<tensor_analysis> out;
  out.reserve(index.tensors().size());
  std::vector<fixed_check> fixed_checks;
  for (const auto& t : index.tensors()) {
    tensor_analysis a;
    a.ref = t.ref;
    a.info.name = t.ref.name;
    a.info.shape = tensor_dims(*t.proto);
    a.info.set_default_blocks();
    const std::optional<element_type> float_type = float_element_type(*t.proto);
    a.is_float = float_type.has_value();
    a.info.dtype = float_type.value_or(element_type::float32);
    a.data_type = dtype_name(t.proto->data_type());
    std::transform(a.data_type.begin(), a.data_type.end(), a.data_type.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    trace_result tr = trace(index, t.ref.name, t.graph);
    std::string reason;
    bool fourier = false;
    if (!tr.consumers.empty()) {
      const consumer& first = tr.consumers.front();
      view v = an.describe(first, a.info.shape);
      apply_view(a, v);
      a.consumer_op = qualified_op(index.node(first.node));
      a.consumer_input = first.slot;
      activation_result act = an.activation_of(v);
      a.info.activation = act.kind;
      a.info.activation_param = act.param;
      a.prelu_slope_tensor = act.prelu_slope;
      if ((v.role == tensor_role::weight || v.role == tensor_role::recurrent_weight) &&
          v.layer >= 0 && index.node_graph(v.layer) == 0 && index.node(v.layer).output_size() > 0) {
        a.layer_output = index.node(v.layer).output(0);
        a.activation_input = act.input;
        a.activation_output = act.output;
      }
      a.info.gain = activation_gain(act.kind, act.param);
      place_in_residual(residual, attention, t.graph, v, a);
      reason = v.reason;
      fourier = is_fourier_projection(index, v);
      if (tr.quantized)
        a.quantized = describe_quantized(index, tr.dequantize, v.layer, v.role, *t.proto, t.graph);
      a.quantization_parameter = reason.starts_with("quantization");
      for (std::size_t i = 1; i < tr.consumers.size(); ++i) {
        view o = an.describe(tr.consumers[i], a.info.shape);
        if (o.role == v.role && o.fan_in == v.fan_in && o.fan_out == v.fan_out) continue;
        a.notes.push_back(fmt::format(
            "shared by {} uses with different fans; used the first in node order, {} (fan_in {}, "
            "fan_out {}), not {} (role {}, fan_in {}, fan_out {})",
            tr.consumers.size(), describe_consumer(index, first), v.fan_in, v.fan_out,
            describe_consumer(index, tr.consumers[i]), to_string(o.role), o.fan_in, o.fan_out));
        break;
      }
      const op_entry& op = op_info(index.node(first.node));
      if (const slot_entry* b = op.first_slot(tensor_role::bias);
          op.forget_gate >= 0 && b != nullptr && first.slot == b->slot) {
        if (auto it = gates.ranges.find(t.proto); it != gates.ranges.end())
          a.forget_gate_ranges = it->second;
        else if (gates.unmapped.count(first.node) != 0)
          a.notes.push_back(
              fmt::format("{} forget-gate bias rows could not be traced to this tensor",
                          index.node(first.node).op_type()));
      }
    } else {
      reason = "no consumer";
    }
    if (a.quantized && a.quantized->unsupported.empty())
      a.keep_reason = "quantized weight; --quantized requantize rewrites it";
    else if (a.quantized)
      a.keep_reason =
          fmt::format("quantized weight; not requantizable: {}", a.quantized->unsupported);
    else if (tr.quantized)
      a.keep_reason = "quantized";
    else if (reason.starts_with("quantization"))
      a.keep_reason = reason;  // more telling than the dtype for int8 zero points
    else if (!a.is_float)
      a.keep_reason = fmt::format("non-float dtype {}", dtype_name(t.proto->data_type()));
    else if (a.info.element_count() == 0)
      a.keep_reason = "empty tensor";
    else
      a.keep_reason = reason;
    if (a.is_float && a.keep_reason.empty() &&
        fixed_constant_check_applies(a.info.role, a.info.shape))
      fixed_checks.push_back({out.size(), t.proto, fourier});
    out.push_back(std::move(a));
  }
  check_fixed_constants(index, fixed_checks, out);
  return out;
}

}  // namespace

std::vector<tensor_analysis> analyze_model(const loaded_model& model,
                                           const analysis_options& options) {
  return analyze(model.proto(), &model, options);
}

std::vector<tensor_analysis> analyze_model(const onnx::ModelProto& model,
                                           const analysis_options& options) {
  return analyze(model, nullptr, options);
}

}  // namespace onnx_reinit
