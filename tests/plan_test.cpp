// Tests of rules, the default policy and the planner: parsing and its
// errors, matching, rule order, --only/--skip, `auto` resolution and the
// tensors that must always be kept.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/presets.h"
#include "onnx_reinit/report.h"
#include "onnx_reinit/rules.h"
#include "onnx_reinit/sdk/gains.h"
#include "support/documented_policy.h"

namespace ori = onnx_reinit;

namespace {

ori::tensor_analysis tensor(std::string name, ori::tensor_role role,
                            ori::activation_kind act = ori::activation_kind::linear,
                            std::string op = "Gemm", double act_param = 0.0) {
  ori::tensor_analysis t;
  t.ref.name = name;
  t.info.name = std::move(name);
  t.info.shape = {4, 4};
  t.info.role = role;
  t.info.activation = act;
  t.info.activation_param = act_param;
  t.info.gain = ori::activation_gain(act, act_param);
  t.is_float = true;
  t.data_type = "float";
  t.consumer_op = std::move(op);
  return t;
}

ori::tensor_plan plan_for(const ori::tensor_analysis& t, std::vector<ori::rule> rules = {}) {
  ori::plan_options options;
  options.rules = std::move(rules);
  return ori::make_plan({t}, options).front();
}

std::string param(const ori::tensor_plan& p, const std::string& key) {
  for (const auto& [k, v] : p.call.params)
    if (k == key) return v;
  return "<absent>";
}

}  // namespace

TEST_CASE("rules parse into terms and a strategy call") {
  ori::rule r = ori::parse_rule(" op:Conv & role:weight = kaiming_normal( mode=fan_out , a=0.1 )",
                                "--rule 1");
  REQUIRE(r.terms.size() == 2);
  CHECK(r.call.strategy == "kaiming_normal");
  REQUIRE(r.call.params.size() == 2);
  CHECK(r.call.params[0] == std::make_pair(std::string("mode"), std::string("fan_out")));
  CHECK(r.text == "op:Conv&role:weight=kaiming_normal(mode=fan_out,a=0.1)");
  CHECK(r.origin == "--rule 1");
  CHECK(ori::parse_rule("*.bias=zeros", "x").has_name_term());
  CHECK_FALSE(ori::parse_rule("role:bias=zeros", "x").has_name_term());
}

TEST_CASE("bad rules are refused with what is wrong") {
  auto message = [](const std::string& text) {
    try {
      ori::parse_rule(text, "--rule 3");
    } catch (const ori::rule_error& e) {
      CHECK(e.where() == "--rule 3");
      return std::string(e.what());
    }
    FAIL("rule '" << text << "' was accepted");
    return std::string();
  };
  CHECK_THAT(message("role:weight"), Catch::Contains("no '='"));
  CHECK_THAT(message("role:wieght=zeros"), Catch::Contains("unknown role 'wieght'"));
  CHECK_THAT(message("act:rleu=zeros"), Catch::Contains("unknown act 'rleu'"));
  CHECK_THAT(message("kind:weight=zeros"), Catch::Contains("unknown match key 'kind'"));
  CHECK_THAT(message("*=normal(std)"), Catch::Contains("not key=value"));
  CHECK_THAT(message("*=normal(std=1"), Catch::Contains("missing ')'"));
  CHECK_THAT(message("*="), Catch::Contains("no strategy"));
  CHECK_THAT(message("&role:bias=zeros"), Catch::Contains("empty match term"));
}

TEST_CASE("match terms: globs, ops, roles, activations, alternatives, conjunction") {
  auto conv =
      tensor("features.0.weight", ori::tensor_role::weight, ori::activation_kind::relu, "Conv");
  CHECK(ori::parse_rule("features.*=zeros", "x").matches(conv));
  CHECK_FALSE(ori::parse_rule("classifier.*=zeros", "x").matches(conv));
  CHECK(ori::parse_rule("op:Gemm|Conv=zeros", "x").matches(conv));
  CHECK(ori::parse_rule("role:weight&act:relu|gelu=zeros", "x").matches(conv));
  CHECK_FALSE(ori::parse_rule("role:weight&act:tanh=zeros", "x").matches(conv));
  CHECK(ori::parse_rule("dtype:float32=zeros", "x").matches(conv));
  CHECK_FALSE(ori::parse_rule("dtype:float16=zeros", "x").matches(conv));
}

