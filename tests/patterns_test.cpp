// Decomposed norms and activations: each exported form is analysed and
// planned exactly like the fused op (same role, fans, activation, gain,
// strategy and parameters for the weights before it; norm roles for the
// decomposed norm's gamma and beta), near misses are not taken for the
// pattern, and a PReLU's gain follows the slope the plan writes.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/rules.h"
#include "onnx_reinit/sdk/gains.h"
#include "support/decomposed_ops.h"
#include "support/onnx_builder.h"
#include "support/standard_registry.h"

using namespace onnx_reinit;
namespace fs = std::filesystem;
using namespace onnx_reinit::test;

namespace {

constexpr std::int64_t k_in = 8, k_out = 6;

std::vector<tensor_plan> plan(const graph_builder& b, std::int64_t opset = 17,
                              std::vector<rule> rules = {},
                              const registry& strategies = standard_registry()) {
  onnx::ModelProto m = b.model(opset);
  set_opset(m, "com.microsoft", 1);
  plan_options options;
  options.rules = std::move(rules);
  options.strategies = &strategies;
  return make_plan(analyze_model(m), options);
}

const tensor_plan& find(const std::vector<tensor_plan>& all, const std::string& name) {
  for (const auto& p : all)
    if (p.tensor.info.name == name) return p;
  FAIL("no tensor " << name);
  throw 0;
}

// The plan fields a decomposed form must reproduce.
void check_same_plan(const tensor_plan& a, const tensor_plan& b) {
  INFO(a.tensor.info.name << " vs " << b.tensor.info.name);
  CHECK(to_string(a.tensor.info.role) == to_string(b.tensor.info.role));
  CHECK(a.tensor.info.fan_in == b.tensor.info.fan_in);
  CHECK(a.tensor.info.fan_out == b.tensor.info.fan_out);
  CHECK(to_string(a.tensor.info.activation) == to_string(b.tensor.info.activation));
  CHECK(a.tensor.info.activation_param == Approx(b.tensor.info.activation_param));
  CHECK(a.tensor.info.gain == Approx(b.tensor.info.gain));
  CHECK(a.action == b.action);
  CHECK(a.call.strategy == b.call.strategy);
  CHECK(a.call.params == b.call.params);
}

// x[1, k_in] · W[k_out, k_in]^T + B by Gemm (transB), output "y".
graph_builder gemm_layer() {
  graph_builder b;
  b.add_input("x", {1, k_in});
  b.add_initializer("W", {k_out, k_in}, ramp(k_out * k_in, -0.5f, 0.01f));
  b.add_initializer("B", {k_out}, ramp(k_out));
  b.add_node("Gemm", {"x", "W", "B"}, {"y"}, {make_attribute("transB", std::int64_t{1})});
  return b;
}

// Conv 4->8 channels 3x3 on [1,4,6,6], output "y".
graph_builder conv_layer() {
  graph_builder b;
  b.add_input("x", {1, 4, 6, 6});
  b.add_initializer("W", {8, 4, 3, 3}, ramp(8 * 4 * 9, -1.0f, 0.005f));
  b.add_initializer("B", {8}, ramp(8));
  b.add_node("Conv", {"x", "W", "B"}, {"y"});
  return b;
}

// Adds gamma/beta of `n` elements with trained-looking values.
void add_gamma_beta(graph_builder& b, std::vector<std::int64_t> dims) {
  std::size_t n = 1;
  for (auto d : dims) n *= static_cast<std::size_t>(d);
  b.add_initializer("gamma", dims, ramp(n, 0.9f, 0.01f));
  b.add_initializer("beta", dims, ramp(n, -0.1f, 0.01f));
}

// The weight and bias before the pattern are planned alike, with the
// expected activation.
void check_layer(const std::vector<tensor_plan>& fused, const std::vector<tensor_plan>& decomposed,
                 activation_kind want) {
  CHECK(to_string(find(fused, "W").tensor.info.activation) == to_string(want));
  for (const char* name : {"W", "B"}) check_same_plan(find(fused, name), find(decomposed, name));
}

void check_norm_params(const std::vector<tensor_plan>& fused,
                       const std::vector<tensor_plan>& decomposed, bool with_beta = true) {
  CHECK(find(decomposed, "gamma").tensor.info.role == tensor_role::norm_scale);
  check_same_plan(find(fused, "gamma"), find(decomposed, "gamma"));
  CHECK(find(decomposed, "gamma").call.strategy == "ones");
  if (!with_beta) return;
  CHECK(find(decomposed, "beta").tensor.info.role == tensor_role::norm_bias);
  check_same_plan(find(fused, "beta"), find(decomposed, "beta"));
  CHECK(find(decomposed, "beta").call.strategy == "zeros");
}

// A Gemm followed by `act(y) -> "z"`, built by `build`.
std::vector<tensor_plan> gemm_then(const std::function<void(graph_builder&)>& build,
                                   std::int64_t opset = 17) {
  auto b = gemm_layer();
  build(b);
  return plan(b, opset);
}

}  // namespace

