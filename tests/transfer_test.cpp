// Transfer from a pretrained model (onnx_reinit/transfer.h): a classifier
// whose head was replaced gets every backbone tensor byte for byte and a
// head by the policy; prefix maps; shape and dtype mismatches and unused
// pretrained tensors are listed; external data on either side.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/report.h"
#include "onnx_reinit/rewrite.h"
#include "onnx_reinit/transfer.h"
#include "support/onnx_builder.h"
#include "support/standard_registry.h"
#include "support/temp_dir.h"

namespace ori = onnx_reinit;
using ori::test::graph_builder;

namespace {

// conv (8x3x3x3) -> relu -> global pool -> flatten -> Gemm head [classes, 8].
// `prefix` names the backbone; `start` sets the placeholder values apart.
onnx::ModelProto classifier(const std::string& prefix, std::int64_t classes, float start,
                            ori::element_type head_type = ori::element_type::float32) {
  graph_builder g;
  g.add_input("x", {1, 3, 8, 8});
  g.add_initializer(prefix + "conv.weight", {8, 3, 3, 3}, ori::test::ramp(216, start, 0.01f));
  g.add_initializer(prefix + "conv.bias", {8}, ori::test::ramp(8, start, 0.5f));
  g.add_initializer("head.weight", {classes, 8},
                    ori::test::ramp(static_cast<std::size_t>(classes * 8), start, 0.01f),
                    head_type);
  g.add_initializer("head.bias", {classes}, ori::test::ramp(static_cast<std::size_t>(classes)),
                    head_type);
  g.add_node("Conv", {"x", prefix + "conv.weight", prefix + "conv.bias"}, {"c"},
             {ori::test::make_attribute("pads", std::vector<std::int64_t>{1, 1, 1, 1})});
  g.add_node("Relu", {"c"}, {"r"});
  g.add_node("GlobalAveragePool", {"r"}, {"p"});
  g.add_node("Flatten", {"p"}, {"f"});
  g.add_node("Gemm", {"f", "head.weight", "head.bias"}, {"y"},
             {ori::test::make_attribute("transB", std::int64_t{1})});
  g.add_output("y", {1, classes});
  return g.model();
}

ori::loaded_model saved_and_loaded(const onnx::ModelProto& proto, const std::string& path,
                                   const std::string& external) {
  ori::loaded_model m = ori::loaded_model::from_proto(proto);
  ori::save_options options;
  options.external_data_name = external;
  options.external_min_bytes = 0;
  ori::save_model(m, path, options);
  return ori::load_model(path);
}

std::vector<std::byte> bytes_of(const ori::loaded_model& m, const std::string& name) {
  for (const auto& t : ori::collect_model_tensors(m.proto()))
    if (t.ref.name == name) {
      const auto view = ori::tensor_bytes(m, *t.proto);
      return {view.bytes().begin(), view.bytes().end()};
    }
  FAIL("no tensor " << name);
  return {};
}

struct transferred {
  ori::loaded_model model;
  std::vector<ori::tensor_plan> plans;
  ori::transfer_summary summary;
  std::vector<ori::tensor_outcome> outcomes;  // the report's rows, from what was written
};

// Plans `model` by the policy, transfers from `pretrained`, rewrites,
// copies and saves to `out`, then loads the result.
transferred run_transfer(ori::loaded_model model, const ori::loaded_model& pretrained,
                         const std::vector<ori::prefix_map>& maps, const std::string& out) {
  transferred t{std::move(model), {}, {}, {}};
  t.plans = ori::make_plan(ori::analyze_model(t.model), {});
  t.summary = ori::plan_transfer(pretrained, maps, {}, t.plans);
  const auto sample = ori::rewrite_model(t.model, t.plans, ori::test::standard_registry(), {});
  ori::copy_transferred(t.model, pretrained, t.plans);
  t.outcomes = ori::outcomes_of(sample, ori::save_model(t.model, out));
  t.model = ori::load_model(out);
  return t;
}

const ori::tensor_plan& plan_of(const std::vector<ori::tensor_plan>& plans,
                                const std::string& name) {
  auto it = std::find_if(plans.begin(), plans.end(),
                         [&](const ori::tensor_plan& p) { return p.tensor.info.name == name; });
  REQUIRE(it != plans.end());
  return *it;
}

}  // namespace