TEST_CASE("the default policy follows docs/DESIGN.md section 7") {
  // The expected decisions, written out here from docs/DESIGN.md section 7 and
  // README's policy table: strategy and parameters exactly as planned, gains
  // as PyTorch's calculate_gain gives them (printed with 17 digits).
  using R = ori::tensor_role;
  using A = ori::activation_kind;
  using params = std::vector<std::pair<std::string, std::string>>;
  const params kaiming = {{"mode", "fan_in"}, {"nonlinearity", "auto"}};
  struct row {
    ori::tensor_analysis t;
    std::string strategy;
    params expected;
  };
  const row rows[] = {
      // Weights before the ReLU family: kaiming_normal, fan_in, the activation's gain.
      {tensor("w", R::weight, A::relu), "kaiming_normal", kaiming},
      {tensor("w", R::weight, A::relu6), "kaiming_normal", kaiming},
      {tensor("w", R::weight, A::leaky_relu, "Gemm", 0.2), "kaiming_normal", kaiming},
      {tensor("w", R::weight, A::prelu, "Gemm", 0.25), "kaiming_normal", kaiming},
      {tensor("w", R::weight, A::elu), "kaiming_normal", kaiming},
      {tensor("w", R::weight, A::gelu, "MatMul"), "kaiming_normal", kaiming},
      {tensor("w", R::weight, A::silu, "Conv"), "kaiming_normal", kaiming},
      {tensor("w", R::weight, A::hardswish, "Conv"), "kaiming_normal", kaiming},
      {tensor("w", R::weight, A::mish), "kaiming_normal", kaiming},
      {tensor("w", R::weight, A::softplus), "kaiming_normal", kaiming},
      {tensor("w", R::weight, A::selu), "lecun_normal", {}},
      // Weights before tanh, sigmoid, hardsigmoid, linear: xavier_uniform(gain=auto).
      {tensor("w", R::weight, A::tanh), "xavier_uniform", {{"gain", "1.6666666666666667"}}},
      {tensor("w", R::weight, A::sigmoid), "xavier_uniform", {{"gain", "1"}}},
      {tensor("w", R::weight, A::hardsigmoid, "Conv"), "xavier_uniform", {{"gain", "1"}}},
      {tensor("w", R::weight, A::linear), "xavier_uniform", {{"gain", "1"}}},
      // Recurrent layers: input weights xavier_uniform (no gain), recurrence
      // orthogonal, whatever activation the analysis recorded.
      {tensor("W", R::weight, A::tanh, "LSTM"), "xavier_uniform", {}},
      {tensor("W", R::weight, A::relu, "RNN"), "xavier_uniform", {}},
      {tensor("W", R::weight, A::sigmoid, "GRU"), "xavier_uniform", {}},
      {tensor("R", R::recurrent_weight, A::tanh, "LSTM"), "orthogonal", {}},
      {tensor("R", R::recurrent_weight, A::relu, "RNN"), "orthogonal", {}},
      {tensor("R", R::recurrent_weight, A::tanh, "GRU"), "orthogonal", {}},
      // Biases, norms, statistics, embeddings, slopes.
      {tensor("b", R::bias, A::relu, "Conv"), "zeros", {}},
      {tensor("B", R::bias, A::tanh, "LSTM"), "zeros", {}},
      {tensor("B", R::bias, A::tanh, "GRU"), "zeros", {}},
      {tensor("g", R::norm_scale, A::linear, "LayerNormalization"), "ones", {}},
      {tensor("v", R::running_var, A::linear, "BatchNormalization"), "ones", {}},
      {tensor("beta", R::norm_bias, A::linear, "LayerNormalization"), "zeros", {}},
      {tensor("m", R::running_mean, A::linear, "BatchNormalization"), "zeros", {}},
      {tensor("e", R::embedding, A::linear, "Gather"), "normal", {{"mean", "0"}, {"std", "1"}}},
      {tensor("s", R::prelu_slope, A::linear, "PRelu"), "constant", {{"value", "0.25"}}},
  };
  for (const row& r : rows) {
    INFO(r.t.info.name << " " << to_string(r.t.info.role) << " " << to_string(r.t.info.activation)
                       << " " << r.t.consumer_op);
    ori::tensor_plan p = plan_for(r.t);
    CHECK(p.action == ori::plan_action::rewrite);
    CHECK(p.call.strategy == r.strategy);
    CHECK(p.call.params == r.expected);
    CHECK(p.rule_origin == "policy");
    CHECK_FALSE(p.host_value("forget_bias").has_value());  // no forget-gate rows in these tensors
  }
  // Unknown roles are kept by the policy, with the analysis' reason.
  auto unknown = tensor("u", R::unknown);
  unknown.keep_reason = "unknown role (Pow input 1)";
  ori::tensor_plan kept = plan_for(unknown);
  CHECK(kept.action == ori::plan_action::keep);
  CHECK(kept.reason == "unknown role (Pow input 1)");
}

