// The scalar evaluator of elementwise ONNX ops, with the ONNX defaults of
// their attributes (operators spec, opset 1-23).
#include "elementwise.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numbers>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace onnx_reinit::signal {
namespace {

constexpr double selu_alpha = 1.67326319217681884765625;
constexpr double selu_gamma = 1.05070102214813232421875;

double sigmoid(double x) {
  return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
}
double softplus(double x) {
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
double gelu_erf(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::numbers::sqrt2));
}
double gelu_tanh(double x) {
  const double c = std::sqrt(2.0 / std::numbers::pi);
  return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
}
double elu(double x, double alpha) {
  return x > 0 ? x : alpha * std::expm1(x);
}
double hardsigmoid(double x, double alpha, double beta) {
  return std::clamp(alpha * x + beta, 0.0, 1.0);
}

// One op on its inputs' values; NaN for an op this evaluator does not know.
double evaluate(const elementwise_program::step& s, double a, double b) {
  const std::string& op = s.op;
  if (op == "Identity" || op == "Dropout" || op == "Cast") return a;
  if (op == "Relu") return std::max(a, 0.0);
  if (op == "LeakyRelu" || op == "PRelu") return a >= 0 ? a : s.alpha * a;
  if (op == "Elu") return elu(a, s.alpha);
  if (op == "Celu") return std::max(a, 0.0) + std::min(0.0, s.alpha * std::expm1(a / s.alpha));
  if (op == "Selu") return a > 0 ? s.gamma * a : s.gamma * s.alpha * std::expm1(a);
  if (op == "Gelu") return s.tanh_approximation ? gelu_tanh(a) : gelu_erf(a);
  if (op == "Sigmoid") return sigmoid(a);
  if (op == "HardSigmoid") return hardsigmoid(a, s.alpha, s.beta);
  if (op == "HardSwish") return a * hardsigmoid(a, 1.0 / 6.0, 0.5);
  if (op == "Softplus") return softplus(a);
  if (op == "Softsign") return a / (1.0 + std::abs(a));
  if (op == "Mish") return a * std::tanh(softplus(a));
  if (op == "Tanh") return std::tanh(a);
  if (op == "Erf") return std::erf(a);
  if (op == "Exp") return std::exp(a);
  if (op == "Log") return std::log(a);
  if (op == "Abs") return std::abs(a);
  if (op == "Neg") return -a;
  if (op == "Sqrt") return std::sqrt(a);
  if (op == "Reciprocal") return 1.0 / a;
  if (op == "Sin") return std::sin(a);
  if (op == "Cos") return std::cos(a);
  if (op == "Sign") return a > 0 ? 1.0 : a < 0 ? -1.0 : 0.0;
  if (op == "Floor") return std::floor(a);
  if (op == "Ceil") return std::ceil(a);
  if (op == "Round") return std::nearbyint(a);
  if (op == "ThresholdedRelu") return a > s.alpha ? a : 0.0;
  if (op == "Shrink") return a < -s.alpha ? a + s.beta : a > s.alpha ? a - s.beta : 0.0;
  if (op == "Clip") return std::clamp(a, s.alpha, s.beta);
  if (op == "Add") return a + b;
  if (op == "Sub") return a - b;
  if (op == "Mul") return a * b;
  if (op == "Div") return a / b;
  if (op == "Pow") return std::pow(a, b);
  if (op == "Max") return std::max(a, b);
  if (op == "Min") return std::min(a, b);
  return std::numeric_limits<double>::quiet_NaN();
}

constexpr const char* unary_ops[] = {
    "Identity", "Dropout",  "Cast",  "Relu",    "LeakyRelu",   "Elu",
    "Celu",     "Selu",     "Gelu",  "Sigmoid", "HardSigmoid", "HardSwish",
    "Softplus", "Softsign", "Mish",  "Tanh",    "Erf",         "Exp",
    "Log",      "Abs",      "Neg",   "Sqrt",    "Reciprocal",  "Sin",
    "Cos",      "Sign",     "Floor", "Ceil",    "Round",       "ThresholdedRelu",
    "Shrink"};
constexpr const char* binary_ops[] = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "PRelu"};

bool is_unary(const std::string& op) {
  return std::find(std::begin(unary_ops), std::end(unary_ops), op) != std::end(unary_ops);
}

