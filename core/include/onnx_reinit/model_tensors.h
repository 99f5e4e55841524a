// Finding every tensor of a model that may hold weights: graph initializers
// and Constant-node values, in the main graph and in subgraphs (If/Loop/Scan
// bodies), each with a stable identity used by analysis, planning and rewrite.
#pragma once

#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

namespace onnx_reinit {

enum class tensor_origin { initializer, constant_node };

// Identity of a tensor within a model. `graph_path` is "" for the main graph
// and "<node>/<attribute>" for a subgraph, nested with '/', where <node> is
// the node's name or "#<index>" when it has none (e.g. "If_0/then_branch").
// `name` is the initializer name or the Constant node's output name.
struct tensor_ref {
  std::string graph_path;
  std::string name;
  tensor_origin origin = tensor_origin::initializer;
  friend bool operator==(const tensor_ref&, const tensor_ref&) = default;
};

struct model_tensor {
  tensor_ref ref;
  onnx::TensorProto* proto = nullptr;  // owned by the model
  const onnx::GraphProto* graph = nullptr;
};

// The same, read-only: for code that only inspects a model.
struct const_model_tensor {
  tensor_ref ref;
  const onnx::TensorProto* proto = nullptr;  // owned by the model
  const onnx::GraphProto* graph = nullptr;
};

// One graph of a model: the main graph or a subgraph (If/Loop/Scan body).
struct model_graph {
  const onnx::GraphProto* graph = nullptr;  // owned by the model
  int parent = -1;                          // index of the enclosing graph; -1: main graph
  std::string path;                         // the graph_path of its tensors
};

// Every graph of `model`, each before its subgraphs, subgraphs depth-first
// in node and attribute order: the one walk of a model's graphs, which sets
// the model order below and the analysis's node order. Iterative, so deep
// nesting cannot overflow the stack.
std::vector<model_graph> model_graphs(const onnx::ModelProto& model);

// Model order: per graph, initializers first, then Constant nodes (op
// "Constant" with a `value` tensor) in node order; subgraphs depth-first
// after the graph that holds them. A GRAPHS-list attribute's graphs are
// "<node>/<attribute>[<i>]". Pointers stay valid while the model's graphs
// are not structurally changed (no initializers/nodes added or removed).
std::vector<model_tensor> collect_model_tensors(onnx::ModelProto& model);
std::vector<const_model_tensor> collect_model_tensors(const onnx::ModelProto& model);

}  // namespace onnx_reinit
