// Test support: check_same_structure(in, out), that a written model is its
// input with at most the initializers' values (and their storage) changed.
#pragma once

#include <onnx/onnx_pb.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

namespace onnx_reinit::test {

// Each element of two repeated fields equal, in order, as serialized.
template <class Field>
void check_same_elements(const Field& in, const Field& out) {
  REQUIRE(out.size() == in.size());
  for (int i = 0; i < in.size(); ++i)
    CHECK(out[i].SerializeAsString() == in[i].SerializeAsString());
}

// Nodes, inputs, outputs, opsets, metadata, doc strings, versions and every
// initializer's name, doc string, type and dims equal.
inline void check_same_structure(const onnx::ModelProto& in, const onnx::ModelProto& out) {
  check_same_elements(in.graph().node(), out.graph().node());
  check_same_elements(in.graph().input(), out.graph().input());
  check_same_elements(in.graph().output(), out.graph().output());
  check_same_elements(in.opset_import(), out.opset_import());
  check_same_elements(in.metadata_props(), out.metadata_props());
  CHECK(out.doc_string() == in.doc_string());
  CHECK(out.graph().doc_string() == in.graph().doc_string());
  CHECK(out.ir_version() == in.ir_version());
  CHECK(out.producer_name() == in.producer_name());
  CHECK(out.producer_version() == in.producer_version());
  REQUIRE(out.graph().initializer_size() == in.graph().initializer_size());
  for (int i = 0; i < in.graph().initializer_size(); ++i) {
    const auto& a = in.graph().initializer(i);
    const auto& b = out.graph().initializer(i);
    CHECK(b.name() == a.name());
    CHECK(b.doc_string() == a.doc_string());
    CHECK(b.data_type() == a.data_type());
    CHECK(std::vector<std::int64_t>(b.dims().begin(), b.dims().end()) ==
          std::vector<std::int64_t>(a.dims().begin(), a.dims().end()));
  }
}

}  // namespace onnx_reinit::test
