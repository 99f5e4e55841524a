// Residual structure (onnx_reinit/residual.h): the branch and stream counts
// of real PyTorch exports in training form (BatchNorm kept) and eval form
// (BatchNorm folded into the convolutions), multipliers and non-residual
// Adds on built graphs, and the rule terms and parameter expressions that
// read the structure.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/residual.h"
#include "onnx_reinit/rules.h"
#include "support/onnx_builder.h"
#include "support/reference_models.h"
#include "support/residual_nets.h"

namespace ori = onnx_reinit;
using ori::test::graph_builder;

namespace {

ori::residual_structure structure_of(const std::string& file) {
  return ori::find_residual_structure(ori::load_model(ori::test::reference_model(file)));
}

std::size_t count_if_branch(const ori::residual_structure& r,
                            bool (*pred)(const ori::residual_branch&)) {
  return static_cast<std::size_t>(std::count_if(r.branches.begin(), r.branches.end(), pred));
}

std::vector<std::size_t> layer_counts(const ori::residual_structure& r) {
  std::vector<std::size_t> m;
  for (const auto& b : r.branches) m.push_back(b.layers.size());
  return m;
}

}  // namespace

TEST_CASE("torchvision ResNet-18 has 8 branches of 2 convolutions in one stream", "[residual]") {
  for (const char* form : {"train", "eval"}) {
    INFO(form);
    const auto r = structure_of(fmt::format("resnet18_{}.onnx", form));
    CHECK(r.branches.size() == 8);
    CHECK(r.stream_sizes == std::vector<int>{8});
    CHECK(layer_counts(r) == std::vector<std::size_t>(8, 2));
    // layer2.0, layer3.0 and layer4.0 downsample through a 1x1 conv.
    CHECK(count_if_branch(r, [](const auto& b) { return b.skip != "identity"; }) == 3);
    CHECK(r.branches[2].skip != "identity");
  }
  const auto train = structure_of("resnet18_train.onnx");
  CHECK(train.branches[2].skip_tensors == std::vector<std::string>{"layer2.0.downsample.0.weight"});
  CHECK(train.branches[7].layers.back() == "layer4.1.conv2.weight");
  for (const auto& b : train.branches) CHECK(b.last_norm_scale.ends_with(".bn2.weight"));
  const auto eval = structure_of("resnet18_eval.onnx");
  CHECK(count_if_branch(eval, [](const auto& b) { return !b.last_norm_scale.empty(); }) == 0);
}

TEST_CASE("torchvision ResNet-50 has 16 bottleneck branches of 3 convolutions", "[residual]") {
  for (const char* form : {"train", "eval"}) {
    INFO(form);
    const auto r = structure_of(fmt::format("resnet50_{}.onnx", form));
    CHECK(r.branches.size() == 16);
    CHECK(r.stream_sizes == std::vector<int>{16});
    CHECK(layer_counts(r) == std::vector<std::size_t>(16, 3));
    // Every stage's first block projects, layer1.0 included.
    CHECK(count_if_branch(r, [](const auto& b) { return b.skip != "identity"; }) == 4);
  }
  const auto train = structure_of("resnet50_train.onnx");
  std::vector<std::string> norms;
  for (const auto& b : train.branches) norms.push_back(b.last_norm_scale);
  CHECK(norms.front() == "layer1.0.bn3.weight");
  CHECK(norms.back() == "layer4.2.bn3.weight");
  CHECK(std::all_of(norms.begin(), norms.end(),
                    [](const std::string& n) { return n.ends_with(".bn3.weight"); }));
}

TEST_CASE("torchvision MobileNetV2 has 10 inverted residuals in 5 streams", "[residual]") {
  for (const char* form : {"train", "eval"}) {
    INFO(form);
    const auto r = structure_of(fmt::format("mobilenet_v2_{}.onnx", form));
    CHECK(r.branches.size() == 10);
    // Blocks that change width or stride have no skip and end a stream:
    // stages of 24, 32, 64, 96 and 160 channels hold 1, 2, 3, 2, 2.
    CHECK(r.stream_sizes == std::vector<int>{1, 2, 3, 2, 2});
    // Expand 1x1, depthwise 3x3, project 1x1.
    CHECK(layer_counts(r) == std::vector<std::size_t>(10, 3));
    CHECK(count_if_branch(r, [](const auto& b) { return b.skip != "identity"; }) == 0);
  }
}