TEST_CASE("gain=auto becomes the activation gain; LSTM biases get forget_bias") {
  ori::tensor_plan tanh_plan =
      plan_for(tensor("w", ori::tensor_role::weight, ori::activation_kind::tanh));
  CHECK(std::stod(param(tanh_plan, "gain")) == Approx(5.0 / 3.0).epsilon(1e-12));
  ori::tensor_plan relu_plan =
      plan_for(tensor("w", ori::tensor_role::weight, ori::activation_kind::relu));
  CHECK(param(relu_plan, "nonlinearity") == "auto");
  CHECK(param(relu_plan, "mode") == "fan_in");

  ori::tensor_analysis b = tensor("B", ori::tensor_role::bias, ori::activation_kind::tanh, "LSTM");
  b.forget_gate_ranges = {{2, 4}};
  ori::tensor_plan lstm_bias = plan_for(b);
  CHECK(lstm_bias.call.strategy == "zeros");
  CHECK(lstm_bias.call.params.empty());
  REQUIRE(lstm_bias.host_value("forget_bias").has_value());
  CHECK(*lstm_bias.host_value("forget_bias") == 1.0);
  // PyTorch's b_hh feeds the same LSTM but holds no forget-gate input rows:
  // zeros, and no forget_bias shown in the plan.
  ori::tensor_plan b_hh =
      plan_for(tensor("b_hh", ori::tensor_role::bias, ori::activation_kind::tanh, "LSTM"));
  CHECK(b_hh.call.strategy == "zeros");
  CHECK_FALSE(b_hh.host_value("forget_bias").has_value());
  CHECK_FALSE(plan_for(tensor("B", ori::tensor_role::bias, ori::activation_kind::tanh, "GRU"))
                  .host_value("forget_bias")
                  .has_value());
}

TEST_CASE("forget_bias goes through the parameter schema like a strategy's parameters") {
  ori::tensor_analysis b = tensor("B", ori::tensor_role::bias, ori::activation_kind::tanh, "LSTM");
  b.forget_gate_ranges = {{2, 4}};
  auto fails_with = [&](const std::string& value, const std::string& what) {
    const ori::rule r = ori::parse_rule(fmt::format("B=zeros(forget_bias={})", value), "--rule 1");
    try {
      plan_for(b, {r});
      FAIL("forget_bias=" << value << " was accepted");
    } catch (const ori::param_error& e) {
      CHECK(std::string(e.what()) == what);
      CHECK(e.where() == fmt::format("rule '{}' from --rule 1", r.text));
    }
  };
  // The texts resolve_params gives any number parameter of a strategy.
  fails_with("abc", "strategy 'zeros': parameter 'forget_bias' expects a number, got 'abc'");
  fails_with("1.5x", "strategy 'zeros': parameter 'forget_bias' expects a number, got '1.5x'");
  fails_with("inf", "strategy 'zeros': parameter 'forget_bias' expects a finite number, got 'inf'");
  // A tensor without forget-gate rows still has the value checked.
  CHECK_THROWS_AS(plan_for(tensor("b_hh", ori::tensor_role::bias, ori::activation_kind::tanh),
                           {ori::parse_rule("b_hh=zeros(forget_bias=x)", "--rule 1")}),
                  ori::param_error);
  const ori::tensor_plan ok =
      plan_for(b, {ori::parse_rule("B=zeros(forget_bias=-2.5)", "--rule 1")});
  REQUIRE(ok.host_value("forget_bias").has_value());
  CHECK(*ok.host_value("forget_bias") == -2.5);
  CHECK(ok.call.params.empty());  // not passed on to the strategy
}

