// A read-only index over a model's graphs and subgraphs: nodes in one global
// order, who produces and who uses each value (with ONNX scoping: a subgraph
// sees its outer graphs' values), constant values (decoded by model I/O), and
// the model's tensors in collect_model_tensors order. Built once; every walk of the analysis uses
// it.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"

namespace onnx_reinit::detail {

// A graph with its enclosing graph and path, in model_graphs() order.
using graph_entry = model_graph;

struct node_entry {
  const onnx::NodeProto* node = nullptr;
  int graph = 0;
};

struct value_use {
  int node = 0;  // index into model_index::nodes, which is node order
  int slot = 0;
};

struct indexed_tensor {
  tensor_ref ref;
  const onnx::TensorProto* proto = nullptr;
  int graph = 0;
};

class model_index {
 public:
  // `loaded` (nullable) is the model `model` belongs to; through it the
  // values of external tensors can be read. Without it they read as unknown.
  explicit model_index(const onnx::ModelProto& model, const loaded_model* loaded = nullptr);

  const std::vector<graph_entry>& graphs() const { return graphs_; }
  const std::vector<node_entry>& nodes() const { return nodes_; }
  const std::vector<indexed_tensor>& tensors() const { return tensors_; }
  const onnx::NodeProto& node(int i) const { return *nodes_[static_cast<std::size_t>(i)].node; }
  int node_graph(int i) const { return nodes_[static_cast<std::size_t>(i)].graph; }

  // Uses of `name` as defined in graph `scope`: by nodes of that graph or of
  // its subgraphs, in node order.
  std::vector<value_use> uses(const std::string& name, int scope) const;
  // The same without the uses that read only the value's shape (Shape,
  // Size): they carry none of its values, so no walk along the values
  // (activation, attention, output layer) may stop at them.
  std::vector<value_use> value_uses(const std::string& name, int scope) const;
  // The node producing `name` as seen from graph `scope`, or -1.
  int producer(const std::string& name, int scope) const;
  // The constant (initializer or Constant node) named `name` seen from
  // `scope`, or nullptr.
  const onnx::TensorProto* constant(const std::string& name, int scope) const;
  // The graph in which `name` is defined as seen from `scope`, or -1.
  int defining_graph(const std::string& name, int scope) const;
  bool is_graph_output(const std::string& name, int graph) const;
  bool is_ancestor_or_self(int ancestor, int graph) const;
  // Element values of a constant, whatever its storage (raw, typed fields,
  // external data, Constant node), through model I/O's one decoder;
  // nullopt when unreadable (too large, non-numeric, malformed, external
  // without a loaded model).
  std::optional<std::vector<double>> values(const onnx::TensorProto& t,
                                            std::size_t max_elements = 1 << 16) const;
  // The first min(count, max_elements) values, for checks that judge a
  // large tensor by its first rows.
  std::optional<std::vector<double>> value_prefix(const onnx::TensorProto& t,
                                                  std::size_t max_elements) const;

 private:
  struct scoped_const {
    int graph;
    const onnx::TensorProto* proto;
  };
  struct scoped_node {
    int graph;
    int node;
  };
  void index_graph(int self);  // constants, inputs, outputs and nodes of graphs_[self]
  void index_nodes(int graph_index);

  const loaded_model* loaded_ = nullptr;
  std::vector<graph_entry> graphs_;
  std::vector<node_entry> nodes_;
  std::vector<indexed_tensor> tensors_;
  std::unordered_map<std::string, std::vector<value_use>> uses_;
  std::unordered_map<std::string, std::vector<scoped_node>> producers_;
  std::unordered_map<std::string, std::vector<scoped_const>> constants_;
  std::unordered_map<std::string, std::vector<int>> outputs_;
  std::unordered_map<std::string, std::vector<int>> graph_inputs_;
  std::deque<onnx::TensorProto> scalar_constants_;  // value_float etc.; stable addresses
};

// How reports name a node: its name, else (unnamed) its first output.
std::string node_label(const onnx::NodeProto& node);
// "Conv" for the default domain, "com.microsoft.FusedConv" otherwise.
std::string qualified_op(const onnx::NodeProto& node);
bool is_default_domain(const onnx::NodeProto& node);
bool is_op(const onnx::NodeProto& node, std::string_view op);  // default domain
bool is_ms_op(const onnx::NodeProto& node, std::string_view op);
// What each op is (weighted layer, norm, layout op, shape reader...) is
// the op table's, ops.h.

const onnx::AttributeProto* find_attribute(const onnx::NodeProto& node, std::string_view name);
std::optional<std::int64_t> int_attribute(const onnx::NodeProto& node, std::string_view name);
std::optional<float> float_attribute(const onnx::NodeProto& node, std::string_view name);
std::optional<std::vector<std::int64_t>> ints_attribute(const onnx::NodeProto& node,
                                                        std::string_view name);
std::optional<std::string> string_attribute(const onnx::NodeProto& node, std::string_view name);

std::vector<std::int64_t> tensor_dims(const onnx::TensorProto& t);

}  // namespace onnx_reinit::detail