TEST_CASE("a torchvision VisionTransformer has an attention and an MLP branch per layer",
          "[residual]") {
  for (const char* form : {"train", "eval"}) {
    INFO(form);
    const auto r = structure_of(fmt::format("vit_{}.onnx", form));
    // 4 encoder layers; the class token and position embedding Adds are no branches.
    CHECK(r.branches.size() == 8);
    CHECK(r.stream_sizes == std::vector<int>{8});
    // Attention: in_proj (q, k, v in one) and out_proj; MLP: two Linear.
    CHECK(layer_counts(r) == std::vector<std::size_t>(8, 2));
    // Pre-norm: the LayerNorm comes before the branch's layers.
    for (const auto& b : r.branches) CHECK(b.last_norm_scale.empty());
  }
  // The eval export renames the weights it transposes; the training form keeps them.
  const auto r = structure_of("vit_train.onnx");
  for (std::size_t i = 0; i < r.branches.size(); ++i)
    CHECK(r.branches[i].layers.back() ==
          fmt::format("encoder.layers.encoder_layer_{}.{}", i / 2,
                      i % 2 == 0 ? "self_attention.out_proj.weight" : "mlp.3.weight"));
}

TEST_CASE("a GPT-style decoder has two branches of two projections per block", "[residual]") {
  for (const char* form : {"train", "eval"}) {
    INFO(form);
    const auto r = structure_of(fmt::format("gpt_{}.onnx", form));
    CHECK(r.branches.size() == 8);
    CHECK(r.stream_sizes == std::vector<int>{8});
    CHECK(layer_counts(r) == std::vector<std::size_t>(8, 2));
    for (const auto& b : r.branches) CHECK(b.skip == "identity");
  }
  const auto r = structure_of("gpt_train.onnx");
  CHECK(r.branches[0].layers ==
        std::vector<std::string>{"h.0.attn.c_attn.weight", "h.0.attn.c_proj.weight"});
  CHECK(r.branches[7].layers.back() == "h.3.mlp.2.weight");
}

TEST_CASE("a multiplier at the end of a branch is found, scalar or per channel", "[residual]") {
  const auto scalar = ori::find_residual_structure(ori::test::residual_mlp(3, {1}));
  REQUIRE(scalar.branches.size() == 3);
  CHECK(scalar.stream_sizes == std::vector<int>{3});
  CHECK(scalar.branches[1].multiplier == "b1.gamma");
  CHECK(scalar.branches[1].multiplier_is_scalar);
  CHECK(scalar.branches[1].layers == std::vector<std::string>{"b1.w1", "b1.w2"});
  const auto channels = ori::find_residual_structure(ori::test::residual_mlp(2, {8}));
  REQUIRE(channels.branches.size() == 2);
  CHECK(channels.branches[0].multiplier == "b0.gamma");
  CHECK_FALSE(channels.branches[0].multiplier_is_scalar);
  const std::string text = fmt::format("{}", channels);
  CHECK(text.find("stream 1: 2 branches") != std::string::npos);
  CHECK(text.find("per-channel multiplier b0.gamma") != std::string::npos);
}

TEST_CASE("Adds that are no residual joins are not counted", "[residual]") {
  graph_builder g;
  g.add_input("x", {4, 8});
  g.add_initializer("w1", {8, 8}, ori::test::ramp(64));
  g.add_initializer("w2", {8, 8}, ori::test::ramp(64));
  g.add_initializer("w3", {8, 8}, ori::test::ramp(64));
  g.add_initializer("bias", {8}, ori::test::ramp(8));
  // Two parallel layers summed (no skip), then a bias Add (a constant operand).
  g.add_node("MatMul", {"x", "w1"}, {"a"});
  g.add_node("MatMul", {"x", "w2"}, {"b"});
  g.add_node("Add", {"a", "b"}, {"ab"});
  g.add_node("Add", {"ab", "bias"}, {"abb"});
  // Two computed values of different origin: no common fork.
  g.add_input("mask", {4, 8});
  g.add_node("MatMul", {"abb", "w3"}, {"c"});
  g.add_node("Add", {"c", "mask"}, {"y"});
  g.add_output("y", {4, 8});
  const auto r = ori::find_residual_structure(g.model());
  CHECK(r.branches.empty());
  CHECK(fmt::format("{}", r) == "no residual branches\n");
}

