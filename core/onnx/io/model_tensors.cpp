// collect_model_tensors: every initializer and Constant-node tensor of a
// model, main graph and subgraphs, in the documented model order.
#include "onnx_reinit/model_tensors.h"

#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace onnx_reinit {
namespace {

bool is_constant_node(const onnx::NodeProto& node) {
  return node.op_type() == "Constant" && (node.domain().empty() || node.domain() == "ai.onnx");
}

// The initializers, then the Constant-node tensors, of one graph.
void collect_graph(const onnx::GraphProto& graph, const std::string& path,
                   std::vector<const_model_tensor>& out) {
  for (const onnx::TensorProto& t : graph.initializer())
    out.push_back({tensor_ref{path, t.name(), tensor_origin::initializer}, &t, &graph});
  for (const onnx::NodeProto& node : graph.node()) {
    if (!is_constant_node(node) || node.output_size() == 0) continue;
    for (const onnx::AttributeProto& attr : node.attribute()) {
      if (attr.name() != "value" || !attr.has_t()) continue;
      out.push_back(
          {tensor_ref{path, node.output(0), tensor_origin::constant_node}, &attr.t(), &graph});
    }
  }
}

}  // namespace

std::vector<model_graph> model_graphs(const onnx::ModelProto& model) {
  std::vector<model_graph> out;
  if (!model.has_graph()) return out;
  // Children are pushed in reverse so they pop in order.
  std::vector<model_graph> stack{{&model.graph(), -1, ""}};
  while (!stack.empty()) {
    out.push_back(std::move(stack.back()));
    stack.pop_back();
    const int self = static_cast<int>(out.size()) - 1;
    const onnx::GraphProto& graph = *out.back().graph;
    const std::string path = out.back().path;
    std::vector<model_graph> children;
    for (int i = 0; i < graph.node_size(); ++i) {
      const onnx::NodeProto& node = graph.node(i);
      // fmt rather than `"#" + std::to_string(i)`: GCC 12 at -O3 misreads the
      // inlined insert-at-front of that operator+ as an overlapping memcpy.
      std::string node_id = node.name().empty() ? fmt::format("#{}", i) : node.name();
      std::string prefix = path.empty() ? node_id : path + "/" + node_id;
      for (const onnx::AttributeProto& attr : node.attribute()) {
        if (attr.has_g()) children.push_back({&attr.g(), self, prefix + "/" + attr.name()});
        for (int g = 0; g < attr.graphs_size(); ++g)
          children.push_back(
              {&attr.graphs(g), self, prefix + "/" + attr.name() + "[" + std::to_string(g) + "]"});
      }
    }
    for (auto it = children.rbegin(); it != children.rend(); ++it) stack.push_back(std::move(*it));
  }
  return out;
}

std::vector<const_model_tensor> collect_model_tensors(const onnx::ModelProto& model) {
  std::vector<const_model_tensor> out;
  for (const model_graph& g : model_graphs(model)) collect_graph(*g.graph, g.path, out);
  return out;
}

std::vector<model_tensor> collect_model_tensors(onnx::ModelProto& model) {
  // The one walk, read-only; the tensors it finds are `model`'s, and the
  // caller may change them.
  std::vector<model_tensor> out;
  for (const const_model_tensor& t : collect_model_tensors(std::as_const(model)))
    out.push_back({t.ref, const_cast<onnx::TensorProto*>(t.proto), t.graph});
  return out;
}

}  // namespace onnx_reinit
