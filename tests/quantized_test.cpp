// Quantized (QDQ) models in the analysis and the planner (docs/DESIGN.md
// sections 6 and 7), on the per-channel int8 model in ONNX Runtime's layout
// that the make_qdq_model fixture writes (tools/scripts/make_qdq_model.py),
// beside the float PyTorch export it was quantized from.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/rewrite.h"
#include "onnx_reinit/rules.h"
#include "support/onnx_builder.h"
#include "support/sample_stats.h"
#include "support/standard_registry.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;

namespace {

bool contains_text(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

fs::path qdq_model(const std::string& file) {
  const fs::path path = fs::path(ONNX_REINIT_QDQ_MODELS) / file;
  INFO("run the make_qdq_model test (ctest fixture) first");
  REQUIRE(fs::exists(path));
  return path;
}

std::map<std::string, ori::tensor_analysis> by_name(const std::vector<ori::tensor_analysis>& all) {
  std::map<std::string, ori::tensor_analysis> out;
  for (const ori::tensor_analysis& t : all) out.emplace(t.info.name, t);
  return out;
}

const std::vector<ori::tensor_analysis>& quantized_analysis() {
  static const std::vector<ori::tensor_analysis> a =
      ori::analyze_model(ori::load_model(qdq_model("qdq_cnn.onnx")));
  return a;
}

ori::plan_options with_rule(const std::string& text) {
  ori::plan_options o;
  o.rules.push_back(ori::parse_rule(text, "--rule 1"));
  return o;
}

}  // namespace

TEST_CASE("a quantized weight is its float layer's weight, with its DequantizeLinear",
          "[quantized]") {
  const auto quantized = by_name(quantized_analysis());
  const auto floats = by_name(ori::analyze_model(ori::load_model(qdq_model("qdq_cnn_float.onnx"))));
  for (const std::string layer : {"conv1", "conv2", "fc1", "fc2"}) {
    for (const std::string part : {".weight", ".bias"}) {
      const ori::tensor_analysis& f = floats.at(layer + part);
      const ori::tensor_analysis& q = quantized.at(layer + part + "_quantized");
      INFO(fmt::format("{}", q));
      CHECK(q.info.role == f.info.role);
      CHECK(q.info.fan_in == f.info.fan_in);
      CHECK(q.info.fan_out == f.info.fan_out);
      // The ReLUs ONNX Runtime folded into the QuantizeLinear after each
      // layer (zero point 0) are still found.
      CHECK(q.info.activation == f.info.activation);
      REQUIRE(q.quantized);
      CHECK(q.quantized->unsupported.empty());
      CHECK(q.quantized->axis == 0);
      CHECK(q.quantized->symmetric);
      if (part == ".weight") {
        CHECK(q.quantized->scale == layer + ".weight_scale");
        CHECK(q.quantized->zero_point == layer + ".weight_zero_point");
        CHECK(q.quantized->channels == f.info.shape[0]);
      } else {
        CHECK(q.quantized->scale == layer + ".bias_quantized_scale");
        CHECK(q.quantized->weight == layer + ".weight_quantized");
        CHECK(q.quantized->weight_scale == layer + ".weight_scale");
        CHECK(q.quantized->input_scale.ends_with("_scale"));
      }
      CHECK(quantized.at(q.quantized->scale).quantization_parameter);
      CHECK(quantized.at(q.quantized->zero_point).quantization_parameter);
    }
  }
  CHECK(floats.at("conv1.weight").info.activation == ori::activation_kind::relu);
  CHECK(floats.at("fc2.weight").info.activation == ori::activation_kind::linear);
}

TEST_CASE("the planner keeps quantized weights unless asked to requantize", "[quantized]") {
  const auto& analysis = quantized_analysis();
  const std::vector<ori::tensor_plan> kept = ori::make_plan(analysis, {});
  ori::plan_options requantize;
  requantize.requantize = true;
  const std::vector<ori::tensor_plan> rewritten = ori::make_plan(analysis, requantize);
  std::size_t quantized = 0;
  for (std::size_t i = 0; i < analysis.size(); ++i) {
    const std::string& name = analysis[i].info.name;
    INFO(name);
    if (analysis[i].quantized) {
      ++quantized;
      CHECK(kept[i].action == ori::plan_action::keep);
      CHECK(kept[i].reason == "quantized weight; --quantized requantize rewrites it");
      CHECK(rewritten[i].action == ori::plan_action::rewrite);
    }
    // The scales of quantized weights are rewritten with them, and only then.
    const bool weight_scale = name.ends_with(".weight_scale") || name.ends_with("_quantized_scale");
    CHECK((rewritten[i].action == ori::plan_action::rewrite) ==
          (analysis[i].quantized.has_value() || weight_scale));
    // conv1.weight_scale <- conv1.weight_quantized, conv1.bias_quantized_scale <-
    // conv1.bias_quantized
    const std::string stem = name.substr(0, name.rfind('_'));
    if (weight_scale)
      CHECK(rewritten[i].requantized_from ==
            (name.ends_with(".weight_scale") ? stem + "_quantized" : stem));
  }
  CHECK(quantized == 8);
  CHECK(ori::quantized_summary(kept) ==
        "8 quantized weights kept; --quantized requantize rewrites them");
  CHECK(ori::quantized_summary(rewritten).empty());
}

TEST_CASE("a rule naming a tensor that is never rewritten is a rule_error", "[quantized]") {
  const auto& analysis = quantized_analysis();
  CHECK_THROWS_AS(ori::make_plan(analysis, with_rule("conv1.weight_quantized=normal(std=0.1)")),
                  ori::rule_error);
  CHECK_THROWS_AS(ori::make_plan(analysis, with_rule("/Constant_output_0=normal(std=1)")),
                  ori::rule_error);
  CHECK_THROWS_AS(ori::make_plan(analysis, with_rule("input_scale=constant(value=1)")),
                  ori::rule_error);
  CHECK_NOTHROW(ori::make_plan(analysis, with_rule("conv1.weight_quantized=keep")));
  CHECK_NOTHROW(ori::make_plan(analysis, with_rule("*=normal(std=0.1)")));
  ori::plan_options requantize = with_rule("conv1.weight_quantized=normal(std=0.1)");
  requantize.requantize = true;
  const std::vector<ori::tensor_plan> plans = ori::make_plan(analysis, requantize);
  for (const ori::tensor_plan& p : plans)
    if (p.tensor.info.name == "conv1.weight_quantized") CHECK(p.rule_origin == "--rule 1");
}

namespace {

onnx::TensorProto int_tensor(const std::string& name, onnx::TensorProto::DataType type,
                             std::vector<std::int64_t> dims, const std::string& bytes) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(type);
  for (std::int64_t d : dims) t.add_dims(d);
  t.set_raw_data(bytes);
  return t;
}

}  // namespace