TEST_CASE("gain=auto in a user rule is the gain of the tensor's activation") {
  // PyTorch's calculate_gain: relu sqrt(2), leaky_relu(0.2) sqrt(2 / (1 + 0.04)).
  const ori::rule r = ori::parse_rule("w=xavier_normal(gain=auto)", "--rule 1");
  CHECK(std::stod(
            param(plan_for(tensor("w", ori::tensor_role::weight, ori::activation_kind::relu), {r}),
                  "gain")) == Approx(std::sqrt(2.0)).epsilon(1e-12));
  const ori::tensor_analysis leaky =
      tensor("w", ori::tensor_role::weight, ori::activation_kind::leaky_relu, "Gemm", 0.2);
  CHECK(std::stod(param(plan_for(leaky, {r}), "gain")) ==
        Approx(std::sqrt(2.0 / 1.04)).epsilon(1e-12));
  // `auto` for a parameter with no per-tensor meaning is left to the
  // strategy's schema to refuse.
  CHECK(param(plan_for(tensor("w", ori::tensor_role::weight, ori::activation_kind::relu),
                       {ori::parse_rule("w=normal(std=auto)", "--rule 1")}),
              "std") == "auto");
}

TEST_CASE("user rules come first, in order; the first match decides") {
  auto t = tensor("fc.weight", ori::tensor_role::weight, ori::activation_kind::relu);
  ori::tensor_plan p = plan_for(t, {ori::parse_rule("role:bias=ones", "--rule 1"),
                                    ori::parse_rule("fc.*=normal(std=0.01)", "--rule 2"),
                                    ori::parse_rule("*=uniform", "--rule 3")});
  CHECK(p.call.strategy == "normal");
  CHECK(p.rule_origin == "--rule 2");
  CHECK(param(p, "std") == "0.01");
  ori::tensor_plan kept = plan_for(t, {ori::parse_rule("fc.*=keep", "--rule 1")});
  CHECK(kept.action == ori::plan_action::keep);
  CHECK_THAT(kept.reason, Catch::Contains("fc.*=keep"));
}

TEST_CASE("--only and --skip restrict what is rewritten") {
  std::vector<ori::tensor_analysis> ts = {tensor("a.weight", ori::tensor_role::weight),
                                          tensor("b.weight", ori::tensor_role::weight),
                                          tensor("b.bias", ori::tensor_role::bias)};
  ori::plan_options options;
  options.only = {"b.*"};
  options.skip = {"*.bias"};
  auto plans = ori::make_plan(ts, options);
  CHECK(plans[0].action == ori::plan_action::keep);
  CHECK(plans[0].reason == "not selected by --only");
  CHECK(plans[1].action == ori::plan_action::rewrite);
  CHECK(plans[2].action == ori::plan_action::keep);
  CHECK(plans[2].reason == "excluded by --skip");
}

TEST_CASE("non-float, quantized and unknown tensors are protected") {
  auto shape = tensor("shape", ori::tensor_role::unknown);
  shape.is_float = false;
  shape.data_type = "int64";
  shape.keep_reason = "non-float dtype int64";
  auto everything = {ori::parse_rule("*=zeros", "--rule 1"),
                     ori::parse_rule("shape=zeros", "--rule 2")};
  ori::tensor_plan p = plan_for(shape, everything);
  CHECK(p.action == ori::plan_action::keep);
  CHECK(p.reason == "non-float dtype int64");

  // A rule naming a tensor that is never rewritten is an error, not ignored.
  CHECK_THROWS_AS(plan_for(shape, {ori::parse_rule("shape=zeros", "--rule 1")}), ori::rule_error);
  auto quantized = tensor("qw", ori::tensor_role::weight);
  quantized.keep_reason = "quantized";
  CHECK_THROWS_AS(plan_for(quantized, {ori::parse_rule("qw=zeros", "--rule 1")}), ori::rule_error);
  CHECK(plan_for(quantized, {ori::parse_rule("qw=keep", "--rule 1")}).action ==
        ori::plan_action::keep);

  // A name pattern that also catches a shape constant beside the weights it
  // rewrites is fine; one that rewrites nothing and catches only tensors
  // never rewritten is an error.
  auto layer_shape = shape;
  layer_shape.info.name = "layer.shape";
  const auto layer_w = tensor("layer.w", ori::tensor_role::weight);
  ori::plan_options glob;
  glob.rules = {ori::parse_rule("layer.*=zeros", "--rule 1")};
  const auto plans = ori::make_plan({layer_shape, layer_w}, glob);
  CHECK(plans[0].action == ori::plan_action::keep);
  CHECK(plans[1].action == ori::plan_action::rewrite);
  CHECK_THROWS_WITH(ori::make_plan({layer_shape}, glob),
                    Catch::Contains("rule 'layer.*=zeros' names 'layer.shape'") &&
                        Catch::Contains("never rewritten"));

  auto unknown = tensor("pow_exponent", ori::tensor_role::unknown);
  unknown.keep_reason = "unknown role (Pow input 1)";
  ori::tensor_plan by_star = plan_for(unknown, {ori::parse_rule("*=zeros", "--rule 1")});
  CHECK(by_star.action == ori::plan_action::keep);
  CHECK(by_star.reason == "unknown role (Pow input 1)");
  CHECK(plan_for(unknown, {ori::parse_rule("role:unknown=zeros", "--rule 1")}).action ==
        ori::plan_action::keep);
  CHECK(plan_for(unknown, {ori::parse_rule("pow_*=ones", "--rule 1")}).action ==
        ori::plan_action::rewrite);
}

