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
      ori::report_json({"m", 0, ori::fan_convention::semantic, t.summary}, t.plans, t.outcomes);
  CHECK(json.find("\"action\": \"transferred\"") != std::string::npos);
  CHECK(json.find("\"source_shape\"") != std::string::npos);
}