const onnx::AttributeProto* attribute(const onnx::NodeProto& node, const char* name) {
  for (const auto& a : node.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}
double float_attribute(const onnx::NodeProto& node, const char* name, double fallback) {
  const onnx::AttributeProto* a = attribute(node, name);
  return a != nullptr && a->has_f() ? a->f() : fallback;
}

// The attributes of `node` as the step's alpha, beta, gamma (ONNX defaults).
void read_attributes(const onnx::NodeProto& node, elementwise_program::step& s) {
  const std::string& op = node.op_type();
  if (op == "LeakyRelu") s.alpha = float_attribute(node, "alpha", 0.01);
  if (op == "Elu" || op == "Celu") s.alpha = float_attribute(node, "alpha", 1.0);
  if (op == "ThresholdedRelu") s.alpha = float_attribute(node, "alpha", 1.0);
  if (op == "Selu") {
    s.alpha = float_attribute(node, "alpha", selu_alpha);
    s.gamma = float_attribute(node, "gamma", selu_gamma);
  }
  if (op == "HardSigmoid") {
    s.alpha = float_attribute(node, "alpha", 0.2);
    s.beta = float_attribute(node, "beta", 0.5);
  }
  if (op == "Shrink") {
    s.alpha = float_attribute(node, "lambd", 0.5);
    s.beta = float_attribute(node, "bias", 0.0);
  }
  if (op == "Gelu") {
    const onnx::AttributeProto* a = attribute(node, "approximate");
    s.tanh_approximation = a != nullptr && a->s() == "tanh";
  }
  if (op == "Clip") {  // opset < 11: bounds as attributes
    s.alpha = float_attribute(node, "min", -std::numeric_limits<double>::infinity());
    s.beta = float_attribute(node, "max", std::numeric_limits<double>::infinity());
  }
}

class compiler {
 public:
  compiler(const std::string& input, const scalar_constant_lookup& constants)
      : constants_(constants) {
    values_[input] = 0;
  }

  // The operand `name` names: a value so far, or a scalar constant.
  std::optional<elementwise_program::operand> operand(const std::string& name, std::string& why) {
    if (auto it = values_.find(name); it != values_.end())
      return elementwise_program::operand{it->second, 0.0};
    if (auto c = constants_(name)) return elementwise_program::operand{-1, *c};
    why = fmt::format("'{}' is neither computed from the input nor a one-value constant", name);
    return std::nullopt;
  }

  std::optional<elementwise_program::step> step(const onnx::NodeProto& node, std::string& why) {
    const std::string& op = node.op_type();
    const bool binary =
        std::find(std::begin(binary_ops), std::end(binary_ops), op) != std::end(binary_ops);
    if ((!node.domain().empty() && node.domain() != "ai.onnx") ||
        (!binary && !is_unary(op) && op != "Clip")) {
      why = fmt::format("{} is not an elementwise op the moment pass knows", op);
      return std::nullopt;
    }
    elementwise_program::step s;
    s.op = op;
    read_attributes(node, s);
    const int arity = binary ? 2 : 1;
    if (node.input_size() < arity) {
      why = fmt::format("{} has {} inputs", op, node.input_size());
      return std::nullopt;
    }
    for (int i = 0; i < arity; ++i) {
      auto o = operand(node.input(i), why);
      if (!o) return std::nullopt;
      s.inputs.push_back(*o);
    }
    if (!clip_bounds(node, s, why) || !prelu_slope(s, why)) return std::nullopt;
    return s;
  }

  void define(const std::string& output, int index) { values_[output] = index; }
  std::optional<int> value(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }

 private:
  // Clip's bounds as inputs 1 and 2 (opset 11 on): constants, "" for none.
  bool clip_bounds(const onnx::NodeProto& node, elementwise_program::step& s, std::string& why) {
    if (node.op_type() != "Clip") return true;
    for (int i = 1; i <= 2 && i < node.input_size(); ++i) {
      if (node.input(i).empty()) continue;
      auto c = constants_(node.input(i));
      if (!c) {
        why = fmt::format("Clip bound '{}' is not a constant", node.input(i));
        return false;
      }
      (i == 1 ? s.alpha : s.beta) = *c;
    }
    return true;
  }
  // PRelu with a one-value slope is a LeakyRelu of that slope.
  static bool prelu_slope(elementwise_program::step& s, std::string& why) {
    if (s.op != "PRelu") return true;
    if (s.inputs[1].value >= 0) {
      why = "PRelu's slope is computed, not a constant";
      return false;
    }
    s.alpha = s.inputs[1].constant;
    s.inputs.pop_back();
    return true;
  }

  const scalar_constant_lookup& constants_;
  std::map<std::string, int> values_;
};

}  // namespace