TEST_CASE("a classifier with a new head takes the backbone byte for byte", "[transfer]") {
  ori::test::temp_dir dir;
  const auto pretrained =
      saved_and_loaded(classifier("", 20, 0.3f), (dir / "pre.onnx").string(), "");
  auto t = run_transfer(ori::loaded_model::from_proto(classifier("", 5, -1.0f)), pretrained, {},
                        (dir / "out.onnx").string());
  for (const char* name : {"conv.weight", "conv.bias"}) {
    INFO(name);
    CHECK(plan_of(t.plans, name).action == ori::plan_action::transfer);
    CHECK(plan_of(t.plans, name).transfer_source == name);
    CHECK(bytes_of(t.model, name) == bytes_of(pretrained, name));
  }
  CHECK(t.summary.transferred == 2);
  // The new head: planned by the policy, its placeholder values replaced.
  const auto& head = plan_of(t.plans, "head.weight");
  CHECK(head.action == ori::plan_action::rewrite);
  CHECK(head.rule_origin == "policy");
  CHECK(bytes_of(t.model, "head.weight") !=
        bytes_of(ori::loaded_model::from_proto(classifier("", 5, -1.0f)), "head.weight"));
  // Both head tensors matched a name with another shape: listed as
  // mismatches, not again as unused.
  REQUIRE(t.summary.mismatches.size() == 2);
  CHECK(t.summary.mismatches[0].name == "head.weight");
  CHECK(t.summary.mismatches[0].shape == std::vector<std::int64_t>{5, 8});
  CHECK(t.summary.mismatches[0].source_shape == std::vector<std::int64_t>{20, 8});
  CHECK(t.summary.unused.empty());
  const std::string text = ori::transfer_text(t.summary);
  CHECK(text.find("not transferred: head.weight float [5,8] <- pretrained head.weight float "
                  "[20,8]") != std::string::npos);
}

TEST_CASE("--map renames pretrained prefixes; unmatched tensors are listed", "[transfer]") {
  ori::test::temp_dir dir;
  const auto pretrained =
      saved_and_loaded(classifier("encoder.", 5, 0.3f), (dir / "pre.onnx").string(), "");
  auto t =
      run_transfer(ori::loaded_model::from_proto(classifier("backbone.", 5, -1.0f)), pretrained,
                   {ori::parse_prefix_map("encoder.=backbone.")}, (dir / "out.onnx").string());
  CHECK(t.summary.transferred == 4);
  CHECK(plan_of(t.plans, "backbone.conv.weight").transfer_source == "encoder.conv.weight");
  CHECK(bytes_of(t.model, "backbone.conv.weight") == bytes_of(pretrained, "encoder.conv.weight"));
  CHECK(bytes_of(t.model, "head.weight") == bytes_of(pretrained, "head.weight"));
  CHECK(t.summary.unused.empty());
  // Without the map the backbone finds nothing and the pretrained one is unused.
  auto plans = ori::make_plan(
      ori::analyze_model(ori::loaded_model::from_proto(classifier("backbone.", 5, -1.0f))), {});
  const auto plain = ori::plan_transfer(pretrained, {}, {}, plans);
  CHECK(plain.transferred == 2);
  CHECK(plain.unused == std::vector<std::string>{"encoder.conv.weight", "encoder.conv.bias"});
  CHECK_THROWS_AS(ori::parse_prefix_map("encoder."), ori::usage_error);
}

TEST_CASE("a dtype mismatch is reported, not copied; --skip keeps a tensor", "[transfer]") {
  ori::test::temp_dir dir;
  const auto pretrained = saved_and_loaded(classifier("", 5, 0.3f, ori::element_type::float16),
                                           (dir / "pre.onnx").string(), "");
  auto plans = ori::make_plan(
      ori::analyze_model(ori::loaded_model::from_proto(classifier("", 5, 0.0f))), {});
  ori::plan_options options;
  options.skip = {"conv.bias"};
  const auto s = ori::plan_transfer(pretrained, {}, options, plans);
  CHECK(s.transferred == 1);  // conv.weight; conv.bias skipped, the head float16
  REQUIRE(s.mismatches.size() == 2);
  CHECK(s.mismatches[0].dtype == "float");
  CHECK(s.mismatches[0].source_dtype == "float16");
  CHECK(plan_of(plans, "conv.bias").action != ori::plan_action::transfer);
}

TEST_CASE("transfer works with external data on both sides", "[transfer]") {
  ori::test::temp_dir dir;
  const auto pretrained =
      saved_and_loaded(classifier("", 20, 0.3f), (dir / "pre.onnx").string(), "pre.data");
  const auto target =
      saved_and_loaded(classifier("", 5, -1.0f), (dir / "target.onnx").string(), "target.data");
  REQUIRE(pretrained.has_external_data());
  REQUIRE(target.has_external_data());
  auto t = run_transfer(ori::load_model(dir / "target.onnx"), pretrained, {},
                        (dir / "out.onnx").string());
  CHECK(t.summary.transferred == 2);
  CHECK(bytes_of(t.model, "conv.weight") == bytes_of(pretrained, "conv.weight"));
  CHECK(bytes_of(t.model, "conv.bias") == bytes_of(pretrained, "conv.bias"));
  // The report marks them and lists the mismatches.
  const std::string json =
      ori::report_json({"m", 0, ori::fan_convention::semantic, t.summary, {}}, t.plans, t.outcomes);
  CHECK(json.find("\"action\": \"transferred\"") != std::string::npos);
  CHECK(json.find("\"source_shape\"") != std::string::npos);
}

