// Analysis tests: roles, fans, matrix views, activations and keep reasons
// for every layer type and pattern of docs/DESIGN.md sections 5 and 6, on models
// built with the ONNX protobuf API.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/rules.h"
#include "onnx_reinit/sdk/gains.h"
#include "support/onnx_builder.h"

using namespace onnx_reinit;
using namespace onnx_reinit::test;

// PyTorch's torch.nn.init.calculate_gain (torch 1.13), printed with 17
// significant digits by /usr/bin/python3: the numbers every gain is checked
// against, never the code that computes them. calculate_gain has no entry
// for gelu, silu, elu, mish, softplus, hardswish and relu6; docs/DESIGN.md gives
// them relu's. Slopes written as ONNX float attributes are float32 values.
namespace torch_gain {
constexpr double linear = 1;                               // 'linear', 'sigmoid', 'conv2d'
constexpr double tanh = 1.6666666666666667;                // 'tanh'
constexpr double relu = 1.4142135623730951;                // 'relu'
constexpr double selu = 0.75;                              // 'selu'
constexpr double leaky_relu_default = 1.4141428569978354;  // 'leaky_relu' (0.01)
constexpr double leaky_relu_0_2 = 1.3867504905630728;      // 'leaky_relu', 0.2
constexpr double leaky_relu_0_2f = 1.3867504897682961;     // 'leaky_relu', float32(0.2)
constexpr double leaky_relu_0_25 = 1.3719886811400708;     // 'leaky_relu', 0.25 (PReLU init)
constexpr double leaky_relu_0_1f = 1.4071950892529714;     // 'leaky_relu', float32(0.1)
constexpr double leaky_relu_0_01f = 1.414142857000996;     // 'leaky_relu', float32(0.01)
}  // namespace torch_gain

namespace {

std::vector<float> zeros(std::size_t n) {
  return std::vector<float>(n, 0.0f);
}

std::size_t count(std::vector<std::int64_t> dims) {
  std::size_t n = 1;
  for (auto d : dims) n *= static_cast<std::size_t>(d);
  return n;
}

void init(graph_builder& b, const std::string& name, std::vector<std::int64_t> dims) {
  b.add_initializer(name, dims, zeros(count(dims)));
}

onnx::AttributeProto floats_attr(const std::string& name, std::vector<float> v) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::FLOATS);
  for (float f : v) a.add_floats(f);
  return a;
}

onnx::AttributeProto strings_attr(const std::string& name, std::vector<std::string> v) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::STRINGS);
  for (auto& s : v) a.add_strings(s);
  return a;
}

onnx::AttributeProto ints(const std::string& name, std::vector<std::int64_t> v) {
  return make_attribute(name, v);
}
onnx::AttributeProto int_attr(const std::string& name, std::int64_t v) {
  return make_attribute(name, v);
}

const tensor_analysis& find(const std::vector<tensor_analysis>& all, const std::string& name) {
  for (const auto& a : all)
    if (a.ref.name == name) return a;
  FAIL("no tensor " << name);
  throw 0;
}

std::vector<tensor_analysis> analyze(const graph_builder& b,
                                     fan_convention c = fan_convention::semantic,
                                     std::int64_t opset = 17) {
  onnx::ModelProto m = b.model(opset);
  set_opset(m, "com.microsoft", 1);
  return analyze_model(m, {c});
}

// A weight W[k,n] consumed as x·W by MatMul, output y, then `tail` nodes.
graph_builder linear_layer(std::int64_t k = 4, std::int64_t n = 6) {
  graph_builder b;
  b.add_input("x", {1, k});
  init(b, "W", {k, n});
  b.add_node("MatMul", {"x", "W"}, {"y"});
  return b;
}

}  // namespace

TEST_CASE("conv 2-D grouped strided with bias, then relu") {
  graph_builder b;
  b.add_input("x", {1, 4, 8, 8});
  init(b, "W", {8, 2, 3, 3});
  init(b, "B", {8});
  b.add_node("Conv", {"x", "W", "B"}, {"y"}, {int_attr("group", 2), ints("strides", {2, 2})});
  b.add_node("Relu", {"y"}, {"z"});
  b.add_output("z", {});
  auto all = analyze(b);
  const auto& w = find(all, "W");
  CHECK(w.info.role == tensor_role::weight);
  CHECK(w.consumer_op == "Conv");
  CHECK(w.consumer_input == 1);
  CHECK(w.info.fan_in == 18.0);              // (C/g)·rf = 2·9
  CHECK(w.info.fan_out == 8.0 / 2 * 9 / 4);  // (M/g)·rf / s
  CHECK(w.info.receptive_field == 9.0);
  CHECK(w.info.groups == 2);
  CHECK(w.info.activation == activation_kind::relu);
  CHECK(w.info.gain == std::sqrt(2.0));
  CHECK(w.info.block_count == 1);
  CHECK(w.info.block_rows == 8);
  CHECK(w.info.block_cols == 18);
  CHECK(w.keep_reason.empty());
  CHECK(w.is_float);
  const auto& bias = find(all, "B");
  CHECK(bias.info.role == tensor_role::bias);
  CHECK(bias.consumer_input == 2);
  CHECK(bias.info.fan_in == 18.0);
  CHECK(bias.info.activation == activation_kind::relu);

  auto torch = analyze(b, fan_convention::torch);
  CHECK(find(torch, "W").info.fan_in == 18.0);
  CHECK(find(torch, "W").info.fan_out == 72.0);  // shape[0]·rf
}

