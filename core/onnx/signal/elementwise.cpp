// The scalar evaluator of elementwise ONNX ops, with the ONNX defaults of
// their attributes (operators spec, opset 1-23).
#include "elementwise.h"

#include <algorithm>
#include <array>
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

// Every op the evaluator knows, in the order of `op_code`; a step resolves
// its name once, so evaluating it is a switch, not string compares (the
// quadrature evaluates a program thousands of times).
constexpr const char* op_names[] = {"Identity",
                                    "Dropout",
                                    "Cast",
                                    "Relu",
                                    "LeakyRelu",
                                    "PRelu",
                                    "Elu",
                                    "Celu",
                                    "Selu",
                                    "Gelu",
                                    "Sigmoid",
                                    "HardSigmoid",
                                    "HardSwish",
                                    "Softplus",
                                    "Softsign",
                                    "Mish",
                                    "Tanh",
                                    "Erf",
                                    "Exp",
                                    "Log",
                                    "Abs",
                                    "Neg",
                                    "Sqrt",
                                    "Reciprocal",
                                    "Sin",
                                    "Cos",
                                    "Sign",
                                    "Floor",
                                    "Ceil",
                                    "Round",
                                    "ThresholdedRelu",
                                    "Shrink",
                                    "Clip",
                                    "Add",
                                    "Sub",
                                    "Mul",
                                    "Div",
                                    "Pow",
                                    "Max",
                                    "Min"};
enum op_code {
  identity,
  dropout,
  cast,
  relu,
  leaky_relu,
  prelu,
  elu_op,
  celu,
  selu,
  gelu,
  sigmoid_op,
  hard_sigmoid,
  hard_swish,
  softplus_op,
  softsign,
  mish,
  tanh_op,
  erf_op,
  exp_op,
  log_op,
  abs_op,
  neg,
  sqrt_op,
  reciprocal,
  sin_op,
  cos_op,
  sign,
  floor_op,
  ceil_op,
  round_op,
  thresholded_relu,
  shrink,
  clip,
  add,
  sub,
  mul,
  div_op,
  pow_op,
  max_op,
  min_op
};

int code_of(const std::string& op) {
  for (std::size_t i = 0; i < std::size(op_names); ++i)
    if (op == op_names[i]) return static_cast<int>(i);
  return -1;
}

// One op on its inputs' values; NaN for an op this evaluator does not know.
double evaluate(const elementwise_program::step& s, double a, double b) {
  switch (s.code) {
    case identity:
    case dropout:
    case cast:
      return a;
    case relu:
      return std::max(a, 0.0);
    case leaky_relu:
    case prelu:
      return a >= 0 ? a : s.alpha * a;
    case elu_op:
      return elu(a, s.alpha);
    case celu:
      return std::max(a, 0.0) + std::min(0.0, s.alpha * std::expm1(a / s.alpha));
    case selu:
      return a > 0 ? s.gamma * a : s.gamma * s.alpha * std::expm1(a);
    case gelu:
      return s.tanh_approximation ? gelu_tanh(a) : gelu_erf(a);
    case sigmoid_op:
      return sigmoid(a);
    case hard_sigmoid:
      return hardsigmoid(a, s.alpha, s.beta);
    case hard_swish:
      return a * hardsigmoid(a, 1.0 / 6.0, 0.5);
    case softplus_op:
      return softplus(a);
    case softsign:
      return a / (1.0 + std::abs(a));
    case mish:
      return a * std::tanh(softplus(a));
    case tanh_op:
      return std::tanh(a);
    case erf_op:
      return std::erf(a);
    case exp_op:
      return std::exp(a);
    case log_op:
      return std::log(a);
    case abs_op:
      return std::abs(a);
    case neg:
      return -a;
    case sqrt_op:
      return std::sqrt(a);
    case reciprocal:
      return 1.0 / a;
    case sin_op:
      return std::sin(a);
    case cos_op:
      return std::cos(a);
    case sign:
      return a > 0 ? 1.0 : a < 0 ? -1.0 : 0.0;
    case floor_op:
      return std::floor(a);
    case ceil_op:
      return std::ceil(a);
    case round_op:
      return std::nearbyint(a);
    case thresholded_relu:
      return a > s.alpha ? a : 0.0;
    case shrink:
      return a < -s.alpha ? a + s.beta : a > s.alpha ? a - s.beta : 0.0;
    case clip:
      return std::clamp(a, s.alpha, s.beta);
    case add:
      return a + b;
    case sub:
      return a - b;
    case mul:
      return a * b;
    case div_op:
      return a / b;
    case pow_op:
      return std::pow(a, b);
    case max_op:
      return std::max(a, b);
    case min_op:
      return std::min(a, b);
    default:
      return std::numeric_limits<double>::quiet_NaN();
  }
}