bool is_known_elementwise(const std::string& op) {
  return is_unary(op) || op == "Clip" ||
         std::find(std::begin(binary_ops), std::end(binary_ops), op) != std::end(binary_ops);
}

scalar_function activation_function(activation_kind kind, double param) {
  switch (kind) {
    case activation_kind::linear:
      return {[](double x) { return x; }, {}};
    case activation_kind::relu:
      return {[](double x) { return std::max(x, 0.0); }, {0.0}};
    case activation_kind::relu6:
      return {[](double x) { return std::clamp(x, 0.0, 6.0); }, {0.0, 6.0}};
    case activation_kind::leaky_relu:
    case activation_kind::prelu:
      return {[param](double x) { return x >= 0 ? x : param * x; }, {0.0}};
    case activation_kind::elu:
      return {[param](double x) { return elu(x, param); }, {0.0}};
    case activation_kind::selu:
      return {
          [](double x) { return x > 0 ? selu_gamma * x : selu_gamma * selu_alpha * std::expm1(x); },
          {0.0}};
    case activation_kind::gelu:
      return {gelu_erf, {}};
    case activation_kind::silu:
      return {[](double x) { return x * sigmoid(x); }, {}};
    case activation_kind::hardswish:
      return {[](double x) { return x * hardsigmoid(x, 1.0 / 6.0, 0.5); }, {-3.0, 3.0}};
    case activation_kind::mish:
      return {[](double x) { return x * std::tanh(softplus(x)); }, {}};
    case activation_kind::softplus:
      return {softplus, {}};
    case activation_kind::sigmoid:
      return {sigmoid, {}};
    case activation_kind::hardsigmoid:  // PyTorch's (relu6(x + 3) / 6), as the analysis reads it
      return {[](double x) { return hardsigmoid(x, 1.0 / 6.0, 0.5); }, {-3.0, 3.0}};
    case activation_kind::tanh:
      return {[](double x) { return std::tanh(x); }, {}};
  }
  return {[](double x) { return x; }, {}};
}

std::optional<elementwise_program> elementwise_program::compile(
    std::span<const onnx::NodeProto* const> nodes, const std::string& input,
    const std::string& output, const scalar_constant_lookup& constants, std::string* why) {
  std::string reason;
  compiler c(input, constants);
  elementwise_program program;
  for (const onnx::NodeProto* node : nodes) {
    auto s = c.step(*node, reason);
    if (!s) {
      if (why != nullptr) *why = reason;
      return std::nullopt;
    }
    program.steps_.push_back(std::move(*s));
    if (node->output_size() > 0) c.define(node->output(0), static_cast<int>(program.steps_.size()));
  }
  auto out = c.value(output);
  if (!out) {
    if (why != nullptr) *why = fmt::format("'{}' is not computed by the nodes given", output);
    return std::nullopt;
  }
  program.output_ = *out;
  return program;
}

double elementwise_program::operator()(double x) const {
  std::vector<double> values(steps_.size() + 1);
  values[0] = x;
  auto read = [&values](const operand& o) { return o.value >= 0 ? values[o.value] : o.constant; };
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const step& s = steps_[i];
    values[i + 1] = evaluate(s, read(s.inputs[0]), s.inputs.size() > 1 ? read(s.inputs[1]) : 0.0);
  }
  return values[output_];
}

scalar_function elementwise_program::function() const {
  return {[program = *this](double x) { return program(x); }, {}};
}

std::string elementwise_program::ops() const {
  std::vector<std::string> names;
  for (const step& s : steps_) names.push_back(s.op);
  return fmt::format("{}", fmt::join(names, " "));
}

}  // namespace onnx_reinit::signal
