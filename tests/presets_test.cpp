// Presets (onnx_reinit/presets.h) on real PyTorch exports and built
// residual nets: zero-init-residual touches exactly ResNet-50's 16 last BN
// scales; gpt2 draws residual projections with std 0.02/sqrt(2 n_layer);
// fixup keeps the residual stream's std flat where the default policy lets
// it grow; deepnet and t-fixup give a decoder's, an encoder's and an
// encoder-decoder's value, output and feed-forward projections their beta;
// presets that find nothing to act on are refused.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/presets.h"
#include "onnx_reinit/residual.h"
#include "onnx_reinit/rewrite.h"
#include "onnx_reinit/runtime.h"
#include "support/onnx_builder.h"
#include "support/reference_models.h"
#include "support/residual_nets.h"
#include "support/standard_registry.h"

namespace ori = onnx_reinit;
using ori::test::graph_builder;

namespace {

ori::loaded_model reference(const std::string& file) {
  return ori::load_model(ori::test::reference_model(file));
}

std::vector<ori::tensor_plan> plan_with(const std::vector<ori::tensor_analysis>& tensors,
                                        const std::vector<std::string>& presets) {
  ori::plan_options options;
  for (const std::string& p : presets) {
    ori::check_preset(p, tensors);
    for (ori::rule& r : ori::preset_rules(p)) options.rules.push_back(std::move(r));
  }
  return ori::make_plan(tensors, options);
}

// Rewrites `model` in memory; the values are then read back from it.
void rewrite(ori::loaded_model& model, const std::vector<ori::tensor_plan>& plans) {
  ori::validate_plan(plans, ori::test::standard_registry());
  ori::rewrite_options options;
  options.seed = 7;
  ori::rewrite_model(model, plans, ori::test::standard_registry(), options);
}

std::map<std::string, std::vector<double>> values_by_name(const ori::loaded_model& model) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& t : ori::collect_model_tensors(model.proto()))
    if (t.proto->data_type() == onnx::TensorProto::FLOAT)
      out[t.ref.name] = ori::read_tensor_values<double>(model, *t.proto);
  return out;
}

double population_std(const std::vector<double>& v) {
  double mean = 0.0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double var = 0.0;
  for (double x : v) var += (x - mean) * (x - mean);
  return std::sqrt(var / static_cast<double>(v.size()));
}

}  // namespace

TEST_CASE("zero-init-residual zeroes exactly ResNet-50's 16 last BN scales", "[presets]") {
  ori::loaded_model model = reference("resnet50_train.onnx");
  const auto tensors = ori::analyze_model(model);
  const auto preset = plan_with(tensors, {"zero-init-residual"});
  const auto policy = plan_with(tensors, {});
  std::vector<std::string> changed;
  for (std::size_t i = 0; i < preset.size(); ++i)
    if (preset[i].call.to_string() != policy[i].call.to_string())
      changed.push_back(preset[i].tensor.info.name);
  REQUIRE(changed.size() == 16);
  for (const std::string& name : changed) CHECK(name.ends_with(".bn3.weight"));

  rewrite(model, preset);
  const auto values = values_by_name(model);
  std::size_t zero_scales = 0, one_scales = 0;
  for (const auto& t : tensors) {
    if (t.info.role != ori::tensor_role::norm_scale) continue;
    const auto& v = values.at(t.info.name);
    const bool zero = std::all_of(v.begin(), v.end(), [](double x) { return x == 0.0; });
    const bool one = std::all_of(v.begin(), v.end(), [](double x) { return x == 1.0; });
    zero_scales += zero ? 1 : 0;
    one_scales += one ? 1 : 0;
    CHECK(zero == (std::find(changed.begin(), changed.end(), t.info.name) != changed.end()));
  }
  CHECK(zero_scales == 16);
  // 53 BatchNorms in torchvision's ResNet-50: the other 37 scales stay 1.
  CHECK(one_scales == 37);
}

TEST_CASE("zero-init-residual refuses an eval export whose BatchNorms are folded", "[presets]") {
  const auto tensors = ori::analyze_model(reference("resnet50_eval.onnx"));
  CHECK_THROWS_WITH(ori::check_preset("zero-init-residual", tensors),
                    Catch::Contains("residual branch ending in a normalization"));
}

