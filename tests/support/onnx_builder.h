// Test support: small helpers to build ONNX ModelProto graphs in C++ (no
// binary fixtures, docs/DESIGN.md section 9). Shared by the model I/O, analysis
// and CLI tests; add new helpers at the end of the file.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/model_io.h"

namespace onnx_reinit::test {

// Which field an initializer's data is stored in.
enum class storage_form {
  raw,    // raw_data, little-endian
  typed,  // float_data (float32), int32_data (float16/bfloat16), double_data (float64)
};

inline onnx::TensorProto::DataType onnx_type(element_type t) {
  switch (t) {
    case element_type::float32:
      return onnx::TensorProto::FLOAT;
    case element_type::float64:
      return onnx::TensorProto::DOUBLE;
    case element_type::float16:
      return onnx::TensorProto::FLOAT16;
    case element_type::bfloat16:
      return onnx::TensorProto::BFLOAT16;
  }
  return onnx::TensorProto::UNDEFINED;
}

// A float tensor with `values` (converted to the dtype: rounded to nearest
// even for 16-bit types) in the chosen storage form.
inline onnx::TensorProto make_tensor(const std::string& name, std::vector<std::int64_t> dims,
                                     const std::vector<float>& values,
                                     element_type type = element_type::float32,
                                     storage_form form = storage_form::raw) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx_type(type));
  for (std::int64_t d : dims) t.add_dims(d);
  auto bits16 = [&](float v) {
    return type == element_type::float16 ? float_to_half_bits(v) : float_to_bfloat16_bits(v);
  };
  if (form == storage_form::raw) {
    std::string raw;
    for (float v : values) {
      char buf[8];
      std::size_t n = 0;
      if (type == element_type::float32) {
        std::memcpy(buf, &v, n = 4);
      } else if (type == element_type::float64) {
        const double d = v;
        std::memcpy(buf, &d, n = 8);
      } else {
        const std::uint16_t b = bits16(v);
        std::memcpy(buf, &b, n = 2);
      }
      raw.append(buf, n);
    }
    t.set_raw_data(raw);
    return t;
  }
  for (float v : values) {
    if (type == element_type::float32)
      t.add_float_data(v);
    else if (type == element_type::float64)
      t.add_double_data(v);
    else
      t.add_int32_data(bits16(v));
  }
  return t;
}

// An int64 tensor (shapes, axes) in int64_data or raw_data.
inline onnx::TensorProto make_int64_tensor(const std::string& name, std::vector<std::int64_t> dims,
                                           const std::vector<std::int64_t>& values,
                                           storage_form form = storage_form::typed) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::INT64);
  for (std::int64_t d : dims) t.add_dims(d);
  if (form == storage_form::raw)
    t.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 8));
  else
    for (std::int64_t v : values) t.add_int64_data(v);
  return t;
}

// `count` values 0, step, 2*step, ... offset by `start`: distinct, easy to
// check after round trips.
inline std::vector<float> ramp(std::size_t count, float start = 0.0f, float step = 0.25f) {
  std::vector<float> v(count);
  for (std::size_t i = 0; i < count; ++i) v[i] = start + step * static_cast<float>(i);
  return v;
}

inline onnx::AttributeProto make_attribute(const std::string& name, std::int64_t value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(value);
  return a;
}
inline onnx::AttributeProto make_attribute(const std::string& name, float value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOAT);
  a.set_f(value);
  return a;
}
inline onnx::AttributeProto make_attribute(const std::string& name, const std::string& value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::STRING);
  a.set_s(value);
  return a;
}
inline onnx::AttributeProto make_attribute(const std::string& name,
                                           const std::vector<std::int64_t>& values) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (std::int64_t v : values) a.add_ints(v);
  return a;
}
inline onnx::AttributeProto make_attribute(const std::string& name, const onnx::TensorProto& t) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::TENSOR);
  *a.mutable_t() = t;
  return a;
}
inline onnx::AttributeProto make_attribute(const std::string& name, const onnx::GraphProto& g) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::GRAPH);
  *a.mutable_g() = g;
  return a;
}

// Builds one graph; `model()` wraps it with an opset import.
class graph_builder {
 public:
  explicit graph_builder(std::string name = "g") { graph_.set_name(std::move(name)); }

  onnx::TensorProto& add_initializer(onnx::TensorProto t) {
    *graph_.add_initializer() = std::move(t);
    return *graph_.mutable_initializer(graph_.initializer_size() - 1);
  }
  onnx::TensorProto& add_initializer(const std::string& name, std::vector<std::int64_t> dims,
                                     const std::vector<float>& values,
                                     element_type type = element_type::float32,
                                     storage_form form = storage_form::raw) {
    return add_initializer(make_tensor(name, std::move(dims), values, type, form));
  }

  onnx::NodeProto& add_node(const std::string& op, std::vector<std::string> inputs,
                            std::vector<std::string> outputs,
                            std::vector<onnx::AttributeProto> attributes = {},
                            const std::string& name = "", const std::string& domain = "") {
    onnx::NodeProto& n = *graph_.add_node();
    n.set_op_type(op);
    if (!name.empty()) n.set_name(name);
    if (!domain.empty()) n.set_domain(domain);
    for (auto& i : inputs) n.add_input(i);
    for (auto& o : outputs) n.add_output(o);
    for (auto& a : attributes) *n.add_attribute() = std::move(a);
    return n;
  }

