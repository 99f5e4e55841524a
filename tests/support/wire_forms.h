// Models in forms protobuf never writes, by hand in the wire format, and a
// model with a tensor in every place a tensor can sit: inputs for the
// skeleton scan (model_skeleton_test) and the splice writer
// (model_splice_test).
#pragma once

#include <cstdint>
#include <string>

#include <onnx/onnx_pb.h>

#include "onnx_builder.h"

namespace onnx_reinit::test {

// Wire format by hand, for the forms protobuf never writes.
inline std::string varint(std::uint64_t v, std::size_t min_size = 1) {
  std::string out;
  while (v >= 0x80 || out.size() + 1 < min_size) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
inline std::string field(int number, const std::string& body, std::size_t length_size = 1) {
  return varint(static_cast<std::uint64_t>(number) << 3 | 2) + varint(body.size(), length_size) +
         body;
}

// A model whose MatMul weight W (the only initializer) is `w_bytes`, an
// encoded TensorProto: the graph and model are written around it by hand.
inline std::string model_around(const std::string& w_bytes, std::size_t length_size = 1) {
  graph_builder g;
  g.add_input("x", {1, 4});
  g.add_node("MatMul", {"x", "W"}, {"y"});
  g.add_output("y", {1, 4});
  onnx::ModelProto m = g.model();
  onnx::GraphProto graph = m.graph();
  m.clear_graph();
  const std::string graph_bytes =
      graph.SerializeAsString() + field(5, w_bytes, length_size);     // initializer = 5
  return m.SerializeAsString() + field(7, graph_bytes, length_size);  // graph = 7
}

inline onnx::TensorProto weight() {
  return make_tensor("W", {4, 4}, ramp(16, -1.0f, 0.125f));
}

inline onnx::ModelProto model_with_tensors_everywhere() {
  graph_builder g;
  g.add_input("x", {2, 4});
  g.add_input("c", {}, onnx::TensorProto::BOOL);
  g.add_initializer("W", {4, 4}, ramp(16, 0.0f, 0.5f));
  g.add_constant(make_tensor("K", {4}, ramp(4, 1.0f, 1.0f)));
  g.add_node("MatMul", {"x", "W"}, {"h"});
  g.add_node("Add", {"h", "K"}, {"a"});
  auto branch = [](const std::string& name, float start) {
    graph_builder b(name);
    b.add_initializer(name + "_w", {4, 4}, ramp(16, start, 0.25f));
    b.add_node("MatMul", {"a", name + "_w"}, {name + "_y"});
    b.add_output(name + "_y", {2, 4});
    return b.graph();
  };
  g.add_node("If", {"c"}, {"y"},
             {make_attribute("then_branch", branch("then", 1.0f)),
              make_attribute("else_branch", branch("else", -1.0f))});
  g.add_output("y", {2, 4});
  onnx::SparseTensorProto& sparse = *g.graph().add_sparse_initializer();
  *sparse.mutable_values() = make_tensor("S", {3}, ramp(3, 2.0f, 1.0f));
  *sparse.mutable_indices() = make_int64_tensor("S_idx", {3}, {0, 5, 9}, storage_form::raw);
  sparse.add_dims(4);
  sparse.add_dims(4);
  onnx::ModelProto m = g.model();
  set_opset(m, "local", 1);
  onnx::FunctionProto& f = *m.add_functions();
  f.set_name("F");
  f.set_domain("local");
  f.add_output("k");
  onnx::OperatorSetIdProto& f_opset = *f.add_opset_import();
  f_opset.set_domain("");
  f_opset.set_version(17);
  onnx::NodeProto& k = *f.add_node();
  k.set_op_type("Constant");
  k.add_output("k");
  *k.add_attribute() = make_attribute("value", make_tensor("FK", {8}, ramp(8, 3.0f, 0.5f)));
  onnx::TrainingInfoProto& train = *m.add_training_info();
  train.mutable_initialization()->set_name("init");
  *train.mutable_initialization()->add_initializer() =
      make_tensor("T", {16}, ramp(16, 4.0f, 0.25f));
  return m;
}

}  // namespace onnx_reinit::test
