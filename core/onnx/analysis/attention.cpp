// Attention blocks: from each Softmax, forward to the MatMul it feeds
// (probabilities times V) and backward to the MatMul its scores come from
// (Q K^T); each operand is traced through layout ops, head splits, biases and
// scales to the weighted layer that made it. A mask met on the scores (an
// Add or Where whose other operand is computed from constants only) is
// causal when it comes from a Trilu or from a square constant that is
// uniform on and below the diagonal and uniform, with another value, above.
#include "attention.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "layout.h"
#include "ops.h"
#include "patterns.h"

namespace onnx_reinit::detail {
namespace {

// Bounds the walks: attention blocks are a few dozen nodes.
constexpr int max_steps = 32;

// Layout ops (not Concat: it would join other values in), head picks and
// identities at inference (dropout): the value passes through on input 0.
bool passes_through(const onnx::NodeProto& node) {
  const op_entry& op = op_info(node);
  return (op.layout != layout_kind::none && op.layout != layout_kind::concat) ||
         op.traits.index_select || op.traits.identity;
}

// Binary arithmetic: a bias, a scale, a mask added.
bool scales(const onnx::NodeProto& node) {
  return op_info(node).traits.arithmetic;
}

// The weighted node whose output reaches `value` through layout ops, head
// splits, a bias or a scale by a constant; -1 when none.
int projection_of(const model_index& index, std::string value) {
  for (int steps = 0; steps < max_steps; ++steps) {
    const int p = index.producer(value, 0);
    if (p < 0) return -1;
    if (!layer_weight(index, p).empty()) return p;
    const auto& node = index.node(p);
    if (passes_through(node) && node.input_size() > 0) {
      value = node.input(0);
      continue;
    }
    const auto inputs = data_inputs(index, p);
    if (!scales(node) || inputs.size() != 1) return -1;
    value = inputs.front();
  }
  return -1;
}

// The layer's computed input (the one that is not its weight).
std::string layer_input(const model_index& index, int n) {
  const auto inputs = data_inputs(index, n);
  return inputs.empty() ? std::string() : inputs.front();
}

// A square constant, lower triangle (diagonal included) one value, upper
// another: tril(ones), a -inf additive mask, or its boolean form. Judged on
// its first rows, so a long context's mask is not read whole.
bool causal_constant(const model_index& index, const onnx::TensorProto& t) {
  constexpr std::int64_t max_rows = 64;
  const auto dims = tensor_dims(t);
  if (dims.size() < 2) return false;
  const std::int64_t n = dims.back();
  if (n < 2 || dims[dims.size() - 2] != n) return false;
  const std::int64_t rows = std::min(n, max_rows);
  const auto count = static_cast<std::size_t>(rows * n);
  const auto values = index.value_prefix(t, count);
  if (!values || values->size() != count) return false;
  const double lower = (*values)[0], upper = (*values)[1];
  if (lower == upper) return false;
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      if ((*values)[static_cast<std::size_t>(i * n + j)] != (j <= i ? lower : upper)) return false;
  return true;
}

enum class mask_kind { not_constant, other, causal };

// Whether `value` is computed from constants (and shapes) only, and if so
// whether it is a causal mask.
mask_kind read_mask(const model_index& index, const std::string& value) {
  std::vector<std::string> stack{value};
  std::unordered_set<std::string> seen{value};
  bool causal = false;
  for (int steps = 0; !stack.empty(); ++steps) {
    if (steps > 4 * max_steps) return mask_kind::not_constant;
    const std::string v = stack.back();
    stack.pop_back();
    if (const onnx::TensorProto* t = index.constant(v, 0)) {
      causal = causal || causal_constant(index, *t);
      continue;
    }
    const int p = index.producer(v, 0);
    if (p < 0) return mask_kind::not_constant;  // a graph input
    const auto& node = index.node(p);
    if (is_op(node, "Shape")) continue;  // depends on the input's shape only
    causal = causal || is_op(node, "Trilu");
    for (const std::string& in : node.input())
      if (!in.empty() && seen.insert(in).second) stack.push_back(in);
  }
  return causal ? mask_kind::causal : mask_kind::other;
}

struct scores {
  int matmul = -1;  // the Q K^T MatMul
  bool causal = false;
};

// Back from the Softmax's input through masks, scales and casts to Q K^T.
scores find_scores(const model_index& index, std::string value) {
  scores out;
  for (int steps = 0; steps < max_steps; ++steps) {
    const int p = index.producer(value, 0);
    if (p < 0) return out;
    const auto& node = index.node(p);
    const auto inputs = data_inputs(index, p);
    if (is_matmul(node) && inputs.size() == 2) {
      out.matmul = p;
      return out;
    }
    if (scales(node) || op_info(node).traits.mask) {
      std::string next;
      for (const std::string& in : node.input()) {
        if (in.empty()) continue;
        const mask_kind m = read_mask(index, in);
        if (m == mask_kind::not_constant) {
          if (!next.empty()) return out;  // two computed operands: no mask we can read
          next = in;
        }
        out.causal = out.causal || m == mask_kind::causal;
      }
      if (next.empty()) return out;
      value = next;
      continue;
    }
    if (!passes_through(node) || node.input_size() == 0) return out;
    value = node.input(0);
  }
  return out;
}

// Forward from the attention MatMul through layout ops to the output projection.
int output_projection(const model_index& index, std::string value) {
  for (int steps = 0; steps < max_steps; ++steps) {
    const auto uses = index.value_uses(value, 0);
    if (uses.size() != 1) return -1;
    const int n = uses.front().node;
    if (!layer_weight(index, n).empty()) return n;
    const auto& node = index.node(n);
    if (!passes_through(node) || node.output_size() == 0) return -1;
    value = node.output(0);
  }
  return -1;
}

// The MatMul the Softmax's probabilities go into, through dropout and casts.
int probabilities_matmul(const model_index& index, std::string value) {
  for (int steps = 0; steps < 4; ++steps) {
    const auto uses = index.value_uses(value, 0);
    if (uses.size() != 1) return -1;
    const auto& node = index.node(uses.front().node);
    if (is_matmul(node) && uses.front().slot == 0) return uses.front().node;
    if (!op_info(node).traits.identity || node.output_size() == 0) return -1;
    value = node.output(0);
  }
  return -1;
}

struct block {
  int query = -1, key = -1, value = -1, output = -1;
  bool causal = false;
  bool cross = false;
  int stream = -1;  // of the output projection's branch, -1 when in none
};

std::optional<block> read_block(const model_index& index, const residual_lookup& residual,
                                int softmax) {
  const auto& node = index.node(softmax);
  if (node.input_size() < 1 || node.output_size() < 1) return std::nullopt;
  const int pv = probabilities_matmul(index, node.output(0));
  if (pv < 0) return std::nullopt;
  const scores s = find_scores(index, node.input(0));
  if (s.matmul < 0) return std::nullopt;
  block b;
  b.value = projection_of(index, index.node(pv).input(1));
  b.query = projection_of(index, index.node(s.matmul).input(0));
  b.key = projection_of(index, index.node(s.matmul).input(1));
  b.output = output_projection(index, index.node(pv).output(0));
  if (b.value < 0 || b.query < 0 || b.key < 0) return std::nullopt;
  b.causal = s.causal;
  b.cross = layer_input(index, b.query) != layer_input(index, b.key);
  if (auto it = residual.layers.find(b.output); b.output >= 0 && it != residual.layers.end())
    b.stream = it->second.stream;
  return b;
}

using stack = transformer_place::stack;
using kind = transformer_place::kind;

// Decoder: causal self-attention, cross-attention, or a block in a stream
// holding cross-attention. Encoder: the others, once the model has a decoder
// that cross-attends. Unknown otherwise.
stack side_of(const block& b, const std::set<int>& cross_streams, bool any_cross) {
  if (b.causal || b.cross || (b.stream >= 0 && cross_streams.count(b.stream) != 0))
    return stack::decoder;
  return any_cross ? stack::encoder : stack::unknown;
}

transformer_place model_of(const std::vector<block>& blocks, const std::vector<stack>& sides) {
  transformer_place m;
  bool any_cross = false, all_decoder = true;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    any_cross = any_cross || blocks[i].cross;
    if (blocks[i].cross) continue;
    ++m.layers;
    m.encoder_layers += sides[i] == stack::encoder ? 1 : 0;
    m.decoder_layers += sides[i] == stack::decoder ? 1 : 0;
    all_decoder = all_decoder && sides[i] == stack::decoder;
  }
  m.model = blocks.empty() ? kind::none
            : any_cross    ? kind::encoder_decoder
            : all_decoder  ? kind::decoder
                           : kind::unknown;
  return m;
}

void mark(attention_lookup& out, int node, stack side, bool transformer_place::*part) {
  if (node < 0) return;
  auto [it, fresh] = out.layers.try_emplace(node, out.model);
  it->second.*part = true;
  if (fresh || it->second.side == stack::unknown) it->second.side = side;
}

// The layers of branches in streams holding attention but no attention
// layer of their own: the feed-forward layers, on their stream's side.
void mark_ffn(const residual_lookup& residual, const std::map<int, stack>& stream_sides,
              attention_lookup& out) {
  std::set<std::pair<int, int>> attention_branches;
  for (const auto& [node, place] : out.layers)
    if (auto it = residual.layers.find(node); it != residual.layers.end())
      attention_branches.emplace(it->second.stream, it->second.branch);
  for (const auto& [node, pos] : residual.layers) {
    if (pos.where != residual_position::part::layer) continue;
    auto side = stream_sides.find(pos.stream);
    if (side == stream_sides.end() || attention_branches.count({pos.stream, pos.branch}) != 0)
      continue;
    mark(out, node, side->second, &transformer_place::ffn);
  }
}

}  // namespace

