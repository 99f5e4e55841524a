// Residual structure: for each Add (or 2-input Sum) of the main graph whose
// two inputs are computed, the fork is the latest value both derive from
// (walked back in node order, which ONNX makes topological). One side must
// be a skip (the fork itself, or a chain holding one weighted layer and
// norms/layout ops); the other, holding weighted layers, is the branch.
// Joins chained through non-weighted ops (the ReLU after a ResNet block)
// form a stream.
#include "residual.h"

#include <algorithm>
#include <queue>
#include <set>
#include <string_view>
#include <vector>

#include "layout.h"
#include "ops.h"

namespace onnx_reinit {
namespace detail {

std::vector<std::string> data_inputs(const model_index& index, int n) {
  std::vector<std::string> out;
  for (const std::string& in : index.node(n).input())
    if (!in.empty() && constant_source(index, in, 0).empty()) out.push_back(in);
  return out;
}

std::string layer_weight(const model_index& index, int n) {
  const auto& node = index.node(n);
  if (!is_weighted(node) || node.input_size() < 2) return {};
  // The weight slots in the op table's order: x·W's W first, then W·x's.
  for (const slot_entry& s : op_info(node).slots) {
    if (s.slot < 0 || s.role != tensor_role::weight || s.slot >= node.input_size()) continue;
    if (std::string w = constant_source(index, node.input(s.slot), 0); !w.empty()) return w;
  }
  return {};
}

namespace {

using norm_map = std::map<std::pair<int, int>, norm_parameter>;

// Bounds every walk: no real block spans more values than this.
constexpr int max_walk = 1 << 16;
// Nodes between a fork and its join beyond which a join is not read as one.
constexpr std::size_t max_branch_nodes = 1024;

// The computed inputs of each node, worked out once: the walks below visit
// a node once per join they cross.
class input_cache {
 public:
  explicit input_cache(const model_index& index) : index_(index) {}
  const std::vector<std::string>& operator()(int n) {
    auto [it, fresh] = cache_.try_emplace(n);
    if (fresh) it->second = data_inputs(index_, n);
    return it->second;
  }