namespace {

// x [1, 16] -> MatMul(mix [16, 16]) -> MatMul(w [16, 8]) -> Relu ->
// Reshape(shape) -> y. With `identity`, mix holds an identity matrix: a
// fixed constant the analysis keeps. `shape` is an int64 shape constant.
onnx::ModelProto mixer(bool identity, float start) {
  graph_builder g;
  g.add_input("x", {1, 16});
  std::vector<float> mix = ori::test::ramp(256, start, 0.01f);
  if (identity)
    for (std::size_t i = 0; i < 256; ++i) mix[i] = i % 17 == 0 ? 1.0f : 0.0f;
  g.add_initializer("mix", {16, 16}, mix);
  g.add_initializer("w", {16, 8}, ori::test::ramp(128, start, 0.02f));
  g.add_initializer(ori::test::make_int64_tensor("shape", {2}, {1, 8}));
  g.add_node("MatMul", {"x", "mix"}, {"m"});
  g.add_node("MatMul", {"m", "w"}, {"h"});
  g.add_node("Relu", {"h"}, {"r"});
  g.add_node("Reshape", {"r", "shape"}, {"y"});
  g.add_output("y", {1, 8});
  return g.model();
}

}  // namespace

TEST_CASE("a fixed constant is kept, not transferred, unless a rule names it", "[transfer]") {
  ori::test::temp_dir dir;
  const auto pretrained = saved_and_loaded(mixer(false, 0.3f), (dir / "pre.onnx").string(), "");
  const auto model = ori::loaded_model::from_proto(mixer(true, -1.0f));
  const auto analysis = ori::analyze_model(model);
  auto plans = ori::make_plan(analysis, {});
  REQUIRE(plan_of(plans, "mix").tensor.fixed_constant == "values are an identity matrix");
  const auto s = ori::plan_transfer(pretrained, {}, {}, plans);
  CHECK(plan_of(plans, "mix").action == ori::plan_action::keep);
  CHECK(plan_of(plans, "w").action == ori::plan_action::transfer);
  CHECK(s.transferred == 1);
  REQUIRE(s.kept.size() == 1);
  CHECK(s.kept[0].name == "mix");
  CHECK(s.kept[0].reason == "values are an identity matrix");
  CHECK(ori::transfer_text(s).find("kept, not transferred: mix (values are an identity matrix)") !=
        std::string::npos);
  // The int64 shape constant could never be transferred: not "unused".
  CHECK(s.unused.empty());
  const std::string json =
      ori::report_json({"m", 0, ori::fan_convention::semantic, s, {}}, plans,
                       ori::preview_outcomes(plans, ori::test::standard_registry()));
  CHECK(json.find("\"kept\"") != std::string::npos);

  // A rule naming it hands it to the transfer.
  ori::plan_options named;
  named.rules.push_back(ori::parse_rule("mix=normal", "--rule 1"));
  auto named_plans = ori::make_plan(analysis, named);
  const auto s2 = ori::plan_transfer(pretrained, {}, named, named_plans);
  CHECK(plan_of(named_plans, "mix").action == ori::plan_action::transfer);
  CHECK(s2.transferred == 2);
  CHECK(s2.kept.empty());
}

TEST_CASE("two pretrained tensors mapped onto one model tensor are a usage error", "[transfer]") {
  ori::test::temp_dir dir;
  graph_builder g;
  g.add_input("x", {1, 4});
  g.add_initializer("a.w", {4, 4}, ori::test::ramp(16));
  g.add_initializer("b.w", {4, 4}, ori::test::ramp(16, 1.0f));
  g.add_node("MatMul", {"x", "a.w"}, {"h"});
  g.add_node("MatMul", {"h", "b.w"}, {"y"});
  g.add_output("y", {1, 4});
  const auto pretrained = saved_and_loaded(g.model(), (dir / "pre.onnx").string(), "");
  auto plans = ori::make_plan(
      ori::analyze_model(ori::loaded_model::from_proto(classifier("x.", 5, 0.0f))), {});
  try {
    (void)ori::plan_transfer(
        pretrained, {ori::parse_prefix_map("a.=x."), ori::parse_prefix_map("b.=x.")}, {}, plans);
    FAIL("no error");
  } catch (const ori::usage_error& e) {
    const std::string what = e.what();
    CHECK(what.find("'a.w' (by --map 'a.=x.')") != std::string::npos);
    CHECK(what.find("'b.w' (by --map 'b.=x.')") != std::string::npos);
    CHECK(what.find("into 'x.w'") != std::string::npos);
  }
  // The same OLD prefix given two NEW ones.
  CHECK_THROWS_WITH(
      ori::check_prefix_maps({ori::parse_prefix_map("W=W2"), ori::parse_prefix_map("W=B")}),
      Catch::Contains("--map 'W=W2' and --map 'W=B'"));
  CHECK_NOTHROW(
      ori::check_prefix_maps({ori::parse_prefix_map("W=W2"), ori::parse_prefix_map("W=W2")}));
}
