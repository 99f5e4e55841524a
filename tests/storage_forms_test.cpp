// Storage never changes the plan (docs/DESIGN.md section 6): models whose plans
// depend on constant values (Clip bounds, scaling constants, PRelu slopes,
// Reshape shapes, norm constants) are stored inline in raw_data, in typed
// fields, entirely as external data and as Constant nodes, loaded from disk
// and planned through analyze_model(loaded_model); every plan must match.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"
#include "support/onnx_builder.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace onnx_reinit;
using namespace onnx_reinit::test;

namespace {

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

enum class form { raw, typed, external, constants };

const char* form_name(form f) {
  switch (f) {
    case form::raw:
      return "raw_data";
    case form::typed:
      return "typed fields";
    case form::external:
      return "external data";
    case form::constants:
      return "Constant nodes";
  }
  return "?";
}

// Every graph of the model, each before the subgraphs of its nodes.
void for_each_graph(onnx::GraphProto& g, const std::function<void(onnx::GraphProto&)>& fn) {
  fn(g);
  for (auto& node : *g.mutable_node())
    for (auto& a : *node.mutable_attribute()) {
      if (a.has_g()) for_each_graph(*a.mutable_g(), fn);
      for (auto& sub : *a.mutable_graphs()) for_each_graph(sub, fn);
    }
}

// Moves raw_data into the typed field the ONNX spec gives the dtype:
// float_data, int32_data (16-bit float bits), int64_data, double_data.
void to_typed(onnx::TensorProto& t) {
  const std::string raw = t.raw_data();
  t.clear_raw_data();
  auto each = [&](std::size_t size, auto&& add) {
    for (std::size_t i = 0; i + size <= raw.size(); i += size) add(raw.data() + i);
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      each(4, [&](const char* p) {
        float v;
        std::memcpy(&v, p, 4);
        t.add_float_data(v);
      });
      break;
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16:
      each(2, [&](const char* p) {
        std::uint16_t v;
        std::memcpy(&v, p, 2);
        t.add_int32_data(v);
      });
      break;
    case onnx::TensorProto::INT64:
      each(8, [&](const char* p) {
        std::int64_t v;
        std::memcpy(&v, p, 8);
        t.add_int64_data(v);
      });
      break;
    default:
      FAIL("to_typed: unexpected data type " << t.data_type());
  }
}

// Writes `base` in storage form `f` into `dir`, loads it from disk as the
// CLI does and plans it with the default policy.
std::vector<tensor_plan> plan_in_form(const onnx::ModelProto& base, form f, const fs::path& dir) {
  onnx::ModelProto m = base;
  std::string data;
  for_each_graph(*m.mutable_graph(), [&](onnx::GraphProto& g) {
    if (f == form::typed) {
      for (auto& t : *g.mutable_initializer()) to_typed(t);
    } else if (f == form::external) {
      // Every tensor, scalars and int64 shapes included.
      for (auto& t : *g.mutable_initializer()) {
        const std::string raw = t.raw_data();
        set_external(t, "data.bin", data.size(), raw.size());
        data += raw;
      }
    } else if (f == form::constants) {
      google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
      for (const auto& t : g.initializer()) {
        onnx::NodeProto& n = *nodes.Add();
        n.set_op_type("Constant");
        n.set_name("const_" + t.name());
        n.add_output(t.name());
        *n.add_attribute() = make_attribute("value", t);
      }
      for (const auto& n : g.node()) *nodes.Add() = n;
      g.mutable_node()->Swap(&nodes);
      g.clear_initializer();
    }
  });
  if (f == form::external) write_file(dir / "data.bin", data);
  write_file(dir / "m.onnx", m.SerializeAsString());
  const loaded_model loaded = load_model(dir / "m.onnx");
  if (f == form::external) REQUIRE(loaded.has_external_data());
  return make_plan(analyze_model(loaded), plan_options{});
}

// Everything the plan decides for a tensor, as one comparable line.
std::string summary(const tensor_plan& p) {
  const tensor_analysis& t = p.tensor;
  const tensor_info& i = t.info;
  std::ostringstream s;
  s << std::setprecision(17) << "role=" << to_string(i.role) << " consumer=" << t.consumer_op
    << " fan_in=" << i.fan_in << " fan_out=" << i.fan_out << " rf=" << i.receptive_field
    << " blocks=" << i.block_count << "x" << i.block_rows << "x" << i.block_cols
    << " activation=" << to_string(i.activation) << " param=" << i.activation_param
    << " gain=" << i.gain << " action=" << (p.action == plan_action::rewrite ? "rewrite" : "keep")
    << " call=" << p.call.to_string() << " reason=" << p.reason << " keep=" << t.keep_reason
    << " forget=";
  for (const auto& [b, e] : t.forget_gate_ranges) s << "[" << b << "," << e << ")";
  for (const host_adjustment& a : p.adjustments) s << " " << a.name << "=" << a.value;
  return s.str();
}

std::map<std::string, std::string> summaries(const std::vector<tensor_plan>& plans) {
  std::map<std::string, std::string> out;
  for (const auto& p : plans) out[p.tensor.ref.name] = summary(p);
  return out;
}

const tensor_plan& find(const std::vector<tensor_plan>& plans, const std::string& name) {
  for (const auto& p : plans)
    if (p.tensor.ref.name == name) return p;
  FAIL("no tensor " << name);
  throw;  // unreachable
}

// What the raw_data form must give (so that all forms being equally wrong
// fails too).
struct expectation {
  std::string tensor;
  tensor_role role;
  activation_kind activation;
  double activation_param;
  std::string strategy;
};

struct model_case {
  std::string name;
  onnx::ModelProto model;
  std::vector<expectation> expected;
};

onnx::TensorProto scalar(const std::string& name, float v,
                         element_type type = element_type::float32) {
  return make_tensor(name, {}, {v}, type);
}

std::vector<float> ones(std::size_t n, float v = 0.1f) {
  return std::vector<float>(n, v);
}

// Conv -> Clip(min, max as inputs): relu6 from the bounds' values.
model_case clip_case(element_type type) {
  graph_builder g;
  g.add_input("x", {1, 3, 8, 8}, type);
  g.add_initializer("W", {4, 3, 3, 3}, ramp(108, -0.5f, 0.01f), type);
  g.add_initializer("B", {4}, ones(4), type);
  g.add_initializer(scalar("lo", 0.0f, type));
  g.add_initializer(scalar("hi", 6.0f, type));
  g.add_node("Conv", {"x", "W", "B"}, {"c"}, {}, "conv");
  g.add_node("Clip", {"c", "lo", "hi"}, {"y"}, {}, "clip");
  g.add_output("y", {1, 4, 6, 6}, type);
  return {std::string("Conv -> Clip(0, 6) ") + std::string(to_string(type)),
          g.model(),
          {{"W", tensor_role::weight, activation_kind::relu6, 0.0, "kaiming_normal"}}};
}

// Conv -> Mul by a constant -> Sigmoid, and MatMul -> x * 0.5 * (1 + Erf(x / sqrt 2)).
model_case scaled_case() {
  graph_builder g;
  g.add_input("x", {1, 3, 8, 8});
  g.add_initializer("W", {4, 3, 3, 3}, ramp(108, -0.5f, 0.01f));
  g.add_initializer("scale", {1}, {2.0f});
  g.add_node("Conv", {"x", "W"}, {"c"}, {}, "conv");
  g.add_node("Mul", {"c", "scale"}, {"s"}, {}, "mul");
  g.add_node("Sigmoid", {"s"}, {"y"}, {}, "sigmoid");
  g.add_output("y", {1, 4, 6, 6});
  g.add_input("v", {2, 4});
  g.add_initializer("M", {4, 5}, ramp(20, -0.5f, 0.05f));
  g.add_initializer(scalar("sqrt2", 1.4142135f));
  g.add_initializer(scalar("one", 1.0f));
  g.add_initializer(scalar("half", 0.5f));
  g.add_node("MatMul", {"v", "M"}, {"h"}, {}, "matmul");
  g.add_node("Div", {"h", "sqrt2"}, {"d"});
  g.add_node("Erf", {"d"}, {"e"});
  g.add_node("Add", {"e", "one"}, {"e1"});
  g.add_node("Mul", {"h", "e1"}, {"he"});
  g.add_node("Mul", {"he", "half"}, {"z"});
  g.add_output("z", {2, 5});
  return {"Conv -> Mul(constant) -> Sigmoid; Erf GELU",
          g.model(),
          {{"W", tensor_role::weight, activation_kind::sigmoid, 0.0, "xavier_uniform"},
           {"M", tensor_role::weight, activation_kind::gelu, 0.0, "kaiming_normal"}}};
}

// A LayerNorm written out in elementwise ops, with constant exponent and
// epsilon, then a ReLU.
model_case layer_norm_case() {
  graph_builder g;
  g.add_input("x", {2, 4});
  g.add_initializer("W", {4, 6}, ramp(24, -0.5f, 0.04f));
  g.add_initializer(scalar("two", 2.0f));
  g.add_initializer(scalar("eps", 1e-5f));
  g.add_initializer("gamma", {6}, ones(6, 1.0f));
  g.add_initializer("beta", {6}, ones(6, 0.0f));
  const auto axes = make_attribute("axes", std::vector<std::int64_t>{-1});
  g.add_node("MatMul", {"x", "W"}, {"h"});
  g.add_node("ReduceMean", {"h"}, {"mu"}, {axes});
  g.add_node("Sub", {"h", "mu"}, {"d"});
  g.add_node("Pow", {"d", "two"}, {"d2"});
  g.add_node("ReduceMean", {"d2"}, {"var"}, {axes});
  g.add_node("Add", {"var", "eps"}, {"ve"});
  g.add_node("Sqrt", {"ve"}, {"sd"});
  g.add_node("Div", {"d", "sd"}, {"n"});
  g.add_node("Mul", {"n", "gamma"}, {"ng"});
  g.add_node("Add", {"ng", "beta"}, {"nb"});
  g.add_node("Relu", {"nb"}, {"y"});
  g.add_output("y", {2, 6});
  return {"decomposed LayerNorm", g.model(), {}};
}

// Conv -> PRelu with a trained slope of 0.1. The default policy writes the
// slope as constant(0.25), and the weight's gain follows the slope written,
// so the parameter is 0.25 in every form (patterns_test covers a kept slope).
model_case prelu_case() {
  graph_builder g;
  g.add_input("x", {1, 3, 8, 8});
  g.add_initializer("W", {4, 3, 3, 3}, ramp(108, -0.5f, 0.01f));
  g.add_initializer("slope", {4, 1, 1}, ones(4, 0.1f));
  g.add_node("Conv", {"x", "W"}, {"c"}, {}, "conv");
  g.add_node("PRelu", {"c", "slope"}, {"y"}, {}, "prelu");
  g.add_output("y", {1, 4, 6, 6});
  return {"Conv -> PRelu(slope)",
          g.model(),
          {{"W", tensor_role::weight, activation_kind::prelu, 0.25, "kaiming_normal"},
           {"slope", tensor_role::prelu_slope, activation_kind::linear, 0.0, "constant"}}};
}

// An LSTM whose input weights go through a Reshape with a constant shape
// (the fans depend on reading it).
model_case lstm_case() {
  const std::int64_t hidden = 2, input = 3;
  graph_builder g;
  g.add_input("x", {5, 1, input});
  g.add_initializer("W2d", {4 * hidden, input}, ramp(24, -0.5f, 0.04f));
  g.add_initializer(make_int64_tensor("shape", {3}, {1, 4 * hidden, input}, storage_form::raw));
  g.add_initializer("R", {1, 4 * hidden, hidden}, ramp(16, -0.5f, 0.06f));
  g.add_initializer("B", {1, 8 * hidden}, ones(16, 0.0f));
  g.add_node("Reshape", {"W2d", "shape"}, {"W"}, {}, "reshape");
  g.add_node("LSTM", {"x", "W", "R", "B"}, {"y"}, {make_attribute("hidden_size", hidden)}, "lstm");
  g.add_output("y", {5, 1, 1, hidden});
  return {"Reshape -> LSTM",
          g.model(),
          {{"W2d", tensor_role::weight, activation_kind::tanh, 0.0, "xavier_uniform"},
           {"R", tensor_role::recurrent_weight, activation_kind::tanh, 0.0, "orthogonal"}}};
}

// Conv -> Clip inside an If branch, the branch holding its own tensors.
model_case if_branch_case() {
  graph_builder then_b("then");
  then_b.add_initializer("Wt", {4, 3, 3, 3}, ramp(108, -0.5f, 0.01f));
  then_b.add_initializer(scalar("lo", 0.0f));
  then_b.add_initializer(scalar("hi", 6.0f));
  then_b.add_node("Conv", {"x", "Wt"}, {"ct"}, {}, "conv_t");
  then_b.add_node("Clip", {"ct", "lo", "hi"}, {"yt"}, {}, "clip_t");
  then_b.add_output("yt", {1, 4, 6, 6});
  graph_builder else_b("else");
  else_b.add_initializer("We", {4, 3, 3, 3}, ramp(108, -0.5f, 0.01f));
  else_b.add_node("Conv", {"x", "We"}, {"ce"}, {}, "conv_e");
  else_b.add_node("Tanh", {"ce"}, {"ye"}, {}, "tanh_e");
  else_b.add_output("ye", {1, 4, 6, 6});
  graph_builder g;
  g.add_input("x", {1, 3, 8, 8});
  g.add_input("cond", {}, onnx::TensorProto::BOOL);
  g.add_node("If", {"cond"}, {"y"},
             {make_attribute("then_branch", then_b.graph()),
              make_attribute("else_branch", else_b.graph())},
             "if");
  g.add_output("y", {1, 4, 6, 6});
  return {"If branch: Conv -> Clip(0, 6)",
          g.model(),
          {{"Wt", tensor_role::weight, activation_kind::relu6, 0.0, "kaiming_normal"},
           {"We", tensor_role::weight, activation_kind::tanh, 0.0, "xavier_uniform"}}};
}

}  // namespace