// Where a step reading the program's input directly has a kink, in the
// input's coordinate: what splits the quadrature exactly there.
void add_kinks(const elementwise_program::step& s, std::vector<double>& kinks) {
  if (s.inputs.empty() || s.inputs[0].value != 0) return;
  const bool constant_other = s.inputs.size() > 1 && s.inputs[1].value < 0;
  switch (s.code) {
    case relu:
    case leaky_relu:
    case prelu:
    case elu_op:
    case celu:
    case selu:
    case abs_op:
    case sign:
      kinks.push_back(0.0);
      break;
    case thresholded_relu:
      kinks.push_back(s.alpha);
      break;
    case shrink:
      kinks.insert(kinks.end(), {-s.alpha, s.alpha});
      break;
    case clip:
      for (double b : {s.alpha, s.beta})
        if (std::isfinite(b)) kinks.push_back(b);
      break;
    case hard_sigmoid:
      if (s.alpha != 0) kinks.insert(kinks.end(), {-s.beta / s.alpha, (1 - s.beta) / s.alpha});
      break;
    case hard_swish:
      kinks.insert(kinks.end(), {-3.0, 3.0});
      break;
    case max_op:
    case min_op:
      if (constant_other) kinks.push_back(s.inputs[1].constant);
      break;
    default:
      break;
  }
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
    s.code = code_of(op);
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
  // Programs are short (a decomposed activation is a handful of steps): the
  // values live on the stack unless one is long.
  constexpr std::size_t on_stack = 32;
  std::array<double, on_stack> small;
  std::vector<double> large;
  double* values = small.data();
  if (steps_.size() + 1 > on_stack) {
    large.resize(steps_.size() + 1);
    values = large.data();
  }
  values[0] = x;
  auto read = [values](const operand& o) { return o.value >= 0 ? values[o.value] : o.constant; };
  for (std::size_t i = 0; i < steps_.size(); ++i) {
    const step& s = steps_[i];
    values[i + 1] = evaluate(s, read(s.inputs[0]), s.inputs.size() > 1 ? read(s.inputs[1]) : 0.0);
  }
  return values[output_];
}

scalar_function elementwise_program::function() const {
  std::vector<double> kinks;
  for (const step& s : steps_) add_kinks(s, kinks);
  std::sort(kinks.begin(), kinks.end());
  kinks.erase(std::unique(kinks.begin(), kinks.end()), kinks.end());
  return {[program = *this](double x) { return program(x); }, std::move(kinks)};
}

std::string elementwise_program::signature() const {
  std::string out = fmt::format("out {}", output_);
  for (const step& s : steps_) {
    out += fmt::format(";{} {:a} {:a} {:a} {}", s.code, s.alpha, s.beta, s.gamma,
                       s.tanh_approximation ? 1 : 0);
    for (const operand& o : s.inputs) out += fmt::format(" {}:{:a}", o.value, o.constant);
  }
  return out;
}

std::string elementwise_program::ops() const {
  std::vector<std::string> names;
  for (const step& s : steps_) names.push_back(s.op);
  return fmt::format("{}", fmt::join(names, " "));
}

}  // namespace onnx_reinit::signal