TEST_CASE("a quantized weight requantization cannot handle is kept, and says why", "[quantized]") {
  // x -> MatMul(DQ(W1)) -> MatMul(DQ(W2)): W1 uint8 with zero point 0 (its
  // codes hold one sign only), W2 int8 sharing its scale with W1.
  ori::test::graph_builder b;
  b.add_input("x", {1, 4});
  b.add_initializer(int_tensor("W1", onnx::TensorProto::UINT8, {4, 4}, std::string(16, '\1')));
  b.add_initializer(int_tensor("W2", onnx::TensorProto::INT8, {4, 4}, std::string(16, '\1')));
  b.add_initializer("s", {}, {0.1f});
  b.add_initializer(int_tensor("z1", onnx::TensorProto::UINT8, {}, std::string(1, '\0')));
  b.add_node("DequantizeLinear", {"W1", "s", "z1"}, {"w1"});
  b.add_node("DequantizeLinear", {"W2", "s"}, {"w2"});
  b.add_node("MatMul", {"x", "w1"}, {"h"});
  b.add_node("MatMul", {"h", "w2"}, {"y"});
  b.add_output("y", {1, 4});
  const auto analysis = ori::analyze_model(b.model(13));
  const auto all = by_name(analysis);
  REQUIRE(all.at("W1").quantized);
  CHECK(contains_text(all.at("W1").quantized->unsupported, "shared"));
  REQUIRE(all.at("W2").quantized);
  CHECK(contains_text(all.at("W2").quantized->unsupported, "shared"));
  CHECK(all.at("W2").keep_reason.starts_with("quantized weight; not requantizable: "));
  ori::plan_options requantize;
  requantize.requantize = true;
  const auto plans = ori::make_plan(analysis, requantize);
  for (const ori::tensor_plan& p : plans) CHECK(p.action == ori::plan_action::keep);
  CHECK(ori::quantized_summary(plans) ==
        "2 quantized weights kept: not requantizable (the plan says why)");

  // Without the shared scale, the uint8 zero point at 0 is the reason.
  b.graph().mutable_node(1)->set_input(1, "s2");
  b.add_initializer("s2", {}, {0.1f});
  const auto alone = by_name(ori::analyze_model(b.model(13)));
  CHECK(contains_text(alone.at("W1").quantized->unsupported, "end of the range"));
  CHECK(alone.at("W2").quantized->unsupported.empty());
  CHECK(ori::quantized_summary(ori::make_plan(ori::analyze_model(b.model(13)), {})) ==
        "2 quantized weights kept; --quantized requantize rewrites 1 of them (the plan says why "
        "not the others)");
}