TEST_CASE("gpt2 draws residual projections with std 0.02/sqrt(2 n_layer)", "[presets]") {
  ori::loaded_model model = reference("gpt_train.onnx");
  const auto tensors = ori::analyze_model(model);
  rewrite(model, plan_with(tensors, {"gpt2"}));
  const auto values = values_by_name(model);
  // 4 blocks: n_layer = 4, residual projections std 0.02/sqrt(8).
  const double residual_std = 0.02 / std::sqrt(8.0);
  // The sample std of n normals has relative standard error 1/sqrt(2n);
  // 5 of them (n >= 1024: 11%) keep a factor 2 in the variance (41% in the
  // std) well outside.
  auto check_std = [&](const std::string& name, double expected) {
    INFO(name);
    const auto& v = values.at(name);
    const double tolerance = 5.0 / std::sqrt(2.0 * static_cast<double>(v.size()));
    CHECK(std::abs(population_std(v) / expected - 1.0) < tolerance);
  };
  for (int block = 0; block < 4; ++block) {
    check_std(fmt::format("h.{}.attn.c_proj.weight", block), residual_std);
    check_std(fmt::format("h.{}.mlp.2.weight", block), residual_std);
    check_std(fmt::format("h.{}.attn.c_attn.weight", block), 0.02);
    check_std(fmt::format("h.{}.mlp.0.weight", block), 0.02);
    const auto& gamma = values.at(fmt::format("h.{}.ln_1.weight", block));
    CHECK(std::all_of(gamma.begin(), gamma.end(), [](double x) { return x == 1.0; }));
  }
  check_std("wte.weight", 0.02);
  check_std("wpe.weight", 0.02);
  check_std("lm_head.weight", 0.02);
}

namespace {

// A residual MLP without normalization: x + W2 relu(W1 x), `blocks` times,
// then a linear head. Stored weights are placeholders the rewrite replaces.
onnx::ModelProto plain_residual_mlp(int blocks, std::int64_t width) {
  graph_builder g;
  g.add_input("x", {-1, width});
  std::string x = "x";
  const auto count = static_cast<std::size_t>(width * width);
  for (int i = 0; i < blocks; ++i) {
    const std::string p = fmt::format("b{}.", i);
    g.add_initializer(p + "w1", {width, width}, ori::test::ramp(count, 0.0f, 1e-4f));
    g.add_initializer(p + "w2", {width, width}, ori::test::ramp(count, 0.0f, 1e-4f));
    g.add_node("MatMul", {x, p + "w1"}, {p + "h"});
    g.add_node("Relu", {p + "h"}, {p + "a"});
    g.add_node("MatMul", {p + "a", p + "w2"}, {p + "f"});
    g.add_node("Add", {p + "f", x}, {p + "out"});
    x = p + "out";
  }
  g.add_initializer("head", {width, 10}, ori::test::ramp(static_cast<std::size_t>(width * 10)));
  g.add_node("MatMul", {x, "head"}, {"y"});
  g.add_output("y", {-1, 10});
  return g.model();
}

using matrix = std::vector<double>;  // row-major

matrix matmul(const matrix& a, const matrix& w, std::int64_t rows, std::int64_t k, std::int64_t n) {
  matrix out(static_cast<std::size_t>(rows * n), 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t i = 0; i < k; ++i) {
      const double x = a[static_cast<std::size_t>(r * k + i)];
      for (std::int64_t j = 0; j < n; ++j)
        out[static_cast<std::size_t>(r * n + j)] += x * w[static_cast<std::size_t>(i * n + j)];
    }
  return out;
}

// The residual stream's std after the last block over its std at the input,
// by a forward pass written here on a fixed N(0, 1) batch.
double stream_growth(const std::string& preset, int blocks, std::int64_t width) {
  ori::loaded_model model = ori::loaded_model::from_proto(plain_residual_mlp(blocks, width));
  const auto tensors = ori::analyze_model(model);
  rewrite(model, plan_with(tensors, preset.empty() ? std::vector<std::string>{}
                                                   : std::vector<std::string>{preset}));
  const auto w = values_by_name(model);
  const std::int64_t batch = 256;
  std::mt19937_64 gen(11);
  std::normal_distribution<double> normal;
  matrix x(static_cast<std::size_t>(batch * width));
  for (double& v : x) v = normal(gen);
  const double first = population_std(x);
  for (int i = 0; i < blocks; ++i) {
    matrix h = matmul(x, w.at(fmt::format("b{}.w1", i)), batch, width, width);
    for (double& v : h) v = std::max(v, 0.0);
    const matrix f = matmul(h, w.at(fmt::format("b{}.w2", i)), batch, width, width);
    for (std::size_t j = 0; j < x.size(); ++j) x[j] += f[j];
  }
  return population_std(x) / first;
}

}  // namespace