TEST_CASE("rules files: strings and maps, errors with their line") {
  const auto dir = std::filesystem::temp_directory_path() / "onnx_reinit_plan_test";
  std::filesystem::create_directories(dir);
  const auto good = dir / "rules.yaml";
  std::ofstream(good) << "rules:\n"
                         "  - \"op:Conv&role:weight=kaiming_normal(mode=fan_out)\"\n"
                         "  - match: \"fc2.*\"\n"
                         "    strategy: normal\n"
                         "    params: {std: 0.01}\n";
  auto rules = ori::load_rules_file(good);
  REQUIRE(rules.size() == 2);
  CHECK(rules[0].text == "op:Conv&role:weight=kaiming_normal(mode=fan_out)");
  CHECK(rules[1].text == "fc2.*=normal(std=0.01)");
  CHECK(rules[1].origin == good.string() + ":3");

  const auto bad = dir / "bad.yaml";
  std::ofstream(bad) << "- \"role:bias=zeros\"\n- \"role:bais=zeros\"\n";
  try {
    ori::load_rules_file(bad);
    FAIL("bad rule accepted");
  } catch (const ori::rule_error& e) {
    CHECK(e.where() == bad.string() + ":2");
    CHECK_THAT(e.what(), Catch::Contains("unknown role 'bais'"));
  }
  CHECK_THROWS_AS(ori::load_rules_file(dir / "missing.yaml"), ori::io_error);
  std::ofstream(dir / "notyaml.yaml") << "rules: [unclosed\n";
  CHECK_THROWS_AS(ori::load_rules_file(dir / "notyaml.yaml"), ori::rule_error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the policy text is the documented policy, in order") {
  // What --print-policy shows, rule for rule in the order they are tried
  // (README's table); the comment lines above them are free text.
  CHECK(onnx_reinit::test::policy_rule_lines(ori::policy_text()) ==
        onnx_reinit::test::documented_policy());
  std::vector<std::string> rules;
  for (const ori::rule& r : ori::default_policy()) rules.push_back(r.text);
  CHECK(rules == onnx_reinit::test::documented_policy());
}

namespace {

// The C locale switched to one whose decimal point is ',' for the life of
// the guard, as a library caller's program might (strtod reads "0.02" as 0
// there). Installed locales are tried first; on a machine with none, one
// is compiled with localedef (from Debian's `locales`, which tools/setup.sh
// installs) into the build tree and found through LOCPATH.
class comma_decimal_locale {
 public:
  comma_decimal_locale() : saved_(std::setlocale(LC_ALL, nullptr)) {
    if (use_installed()) return;
    const std::filesystem::path dir =
        std::filesystem::path(ONNX_REINIT_TEST_BINARY_DIR) / "comma_decimal_locale";
    if (!std::filesystem::exists(dir / "de_DE.ISO-8859-1")) {
      std::filesystem::create_directories(dir);
      const std::string command =
          fmt::format("localedef -i de_DE -f ISO-8859-1 '{}' >/dev/null 2>&1",
                      (dir / "de_DE.ISO-8859-1").string());
      if (std::system(command.c_str()) != 0) std::filesystem::remove_all(dir / "de_DE.ISO-8859-1");
    }
    const char* old = std::getenv("LOCPATH");
    if (old != nullptr) old_locpath_ = old;
    setenv("LOCPATH", dir.c_str(), 1);
    set_locpath_ = true;
    if (!try_set("de_DE.ISO-8859-1")) name_.clear();
  }
  ~comma_decimal_locale() {
    std::setlocale(LC_ALL, saved_.c_str());
    if (!set_locpath_) return;
    if (old_locpath_)
      setenv("LOCPATH", old_locpath_->c_str(), 1);
    else
      unsetenv("LOCPATH");
  }
  comma_decimal_locale(const comma_decimal_locale&) = delete;
  comma_decimal_locale& operator=(const comma_decimal_locale&) = delete;

  // The locale in use, "" when none could be had.
  const std::string& name() const { return name_; }

 private:
  bool use_installed() {
    for (const char* n : {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "de_DE",
                          "fr_FR", "ru_RU.UTF-8", "es_ES.UTF-8", "it_IT.UTF-8"})
      if (try_set(n)) return true;
    return false;
  }
  bool try_set(const char* n) {
    if (std::setlocale(LC_ALL, n) == nullptr) return false;
    if (std::localeconv()->decimal_point[0] == ',') {
      name_ = n;
      return true;
    }
    std::setlocale(LC_ALL, saved_.c_str());
    return false;
  }

  std::string saved_;
  std::string name_;
  std::optional<std::string> old_locpath_;
  bool set_locpath_ = false;
};

}  // namespace

TEST_CASE("numbers in rules and presets read the same under a comma-decimal locale") {
  const comma_decimal_locale locale;
  if (locale.name().empty()) {
    WARN(
        "skipped: no locale with a ',' decimal point is installed (locale -a) and localedef "
        "could not build de_DE; tools/setup.sh installs the Debian package locales");
    return;
  }
  INFO("locale " << locale.name());
  // The locale really reads "0.02" otherwise: what the library must not do.
  REQUIRE(std::strtod("0.02", nullptr) == 0.0);

  const ori::rule r =
      ori::parse_rule("residual:last&role:weight=normal(mean=0,std=0.02/sqrt(L))", "--rule 1");
  ori::tensor_analysis t = tensor("h.0.mlp.w", ori::tensor_role::weight);
  t.residual = ori::residual_position{};
  t.residual->branch_count = 4;
  t.residual->layer_count = 1;
  const std::optional<double> std_value =
      ori::evaluate_parameter(r.call.params[1].second, t, r.origin);
  REQUIRE(std_value.has_value());
  CHECK(*std_value == 0.01);
  CHECK(plan_for(t, {r}).call.to_string() == "normal(mean=0,std=0.01)");
  CHECK(plan_for(t, {ori::parse_rule("*=normal(std=1.5e-1*2)", "--rule 2")}).call.to_string() ==
        "normal(std=0.3)");

  // A preset's number parameters, checked and used.
  CHECK(ori::preset_rules("layerscale(value=0.1)").front().text ==
        "residual:multiplier=constant(value=0.1)");
  CHECK(ori::preset_rules("small-head(std=0.01)").front().text ==
        "layer:output&role:weight=normal(mean=0,std=0.01)");
  CHECK_THROWS_WITH(ori::preset_rules("layerscale(value=0,1)"),
                    Catch::Contains("takes value=1e-5"));
}

TEST_CASE("a '*' name term names nothing: unknown roles and fixed constants need a real name") {
  ori::tensor_analysis basis = tensor("dft_basis", ori::tensor_role::weight, {}, "MatMul");
  basis.fixed_constant = "a DFT basis (fixed constant)";
  ori::tensor_analysis offset = tensor("offset", ori::tensor_role::unknown, {}, "Add");
  for (const char* text :
       {"*=normal(std=1)", "*&role:weight=normal(std=1)", "*&op:MatMul|Add=normal(std=1)"}) {
    INFO(text);
    const ori::rule r = ori::parse_rule(text, "--rule 1");
    CHECK_FALSE(r.names_tensors());
    CHECK(plan_for(basis, {r}).action == ori::plan_action::keep);
    CHECK(plan_for(offset, {r}).action == ori::plan_action::keep);
  }
  const ori::rule named = ori::parse_rule("dft_*|offset&op:MatMul|Add=normal(std=1)", "--rule 1");
  CHECK(named.names_tensors());
  CHECK(plan_for(basis, {named}).action == ori::plan_action::rewrite);
  CHECK(plan_for(offset, {named}).action == ori::plan_action::rewrite);
  // An ordinary weight is still decided by a '*&...' rule.
  CHECK(plan_for(tensor("fc.w", ori::tensor_role::weight),
                 {ori::parse_rule("*&role:weight=normal(std=1)", "--rule 1")})
            .action == ori::plan_action::rewrite);
}