TEST_CASE("decomposed LayerNorm between Gemm and Relu reads as LayerNormalization") {
  auto fused_b = gemm_layer();
  add_gamma_beta(fused_b, {k_out});
  fused_b.add_node("LayerNormalization", {"y", "gamma", "beta"}, {"n"},
                   {make_attribute("axis", std::int64_t{-1})});
  fused_b.add_node("Relu", {"n"}, {"z"});
  auto fused = plan(fused_b);
  REQUIRE(find(fused, "W").call.strategy == "kaiming_normal");

  struct variant {
    const char* name;
    rstd_form rstd;
    bool eps, square_pow;
  };
  for (auto v : {variant{"Pow/Sqrt/Div with eps (PyTorch)", rstd_form::div_sqrt, true, true},
                 variant{"Mul/Reciprocal, no eps", rstd_form::mul_reciprocal, false, false},
                 variant{"1/Sqrt then Mul", rstd_form::mul_one_over, true, true},
                 variant{"Pow -0.5 then Mul", rstd_form::mul_pow_neg_half, true, false}}) {
    SECTION(v.name) {
      auto b = gemm_layer();
      add_gamma_beta(b, {k_out});
      add_decomposed_layer_norm(b, "y", "n", {v.rstd, v.eps, v.square_pow, "gamma", "beta"});
      b.add_node("Relu", {"n"}, {"z"});
      auto decomposed = plan(b);
      check_layer(fused, decomposed, activation_kind::relu);
      check_norm_params(fused, decomposed);
      CHECK(find(decomposed, "gamma").tensor.notes ==
            std::vector<std::string>{"scale of a decomposed LayerNormalization"});
    }
  }
}

TEST_CASE("decomposed RMSNorm reads as SimplifiedLayerNormalization") {
  auto fused_b = gemm_layer();
  fused_b.add_initializer("gamma", {k_out}, ramp(k_out, 0.9f, 0.01f));
  fused_b.add_node("SimplifiedLayerNormalization", {"y", "gamma"}, {"n"}, {}, "", "com.microsoft");
  fused_b.add_node("Relu", {"n"}, {"z"});
  auto fused = plan(fused_b);
  for (auto rstd : {rstd_form::mul_reciprocal, rstd_form::div_sqrt}) {
    auto b = gemm_layer();
    b.add_initializer("gamma", {k_out}, ramp(k_out, 0.9f, 0.01f));
    add_decomposed_rms_norm(b, "y", "n", {rstd, true, true, "gamma", ""});
    b.add_node("Relu", {"n"}, {"z"});
    auto decomposed = plan(b);
    check_layer(fused, decomposed, activation_kind::relu);
    check_norm_params(fused, decomposed, false);
  }
}

