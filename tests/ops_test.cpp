// The op table (core/onnx/analysis/ops.h, docs/DESIGN.md section 6): its
// entries are consistent, and what an entry states is what the analysis
// does with the op, on graphs built here: a norm's scale is planned as a
// norm scale (ones), the activation walk sees through the norm to the
// nonlinearity after it, and a norm ending a residual branch is the
// branch's last norm.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/plan.h"
#include "ops.h"
#include "support/onnx_builder.h"

using namespace onnx_reinit;
using namespace onnx_reinit::test;
using onnx_reinit::detail::fan_kind;
using onnx_reinit::detail::op_entry;
using onnx_reinit::detail::op_table;
using onnx_reinit::detail::slot_fans;

namespace {

const tensor_analysis& find(const std::vector<tensor_analysis>& all, const std::string& name) {
  for (const auto& a : all)
    if (a.ref.name == name) return a;
  FAIL("no tensor " << name);
  throw 0;
}

const tensor_plan& plan_of(const std::vector<tensor_plan>& plans, const std::string& name) {
  for (const auto& p : plans)
    if (p.tensor.ref.name == name) return p;
  FAIL("no plan for " << name);
  throw 0;
}

// x + Norm2(MatMul(Relu(Norm(MatMul(x, W1))), W2)), then a head: the norm
// `op` after the first layer (its scale `s1`, and bias `b1` when
// `with_bias`) and at the end of the residual branch (scale `s2`).
onnx::ModelProto norm_block(const std::string& op, bool with_bias, std::int64_t opset) {
  graph_builder b;
  b.add_input("x", {2, 8});
  b.add_initializer("W1", {8, 8}, ramp(64));
  b.add_initializer("W2", {8, 8}, ramp(64));
  b.add_initializer("Wh", {8, 4}, ramp(32));
  b.add_initializer("s1", {8}, ramp(8));
  b.add_initializer("s2", {8}, ramp(8));
  std::vector<std::string> norm1{"h", "s1"}, norm2{"o", "s2"};
  if (with_bias) {
    b.add_initializer("b1", {8}, ramp(8));
    b.add_initializer("b2", {8}, ramp(8));
    norm1.push_back("b1");
    norm2.push_back("b2");
  }
  b.add_node("MatMul", {"x", "W1"}, {"h"});
  b.add_node(op, norm1, {"n"});
  b.add_node("Relu", {"n"}, {"r"});
  b.add_node("MatMul", {"r", "W2"}, {"o"});
  b.add_node(op, norm2, {"m"});
  b.add_node("Add", {"x", "m"}, {"y"});
  b.add_node("MatMul", {"y", "Wh"}, {"logits"});
  b.add_output("logits", {2, 4});
  return b.model(opset);
}

// What the analysis and the default policy make of norm_block's tensors.
void check_norm_block(const onnx::ModelProto& model) {
  const std::vector<tensor_analysis> all = analyze_model(model);
  const tensor_analysis& s1 = find(all, "s1");
  CHECK(s1.info.role == tensor_role::norm_scale);
  CHECK(s1.info.fan_in == 8.0);
  CHECK(s1.keep_reason.empty());
  const std::vector<tensor_plan> plans = make_plan(all, {});
  CHECK(plan_of(plans, "s1").action == plan_action::rewrite);
  CHECK(plan_of(plans, "s1").call.strategy == "ones");
  CHECK(plan_of(plans, "s2").call.strategy == "ones");
  // The activation walk passes the norm: W1 is followed by its Relu.
  CHECK(find(all, "W1").info.activation == activation_kind::relu);
  CHECK(find(all, "W1").activation_input == "n");
  // The residual branch ends in the norm: its scale is the branch's last norm.
  const tensor_analysis& s2 = find(all, "s2");
  REQUIRE(s2.residual);
  CHECK(s2.residual->where == residual_position::part::norm);
  const tensor_analysis& w2 = find(all, "W2");
  REQUIRE(w2.residual);
  CHECK(w2.residual->layer_count == 2);
  CHECK(find(all, "Wh").output_layer);
}

}  // namespace

TEST_CASE("the op table has one entry per op, and consistent slots") {
  std::set<std::pair<std::string_view, std::string_view>> seen;
  for (const op_entry& e : op_table()) {
    INFO(std::string(e.domain) << " " << std::string(e.op));
    CHECK(seen.emplace(e.domain, e.op).second);
    CHECK((e.domain.empty() || e.domain == "com.microsoft"));
    std::set<int> slots;
    bool weight = false;
    for (const auto& s : e.slots) {
      if (s.slot < 0) continue;
      CHECK(slots.insert(s.slot).second);
      weight = weight || s.role == tensor_role::weight;
      // Only an op with a fan function has slots read by it.
      if (s.fans == slot_fans::own) CHECK(e.fans != fan_kind::none);
      CHECK((s.min_rank <= s.max_rank || s.max_rank == 0));
    }
    const bool layer = e.fans == fan_kind::conv || e.fans == fan_kind::conv_transpose ||
                       e.fans == fan_kind::gemm || e.fans == fan_kind::matmul;
    if (layer) CHECK(weight);
    for (const auto& s : e.slots)
      if (s.slot >= 0 && s.fans == slot_fans::weight) CHECK(weight);
    CHECK(e.forget_gate < e.gates);
    CHECK(e.cell_activation >= 0);
  }
}

TEST_CASE("a table op is found in its domain only") {
  onnx::NodeProto n;
  n.set_op_type("LayerNormalization");
  CHECK(detail::op_info(n).moments == detail::moment_rule::norm);
  n.set_domain("ai.onnx");
  CHECK(detail::op_info(n).moments == detail::moment_rule::norm);
  n.set_domain("com.microsoft");
  CHECK(detail::op_info(n).moments == detail::moment_rule::norm);
  n.set_domain("org.example");
  CHECK(detail::op_info(n).moments == detail::moment_rule::unknown);
  CHECK(detail::op_info(n).slots[0].slot == -1);
  n.set_op_type("FusedConv");
  n.set_domain("");
  CHECK(detail::op_info(n).fans == fan_kind::none);
  n.set_domain("com.microsoft");
  CHECK(detail::op_info(n).fans == fan_kind::conv);
}

TEST_CASE("LayerNormalization: scale planned as ones, walked through, a branch's last norm") {
  check_norm_block(norm_block("LayerNormalization", true, 17));
}

TEST_CASE("RMSNormalization (opset 23): scale is ones, walked through, last norm of a branch") {
  check_norm_block(norm_block("RMSNormalization", false, 23));
}