TEST_CASE("requantize: an asymmetric uint8 weight and a per-column int8 MatMul weight",
          "[quantized]") {
  // x[1,64] -> MatMul(DQ(W1 uint8 [64,32], one scale, zero point 128))
  //         -> MatMul(DQ(W2 int8 [32,16], a scale per column, axis 1)) -> y
  ori::test::graph_builder b;
  b.add_input("x", {1, 64});
  b.add_initializer(int_tensor("W1", onnx::TensorProto::UINT8, {64, 32}, std::string(2048, 'x')));
  b.add_initializer("s1", {}, {0.01f});
  b.add_initializer(int_tensor("z1", onnx::TensorProto::UINT8, {}, std::string(1, '\x80')));
  b.add_initializer(int_tensor("W2", onnx::TensorProto::INT8, {32, 16}, std::string(512, '\x05')));
  b.add_initializer("s2", {16}, std::vector<float>(16, 0.02f));
  b.add_initializer(int_tensor("z2", onnx::TensorProto::INT8, {16}, std::string(16, '\0')));
  b.add_node("DequantizeLinear", {"W1", "s1", "z1"}, {"w1"});
  b.add_node("DequantizeLinear", {"W2", "s2", "z2"}, {"w2"},
             {ori::test::make_attribute("axis", std::int64_t{1})});
  b.add_node("MatMul", {"x", "w1"}, {"h"});
  b.add_node("MatMul", {"h", "w2"}, {"y"});
  b.add_output("y", {1, 16});
  const ori::test::temp_dir dir;
  {
    std::ofstream out(dir / "in.onnx", std::ios::binary);
    b.model(13).SerializeToOstream(&out);
  }
  ori::loaded_model model = ori::load_model(dir / "in.onnx");
  const auto analysis = ori::analyze_model(model);
  ori::plan_options options;
  options.requantize = true;
  const auto plans = ori::make_plan(analysis, options);
  ori::rewrite_options rewrite;
  rewrite.seed = 3;
  (void)ori::rewrite_model(model, plans, ori::test::standard_registry(), rewrite);
  (void)ori::save_model(model, dir / "out.onnx");
  const ori::loaded_model out = ori::load_model(dir / "out.onnx");
  const auto values = [&](const std::string& name) {
    for (const auto& t : ori::collect_model_tensors(out.proto()))
      if (t.ref.name == name) return *ori::decode_tensor_values(*t.proto, &out, 1 << 16);
    FAIL("no " << name);
    throw;
  };
  // Both are linear layers: xavier_uniform(gain=1), std sqrt(2 / (fan_in +
  // fan_out)). Uniform draws (kurtosis 1.8): relative tolerance on the std
  // 6 sqrt(0.8 / (4 n)), 0.059 for W1 (2048 values), 0.12 for W2 (512); a
  // factor 2 in variance is 0.41 off.
  const auto check_std = [](const std::vector<double>& w, double expected) {
    const double n = static_cast<double>(w.size());
    INFO("std " << ori::test::std_of(w) << " planned " << expected);
    CHECK(std::abs(ori::test::std_of(w) / expected - 1.0) < 6.0 * std::sqrt(0.8 / (4.0 * n)));
  };
  // W1: the zero point stays 128, the scale is the smallest holding both
  // ends, so the codes reach 0 or 255 and stay within [0, 255].
  const std::vector<double> q1 = values("W1");
  CHECK(values("z1") == std::vector<double>{128});
  const double s1 = values("s1").at(0);
  CHECK(s1 != 0.01f);
  const auto [lo, hi] = std::minmax_element(q1.begin(), q1.end());
  CHECK((*lo >= 0 && *hi <= 255));
  CHECK((*lo == 0 || *hi == 255));
  std::vector<double> w1;
  for (double q : q1) w1.push_back((q - 128) * s1);
  check_std(w1, std::sqrt(2.0 / (64 + 32)));
  // W2: one scale per column (axis 1), max |code| 127 in every column.
  const std::vector<double> q2 = values("W2"), s2 = values("s2");
  std::vector<double> w2, column_max(16, 0.0);
  for (std::size_t i = 0; i < q2.size(); ++i) {
    CHECK((q2[i] >= -127 && q2[i] <= 127));
    column_max[i % 16] = std::max(column_max[i % 16], std::abs(q2[i]));
    w2.push_back(q2[i] * s2[i % 16]);
  }
  CHECK(column_max == std::vector<double>(16, 127.0));
  CHECK(values("z2") == std::vector<double>(16, 0.0));
  check_std(w2, std::sqrt(2.0 / (32 + 16)));
}