TEST_CASE(
    "GroupNorm as Reshape/InstanceNormalization/Reshape/Mul/Add reads as GroupNormalization") {
  auto fused_b = conv_layer();
  add_gamma_beta(fused_b, {8});
  fused_b.add_node("GroupNormalization", {"y", "gamma", "beta"}, {"n"},
                   {make_attribute("num_groups", std::int64_t{2})});
  fused_b.add_node("Relu", {"n"}, {"z"});
  auto fused = plan(fused_b, 21);
  auto b = conv_layer();
  add_gamma_beta(b, {8, 1, 1});
  add_decomposed_group_norm(b, "y", "n", 2, {1, 8, 4, 4},
                            {rstd_form::div_sqrt, true, true, "gamma", "beta"});
  b.add_node("Relu", {"n"}, {"z"});
  auto decomposed = plan(b, 21);
  check_layer(fused, decomposed, activation_kind::relu);
  check_norm_params(fused, decomposed);
}

TEST_CASE("swish with beta, Paddle's x*Sigmoid(1*x), and the sigmoid GELU approximation") {
  auto silu = gemm_then([](graph_builder& b) {
    b.add_node("Sigmoid", {"y"}, {"s"});
    b.add_node("Mul", {"y", "s"}, {"z"});
  });
  CHECK(find(silu, "W").tensor.info.activation == activation_kind::silu);
  CHECK(find(silu, "W").tensor.info.activation_param == 1.0);  // beta

  // Paddle2ONNX: Mul(x, 1.0) -> Sigmoid -> Mul(x, .)
  auto paddle = gemm_then([](graph_builder& b) {
    b.add_node("Mul", {"y", scalar(b, "one", 1.0f)}, {"yb"});
    b.add_node("Sigmoid", {"yb"}, {"s"});
    b.add_node("Mul", {"y", "s"}, {"z"});
  });
  check_layer(silu, paddle, activation_kind::silu);

  auto beta2 = gemm_then([](graph_builder& b) {
    b.add_node("Mul", {scalar(b, "two", 2.0f), "y"}, {"yb"});
    b.add_node("Sigmoid", {"yb"}, {"s"});
    b.add_node("Mul", {"s", "y"}, {"z"});
  });
  const auto& w = find(beta2, "W");
  CHECK(w.tensor.info.activation == activation_kind::silu);
  CHECK(w.tensor.info.activation_param == 2.0);
  CHECK(w.tensor.info.gain == std::sqrt(2.0));  // DESIGN: silu uses sqrt(2) whatever beta
  CHECK(w.call.strategy == "kaiming_normal");

  auto gelu = gemm_then([](graph_builder& b) { b.add_node("Gelu", {"y"}, {"z"}); }, 20);
  auto gelu_approx = gemm_then(
      [](graph_builder& b) {
        b.add_node("Mul", {"y", scalar(b, "k", 1.702f)}, {"yb"});
        b.add_node("Sigmoid", {"yb"}, {"s"});
        b.add_node("Mul", {"y", "s"}, {"z"});
      },
      20);
  check_layer(gelu, gelu_approx, activation_kind::gelu);
}

TEST_CASE("swish negatives: the Sigmoid's input is not beta*x") {
  // x * Sigmoid(x + 1): the walk goes through the Add to the Sigmoid.
  auto shifted = gemm_then([](graph_builder& b) {
    b.add_node("Add", {"y", scalar(b, "one", 1.0f)}, {"yb"});
    b.add_node("Sigmoid", {"yb"}, {"s"});
    b.add_node("Mul", {"y", "s"}, {"z"});
  });
  CHECK(find(shifted, "W").tensor.info.activation == activation_kind::sigmoid);
  // x * Sigmoid(x * x): a product of two activations, not a scaling.
  auto squared = gemm_then([](graph_builder& b) {
    b.add_node("Mul", {"y", "y"}, {"yb"});
    b.add_node("Sigmoid", {"yb"}, {"s"});
    b.add_node("Mul", {"y", "s"}, {"z"});
  });
  CHECK(find(squared, "W").tensor.info.activation == activation_kind::linear);
  // Sigmoid(2x) gating another value v: not a swish of x.
  auto other = gemm_then([](graph_builder& b) {
    b.add_input("v", {1, k_out});
    b.add_node("Mul", {"y", scalar(b, "two", 2.0f)}, {"yb"});
    b.add_node("Sigmoid", {"yb"}, {"s"});
    b.add_node("Mul", {"v", "s"}, {"z"});
  });
  CHECK(find(other, "W").tensor.info.activation == activation_kind::sigmoid);
}