TEST_CASE("conv 1-D depthwise and 3-D") {
  graph_builder b;
  b.add_input("x", {1, 4, 8});
  init(b, "W1", {4, 1, 3});
  b.add_node("Conv", {"x", "W1"}, {"y"}, {int_attr("group", 4)});
  b.add_input("v", {1, 3, 4, 4, 4});
  init(b, "W3", {2, 3, 2, 2, 2});
  b.add_node("Conv", {"v", "W3"}, {"u"});
  b.add_output("y", {});
  b.add_output("u", {});
  auto all = analyze(b);
  CHECK(find(all, "W1").info.fan_in == 3.0);
  CHECK(find(all, "W1").info.fan_out == 3.0);
  CHECK(find(all, "W1").info.groups == 4);
  CHECK(find(all, "W3").info.fan_in == 24.0);
  CHECK(find(all, "W3").info.fan_out == 16.0);
  CHECK(find(all, "W3").info.activation == activation_kind::linear);  // graph output
}

TEST_CASE("conv transpose with stride") {
  graph_builder b;
  b.add_input("x", {1, 4, 4, 4});
  init(b, "W", {4, 3, 2, 2});
  b.add_node("ConvTranspose", {"x", "W"}, {"y"}, {ints("strides", {2, 2})});
  b.add_node("Sigmoid", {"y"}, {"z"});
  auto all = analyze(b);
  const auto& w = find(all, "W");
  CHECK(w.info.fan_in == 4.0 * 4 / 4);  // (C/g)·rf / s
  CHECK(w.info.fan_out == 12.0);        // (M/g)·rf
  CHECK(w.info.activation == activation_kind::sigmoid);
  CHECK(w.info.gain == 1.0);
  auto torch = analyze(b, fan_convention::torch);
  CHECK(find(torch, "W").info.fan_in == 12.0);
  CHECK(find(torch, "W").info.fan_out == 16.0);
}

TEST_CASE("gemm: transB weight, weight as A, bias C, leaky relu") {
  graph_builder b;
  b.add_input("x", {2, 3});
  init(b, "B", {5, 3});
  init(b, "C", {5});
  b.add_node("Gemm", {"x", "B", "C"}, {"y"}, {int_attr("transB", 1)});
  b.add_node("LeakyRelu", {"y"}, {"z"}, {make_attribute("alpha", 0.2f)});
  init(b, "A", {6, 4});
  b.add_input("x2", {4, 2});
  b.add_node("Gemm", {"A", "x2"}, {"w"});
  b.add_node("Softmax", {"w"}, {"s"});
  auto all = analyze(b);
  const auto& w = find(all, "B");
  CHECK(w.info.fan_in == 3.0);
  CHECK(w.info.fan_out == 5.0);
  CHECK(w.info.activation == activation_kind::leaky_relu);
  CHECK(w.info.activation_param == Approx(0.2));
  // calculate_gain('leaky_relu', float32(0.2)): the attribute is a float.
  CHECK(w.info.gain == Approx(torch_gain::leaky_relu_0_2f).margin(1e-15).epsilon(0));
  CHECK(find(all, "C").info.role == tensor_role::bias);
  CHECK(find(all, "C").info.fan_in == 3.0);
  const auto& a = find(all, "A");
  CHECK(a.consumer_input == 0);
  CHECK(a.info.fan_in == 4.0);
  CHECK(a.info.fan_out == 6.0);
  CHECK(a.info.activation == activation_kind::linear);
  auto torch = analyze(b, fan_convention::torch);
  CHECK(find(torch, "B").info.fan_in == 3.0);
  CHECK(find(torch, "B").info.fan_out == 5.0);
}

TEST_CASE("matmul: weight second, first, batched") {
  graph_builder b;
  b.add_input("x", {1, 3});
  init(b, "W2", {3, 5});
  b.add_node("MatMul", {"x", "W2"}, {"y"});
  init(b, "W1", {6, 4});
  b.add_input("x1", {4, 2});
  b.add_node("MatMul", {"W1", "x1"}, {"y1"});
  init(b, "WB", {2, 3, 5});
  b.add_input("xb", {2, 7, 3});
  b.add_node("MatMul", {"xb", "WB"}, {"yb"});
  auto all = analyze(b);
  CHECK(find(all, "W2").info.fan_in == 3.0);
  CHECK(find(all, "W2").info.fan_out == 5.0);
  CHECK(find(all, "W1").info.fan_in == 4.0);
  CHECK(find(all, "W1").info.fan_out == 6.0);
  const auto& wb = find(all, "WB");
  CHECK(wb.info.fan_in == 3.0);
  CHECK(wb.info.fan_out == 5.0);
  CHECK(wb.info.block_count == 2);
  CHECK(wb.info.block_rows == 3);
  CHECK(wb.info.block_cols == 5);
  auto torch = analyze(b, fan_convention::torch);
  CHECK(find(torch, "W2").info.fan_in == 3.0);
  CHECK(find(torch, "W2").info.fan_out == 5.0);
}

TEST_CASE("fans follow a transpose permutation") {
  graph_builder b;
  b.add_input("x", {1, 3});
  init(b, "W", {5, 3});  // [N, K] as PyTorch stores a Linear weight
  b.add_node("Transpose", {"W"}, {"Wt"}, {ints("perm", {1, 0})});
  b.add_node("MatMul", {"x", "Wt"}, {"y"});
  auto all = analyze(b);
  const auto& w = find(all, "W");
  CHECK(w.info.role == tensor_role::weight);
  CHECK(w.consumer_op == "MatMul");
  CHECK(w.info.fan_in == 3.0);
  CHECK(w.info.fan_out == 5.0);
}

TEST_CASE("identity, cast, reshape, unsqueeze, flatten chain") {
  graph_builder b;
  b.add_input("x", {1, 4});
  init(b, "W", {24});
  b.add_initializer(make_int64_tensor("shape", {2}, {4, 6}));
  b.add_node("Identity", {"W"}, {"a"});
  b.add_node("Cast", {"a"}, {"c"}, {int_attr("to", 1)});
  b.add_node("Reshape", {"c", "shape"}, {"r"});
  b.add_node("MatMul", {"x", "r"}, {"y"});
  auto all = analyze(b);
  CHECK(find(all, "W").info.fan_in == 4.0);
  CHECK(find(all, "W").info.fan_out == 6.0);
  const auto& s = find(all, "shape");
  CHECK(!s.is_float);
  CHECK(s.data_type == "int64");
  CHECK(s.keep_reason == "non-float dtype INT64");
}