 private:
  const model_index& index_;
  std::unordered_map<int, std::vector<std::string>> cache_;
};

// The latest value both `a` and `b` derive from, "" when none: values are
// taken from a max-heap on their producer's node index, so a value is
// expanded only after every descendant reaching it, and the first value
// reached from both sides is the latest common one. Once no queued value
// carries only the other side than the one being expanded, nothing later
// can become common: the best common value queued is the answer.
std::string find_fork(const model_index& index, input_cache& inputs, const std::string& a,
                      const std::string& b) {
  if (a == b) return a;
  std::unordered_map<std::string, int> sides;
  std::priority_queue<std::pair<int, std::string>> queue;
  int only[3] = {0, 0, 0};  // queued values carrying side 1 only, side 2 only
  std::pair<int, std::string> best{-2, {}};
  auto push = [&](const std::string& v, int side) {
    int& s = sides[v];
    if ((s | side) == s) return;
    if (s == 0) queue.emplace(index.producer(v, 0), v);
    if (s == 1 || s == 2) --only[s];
    s |= side;
    if (s == 3)
      best = std::max(best, {index.producer(v, 0), v});
    else
      ++only[s];
  };
  push(a, 1);
  push(b, 2);
  for (int steps = 0; !queue.empty() && steps < max_walk; ++steps) {
    const auto [p, v] = queue.top();
    queue.pop();
    const int s = sides[v];
    if (s == 3) return v;
    --only[s];
    if (best.first > -2 && only[3 - s] == 0) return best.second;
    if (p < 0) continue;
    for (const std::string& in : inputs(p)) push(in, s);
  }
  return {};
}

// Nodes on paths from `fork` to `x`, in node order; nullopt when more than
// max_branch_nodes lie between them (no block is that long; the bound keeps
// long chains of Adds linear).
std::optional<std::vector<int>> path_nodes(const model_index& index, input_cache& inputs,
                                           const std::string& fork, const std::string& x) {
  const int floor = index.producer(fork, 0);
  std::set<int> ancestors;
  std::vector<std::string> stack{x};
  std::unordered_set<std::string> seen{x};
  while (!stack.empty()) {
    const std::string v = stack.back();
    stack.pop_back();
    const int p = index.producer(v, 0);
    if (v == fork || p <= floor || !ancestors.insert(p).second) continue;
    if (ancestors.size() > max_branch_nodes) return std::nullopt;
    for (const std::string& in : inputs(p))
      if (seen.insert(in).second) stack.push_back(in);
  }
  std::unordered_set<std::string> reached{fork};
  std::vector<int> out;
  for (int n : ancestors) {
    const auto& in = inputs(n);
    if (std::none_of(in.begin(), in.end(),
                     [&](const std::string& i) { return reached.count(i) != 0; }))
      continue;
    out.push_back(n);
    for (const std::string& o : index.node(n).output()) reached.insert(o);
  }
  return out;
}

// Norms, layout ops, dropout, pooling, padding (the op table's skip_path).
bool skip_op(const onnx::NodeProto& node) {
  return op_info(node).traits.skip_path;
}

// A skip path: -1 for identity, the projection node, or nullopt when the
// path is no skip (a chain of norms/layout ops and at most one weighted layer).
std::optional<int> as_skip(const model_index& index, const std::vector<int>& path) {
  int projection = -1;
  for (int n : path) {
    if (data_inputs(index, n).size() != 1) return std::nullopt;
    if (!layer_weight(index, n).empty()) {
      if (projection >= 0) return std::nullopt;
      projection = n;
    } else if (!skip_op(index.node(n))) {
      return std::nullopt;
    }
  }
  return projection;
}

std::vector<int> weighted_nodes(const model_index& index, const std::vector<int>& path) {
  std::vector<int> out;
  for (int n : path)
    if (!layer_weight(index, n).empty()) out.push_back(n);
  return out;
}

struct join_parts {
  std::string fork;
  std::string branch_value;
  std::vector<int> layers;
  int projection = -1;
};

// The fork, branch and skip of join `n`, or nullopt when it is no residual join.
std::optional<join_parts> read_join(const model_index& index, input_cache& cache, int n) {
  const auto& node = index.node(n);
  // A join adds its inputs: the ops whose moment rule is a sum (Add, Sum).
  if (op_info(node).moments != moment_rule::sum || node.input_size() != 2) return std::nullopt;
  const auto& inputs = cache(n);
  if (inputs.size() != 2) return std::nullopt;
  const std::string fork = find_fork(index, cache, inputs[0], inputs[1]);
  if (fork.empty()) return std::nullopt;
  auto first = path_nodes(index, cache, fork, inputs[0]);
  auto second = first ? path_nodes(index, cache, fork, inputs[1]) : std::nullopt;
  if (!second) return std::nullopt;
  const std::vector<int> paths[2] = {std::move(*first), std::move(*second)};
  std::optional<join_parts> best;
  // PyTorch writes `out + identity`: try the second input as the skip first.
  for (int skip_side : {1, 0}) {
    const auto skip = as_skip(index, paths[skip_side]);
    if (!skip) continue;
    join_parts parts{fork, inputs[1 - skip_side], weighted_nodes(index, paths[1 - skip_side]),
                     *skip};
    const std::size_t skip_layers = *skip >= 0 ? 1 : 0;
    const bool longer = parts.layers.size() > skip_layers ||
                        (parts.layers.size() == skip_layers && skip_layers == 1 &&
                         paths[1 - skip_side].size() > paths[skip_side].size());
    if (parts.layers.empty() || !longer) continue;
    if (!best || (best->projection >= 0 && parts.projection < 0)) best = std::move(parts);
  }
  return best;
}

// The constant operand of a binary node and its slot, or slot -1.
std::pair<std::string, int> constant_operand(const model_index& index,
                                             const onnx::NodeProto& node) {
  if (node.input_size() != 2) return {{}, -1};
  for (int slot : {1, 0})
    if (std::string c = constant_source(index, node.input(slot), 0); !c.empty()) return {c, slot};
  return {{}, -1};
}

bool scalar_constant(const model_index& index, const std::string& name) {
  const onnx::TensorProto* t = index.constant(name, 0);
  if (t == nullptr) return false;
  std::int64_t count = 1;
  for (std::int64_t d : tensor_dims(*t)) count *= d;
  return count == 1;
}

// Walks back from the branch's output to its last weighted layer: a
// multiplier met first is the branch's; a norm scale met before the layer
// is its last norm.
void read_tail(const model_index& index, const norm_map& norms, std::string value,
               residual_branch& branch) {
  bool passed_other = false;
  for (int steps = 0; steps < 64; ++steps) {
    const int p = index.producer(value, 0);
    if (p < 0) return;
    const auto& node = index.node(p);
    if (!layer_weight(index, p).empty()) return;
    const std::optional<int> scale = norm_scale_slot(node);
    if (scale && node.input_size() > *scale) {
      branch.last_norm_scale = constant_source(index, node.input(*scale), 0);
      return;
    }
    const auto [c, slot] = constant_operand(index, node);
    const bool mul = is_op(node, "Mul"), add = is_op(node, "Add");
    if ((mul || add) && slot >= 0) {
      if (auto it = norms.find({p, slot}); it != norms.end()) {
        if (it->second.role == tensor_role::norm_scale) {
          branch.last_norm_scale = c;
          return;
        }
      } else if (mul && !passed_other && branch.multiplier.empty()) {
        branch.multiplier = c;
        branch.multiplier_is_scalar = scalar_constant(index, c);
      }
      passed_other = passed_other || add;
      value = node.input(1 - slot);
      continue;
    }
    if (data_inputs(index, p).size() != 1 || !skip_op(node) || scale) return;
    passed_other = true;
    value = data_inputs(index, p).front();
  }
}

// The join this fork continues: walking back through single-input,
// non-weighted ops from the fork to an earlier join's output.
int previous_join(const model_index& index, std::string value,
                  const std::unordered_map<std::string, int>& join_outputs) {
  for (int steps = 0; steps < 16; ++steps) {
    if (auto it = join_outputs.find(value); it != join_outputs.end()) return it->second;
    const int p = index.producer(value, 0);
    if (p < 0 || !layer_weight(index, p).empty()) return -1;
    const auto inputs = data_inputs(index, p);
    if (inputs.size() != 1) return -1;
    value = inputs.front();
  }
  return -1;
}

bool is_output_layer(const model_index& index, int n) {
  const auto& node = index.node(n);
  if (node.output_size() == 0) return false;
  std::string value = node.output(0);
  for (int steps = 0; steps < 16; ++steps) {
    if (index.is_graph_output(value, 0)) return true;
    const auto uses = index.value_uses(value, 0);
    if (uses.size() != 1) return false;
    const auto& next = index.node(uses.front().node);
    const op_entry& op = op_info(next);
    if (op.traits.output_end) return true;
    const bool bias = op.traits.bias_add && !constant_operand(index, next).first.empty();
    const bool pass = bias || op.traits.identity ||
                      (is_layout_op(next, uses.front().slot) && op.layout != layout_kind::concat);
    if (!pass || next.output_size() == 0) return false;
    value = next.output(0);
  }
  return false;
}

void record_positions(const model_index& index, const std::vector<join_parts>& joins,
                      residual_lookup& out) {
  const auto& s = out.structure;
  for (std::size_t i = 0; i < s.branches.size(); ++i) {
    const residual_branch& b = s.branches[i];
    residual_position pos;
    pos.stream = b.stream;
    pos.stream_count = static_cast<int>(s.stream_sizes.size());
    pos.branch = b.index;
    pos.branch_count = s.stream_sizes[static_cast<std::size_t>(b.stream)];
    pos.layer_count = static_cast<int>(joins[i].layers.size());
    for (int l = 0; l < pos.layer_count; ++l) {
      pos.layer = l;
      const int node = joins[i].layers[static_cast<std::size_t>(l)];
      auto [it, fresh] = out.layers.emplace(node, pos);
      if (!fresh && it->second.layer_count > pos.layer_count) it->second = pos;
    }
    pos.layer = 0;
    if (joins[i].projection >= 0) {
      pos.where = residual_position::part::skip;
      out.layers.emplace(joins[i].projection, pos);
    }
    pos.where = residual_position::part::norm;
    if (!b.last_norm_scale.empty()) out.tensors.emplace(b.last_norm_scale, pos);
    pos.where = residual_position::part::multiplier;
    if (!b.multiplier.empty()) out.tensors.emplace(b.multiplier, pos);
  }
  for (int n = 0; n < static_cast<int>(index.nodes().size()); ++n)
    if (index.node_graph(n) == 0 && !layer_weight(index, n).empty() && is_output_layer(index, n))
      out.output_layers.insert(n);
}

}  // namespace

residual_lookup find_residual_lookup(const model_index& index, const norm_map& norm_parameters) {
  residual_lookup out;
  std::vector<join_parts> joins;
  std::unordered_map<std::string, int> join_outputs;
  input_cache cache(index);
  for (int n = 0; n < static_cast<int>(index.nodes().size()); ++n) {
    if (index.node_graph(n) != 0) continue;
    auto parts = read_join(index, cache, n);
    if (!parts) continue;
    const auto& node = index.node(n);
    residual_branch b;
    b.join = node_label(node);
    if (parts->projection >= 0) {
      b.skip = node_label(index.node(parts->projection));
      b.skip_tensors.push_back(layer_weight(index, parts->projection));
    }
    for (int l : parts->layers) b.layers.push_back(layer_weight(index, l));
    read_tail(index, norm_parameters, parts->branch_value, b);
    const int before = previous_join(index, parts->fork, join_outputs);
    if (before >= 0) {
      b.stream = out.structure.branches[static_cast<std::size_t>(before)].stream;
    } else {
      b.stream = static_cast<int>(out.structure.stream_sizes.size());
      out.structure.stream_sizes.push_back(0);
    }
    b.index = out.structure.stream_sizes[static_cast<std::size_t>(b.stream)]++;
    join_outputs.emplace(node.output(0), static_cast<int>(out.structure.branches.size()));
    out.structure.branches.push_back(std::move(b));
    joins.push_back(std::move(*parts));
  }
  record_positions(index, joins, out);
  return out;
}

}  // namespace detail

std::string_view to_string(residual_position::part p) {
  switch (p) {
    case residual_position::part::layer:
      return "layer";
    case residual_position::part::norm:
      return "norm";
    case residual_position::part::multiplier:
      return "multiplier";
    case residual_position::part::skip:
      return "skip";
  }
  return "invalid";
}

std::string_view to_string(transformer_place::kind k) {
  switch (k) {
    case transformer_place::kind::none:
      return "none";
    case transformer_place::kind::decoder:
      return "decoder";
    case transformer_place::kind::encoder_decoder:
      return "encoder-decoder";
    case transformer_place::kind::unknown:
      return "unknown";
  }
  return "invalid";
}

residual_structure find_residual_structure(const loaded_model& model) {
  detail::model_index index(model.proto(), &model);
  return detail::find_residual_lookup(index, detail::find_decomposed_norm_parameters(index))
      .structure;
}

residual_structure find_residual_structure(const onnx::ModelProto& model) {
  detail::model_index index(model);
  return detail::find_residual_lookup(index, detail::find_decomposed_norm_parameters(index))
      .structure;
}

}  // namespace onnx_reinit