TEST_CASE("fixup keeps a plain residual net's stream flat; the default policy does not",
          "[presets]") {
  // Default policy: He for W1, Xavier for W2, so each block adds about the
  // stream's own variance: std grows like 2^(L/2) = 16 over 8 blocks.
  const double grown = stream_growth("", 8, 64);
  CHECK(grown > 4.0);
  const double fixed = stream_growth("fixup", 8, 64);
  CHECK(fixed >= 0.5);
  CHECK(fixed <= 2.0);
}

TEST_CASE("fixup scales inner layers by L^(-1/(2m-2)) and zeroes last layers and the head",
          "[presets]") {
  ori::loaded_model model = ori::loaded_model::from_proto(plain_residual_mlp(8, 64));
  const auto tensors = ori::analyze_model(model);
  const auto plans = plan_with(tensors, {"fixup"});
  for (const auto& p : plans) {
    const std::string& name = p.tensor.info.name;
    INFO(name);
    if (name.ends_with("w2") || name == "head") CHECK(p.call.strategy == "zeros");
    if (name.ends_with("w1")) {
      // He std sqrt(2/64), times 8^(-1/2) for L = 8, m = 2.
      REQUIRE(p.call.strategy == "normal");
      CHECK(std::stod(p.call.params.at(1).second) ==
            Approx(std::sqrt(2.0 / 64.0) / std::sqrt(8.0)));
    }
  }
}

TEST_CASE("fixup refuses a model with normalization layers", "[presets]") {
  const auto tensors = ori::analyze_model(reference("resnet18_train.onnx"));
  CHECK_THROWS_WITH(ori::check_preset("fixup", tensors), Catch::Contains("without normalization"));
}

#ifndef ONNX_REINIT_NO_RUNTIME
TEST_CASE("fixup on ResNet-18 in eval form keeps the branches' input std flat", "[presets]") {
  // ONNX Runtime's inspection measures every conv; the first conv of each
  // branch reads the residual stream, so its std follows the stream's.
  const auto structure = ori::find_residual_structure(reference("resnet18_eval.onnx"));
  REQUIRE(structure.branches.size() == 8);
  auto growth = [&](const std::vector<std::string>& presets) {
    ori::loaded_model model = reference("resnet18_eval.onnx");
    rewrite(model, plan_with(ori::analyze_model(model), presets));
    const ori::inspection r = ori::inspect_model(model, {});
    auto std_of = [&](const std::string& weight) {
      auto it = std::find_if(r.layers.begin(), r.layers.end(),
                             [&](const ori::layer_stats& l) { return l.name == weight; });
      REQUIRE(it != r.layers.end());
      return it->std;
    };
    return std_of(structure.branches.back().layers.front()) /
           std_of(structure.branches.front().layers.front());
  };
  CHECK(growth({}) > 2.0);
  const double fixed = growth({"fixup"});
  CHECK(fixed >= 0.5);
  CHECK(fixed <= 2.0);
}
#endif

namespace {

std::map<std::string, std::vector<double>> after(const onnx::ModelProto& proto,
                                                 const std::string& preset) {
  ori::loaded_model model = ori::loaded_model::from_proto(proto);
  rewrite(model, plan_with(ori::analyze_model(model), {preset}));
  return values_by_name(model);
}

}  // namespace

TEST_CASE("skipinit, rezero and layerscale set the branch multipliers", "[presets]") {
  for (const char* preset : {"skipinit", "rezero"}) {
    const auto v = after(ori::test::residual_mlp(2, {1}), preset);
    CHECK(v.at("b0.gamma") == std::vector<double>{0.0});
    CHECK(v.at("b1.gamma") == std::vector<double>{0.0});
  }
  const auto v = after(ori::test::residual_mlp(2, {8}), "layerscale(value=1e-4)");
  CHECK(v.at("b1.gamma") == std::vector<double>(8, static_cast<double>(1e-4f)));
  const auto d = after(ori::test::residual_mlp(2, {8}), "layerscale");
  CHECK(d.at("b0.gamma") == std::vector<double>(8, static_cast<double>(1e-5f)));
  CHECK_THROWS_WITH(ori::check_preset("rezero", ori::analyze_model(reference("gpt_eval.onnx"))),
                    Catch::Contains("ending in a multiplier"));
}