TEST_CASE("lstm bidirectional: gate blocks and forget-gate ranges") {
  graph_builder b;
  b.add_input("x", {5, 1, 3});
  init(b, "W", {2, 8, 3});  // H = 2, I = 3
  init(b, "R", {2, 8, 2});
  init(b, "B", {2, 16});
  init(b, "P", {2, 6});
  b.add_node(
      "LSTM", {"x", "W", "R", "B", "", "", "", "P"}, {"y"},
      {int_attr("hidden_size", 2), make_attribute("direction", std::string("bidirectional"))});
  auto all = analyze(b);
  const auto& w = find(all, "W");
  CHECK(w.info.role == tensor_role::weight);
  CHECK(w.info.gate_count == 4);
  CHECK(w.info.fan_in == 3.0);
  CHECK(w.info.fan_out == 2.0);
  CHECK(w.info.block_count == 8);
  CHECK(w.info.block_rows == 2);
  CHECK(w.info.block_cols == 3);
  CHECK(w.info.activation == activation_kind::tanh);
  CHECK(w.info.gain == 5.0 / 3.0);
  const auto& r = find(all, "R");
  CHECK(r.info.role == tensor_role::recurrent_weight);
  CHECK(r.info.fan_in == 2.0);
  CHECK(r.info.fan_out == 2.0);
  CHECK(r.info.block_count == 8);
  const auto& bias = find(all, "B");
  CHECK(bias.info.role == tensor_role::bias);
  using ranges = std::vector<std::pair<std::int64_t, std::int64_t>>;
  CHECK(bias.forget_gate_ranges == ranges{{4, 6}, {20, 22}});
  CHECK(find(all, "P").info.role == tensor_role::bias);
  CHECK(find(all, "R").forget_gate_ranges.empty());
  auto torch = analyze(b, fan_convention::torch);
  CHECK(find(torch, "W").info.fan_out == 8.0);
}

TEST_CASE("lstm bias through PyTorch-style Slice/Concat gate reordering") {
  // PyTorch stores gates i, f, g, o; ONNX wants i, o, f, c. b_ih and b_hh
  // are sliced into gate chunks, concatenated in ONNX order, joined and
  // unsqueezed. H = 2.
  graph_builder b;
  b.add_input("x", {5, 1, 3});
  init(b, "W", {1, 8, 3});
  init(b, "R", {1, 8, 2});
  init(b, "b_ih", {8});
  init(b, "b_hh", {8});
  b.add_initializer(make_int64_tensor("ax0", {1}, {0}));
  for (int k = 0; k <= 4; ++k)
    b.add_initializer(make_int64_tensor(fmt::format("s{}", k), {1}, {2 * k}));
  const char* gates[] = {"i", "f", "g", "o"};
  for (std::string src : {"b_ih", "b_hh"}) {
    for (int k = 0; k < 4; ++k)
      b.add_node("Slice", {src, fmt::format("s{}", k), fmt::format("s{}", k + 1), "ax0"},
                 {src + gates[k]});
    b.add_node("Concat", {src + "i", src + "o", src + "f", src + "g"}, {src + "_iofc"},
               {int_attr("axis", 0)});
  }
  b.add_node("Concat", {"b_ih_iofc", "b_hh_iofc"}, {"Bflat"}, {int_attr("axis", 0)});
  b.add_node("Unsqueeze", {"Bflat", "ax0"}, {"B"});
  b.add_node("LSTM", {"x", "W", "R", "B"}, {"y"}, {int_attr("hidden_size", 2)});
  auto all = analyze(b);
  using ranges = std::vector<std::pair<std::int64_t, std::int64_t>>;
  const auto& ih = find(all, "b_ih");
  CHECK(ih.info.role == tensor_role::bias);
  CHECK(ih.consumer_op == "LSTM");
  CHECK(ih.consumer_input == 3);
  CHECK(ih.forget_gate_ranges == ranges{{2, 4}});  // the f chunk of PyTorch's order
  CHECK(find(all, "b_hh").forget_gate_ranges.empty());
  CHECK(find(all, "s1").keep_reason.find("non-float") == 0);
}

TEST_CASE("gru and rnn gate counts") {
  graph_builder b;
  b.add_input("x", {5, 1, 3});
  init(b, "GW", {1, 12, 3});
  init(b, "GR", {1, 12, 4});
  b.add_node("GRU", {"x", "GW", "GR"}, {"gy"}, {int_attr("hidden_size", 4)});
  init(b, "RW", {1, 4, 3});
  b.add_node("RNN", {"x", "RW"}, {"ry"},
             {int_attr("hidden_size", 4), strings_attr("activations", {"Relu"})});
  auto all = analyze(b);
  CHECK(find(all, "GW").info.gate_count == 3);
  CHECK(find(all, "GW").info.block_count == 3);
  CHECK(find(all, "GW").info.fan_out == 4.0);
  CHECK(find(all, "GR").info.fan_in == 4.0);
  CHECK(find(all, "RW").info.gate_count == 1);
  CHECK(find(all, "RW").info.activation == activation_kind::relu);
}