TEST_CASE("hardswish forms read as HardSwish") {
  auto fused = gemm_then([](graph_builder& b) { b.add_node("HardSwish", {"y"}, {"z"}); }, 14);
  auto clip = [](graph_builder& b, const std::string& in, const std::string& out) {
    b.add_node("Clip", {in, scalar(b, "zero", 0.0f), scalar(b, "six", 6.0f)}, {out});
  };
  std::vector<std::pair<const char*, std::function<void(graph_builder&)>>> forms = {
      {"x*Clip(x+3,0,6) then Div 6 (Paddle2ONNX)",
       [&](graph_builder& b) {
         b.add_node("Add", {"y", scalar(b, "three", 3.0f)}, {"h"});
         clip(b, "h", "r");
         b.add_node("Mul", {"y", "r"}, {"p"});
         b.add_node("Div", {"p", scalar(b, "six_d", 6.0f)}, {"z"});
       }},
      {"x*(Clip(3+x,0,6)/6)",
       [&](graph_builder& b) {
         b.add_node("Add", {scalar(b, "three", 3.0f), "y"}, {"h"});
         clip(b, "h", "r");
         b.add_node("Div", {"r", scalar(b, "six_d", 6.0f)}, {"r6"});
         b.add_node("Mul", {"r6", "y"}, {"z"});
       }},
      {"Clip(x+3,0,6)*x then Mul 1/6",
       [&](graph_builder& b) {
         b.add_node("Add", {"y", scalar(b, "three", 3.0f)}, {"h"});
         clip(b, "h", "r");
         b.add_node("Mul", {"r", "y"}, {"p"});
         b.add_node("Mul", {"p", scalar(b, "sixth", 1.0f / 6.0f)}, {"z"});
       }},
      {"(x/6)*Min(Max(x+3,0),6) (tf2onnx relu6)",
       [&](graph_builder& b) {
         b.add_node("Add", {"y", scalar(b, "three", 3.0f)}, {"h"});
         b.add_node("Max", {"h", scalar(b, "zero", 0.0f)}, {"m"});
         b.add_node("Min", {"m", scalar(b, "six", 6.0f)}, {"r"});
         b.add_node("Div", {"y", scalar(b, "six_d", 6.0f)}, {"y6"});
         b.add_node("Mul", {"y6", "r"}, {"z"});
       }},
      {"x*Min(Relu(x+3),6)/6",
       [&](graph_builder& b) {
         b.add_node("Add", {"y", scalar(b, "three", 3.0f)}, {"h"});
         b.add_node("Relu", {"h"}, {"m"});
         b.add_node("Min", {"m", scalar(b, "six", 6.0f)}, {"r"});
         b.add_node("Mul", {"y", "r"}, {"p"});
         b.add_node("Div", {"p", scalar(b, "six_d", 6.0f)}, {"z"});
       }},
      {"x*HardSigmoid(x, alpha=1/6) (PyTorch opset < 14)",
       [&](graph_builder& b) {
         b.add_node("HardSigmoid", {"y"}, {"s"},
                    {make_attribute("alpha", 1.0f / 6.0f), make_attribute("beta", 0.5f)});
         b.add_node("Mul", {"y", "s"}, {"z"});
       }},
  };
  for (auto& [name, build] : forms) {
    SECTION(name) {
      check_layer(fused, gemm_then(build, 14), activation_kind::hardswish);
    }
  }
}

