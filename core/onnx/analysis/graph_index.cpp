// The model index: graphs, nodes, producers, uses and constants with scoping.
#include "graph_index.h"

#include <algorithm>

#include "ops.h"

namespace onnx_reinit::detail {
namespace {

bool is_constant_node(const onnx::NodeProto& node) {
  return node.op_type() == "Constant" && is_default_domain(node);
}

// A Constant given as value_float / value_ints / ... becomes a small tensor,
// so that attribute-style constants (Clip bounds, shapes) can be read too.
std::optional<onnx::TensorProto> scalar_attribute_tensor(const onnx::AttributeProto& a) {
  onnx::TensorProto t;
  if (a.name() == "value_float") {
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.add_float_data(a.f());
  } else if (a.name() == "value_floats") {
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.add_dims(a.floats_size());
    for (float f : a.floats()) t.add_float_data(f);
  } else if (a.name() == "value_int") {
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_int64_data(a.i());
  } else if (a.name() == "value_ints") {
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_dims(a.ints_size());
    for (std::int64_t i : a.ints()) t.add_int64_data(i);
  } else {
    return std::nullopt;
  }
  return t;
}

}  // namespace

std::string node_label(const onnx::NodeProto& node) {
  return node.name().empty() && node.output_size() > 0 ? node.output(0) : node.name();
}

std::string qualified_op(const onnx::NodeProto& node) {
  return is_default_domain(node) ? node.op_type() : node.domain() + "." + node.op_type();
}
bool is_default_domain(const onnx::NodeProto& node) {
  return node.domain().empty() || node.domain() == "ai.onnx";
}
bool is_op(const onnx::NodeProto& node, std::string_view op) {
  return node.op_type() == op && is_default_domain(node);
}
bool is_ms_op(const onnx::NodeProto& node, std::string_view op) {
  return node.op_type() == op && node.domain() == "com.microsoft";
}

const onnx::AttributeProto* find_attribute(const onnx::NodeProto& node, std::string_view name) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}
std::optional<std::int64_t> int_attribute(const onnx::NodeProto& node, std::string_view name) {
  const auto* a = find_attribute(node, name);
  if (a == nullptr || !a->has_i()) return std::nullopt;
  return a->i();
}
std::optional<float> float_attribute(const onnx::NodeProto& node, std::string_view name) {
  const auto* a = find_attribute(node, name);
  if (a == nullptr || !a->has_f()) return std::nullopt;
  return a->f();
}
std::optional<std::vector<std::int64_t>> ints_attribute(const onnx::NodeProto& node,
                                                        std::string_view name) {
  const auto* a = find_attribute(node, name);
  if (a == nullptr) return std::nullopt;
  return std::vector<std::int64_t>(a->ints().begin(), a->ints().end());
}
std::optional<std::string> string_attribute(const onnx::NodeProto& node, std::string_view name) {
  const auto* a = find_attribute(node, name);
  if (a == nullptr || !a->has_s()) return std::nullopt;
  return a->s();
}

std::vector<std::int64_t> tensor_dims(const onnx::TensorProto& t) {
  return std::vector<std::int64_t>(t.dims().begin(), t.dims().end());
}

model_index::model_index(const onnx::ModelProto& model, const loaded_model* loaded)
    : loaded_(loaded) {
  // The one walk of the model's graphs, so nodes come in model order and
  // tensors exactly as collect_model_tensors gives them.
  graphs_ = model_graphs(model);
  std::unordered_map<const onnx::GraphProto*, int> graph_ids;
  for (int g = 0; g < static_cast<int>(graphs_.size()); ++g) {
    graph_ids.emplace(graphs_[static_cast<std::size_t>(g)].graph, g);
    index_graph(g);
  }
  for (const const_model_tensor& t : collect_model_tensors(model))
    tensors_.push_back({t.ref, t.proto, graph_ids.at(t.graph)});
}