TEST_CASE("embedding, norms and prelu slope roles") {
  graph_builder b;
  b.add_input("ids", {2}, onnx::TensorProto::INT64);
  init(b, "E", {10, 4});
  b.add_node("Gather", {"E", "ids"}, {"e"});
  for (auto n :
       {"bn_s", "bn_b", "bn_m", "bn_v", "ln_s", "ln_b", "in_s", "in_b", "gn_s", "gn_b", "slope"})
    init(b, n, {4});
  b.add_input("x", {1, 4, 3, 3});
  b.add_node("BatchNormalization", {"x", "bn_s", "bn_b", "bn_m", "bn_v"}, {"b1"});
  b.add_node("LayerNormalization", {"b1", "ln_s", "ln_b"}, {"b2"});
  b.add_node("InstanceNormalization", {"b2", "in_s", "in_b"}, {"b3"});
  b.add_node("GroupNormalization", {"b3", "gn_s", "gn_b"}, {"b4"}, {int_attr("num_groups", 2)});
  b.add_node("PRelu", {"b4", "slope"}, {"b5"});
  auto all = analyze(b, fan_convention::semantic, 18);
  CHECK(find(all, "E").info.role == tensor_role::embedding);
  CHECK(find(all, "E").info.fan_in == 10.0);
  CHECK(find(all, "E").info.fan_out == 4.0);
  CHECK(find(all, "bn_s").info.role == tensor_role::norm_scale);
  CHECK(find(all, "bn_b").info.role == tensor_role::norm_bias);
  CHECK(find(all, "bn_m").info.role == tensor_role::running_mean);
  CHECK(find(all, "bn_v").info.role == tensor_role::running_var);
  CHECK(find(all, "ln_s").info.role == tensor_role::norm_scale);
  CHECK(find(all, "ln_b").info.role == tensor_role::norm_bias);
  CHECK(find(all, "in_s").info.role == tensor_role::norm_scale);
  CHECK(find(all, "gn_b").info.role == tensor_role::norm_bias);
  CHECK(find(all, "slope").info.role == tensor_role::prelu_slope);
  auto torch = analyze(b, fan_convention::torch, 18);
  CHECK(find(torch, "E").info.fan_in == 4.0);
  CHECK(find(torch, "E").info.fan_out == 10.0);
}

TEST_CASE("activation: bias add, residual add, batchnorm, pooling, then relu") {
  graph_builder b;
  b.add_input("x", {1, 4, 8, 8});
  init(b, "W", {4, 4, 3, 3});
  init(b, "bias", {4, 1, 1});
  for (auto n : {"s", "o", "m", "v"}) init(b, n, {4});
  b.add_node("Conv", {"x", "W"}, {"c"}, {ints("pads", {1, 1, 1, 1})});
  b.add_node("Add", {"c", "bias"}, {"cb"});
  b.add_node("BatchNormalization", {"cb", "s", "o", "m", "v"}, {"bn"});
  b.add_node("Add", {"bn", "x"}, {"res"});
  b.add_node("Dropout", {"res"}, {"d"});
  b.add_node("MaxPool", {"d"}, {"p"}, {ints("kernel_shape", {2, 2})});
  b.add_node("Relu", {"p"}, {"r"});
  auto all = analyze(b);
  CHECK(find(all, "W").info.activation == activation_kind::relu);
  CHECK(find(all, "bias").info.role == tensor_role::bias);
  CHECK(find(all, "bias").consumer_op == "Add");
  CHECK(find(all, "bias").info.activation == activation_kind::relu);
}

TEST_CASE("activation: clip as relu6 with attributes and with inputs") {
  auto with_attrs = linear_layer();
  with_attrs.add_node("Clip", {"y"}, {"z"},
                      {make_attribute("min", 0.0f), make_attribute("max", 6.0f)});
  auto a = analyze(with_attrs, fan_convention::semantic, 6);
  CHECK(find(a, "W").info.activation == activation_kind::relu6);
  CHECK(find(a, "W").info.gain == std::sqrt(2.0));

  auto with_inputs = linear_layer();
  with_inputs.add_initializer("lo", {}, {0.0f});
  with_inputs.add_constant(make_tensor("hi", {}, {6.0f}));
  with_inputs.add_node("Clip", {"y", "lo", "hi"}, {"z"});
  auto c = analyze(with_inputs);
  CHECK(find(c, "W").info.activation == activation_kind::relu6);
  CHECK(find(c, "lo").keep_reason == "scalar operand of Clip");
}

TEST_CASE("activation: decomposed gelu, erf form") {
  auto b = linear_layer();
  b.add_initializer("sqrt2", {}, {1.4142135f});
  b.add_initializer("one", {}, {1.0f});
  b.add_initializer("half", {}, {0.5f});
  b.add_node("Div", {"y", "sqrt2"}, {"d"});
  b.add_node("Erf", {"d"}, {"e"});
  b.add_node("Add", {"e", "one"}, {"a"});
  b.add_node("Mul", {"y", "a"}, {"m"});
  b.add_node("Mul", {"m", "half"}, {"g"});
  auto all = analyze(b);
  CHECK(find(all, "W").info.activation == activation_kind::gelu);
  CHECK(find(all, "W").info.gain == std::sqrt(2.0));
  CHECK(find(all, "sqrt2").keep_reason == "scalar operand of Div");
}

TEST_CASE("activation: decomposed gelu, tanh form") {
  auto b = linear_layer();
  for (auto [n, v] : {std::pair{"three", 3.0f},
                      {"c", 0.044715f},
                      {"k", 0.7978845f},
                      {"one", 1.0f},
                      {"half", 0.5f}})
    b.add_initializer(n, {}, {v});
  b.add_node("Mul", {"y", "half"}, {"hx"});
  b.add_node("Pow", {"y", "three"}, {"p"});
  b.add_node("Mul", {"p", "c"}, {"pc"});
  b.add_node("Add", {"y", "pc"}, {"s"});
  b.add_node("Mul", {"s", "k"}, {"sk"});
  b.add_node("Tanh", {"sk"}, {"t"});
  b.add_node("Add", {"t", "one"}, {"t1"});
  b.add_node("Mul", {"hx", "t1"}, {"g"});
  auto all = analyze(b);
  CHECK(find(all, "W").info.activation == activation_kind::gelu);
  CHECK(find(all, "three").keep_reason == "scalar operand of Pow");
}

