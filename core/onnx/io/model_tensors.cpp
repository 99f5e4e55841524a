// collect_model_tensors: every initializer and Constant-node tensor of a
// model, main graph and subgraphs, in the documented model order.
#include "onnx_reinit/model_tensors.h"

#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

namespace onnx_reinit {
namespace {

bool is_constant_node(const onnx::NodeProto& node) {
  return node.op_type() == "Constant" && (node.domain().empty() || node.domain() == "ai.onnx");
}

// Mutable or const access through one spelling, so a single walker serves
// both overloads of collect_model_tensors.
onnx::TensorProto* initializer_at(onnx::GraphProto& g, int i) {
  return g.mutable_initializer(i);
}
const onnx::TensorProto* initializer_at(const onnx::GraphProto& g, int i) {
  return &g.initializer(i);
}
onnx::NodeProto& node_at(onnx::GraphProto& g, int i) {
  return *g.mutable_node(i);
}
const onnx::NodeProto& node_at(const onnx::GraphProto& g, int i) {
  return g.node(i);
}
onnx::AttributeProto& attribute_at(onnx::NodeProto& n, int i) {
  return *n.mutable_attribute(i);
}
const onnx::AttributeProto& attribute_at(const onnx::NodeProto& n, int i) {
  return n.attribute(i);
}
onnx::TensorProto* tensor_of(onnx::AttributeProto& a) {
  return a.mutable_t();
}
const onnx::TensorProto* tensor_of(const onnx::AttributeProto& a) {
  return &a.t();
}
onnx::GraphProto& graph_of(onnx::AttributeProto& a) {
  return *a.mutable_g();
}
const onnx::GraphProto& graph_of(const onnx::AttributeProto& a) {
  return a.g();
}
onnx::GraphProto& graphs_at(onnx::AttributeProto& a, int i) {
  return *a.mutable_graphs(i);
}
const onnx::GraphProto& graphs_at(const onnx::AttributeProto& a, int i) {
  return a.graphs(i);
}

template <class Entry, class Graph>
void collect_graph(Graph& graph, const std::string& path, std::vector<Entry>& out) {
  for (int i = 0; i < graph.initializer_size(); ++i) {
    auto* t = initializer_at(graph, i);
    out.push_back(Entry{tensor_ref{path, t->name(), tensor_origin::initializer}, t, &graph});
  }
  for (int i = 0; i < graph.node_size(); ++i) {
    auto& node = node_at(graph, i);
    if (!is_constant_node(node) || node.output_size() == 0) continue;
    for (int a = 0; a < node.attribute_size(); ++a) {
      auto& attr = attribute_at(node, a);
      if (attr.name() != "value" || !attr.has_t()) continue;
      out.push_back(Entry{tensor_ref{path, node.output(0), tensor_origin::constant_node},
                          tensor_of(attr), &graph});
    }
  }
  // Subgraphs after the whole graph that holds them, depth-first.
  for (int i = 0; i < graph.node_size(); ++i) {
    auto& node = node_at(graph, i);
    // fmt rather than `"#" + std::to_string(i)`: GCC 12 at -O3 misreads the
    // inlined insert-at-front of that operator+ as an overlapping memcpy.
    std::string node_id = node.name().empty() ? fmt::format("#{}", i) : node.name();
    std::string prefix = path.empty() ? node_id : path + "/" + node_id;
    for (int a = 0; a < node.attribute_size(); ++a) {
      auto& attr = attribute_at(node, a);
      if (attr.has_g()) collect_graph(graph_of(attr), prefix + "/" + attr.name(), out);
      for (int g = 0; g < attr.graphs_size(); ++g)
        collect_graph(graphs_at(attr, g),
                      prefix + "/" + attr.name() + "[" + std::to_string(g) + "]", out);
    }
  }
}

}  // namespace

std::vector<model_tensor> collect_model_tensors(onnx::ModelProto& model) {
  std::vector<model_tensor> out;
  if (model.has_graph()) collect_graph(*model.mutable_graph(), "", out);
  return out;
}

std::vector<const_model_tensor> collect_model_tensors(const onnx::ModelProto& model) {
  std::vector<const_model_tensor> out;
  if (model.has_graph()) collect_graph(model.graph(), "", out);
  return out;
}

}  // namespace onnx_reinit
