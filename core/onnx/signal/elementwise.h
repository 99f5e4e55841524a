// Elementwise functions as values the moment pass can integrate
// (docs/DESIGN.md section 14): an activation the analysis names, or any
// chain of elementwise ONNX nodes between a layer and the next (x*Sigmoid(x),
// 0.5*x*(1+Erf(x/sqrt 2)), Clip, ...), compiled into a scalar program. A new
// elementwise function thus needs no code: its moments are measured by
// gaussian_moments, not looked up.
//   auto f = onnx_reinit::signal::elementwise_program::compile(nodes, "h", "y", constants);
//   if (f) moments m = gaussian_moments(*f, {0.0, 1.0});
#pragma once

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit::signal {

// A function of one value with the points where it is not smooth (known
// kinks only: they help the quadrature, which finds others itself).
struct scalar_function {
  std::function<double(double)> apply;
  std::vector<double> kinks;
  double operator()(double x) const { return apply(x); }
};

// The activation the analysis names, as a function. `param`: the slope of
// leaky_relu and prelu, the alpha of elu (as tensor_info::activation_param).
scalar_function activation_function(activation_kind kind, double param);

// The value of a constant operand, when it is one number (or all its
// elements are equal); nullopt otherwise.
using scalar_constant_lookup = std::function<std::optional<double>(const std::string&)>;

class elementwise_program {
 public:
  // Compiles `nodes` (in graph order) computing `output` from `input`. Every
  // node must be an elementwise op this evaluator knows, reading `input`,
  // an earlier node's output or a scalar constant; otherwise nullopt, with
  // the reason in `why` when given.
  static std::optional<elementwise_program> compile(std::span<const onnx::NodeProto* const> nodes,
                                                    const std::string& input,
                                                    const std::string& output,
                                                    const scalar_constant_lookup& constants,
                                                    std::string* why = nullptr);

  double operator()(double x) const;
  scalar_function function() const;
  // The ops in order, "Mul(x, Sigmoid(x))" style is not kept: "Sigmoid Mul".
  std::string ops() const;
  // Everything the function depends on (ops, operands, constants,
  // attributes) as text: two programs with the same signature compute the
  // same function.
  std::string signature() const;

  struct operand {
    int value = -1;         // index into the program's values (0: the input)
    double constant = 0.0;  // when value < 0
  };
  struct step {
    std::string op;
    int code = -1;  // the op's index in the evaluator's table, resolved once
    std::vector<operand> inputs;
    double alpha = 0.0, beta = 0.0, gamma = 0.0;
    bool tanh_approximation = false;
  };

 private:
  std::vector<step> steps_;  // step i computes value i + 1
  int output_ = 0;
};

// Whether `op` (default domain) is an elementwise op the evaluator knows.
bool is_known_elementwise(const std::string& op);

}  // namespace onnx_reinit::signal