TEST_CASE("activation: silu, hardswish, mish, gelu op, selu, elu, softplus") {
  {
    auto b = linear_layer();
    b.add_node("Sigmoid", {"y"}, {"s"});
    b.add_node("Mul", {"y", "s"}, {"z"});
    CHECK(find(analyze(b), "W").info.activation == activation_kind::silu);
  }
  {
    auto b = linear_layer();
    b.add_node("Mul", {"y", "s"}, {"z"});  // Mul first in node order
    b.add_node("HardSigmoid", {"y"}, {"s"});
    CHECK(find(analyze(b), "W").info.activation == activation_kind::hardswish);
  }
  {
    auto b = linear_layer();
    b.add_node("Softplus", {"y"}, {"sp"});
    b.add_node("Tanh", {"sp"}, {"t"});
    b.add_node("Mul", {"y", "t"}, {"z"});
    CHECK(find(analyze(b), "W").info.activation == activation_kind::mish);
  }
  struct op_case {
    const char* op;
    activation_kind want;
    double gain;
  };
  for (auto [op, want, gain] : {op_case{"HardSwish", activation_kind::hardswish, torch_gain::relu},
                                {"Mish", activation_kind::mish, torch_gain::relu},
                                {"Selu", activation_kind::selu, torch_gain::selu},
                                {"Elu", activation_kind::elu, torch_gain::relu},
                                {"Softplus", activation_kind::softplus, torch_gain::relu},
                                {"Tanh", activation_kind::tanh, torch_gain::tanh},
                                {"HardSigmoid", activation_kind::hardsigmoid, torch_gain::linear},
                                {"Gelu", activation_kind::gelu, torch_gain::relu}}) {
    INFO(op);
    auto b = linear_layer();
    b.add_node(op, {"y"}, {"z"});
    auto all = analyze(b, fan_convention::semantic, 20);
    CHECK(find(all, "W").info.activation == want);
    CHECK(find(all, "W").info.gain == Approx(gain).margin(1e-15).epsilon(0));
  }
  {
    auto b = linear_layer();
    b.add_initializer("slope", {1}, {0.1f});
    b.add_node("PRelu", {"y", "slope"}, {"z"});
    auto all = analyze(b);
    CHECK(find(all, "W").info.activation == activation_kind::prelu);
    CHECK(find(all, "W").info.activation_param == Approx(0.1));
    CHECK(find(all, "slope").info.role == tensor_role::prelu_slope);
  }
}

TEST_CASE("activation: softmax, next layer, graph output are linear") {
  auto b = linear_layer();
  init(b, "W2", {6, 2});
  b.add_node("MatMul", {"y", "W2"}, {"y2"});
  b.add_node("Softmax", {"y2"}, {"p"});
  b.add_output("p", {});
  auto all = analyze(b);
  CHECK(find(all, "W").info.activation == activation_kind::linear);
  CHECK(find(all, "W2").info.activation == activation_kind::linear);
  CHECK(find(all, "W2").info.gain == 1.0);
}

TEST_CASE("com.microsoft fused ops") {
  graph_builder b;
  b.add_input("x", {1, 4, 8, 8});
  init(b, "FW", {8, 4, 3, 3});
  b.add_node("FusedConv", {"x", "FW"}, {"c"},
             {make_attribute("activation", std::string("LeakyRelu")),
              floats_attr("activation_params", {0.3f})},
             "", "com.microsoft");
  b.add_input("m", {2, 3});
  init(b, "GW", {3, 5});
  b.add_node("FusedGemm", {"m", "GW"}, {"g"}, {make_attribute("activation", std::string("Relu"))},
             "", "com.microsoft");
  init(b, "MW", {5, 3});
  b.add_node("FusedMatMul", {"m", "MW"}, {"mm"}, {int_attr("transB", 1)}, "", "com.microsoft");
  b.add_node("Tanh", {"mm"}, {"t"});
  auto all = analyze(b);
  const auto& fw = find(all, "FW");
  CHECK(fw.consumer_op == "com.microsoft.FusedConv");
  CHECK(fw.info.fan_in == 36.0);
  CHECK(fw.info.activation == activation_kind::leaky_relu);
  CHECK(fw.info.activation_param == Approx(0.3));
  CHECK(find(all, "GW").info.activation == activation_kind::relu);
  CHECK(find(all, "GW").info.fan_in == 3.0);
  CHECK(find(all, "MW").info.fan_in == 3.0);
  CHECK(find(all, "MW").info.fan_out == 5.0);
  CHECK(find(all, "MW").info.activation == activation_kind::tanh);
}

TEST_CASE("matmul then add: the constant is the layer's bias") {
  auto b = linear_layer(4, 6);
  init(b, "bias", {6});
  b.add_node("Add", {"y", "bias"}, {"z"});
  b.add_node("Relu", {"z"}, {"r"});
  auto all = analyze(b);
  const auto& bias = find(all, "bias");
  CHECK(bias.info.role == tensor_role::bias);
  CHECK(bias.info.fan_in == 4.0);
  CHECK(bias.info.activation == activation_kind::relu);
}