TEST_CASE("the plan does not depend on how tensors are stored") {
  const std::vector<model_case> cases = {
      clip_case(element_type::float32),
      clip_case(element_type::float16),
      scaled_case(),
      layer_norm_case(),
      prelu_case(),
      lstm_case(),
      if_branch_case(),
  };
  for (const model_case& c : cases) {
    INFO("model: " << c.name);
    temp_dir raw_dir;
    const std::vector<tensor_plan> raw = plan_in_form(c.model, form::raw, raw_dir.path);
    for (const expectation& e : c.expected) {
      INFO("tensor " << e.tensor << ": " << summary(find(raw, e.tensor)));
      const tensor_plan& p = find(raw, e.tensor);
      CHECK(p.tensor.info.role == e.role);
      CHECK(p.tensor.info.activation == e.activation);
      CHECK(p.tensor.info.activation_param == e.activation_param);
      CHECK(p.call.strategy == e.strategy);
    }
    const std::map<std::string, std::string> expected = summaries(raw);
    for (form f : {form::typed, form::external, form::constants}) {
      INFO("stored as " << form_name(f));
      temp_dir dir;
      const std::map<std::string, std::string> got = summaries(plan_in_form(c.model, f, dir.path));
      CHECK(got.size() == expected.size());
      for (const auto& [name, line] : expected) {
        INFO("tensor " << name);
        const auto it = got.find(name);
        REQUIRE(it != got.end());
        CHECK(it->second == line);
      }
    }
  }
}

TEST_CASE("the in-memory overload cannot read external values; the loaded one can") {
  // Documents why files must be analysed through the loaded_model overload.
  const model_case c = clip_case(element_type::float32);
  temp_dir dir;
  onnx::ModelProto m = c.model;
  std::string data;
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    const std::string raw = t.raw_data();
    set_external(t, "data.bin", data.size(), raw.size());
    data += raw;
  }
  write_file(dir.path / "data.bin", data);
  write_file(dir.path / "m.onnx", m.SerializeAsString());
  const loaded_model loaded = load_model(dir.path / "m.onnx");
  auto activation_of_w = [](const std::vector<tensor_analysis>& all) {
    for (const auto& a : all)
      if (a.ref.name == "W") return a.info.activation;
    FAIL("no W");
    return activation_kind::linear;
  };
  CHECK(activation_of_w(analyze_model(loaded)) == activation_kind::relu6);
  CHECK(activation_of_w(analyze_model(loaded.proto())) == activation_kind::linear);
}