TEST_CASE("hardswish negatives: Clip(x+3,0,6) not multiplied by x stays relu6") {
  auto b = gemm_layer();
  b.add_node("Add", {"y", scalar(b, "three", 3.0f)}, {"h"});
  b.add_node("Clip", {"h", scalar(b, "zero", 0.0f), scalar(b, "six", 6.0f)}, {"r"});
  b.add_node("Div", {"r", scalar(b, "six_d", 6.0f)}, {"z"});
  auto all = plan(b);
  CHECK(find(all, "W").tensor.info.activation == activation_kind::relu6);
  // x*Clip(x+3,0,6) without the division by 6 is not taken for hardswish
  // either: the product is a gating the walk does not pass.
  auto g = gemm_layer();
  g.add_node("Add", {"y", scalar(g, "three", 3.0f)}, {"h"});
  g.add_node("Clip", {"h", scalar(g, "zero", 0.0f), scalar(g, "six", 6.0f)}, {"r"});
  g.add_node("Mul", {"y", "r"}, {"z"});
  CHECK(find(plan(g), "W").tensor.info.activation != activation_kind::hardswish);
}

TEST_CASE("mish with Softplus and with Log(Exp(x)+1)") {
  auto fused = gemm_then([](graph_builder& b) { b.add_node("Mish", {"y"}, {"z"}); }, 18);
  auto softplus = gemm_then(
      [](graph_builder& b) {
        b.add_node("Softplus", {"y"}, {"sp"});
        b.add_node("Tanh", {"sp"}, {"t"});
        b.add_node("Mul", {"y", "t"}, {"z"});
      },
      18);
  check_layer(fused, softplus, activation_kind::mish);
  auto log_exp = gemm_then(
      [](graph_builder& b) {
        b.add_node("Exp", {"y"}, {"e"});
        b.add_node("Add", {"e", scalar(b, "one", 1.0f)}, {"a"});
        b.add_node("Log", {"a"}, {"sp"});
        b.add_node("Tanh", {"sp"}, {"t"});
        b.add_node("Mul", {"t", "y"}, {"z"});
      },
      18);
  check_layer(fused, log_exp, activation_kind::mish);
  // Log(Exp(x)+1) alone is softplus.
  auto fused_sp = gemm_then([](graph_builder& b) { b.add_node("Softplus", {"y"}, {"z"}); });
  auto sp = gemm_then([](graph_builder& b) {
    b.add_node("Exp", {"y"}, {"e"});
    b.add_node("Add", {"e", scalar(b, "one", 1.0f)}, {"a"});
    b.add_node("Log", {"a"}, {"z"});
  });
  check_layer(fused_sp, sp, activation_kind::softplus);
}

TEST_CASE("tf2onnx forms: LeakyRelu as Max(x, alpha*x), Relu6 as Min(Max(x,0),6), Max(x,0)") {
  auto leaky = gemm_then([](graph_builder& b) {
    b.add_node("LeakyRelu", {"y"}, {"z"}, {make_attribute("alpha", 0.2f)});
  });
  auto max_form = gemm_then([](graph_builder& b) {
    b.add_node("Mul", {"y", scalar(b, "alpha", 0.2f)}, {"ya"});
    b.add_node("Max", {"y", "ya"}, {"z"});
  });
  check_layer(leaky, max_form, activation_kind::leaky_relu);
  CHECK(find(max_form, "W").tensor.info.activation_param == Approx(0.2));

  auto relu6 = gemm_then([](graph_builder& b) {
    b.add_node("Clip", {"y", scalar(b, "zero", 0.0f), scalar(b, "six", 6.0f)}, {"z"});
  });
  auto min_max = gemm_then([](graph_builder& b) {
    b.add_node("Max", {"y", scalar(b, "zero", 0.0f)}, {"m"});
    b.add_node("Min", {"m", scalar(b, "six", 6.0f)}, {"z"});
  });
  check_layer(relu6, min_max, activation_kind::relu6);

  auto relu = gemm_then([](graph_builder& b) { b.add_node("Relu", {"y"}, {"z"}); });
  auto max0 = gemm_then([](graph_builder& b) {
    b.add_node("Max", {"y", scalar(b, "zero", 0.0f)}, {"z"});
  });
  check_layer(relu, max0, activation_kind::relu);
  // Max with another floor is no relu.
  auto floor = gemm_then([](graph_builder& b) {
    b.add_node("Max", {"y", scalar(b, "floor", -0.4f)}, {"z"});
  });
  CHECK(find(floor, "W").tensor.info.activation == activation_kind::linear);
}