// Issue 17, defect 2: log(mel + 1e-6) after a filterbank MatMul read the
// one-element epsilon as the MatMul's bias (zeroed: NaN on silence), and
// ConvTasNet's accumulator (0.0 + skip Conv output) the same way.
TEST_CASE("a constant added after a layer is its bias only with one value per output feature") {
  graph_builder b;
  b.add_input("x", {1, 5, 4});
  b.add_input("img", {1, 3, 8, 8});
  init(b, "W", {4, 6});
  b.add_initializer("eps", {}, {1e-6f});
  b.add_node("MatMul", {"x", "W"}, {"mel"}, {}, "mel_matmul");
  b.add_node("Add", {"mel", "eps"}, {"mel_eps"});
  b.add_node("Log", {"mel_eps"}, {"logmel"});
  // A Conv with 8 output channels, its output added to a Constant-node 0.0
  // (the accumulator), to a [8] vector (broadcast along the width, not the
  // channels), and to real per-channel biases [8, 1, 1] and [1, 8, 1, 1].
  init(b, "CW", {8, 3, 3, 3});
  b.add_node("Conv", {"img", "CW"}, {"c"}, {ints("pads", {1, 1, 1, 1})}, "skip_conv");
  b.add_constant(make_tensor("acc0", {}, {0.0f}));
  b.add_node("Add", {"acc0", "c"}, {"acc1"});
  init(b, "row", {8});
  b.add_node("Add", {"c", "row"}, {"c_row"});
  init(b, "cb", {8, 1, 1});
  b.add_node("Add", {"c", "cb"}, {"c_cb"});
  init(b, "cb4", {1, 8, 1, 1});
  b.add_node("Add", {"cb4", "c"}, {"c_cb4"});
  // x·W [..., 6] plus [1, 1, 6]: a bias; through a Reshape, [6] still is.
  init(b, "b116", {1, 1, 6});
  b.add_node("Add", {"mel", "b116"}, {"mel_b"});
  b.add_node("Reshape", {"mel", "shape"}, {"mel_flat"});
  b.add_initializer(make_int64_tensor("shape", {2}, {5, 6}));
  init(b, "b6", {6});
  b.add_node("Add", {"b6", "mel_flat"}, {"mel_flat_b"});
  // A Linear with one output feature: its one-element bias is a bias.
  init(b, "W1", {4, 1});
  b.add_node("MatMul", {"x", "W1"}, {"score"});
  b.add_initializer("b1", {}, {0.5f});
  b.add_node("Add", {"score", "b1"}, {"score_b"});
  // Gemm with transB: W [6, 4] has 6 output features.
  b.add_input("x2", {1, 4});
  init(b, "GW", {6, 4});
  b.add_node("Gemm", {"x2", "GW"}, {"g"}, {int_attr("transB", 1)});
  init(b, "gb", {6});
  b.add_node("Add", {"g", "gb"}, {"g_b"});
  auto all = analyze(b);

  const auto& eps = find(all, "eps");
  CHECK(eps.info.role == tensor_role::unknown);
  CHECK(eps.keep_reason ==
        "an operand, not a bias: 1 value added after MatMul 'mel_matmul', which has 6 output "
        "features (a bias holds one value per feature)");
  const auto& acc = find(all, "acc0");
  CHECK(acc.info.role == tensor_role::unknown);
  CHECK_THAT(acc.keep_reason, Catch::StartsWith("an operand, not a bias: 1 value added after "
                                                "Conv 'skip_conv', which has 8 output features"));
  CHECK(find(all, "row").info.role == tensor_role::unknown);
  CHECK_THAT(find(all, "row").keep_reason, Catch::StartsWith("an operand, not a bias: 8 values"));
  for (const char* name : {"cb", "cb4", "b116", "b6", "b1", "gb"}) {
    CAPTURE(name);
    CHECK(find(all, name).info.role == tensor_role::bias);
    CHECK(find(all, name).keep_reason.empty());
  }
  CHECK(find(all, "cb").info.fan_in == 27.0);
  CHECK(find(all, "gb").info.fan_in == 4.0);
}

// Issue 17, defect 4: in an fp16 model each side-output Conv feeds
// Cast -> Resize -> Cast -> Sigmoid and, first in node order, a Shape (and
// here a Size); the walk stopped at the Shape and read `linear`.
TEST_CASE("activation: Shape and Size readers do not stop the walk; Cast and Resize pass") {
  for (bool shape_first : {true, false}) {
    CAPTURE(shape_first);
    graph_builder b;
    b.add_input("x", {1, 3, 8, 8}, element_type::float16);
    b.add_initializer("W", {1, 3, 3, 3}, zeros(27), element_type::float16);
    b.add_initializer("B", {1}, zeros(1), element_type::float16);
    b.add_node("Conv", {"x", "W", "B"}, {"side"}, {ints("pads", {1, 1, 1, 1})});
    auto readers = [&] {
      b.add_node("Shape", {"side"}, {"side_shape"});
      b.add_node("Size", {"side"}, {"side_size"});
    };
    if (shape_first) readers();
    b.add_node("Cast", {"side"}, {"side32"}, {int_attr("to", onnx::TensorProto::FLOAT)});
    b.add_initializer("scales", {4}, {1.0f, 1.0f, 4.0f, 4.0f});
    b.add_node("Resize", {"side32", "", "scales"}, {"up32"},
               {make_attribute("mode", std::string("linear"))});
    b.add_node("Cast", {"up32"}, {"up"}, {int_attr("to", onnx::TensorProto::FLOAT16)});
    if (!shape_first) readers();
    b.add_node("Sigmoid", {"up"}, {"prob"});
    auto all = analyze(b);
    CHECK(find(all, "W").info.activation == activation_kind::sigmoid);
    CHECK(find(all, "W").activation_input == "up");
    CHECK(find(all, "B").info.activation == activation_kind::sigmoid);
  }
}

// The output-layer walk (layer:output) skips Shape and Size readers too:
// a classifier head whose logits a Shape reads first is still the output
// layer.
TEST_CASE("output layer: a Shape reading the logits does not hide the Softmax") {
  auto b = linear_layer(4, 6);
  init(b, "bias", {6});
  b.add_node("Add", {"y", "bias"}, {"logits"});
  b.add_node("Shape", {"logits"}, {"logits_shape"});
  b.add_node("Softmax", {"logits"}, {"p"});
  b.add_output("p", {1, 6});
  auto all = analyze(b);
  CHECK(find(all, "W").output_layer);
  CHECK(find(all, "bias").output_layer);
}

TEST_CASE("quantized weights and quantization parameters are kept") {
  graph_builder b;
  b.add_input("x", {1, 4});
  onnx::TensorProto q;
  q.set_name("Wq");
  q.set_data_type(onnx::TensorProto::INT8);
  q.add_dims(4);
  q.add_dims(6);
  q.set_raw_data(std::string(24, '\0'));
  b.add_initializer(q);
  b.add_initializer("scale", {}, {0.1f});
  onnx::TensorProto zp = q;
  zp.set_name("zp");
  zp.clear_dims();
  zp.set_raw_data(std::string(1, '\0'));
  b.add_initializer(zp);
  b.add_node("DequantizeLinear", {"Wq", "scale", "zp"}, {"W"});
  b.add_node("MatMul", {"x", "W"}, {"y"});
  auto all = analyze(b);
  CHECK(find(all, "Wq").keep_reason == "quantized weight; --quantized requantize rewrites it");
  CHECK(find(all, "Wq").consumer_op == "MatMul");
  CHECK(find(all, "scale").keep_reason == "quantization scale of DequantizeLinear");
  CHECK(find(all, "zp").keep_reason == "quantization zero point of DequantizeLinear");
}