void model_index::index_graph(int self) {
  const onnx::GraphProto& graph = *graphs_[static_cast<std::size_t>(self)].graph;
  for (const auto& t : graph.initializer()) constants_[t.name()].push_back({self, &t});
  for (const auto& in : graph.input()) graph_inputs_[in.name()].push_back(self);
  for (const auto& out : graph.output()) outputs_[out.name()].push_back(self);
  for (const auto& node : graph.node()) {
    if (!is_constant_node(node) || node.output_size() == 0) continue;
    for (const auto& a : node.attribute()) {
      if (a.name() == "value" && a.has_t()) {
        constants_[node.output(0)].push_back({self, &a.t()});
      } else if (auto t = scalar_attribute_tensor(a)) {
        scalar_constants_.push_back(std::move(*t));
        constants_[node.output(0)].push_back({self, &scalar_constants_.back()});
      }
    }
  }
  index_nodes(self);
}

void model_index::index_nodes(int graph_index) {
  const auto& graph = *graphs_[static_cast<std::size_t>(graph_index)].graph;
  for (const auto& node : graph.node()) {
    int id = static_cast<int>(nodes_.size());
    nodes_.push_back({&node, graph_index});
    for (int s = 0; s < node.input_size(); ++s)
      if (!node.input(s).empty()) uses_[node.input(s)].push_back({id, s});
    for (const auto& out : node.output())
      if (!out.empty()) producers_[out].push_back({graph_index, id});
  }
}

bool model_index::is_ancestor_or_self(int ancestor, int graph) const {
  // Bounded by the nesting depth; graphs_ parents always precede children.
  while (graph >= 0) {
    if (graph == ancestor) return true;
    graph = graphs_[static_cast<std::size_t>(graph)].parent;
  }
  return false;
}

std::vector<value_use> model_index::uses(const std::string& name, int scope) const {
  std::vector<value_use> out;
  auto it = uses_.find(name);
  if (it == uses_.end()) return out;
  for (const auto& u : it->second)
    if (is_ancestor_or_self(scope, node_graph(u.node))) out.push_back(u);
  return out;
}

std::vector<value_use> model_index::value_uses(const std::string& name, int scope) const {
  std::vector<value_use> out = uses(name, scope);
  std::erase_if(out, [&](const value_use& u) { return reads_shape_only(node(u.node)); });
  return out;
}

int model_index::producer(const std::string& name, int scope) const {
  auto it = producers_.find(name);
  if (it == producers_.end()) return -1;
  // The nearest enclosing definition wins, as in ONNX name resolution.
  for (int g = scope; g >= 0; g = graphs_[static_cast<std::size_t>(g)].parent)
    for (const auto& p : it->second)
      if (p.graph == g) return p.node;
  return -1;
}

const onnx::TensorProto* model_index::constant(const std::string& name, int scope) const {
  auto it = constants_.find(name);
  if (it == constants_.end()) return nullptr;
  for (int g = scope; g >= 0; g = graphs_[static_cast<std::size_t>(g)].parent)
    for (const auto& c : it->second)
      if (c.graph == g) return c.proto;
  return nullptr;
}

int model_index::defining_graph(const std::string& name, int scope) const {
  for (int g = scope; g >= 0; g = graphs_[static_cast<std::size_t>(g)].parent) {
    auto c = constants_.find(name);
    if (c != constants_.end())
      for (const auto& e : c->second)
        if (e.graph == g) return g;
    auto p = producers_.find(name);
    if (p != producers_.end())
      for (const auto& e : p->second)
        if (e.graph == g) return g;
    auto i = graph_inputs_.find(name);
    if (i != graph_inputs_.end() &&
        std::find(i->second.begin(), i->second.end(), g) != i->second.end())
      return g;
  }
  return -1;
}

std::optional<std::vector<double>> model_index::values(const onnx::TensorProto& t,
                                                       std::size_t max_elements) const {
  return decode_tensor_values(t, loaded_, max_elements);
}

std::optional<std::vector<double>> model_index::value_prefix(const onnx::TensorProto& t,
                                                             std::size_t max_elements) const {
  return decode_tensor_prefix(t, loaded_, max_elements);
}

bool model_index::is_graph_output(const std::string& name, int graph) const {
  auto it = outputs_.find(name);
  if (it == outputs_.end()) return false;
  return std::find(it->second.begin(), it->second.end(), graph) != it->second.end();
}

}  // namespace onnx_reinit::detail