attention_lookup find_attention_lookup(const model_index& index, const residual_lookup& residual) {
  std::vector<block> blocks;
  for (int n = 0; n < static_cast<int>(index.nodes().size()); ++n)
    if (index.node_graph(n) == 0 && op_info(index.node(n)).moments == moment_rule::softmax)
      if (auto b = read_block(index, residual, n)) blocks.push_back(*b);
  std::set<int> cross_streams;
  bool any_cross = false;
  for (const block& b : blocks) {
    any_cross = any_cross || b.cross;
    if (b.cross && b.stream >= 0) cross_streams.insert(b.stream);
  }
  std::vector<stack> sides;
  for (const block& b : blocks) sides.push_back(side_of(b, cross_streams, any_cross));
  attention_lookup out;
  out.model = model_of(blocks, sides);
  std::map<int, stack> stream_sides;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const block& b = blocks[i];
    mark(out, b.query, sides[i], &transformer_place::query);
    mark(out, b.key, sides[i], &transformer_place::key);
    mark(out, b.value, sides[i], &transformer_place::value);
    mark(out, b.output, sides[i], &transformer_place::output);
    if (b.stream >= 0) stream_sides.emplace(b.stream, sides[i]);
  }
  mark_ffn(residual, stream_sides, out);
  return out;
}

}  // namespace onnx_reinit::detail