TEST_CASE("small-head zeroes the output layer or draws it with the given std", "[presets]") {
  const auto zero = after(ori::test::residual_mlp(2, {1}), "small-head");
  CHECK(std::all_of(zero.at("head").begin(), zero.at("head").end(),
                    [](double x) { return x == 0.0; }));
  const auto plans =
      plan_with(ori::analyze_model(reference("resnet18_eval.onnx")), {"small-head(std=0.01)"});
  for (const auto& p : plans) {
    INFO(p.tensor.info.name);
    const bool head = p.tensor.info.name == "fc.weight";
    CHECK((p.call.to_string() == "normal(mean=0,std=0.01)") == head);
  }
}

TEST_CASE("presets are listed with reference and formula; bad names and parameters refused",
          "[presets]") {
  const std::string text = ori::presets_text();
  for (const auto& p : ori::preset_list()) {
    CHECK(text.find(p.name + "\n") != std::string::npos);
    CHECK_FALSE(p.reference.empty());
    CHECK_FALSE(p.formula.empty());
  }
  CHECK(ori::preset_list().size() == 9);
  CHECK_THROWS_WITH(ori::preset_rules("zero-init"), Catch::Contains("unknown preset 'zero-init'"));
  CHECK_THROWS_WITH(ori::preset_rules("layerscale(scale=2)"), Catch::Contains("value=1e-5"));
  CHECK_THROWS_WITH(ori::preset_rules("small-head(std=-1)"), Catch::Contains(">= 0"));
  CHECK_THROWS_WITH(ori::preset_rules("gpt2(std=1)"), Catch::Contains("no parameters"));
  CHECK_THROWS_WITH(ori::preset_rules("deepnet(architecture=both)"),
                    Catch::Contains("auto, encoder or decoder"));
  CHECK(ori::preset_rules("gpt2").front().text ==
        "residual:last&role:weight=normal(mean=0,std=0.02/sqrt(L))");
}

namespace {

// Sample std of each named tensor against `expected`, within 5 standard
// errors (1/sqrt(2n) relative): for n >= 1024 that is 11%, and a factor 2
// in the variance (41% in the std) fails.
void check_stds(const std::map<std::string, std::vector<double>>& values,
                const std::map<std::string, double>& expected) {
  for (const auto& [name, std] : expected) {
    INFO(name);
    const auto& v = values.at(name);
    const double tolerance = 5.0 / std::sqrt(2.0 * static_cast<double>(v.size()));
    CHECK(std::abs(population_std(v) / std - 1.0) < tolerance);
  }
}

// Xavier std for a [fan_in, fan_out] projection.
double xavier_normal_std(double gain, double fan_in, double fan_out) {
  return gain * std::sqrt(2.0 / (fan_in + fan_out));
}

// What a 4-block, width-32, MLP-128 model (export_reference_models.py's
// gpt_split and encoder_split) should draw: q, k with `qk_gain`, v, out
// and the MLP with `beta`.
std::map<std::string, double> block_stds(double qk_gain, double beta) {
  std::map<std::string, double> out;
  for (int b = 0; b < 4; ++b) {
    const std::string p = fmt::format("h.{}.", b);
    out[p + "attn.q_proj.weight"] = xavier_normal_std(qk_gain, 32, 32);
    out[p + "attn.k_proj.weight"] = xavier_normal_std(qk_gain, 32, 32);
    out[p + "attn.v_proj.weight"] = xavier_normal_std(beta, 32, 32);
    out[p + "attn.c_proj.weight"] = xavier_normal_std(beta, 32, 32);
    out[p + "mlp.0.weight"] = xavier_normal_std(beta, 32, 128);
    out[p + "mlp.2.weight"] = xavier_normal_std(beta, 128, 32);
  }
  return out;
}

}  // namespace