TEST_CASE("unknown roles and unused tensors are kept with a reason") {
  auto b = linear_layer();
  init(b, "unused", {3});
  init(b, "mulc", {6});
  b.add_node("Mul", {"y", "mulc"}, {"z"});
  auto all = analyze(b);
  CHECK(find(all, "unused").keep_reason == "no consumer");
  CHECK(find(all, "unused").consumer_op.empty());
  CHECK(find(all, "mulc").keep_reason == "unknown role: input 1 of Mul");
  CHECK(find(all, "mulc").info.role == tensor_role::unknown);
}

TEST_CASE("shared initializer: first consumer in node order, note on the other") {
  graph_builder b;
  b.add_input("ids", {2}, onnx::TensorProto::INT64);
  init(b, "E", {10, 4});
  b.add_node("Gather", {"E", "ids"}, {"e"});
  b.add_node("Transpose", {"E"}, {"Et"}, {ints("perm", {1, 0})});
  b.add_node("MatMul", {"e", "Et"}, {"logits"});
  auto all = analyze(b);
  const auto& e = find(all, "E");
  CHECK(e.info.role == tensor_role::embedding);
  REQUIRE(e.notes.size() == 1);
  CHECK(e.notes[0].find("first in node order") != std::string::npos);
  CHECK(e.notes[0].find("MatMul") != std::string::npos);
}

TEST_CASE("subgraph initializers, constant nodes and outer-scope weights") {
  graph_builder then_b("then");
  then_b.add_initializer("Wt", {3, 2}, zeros(6));
  then_b.add_constant(make_tensor("Wc", {3, 5}, zeros(15)));
  then_b.add_node("MatMul", {"x", "Wouter"}, {"o1"});
  then_b.add_node("MatMul", {"x", "Wc"}, {"o2"});
  then_b.add_node("MatMul", {"x", "Wt"}, {"o3"});
  then_b.add_node("Relu", {"o3"}, {"o4"});
  then_b.add_output("o4", {});
  graph_builder else_b("else");
  else_b.add_node("Identity", {"x"}, {"o5"});
  else_b.add_output("o5", {});
  graph_builder b;
  b.add_input("x", {1, 3});
  b.add_input("cond", {}, onnx::TensorProto::BOOL);
  init(b, "Wouter", {3, 7});
  b.add_constant(make_tensor("Wmain", {2, 2}, zeros(4)), "const_main");
  b.add_node("If", {"cond"}, {"out"},
             {make_attribute("then_branch", then_b.graph()),
              make_attribute("else_branch", else_b.graph())},
             "If_0");
  b.add_node("MatMul", {"out", "Wmain"}, {"z"});
  onnx::ModelProto m = b.model();
  auto all = analyze_model(m);
  REQUIRE(all.size() == 4);
  auto listed = collect_model_tensors(m);
  REQUIRE(listed.size() == all.size());
  for (std::size_t i = 0; i < all.size(); ++i) CHECK(all[i].ref == listed[i].ref);
  CHECK(all[0].ref.name == "Wouter");
  CHECK(all[0].info.fan_out == 7.0);
  CHECK(all[0].info.role == tensor_role::weight);
  CHECK(all[1].ref.origin == tensor_origin::constant_node);
  CHECK(all[1].info.fan_in == 2.0);
  CHECK(all[2].ref.graph_path == "If_0/then_branch");
  CHECK(all[2].ref.name == "Wt");
  CHECK(all[2].info.activation == activation_kind::relu);
  CHECK(all[3].ref.name == "Wc");
  CHECK(all[3].info.fan_out == 5.0);
}

TEST_CASE("IR < 4: initializers that are also graph inputs") {
  auto b = linear_layer();
  b.add_input("W", {4, 6});
  onnx::ModelProto m = b.model(8, 3);
  auto all = analyze_model(m);
  CHECK(find(all, "W").info.role == tensor_role::weight);
  CHECK(find(all, "W").info.fan_in == 4.0);
}

TEST_CASE("a 10,000-node chain and a cycle neither crash nor hang") {
  graph_builder b;
  b.add_input("x", {1, 4});
  init(b, "W", {4, 4});
  // W -> w0 -> ... -> w9999 -> MatMul -> y -> a0 -> ... -> a9999 -> Relu
  for (int i = 0; i < 10000; ++i)
    b.add_node("Identity", {i == 0 ? std::string("W") : fmt::format("w{}", i - 1)},
               {fmt::format("w{}", i)});
  b.add_node("MatMul", {"x", "w9999"}, {"y"});
  for (int i = 0; i < 10000; ++i)
    b.add_node("Add", {i == 0 ? std::string("y") : fmt::format("a{}", i - 1), "x"},
               {fmt::format("a{}", i)});
  b.add_node("Relu", {"a9999"}, {"r"});
  auto all = analyze(b);
  CHECK(find(all, "W").info.role == tensor_role::weight);
  CHECK(find(all, "W").info.activation == activation_kind::relu);

  graph_builder c;
  c.add_input("x", {1, 4});
  init(c, "W", {4, 4});
  c.add_node("MatMul", {"x", "W"}, {"y"});
  c.add_node("Add", {"y", "loop2"}, {"loop1"});
  c.add_node("Identity", {"loop1"}, {"loop2"});
  init(c, "V", {4});
  c.add_node("Concat", {"V", "v2"}, {"v1"}, {int_attr("axis", 0)});
  c.add_node("Identity", {"v1"}, {"v2"});
  c.add_node("LSTM", {"x", "W", "W", "v2"}, {"h"});
  auto cyc = analyze(c);
  CHECK(find(cyc, "W").info.activation == activation_kind::linear);
  CHECK(find(cyc, "V").info.role == tensor_role::bias);  // reaches LSTM B around the cycle
}