  // A Constant node whose `value` is `t`, output named t.name().
  onnx::NodeProto& add_constant(const onnx::TensorProto& t, const std::string& node_name = "") {
    return add_node("Constant", {}, {t.name()}, {make_attribute("value", t)}, node_name);
  }

  // Graph input/output with a tensor type; a dim < 0 is symbolic ("N").
  onnx::ValueInfoProto& add_input(const std::string& name, std::vector<std::int64_t> dims,
                                  element_type type = element_type::float32) {
    return fill_value_info(*graph_.add_input(), name, dims, onnx_type(type));
  }
  onnx::ValueInfoProto& add_output(const std::string& name, std::vector<std::int64_t> dims,
                                   element_type type = element_type::float32) {
    return fill_value_info(*graph_.add_output(), name, dims, onnx_type(type));
  }
  onnx::ValueInfoProto& add_input(const std::string& name, std::vector<std::int64_t> dims,
                                  onnx::TensorProto::DataType type) {
    return fill_value_info(*graph_.add_input(), name, dims, type);
  }
  onnx::ValueInfoProto& add_output(const std::string& name, std::vector<std::int64_t> dims,
                                   onnx::TensorProto::DataType type) {
    return fill_value_info(*graph_.add_output(), name, dims, type);
  }

  onnx::GraphProto& graph() { return graph_; }
  const onnx::GraphProto& graph() const { return graph_; }

  onnx::ModelProto model(std::int64_t opset = 17, std::int64_t ir_version = 8) const {
    onnx::ModelProto m;
    m.set_ir_version(ir_version);
    m.set_producer_name("onnx-reinit-tests");
    auto* op = m.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    *m.mutable_graph() = graph_;
    return m;
  }

 private:
  static onnx::ValueInfoProto& fill_value_info(onnx::ValueInfoProto& v, const std::string& name,
                                               const std::vector<std::int64_t>& dims,
                                               onnx::TensorProto::DataType type) {
    v.set_name(name);
    auto* tt = v.mutable_type()->mutable_tensor_type();
    tt->set_elem_type(type);
    auto* shape = tt->mutable_shape();
    for (std::int64_t d : dims) {
      auto* dim = shape->add_dim();
      if (d < 0)
        dim->set_dim_param("N");
      else
        dim->set_dim_value(d);
    }
    return v;
  }

  onnx::GraphProto graph_;
};

// Adds (or replaces) an opset import for `domain`.
inline void set_opset(onnx::ModelProto& m, const std::string& domain, std::int64_t version) {
  for (auto& op : *m.mutable_opset_import())
    if (op.domain() == domain) {
      op.set_version(version);
      return;
    }
  auto* op = m.add_opset_import();
  op->set_domain(domain);
  op->set_version(version);
}

// Marks `t` as stored externally at location/offset/length (the caller
// writes the file) and clears its in-proto data.
inline void set_external(onnx::TensorProto& t, const std::string& location, std::uint64_t offset,
                         std::uint64_t length) {
  t.clear_raw_data();
  t.clear_float_data();
  t.clear_int32_data();
  t.clear_double_data();
  t.clear_external_data();
  t.set_data_location(onnx::TensorProto::EXTERNAL);
  auto add = [&](const char* k, const std::string& v) {
    auto* e = t.add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  add("location", location);
  add("offset", std::to_string(offset));
  add("length", std::to_string(length));
}

// x [2, width] -> If(c) -> y with a MatMul weight (ramp(width², start,
// step)) in each branch; the branch outputs have no type and y has none of
// its shape. ONNX Runtime runs this; ONNX 1.12's checker rejects it ("Field
// 'shape' of 'type' is required"): an input that already fails the checker.
inline onnx::ModelProto if_model_without_shapes(std::int64_t width, float start = 0.0f,
                                                float step = 0.25f) {
  auto branch = [&](const std::string& name) {
    graph_builder b(name);
    b.add_initializer(name + "_w", {width, width},
                      ramp(static_cast<std::size_t>(width * width), start, step));
    b.add_node("MatMul", {"x", name + "_w"}, {name + "_y"});
    b.graph().add_output()->set_name(name + "_y");
    return b.graph();
  };
  graph_builder g;
  g.add_input("x", {2, width});
  g.add_input("c", {}, onnx::TensorProto::BOOL);
  g.add_node("If", {"c"}, {"y"},
             {make_attribute("then_branch", branch("then")),
              make_attribute("else_branch", branch("else"))});
  g.add_output("y", {}).mutable_type()->mutable_tensor_type()->clear_shape();
  return g.model();
}

// if_model_without_shapes with a dim on y's shape: the checker passes it.
inline onnx::ModelProto if_model_with_shapes(std::int64_t width, float start = 0.0f,
                                             float step = 0.25f) {
  onnx::ModelProto m = if_model_without_shapes(width, start, step);
  m.mutable_graph()
      ->mutable_output(0)
      ->mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape()
      ->add_dim()
      ->set_dim_value(2);
  return m;
}

}  // namespace onnx_reinit::test