TEST_CASE("deepnet on a decoder (causal mask) draws v, out, ffn with gain (8M)^(-1/4)",
          "[presets]") {
  ori::loaded_model model = reference("gpt_split_train.onnx");
  const auto tensors = ori::analyze_model(model);
  rewrite(model, plan_with(tensors, {"deepnet"}));
  // M = 4 decoder layers.
  const double beta = std::pow(8.0 * 4.0, -0.25);
  check_stds(values_by_name(model), block_stds(1.0, beta));
  // The eval export folds the mask into a boolean constant and renames the
  // weights: the same 16 projections get beta, the 8 q/k ones gain 1.
  const auto plans = plan_with(ori::analyze_model(reference("gpt_split_eval.onnx")), {"deepnet"});
  int scaled = 0, unit = 0;
  for (const auto& p : plans) {
    if (p.call.strategy != "xavier_normal") continue;
    const double gain = std::stod(p.call.params.at(0).second);
    scaled += gain == Approx(beta) ? 1 : 0;
    unit += gain == 1.0 ? 1 : 0;
  }
  CHECK(scaled == 16);
  CHECK(unit == 8);
}

TEST_CASE("deepnet and t-fixup refuse an unmasked encoder unless told its architecture",
          "[presets]") {
  ori::loaded_model model = reference("encoder_split_train.onnx");
  const auto tensors = ori::analyze_model(model);
  for (const char* preset : {"deepnet", "t-fixup"})
    CHECK_THROWS_WITH(ori::check_preset(preset, tensors),
                      Catch::Contains(fmt::format("--preset '{}(architecture=encoder)'", preset)));
  rewrite(model, plan_with(tensors, {"deepnet(architecture=encoder)"}));
  // N = 4 encoder layers: (8N)^(-1/4).
  check_stds(values_by_name(model), block_stds(1.0, std::pow(8.0 * 4.0, -0.25)));
}

TEST_CASE("t-fixup scales v, out, ffn and the embeddings by 0.67 N^(-1/4) or (9M)^(-1/4)",
          "[presets]") {
  // Xavier uniform has the std of Xavier normal.
  struct kase {
    const char* file;
    const char* preset;
    double factor;
  };
  for (const kase& k : {kase{"gpt_split_train.onnx", "t-fixup", std::pow(9.0 * 4.0, -0.25)},
                        kase{"encoder_split_train.onnx", "t-fixup(architecture=encoder)",
                             0.67 * std::pow(4.0, -0.25)}}) {
    INFO(k.preset);
    ori::loaded_model model = reference(k.file);
    rewrite(model, plan_with(ori::analyze_model(model), {k.preset}));
    const auto values = values_by_name(model);
    auto expected = block_stds(1.0, k.factor);
    // Embeddings N(0, d^(-1/2)) with d = 32, then scaled.
    expected["wte.weight"] = k.factor / std::sqrt(32.0);
    check_stds(values, expected);
  }
}

TEST_CASE("deepnet refuses fused q/k/v projections and models without attention", "[presets]") {
  for (const char* file : {"gpt_train.onnx", "vit_eval.onnx"}) {
    INFO(file);
    CHECK_THROWS_WITH(
        ori::check_preset("deepnet(architecture=encoder)", ori::analyze_model(reference(file))),
        Catch::Contains("fused q/k/v projection"));
  }
  CHECK_THROWS_WITH(
      ori::check_preset("t-fixup", ori::analyze_model(reference("resnet18_eval.onnx"))),
      Catch::Contains("needs attention blocks"));
}