TEST_CASE("PReLU gain is that of the slope the plan writes") {
  auto b = gemm_layer();
  b.add_initializer("slope", {1}, {0.7f});
  b.add_node("PRelu", {"y", "slope"}, {"z"});
  const double policy_gain = std::sqrt(2.0 / (1.0 + 0.25 * 0.25));
  const double trained_gain = std::sqrt(2.0 / (1.0 + 0.7 * 0.7));

  SECTION("default policy: slope reset to 0.25") {
    auto all = plan(b);
    CHECK(find(all, "slope").call.strategy == "constant");
    const auto& w = find(all, "W");
    CHECK(w.call.strategy == "kaiming_normal");
    CHECK(w.tensor.info.activation_param == Approx(0.25));
    CHECK(w.tensor.info.gain == Approx(policy_gain));
  }
  SECTION("slope kept by a rule: the trained 0.7") {
    auto all = plan(b, 17, {parse_rule("slope=keep", "--rule 1")});
    CHECK(find(all, "slope").action == plan_action::keep);
    CHECK(find(all, "W").tensor.info.activation_param == Approx(0.7));
    CHECK(find(all, "W").tensor.info.gain == Approx(trained_gain));
  }
  SECTION("slope set by a rule's constant, and gain=auto follows it") {
    auto all = plan(b, 17,
                    {parse_rule("slope=constant(value=0.5)", "--rule 1"),
                     parse_rule("W=xavier_uniform(gain=auto)", "--rule 2")});
    const auto& w = find(all, "W");
    CHECK(w.tensor.info.activation_param == Approx(0.5));
    REQUIRE(w.call.params.size() == 1);
    CHECK(std::stod(w.call.params[0].second) == Approx(std::sqrt(2.0 / 1.25)));
  }
  SECTION("slope written by any strategy declaring a constant, whatever its name") {
    // The fixture's strategy writes 0.4 and says so through its moments (std 0).
    registry with_fixture;
    with_fixture.load_directory(ONNX_REINIT_BUILD_PLUGIN_DIR);
    REQUIRE(with_fixture.load_file(fs::path(ONNX_REINIT_FIXTURE_SDK_PLUGIN_DIR) / "moments.so"));
    auto all = plan(b, 17,
                    {parse_rule("slope=fixture_moments_constant", "--rule 1"),
                     parse_rule("W=xavier_uniform(gain=auto)", "--rule 2")},
                    with_fixture);
    const auto& w = find(all, "W");
    CHECK(w.tensor.info.activation_param == Approx(0.4));
    CHECK(w.tensor.notes.empty());
    REQUIRE(w.call.params.size() == 1);
    CHECK(std::stod(w.call.params[0].second) == Approx(std::sqrt(2.0 / (1.0 + 0.4 * 0.4))));
  }
  SECTION("slope written by a strategy with spread: PyTorch's initial 0.25, with a note") {
    auto all = plan(b, 17, {parse_rule("slope=uniform(low=0.3,high=0.31)", "--rule 1")});
    CHECK(find(all, "W").tensor.info.activation_param == Approx(0.25));
    REQUIRE(!find(all, "W").tensor.notes.empty());
  }
  SECTION("without a registry to ask, every rewritten slope counts as drawn") {
    onnx::ModelProto m = b.model(17);
    plan_options options;
    options.rules = {parse_rule("slope=constant(value=0.5)", "--rule 1")};
    const auto all = make_plan(analyze_model(m), options);
    CHECK(find(all, "W").tensor.info.activation_param == Approx(0.25));
    REQUIRE(!find(all, "W").tensor.notes.empty());
    CHECK(find(all, "W").tensor.notes.back().find("drawn by constant") != std::string::npos);
  }
  SECTION("random slope: PyTorch's initial 0.25, with a note") {
    auto all = plan(b, 17, {parse_rule("slope=normal(std=0.1)", "--rule 1")});
    const auto& w = find(all, "W");
    CHECK(w.tensor.info.gain == Approx(policy_gain));
    REQUIRE(!w.tensor.notes.empty());
    CHECK(w.tensor.notes.back().find("drawn by normal") != std::string::npos);
  }
}