TEST_CASE("the analysis places each tensor in its branch; rules match on it", "[residual]") {
  const auto tensors = ori::analyze_model(ori::test::residual_mlp(3, {8}));
  auto find = [&](const std::string& name) {
    auto it = std::find_if(tensors.begin(), tensors.end(),
                           [&](const auto& t) { return t.info.name == name; });
    REQUIRE(it != tensors.end());
    return *it;
  };
  const auto w2 = find("b2.w2");
  REQUIRE(w2.residual);
  CHECK(fmt::format("{}", *w2.residual) == "branch 3 of 3, layer 2 of 2");
  CHECK(fmt::format("{}", *find("b0.w1").residual) == "branch 1 of 3, layer 1 of 2");
  CHECK(fmt::format("{}", *find("b1.b2").residual) == "branch 2 of 3, layer 2 of 2");
  CHECK(fmt::format("{}", *find("b1.gamma").residual) == "branch 2 of 3, multiplier");
  CHECK_FALSE(find("head").residual);
  CHECK(find("head").output_layer);
  CHECK_FALSE(w2.output_layer);

  const auto last = ori::parse_rule("residual:last&role:weight=zeros", "t");
  const auto inner = ori::parse_rule("residual:inner=zeros", "t");
  const auto none = ori::parse_rule("residual:none=zeros", "t");
  const auto output = ori::parse_rule("layer:output=zeros", "t");
  CHECK(last.matches(w2));
  CHECK_FALSE(last.matches(find("b2.w1")));
  CHECK(inner.matches(find("b2.w1")));
  CHECK(none.matches(find("head")));
  CHECK_FALSE(none.matches(w2));
  CHECK(output.matches(find("head")));
  CHECK(ori::parse_rule("residual:multiplier=ones", "t").matches(find("b0.gamma")));
  CHECK_THROWS_AS(ori::parse_rule("residual:first=zeros", "t"), ori::rule_error);
  CHECK_THROWS_AS(ori::parse_rule("layer:input=zeros", "t"), ori::rule_error);
}

TEST_CASE("parameter expressions read L, m, gain and fans of the tensor", "[residual]") {
  const auto tensors = ori::analyze_model(ori::test::residual_mlp(3, {8}));
  auto w1 = std::find_if(tensors.begin(), tensors.end(),
                         [](const auto& t) { return t.info.name == "b0.w1"; });
  REQUIRE(w1 != tensors.end());
  // L = 3 branches, m = 2 layers, fan_in 8, gain of relu sqrt(2):
  // sqrt(2)/sqrt(8) * 3^(-1/2) = 0.5/sqrt(3).
  CHECK(*ori::evaluate_parameter("0.02/sqrt(L)", *w1, "t") == Approx(0.02 / std::sqrt(3.0)));
  CHECK(*ori::evaluate_parameter("gain/sqrt(fan_in)*L^(-1/(2*m-2))", *w1, "t") ==
        Approx(0.5 / std::sqrt(3.0)));
  CHECK(*ori::evaluate_parameter("-(1+2)*3", *w1, "t") == Approx(-9.0));
  CHECK_FALSE(ori::evaluate_parameter("1e-5", *w1, "t"));
  CHECK_FALSE(ori::evaluate_parameter("fan_in", *w1, "t"));
  auto head = std::find_if(tensors.begin(), tensors.end(),
                           [](const auto& t) { return t.info.name == "head"; });
  CHECK_THROWS_AS(ori::evaluate_parameter("0.02/sqrt(L)", *head, "t"), ori::rule_error);
  CHECK_THROWS_AS(ori::parse_rule("*=normal(std=0.02/sqrt(depth))", "t"), ori::rule_error);
  CHECK_THROWS_AS(ori::parse_rule("*=normal(std=(0.02/2", "t"), ori::rule_error);
  CHECK_THROWS_AS(ori::evaluate_parameter("1/(m-2)", *w1, "t"), ori::rule_error);
}