namespace {

constexpr std::int64_t enc_dec_tokens = 4;
constexpr std::int64_t enc_dec_width = 8;

// Single-head attention of `x` over `memory` (x itself for self-attention)
// with weights PREFIX{q,k,v,o}, plus an additive causal mask when `mask` is
// set; returns x + attention.
std::string attention(graph_builder& g, const std::string& p, const std::string& x,
                      const std::string& memory, bool mask) {
  const std::int64_t w = enc_dec_width;
  for (const char* m : {"q", "k", "v", "o"})
    g.add_initializer(p + m, {w, w}, ori::test::ramp(static_cast<std::size_t>(w * w)));
  g.add_node("MatMul", {x, p + "q"}, {p + "Q"});
  g.add_node("MatMul", {memory, p + "k"}, {p + "K"});
  g.add_node("MatMul", {memory, p + "v"}, {p + "V"});
  g.add_node("Transpose", {p + "K"}, {p + "Kt"});
  g.add_node("MatMul", {p + "Q", p + "Kt"}, {p + "S"});
  std::string scores = p + "S";
  if (mask) {
    std::vector<float> m;
    for (std::int64_t i = 0; i < enc_dec_tokens; ++i)
      for (std::int64_t j = 0; j < enc_dec_tokens; ++j)
        m.push_back(j <= i ? 0.0f : -std::numeric_limits<float>::infinity());
    g.add_initializer(p + "mask", {enc_dec_tokens, enc_dec_tokens}, m);
    g.add_node("Add", {scores, p + "mask"}, {p + "Sm"});
    scores = p + "Sm";
  }
  g.add_node("Softmax", {scores}, {p + "P"});
  g.add_node("MatMul", {p + "P", p + "V"}, {p + "A"});
  g.add_node("MatMul", {p + "A", p + "o"}, {p + "O"});
  g.add_node("Add", {p + "O", x}, {p + "out"});
  return p + "out";
}

std::string feed_forward(graph_builder& g, const std::string& p, const std::string& x) {
  const auto count = static_cast<std::size_t>(enc_dec_width * enc_dec_width);
  g.add_initializer(p + "f1", {enc_dec_width, enc_dec_width}, ori::test::ramp(count));
  g.add_initializer(p + "f2", {enc_dec_width, enc_dec_width}, ori::test::ramp(count));
  g.add_node("MatMul", {x, p + "f1"}, {p + "H"});
  g.add_node("Relu", {p + "H"}, {p + "R"});
  g.add_node("MatMul", {p + "R", p + "f2"}, {p + "F"});
  g.add_node("Add", {p + "F", x}, {p + "ffn"});
  return p + "ffn";
}

// N encoder layers (self-attention, FFN), then M decoder layers (masked
// self-attention, cross-attention over the encoder's output, FFN), a head.
onnx::ModelProto encoder_decoder(int n, int m) {
  graph_builder g;
  g.add_input("src", {enc_dec_tokens, enc_dec_width});
  g.add_input("tgt", {enc_dec_tokens, enc_dec_width});
  std::string e = "src";
  for (int i = 0; i < n; ++i) {
    const std::string p = fmt::format("enc{}.", i);
    e = feed_forward(g, p, attention(g, p + "self.", e, e, false));
  }
  std::string d = "tgt";
  for (int i = 0; i < m; ++i) {
    const std::string p = fmt::format("dec{}.", i);
    d = attention(g, p + "self.", d, d, true);
    d = feed_forward(g, p, attention(g, p + "cross.", d, e, false));
  }
  g.add_initializer("head", {enc_dec_width, 3}, ori::test::ramp(enc_dec_width * 3));
  g.add_node("MatMul", {d, "head"}, {"y"});
  g.add_output("y", {enc_dec_tokens, 3});
  return g.model();
}

}  // namespace

TEST_CASE("deepnet and t-fixup tell encoder from decoder by cross-attention and the mask",
          "[presets]") {
  const int n = 3, m = 2;
  const auto tensors = ori::analyze_model(encoder_decoder(n, m));
  const double deep_enc = 0.87 * std::pow(std::pow(n, 4) * m, -1.0 / 16);
  const double deep_dec = std::pow(12.0 * m, -0.25);
  const double fix_enc = 0.67 * std::pow(n, -0.25);
  const double fix_dec = std::pow(9.0 * m, -0.25);
  for (const auto& [preset, enc, dec] :
       {std::tuple{"deepnet", deep_enc, deep_dec}, std::tuple{"t-fixup", fix_enc, fix_dec}}) {
    INFO(preset);
    int checked = 0;
    for (const auto& p : plan_with(tensors, {preset})) {
      const std::string& name = p.tensor.info.name;
      INFO(name);
      if (name == "head" || p.call.params.empty()) continue;
      const double gain = std::stod(p.call.params.at(0).second);
      const bool qk = name.ends_with(".q") || name.ends_with(".k");
      CHECK(gain == Approx(qk ? 1.0 : name.starts_with("enc") ? enc : dec));
      ++checked;
    }
    // Per encoder layer 4 projections and 2 FFN layers; per decoder layer 8 and 2.
    CHECK(checked == n * 6 + m * 10);
  }
  CHECK_THROWS_WITH(ori::check_preset("deepnet(architecture=decoder)", tensors),
                    Catch::Contains("encoder-decoder"));
}