TEST_CASE("gains are PyTorch's calculate_gain") {
  auto check = [](double got, double want) { CHECK(got == Approx(want).margin(1e-15).epsilon(0)); };
  using A = activation_kind;
  check(activation_gain(A::linear, 0), torch_gain::linear);
  check(activation_gain(A::sigmoid, 0), torch_gain::linear);
  check(activation_gain(A::hardsigmoid, 0), torch_gain::linear);
  check(activation_gain(A::tanh, 0), torch_gain::tanh);
  check(activation_gain(A::selu, 0), torch_gain::selu);
  for (A relu_like :
       {A::relu, A::relu6, A::elu, A::gelu, A::silu, A::mish, A::softplus, A::hardswish}) {
    INFO(to_string(relu_like));
    check(activation_gain(relu_like, 0.3), torch_gain::relu);  // param ignored
  }
  check(activation_gain(A::leaky_relu, 0.01), torch_gain::leaky_relu_default);
  check(activation_gain(A::leaky_relu, 0.2), torch_gain::leaky_relu_0_2);
  check(activation_gain(A::leaky_relu, double(0.2f)), torch_gain::leaky_relu_0_2f);
  check(activation_gain(A::prelu, 0.25), torch_gain::leaky_relu_0_25);
  // By PyTorch's names, with its default slopes.
  check(*nonlinearity_gain("linear"), torch_gain::linear);
  check(*nonlinearity_gain("conv2d"), torch_gain::linear);
  check(*nonlinearity_gain("conv_transpose3d"), torch_gain::linear);
  check(*nonlinearity_gain("sigmoid"), torch_gain::linear);
  check(*nonlinearity_gain("tanh"), torch_gain::tanh);
  check(*nonlinearity_gain("relu"), torch_gain::relu);
  check(*nonlinearity_gain("selu"), torch_gain::selu);
  check(*nonlinearity_gain("leaky_relu"), torch_gain::leaky_relu_default);
  check(*nonlinearity_gain("leaky_relu", 0.2), torch_gain::leaky_relu_0_2);
  check(*nonlinearity_gain("prelu"), torch_gain::leaky_relu_0_25);
  CHECK_FALSE(nonlinearity_gain("rleu").has_value());
}

TEST_CASE("gain=auto writes PyTorch's gain of the analysed activation into the plan") {
  // One MatMul weight per activation, planned by the default policy (tanh,
  // sigmoid, hardsigmoid, linear: xavier_uniform(gain=auto)) and by a rule
  // that asks gain=auto of every weight; the written text is parsed back.
  struct gain_case {
    const char* op;  // nullptr: graph output, linear
    std::vector<onnx::AttributeProto> attributes;
    double gain;
    bool by_policy;  // the default policy writes a gain for this activation
  };
  const gain_case cases[] = {
      {"Tanh", {}, torch_gain::tanh, true},
      {"Sigmoid", {}, torch_gain::linear, true},
      {"HardSigmoid", {}, torch_gain::linear, true},
      {nullptr, {}, torch_gain::linear, true},
      {"Relu", {}, torch_gain::relu, false},
      {"Selu", {}, torch_gain::selu, false},
      {"Gelu", {}, torch_gain::relu, false},
      // No alpha: PyTorch's default slope 0.01, so PyTorch's default gain.
      {"LeakyRelu", {}, torch_gain::leaky_relu_default, false},
      {"LeakyRelu", {make_attribute("alpha", 0.01f)}, torch_gain::leaky_relu_0_01f, false},
      {"LeakyRelu", {make_attribute("alpha", 0.2f)}, torch_gain::leaky_relu_0_2f, false},
  };
  auto written_gain = [](const tensor_plan& p) {
    for (const auto& [key, value] : p.call.params)
      if (key == "gain") return std::stod(value);
    FAIL("no gain in " << p.call.to_string());
    return 0.0;
  };
  for (const gain_case& c : cases) {
    INFO((c.op ? c.op : "output"));
    auto b = linear_layer();
    if (c.op) b.add_node(c.op, {"y"}, {"z"}, c.attributes);
    b.add_output(c.op ? "z" : "y", {});
    onnx::ModelProto m = b.model(20);
    const std::vector<tensor_analysis> all = analyze_model(m, {fan_convention::semantic});
    plan_options by_rule;
    by_rule.rules = {parse_rule("role:weight=xavier_normal(gain=auto)", "--rule 1")};
    const tensor_plan ruled = make_plan(all, by_rule).front();
    REQUIRE(ruled.tensor.info.name == "W");
    CHECK(written_gain(ruled) == Approx(c.gain).margin(1e-15).epsilon(0));
    if (c.by_policy)
      CHECK(written_gain(make_plan(all, {}).front()) == Approx(c.gain).margin(1e-15).epsilon(0));
  }
  // A PReLU whose slope the policy resets to 0.25: the gain follows the
  // written slope (0.25), not the trained one (0.1).
  auto b = linear_layer();
  b.add_initializer("slope", {1}, {0.1f});
  b.add_node("PRelu", {"y", "slope"}, {"z"});
  b.add_output("z", {});
  onnx::ModelProto m = b.model(17);
  const std::vector<tensor_analysis> all = analyze_model(m, {fan_convention::semantic});
  CHECK(find(all, "W").info.gain == Approx(torch_gain::leaky_relu_0_1f).margin(1e-15).epsilon(0));
  plan_options by_rule;
  by_rule.rules = {parse_rule("W=xavier_normal(gain=auto)", "--rule 1")};
  for (const tensor_plan& p : make_plan(all, by_rule))
    if (p.tensor.info.name == "W")
      CHECK(written_gain(p) == Approx(torch_gain::leaky_relu_0_25).margin(1e-15).epsilon(0));
}
