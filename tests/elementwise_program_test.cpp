// elementwise_program: decomposed activations as exporters write them
// (SiLU, erf GELU, hardswish by hand, Clip) compile to the activation they
// spell; what is not elementwise, or reads a non-constant, is refused with
// the reason; moments of a compiled chain equal those of the named function.
#include "elementwise.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "gaussian_moments.h"

namespace sig = onnx_reinit::signal;
using onnx_reinit::activation_kind;

namespace {

struct graph {
  std::vector<onnx::NodeProto> nodes;
  std::map<std::string, double> constants;

  onnx::NodeProto& add(const std::string& op, std::vector<std::string> inputs,
                       const std::string& output) {
    onnx::NodeProto& n = nodes.emplace_back();
    n.set_op_type(op);
    for (const std::string& i : inputs) n.add_input(i);
    n.add_output(output);
    return n;
  }
  std::optional<sig::elementwise_program> compile(const std::string& out,
                                                  std::string* why = nullptr) const {
    std::vector<const onnx::NodeProto*> pointers;
    for (const onnx::NodeProto& n : nodes) pointers.push_back(&n);
    auto lookup = [this](const std::string& name) -> std::optional<double> {
      auto it = constants.find(name);
      if (it == constants.end()) return std::nullopt;
      return it->second;
    };
    return sig::elementwise_program::compile(pointers, "x", out, lookup, why);
  }
};

void check_same(const sig::elementwise_program& p, const sig::scalar_function& f,
                double tolerance = 1e-12) {
  for (double x = -8.0; x <= 8.0; x += 0.37) {
    CAPTURE(x);
    CHECK(p(x) == Approx(f(x)).margin(tolerance).epsilon(tolerance));
  }
}

}  // namespace

TEST_CASE("SiLU and erf GELU written as several nodes compile to the activation") {
  graph silu;
  silu.add("Sigmoid", {"x"}, "s");
  silu.add("Mul", {"x", "s"}, "y");
  auto p = silu.compile("y");
  REQUIRE(p);
  CHECK(p->ops() == "Sigmoid Mul");
  check_same(*p, sig::activation_function(activation_kind::silu, 0.0));

  graph gelu;  // PyTorch's opset-11 export of nn.GELU()
  gelu.constants = {{"sqrt2", 1.4142135381698608}, {"one", 1.0}, {"half", 0.5}};
  gelu.add("Div", {"x", "sqrt2"}, "a");
  gelu.add("Erf", {"a"}, "b");
  gelu.add("Add", {"b", "one"}, "c");
  gelu.add("Mul", {"x", "c"}, "d");
  gelu.add("Mul", {"d", "half"}, "y");
  auto g = gelu.compile("y");
  REQUIRE(g);
  // The constant sqrt2 is float32: values 1e-8 apart.
  check_same(*g, sig::activation_function(activation_kind::gelu, 0.0), 1e-7);
  // Moments of the compiled chain are those of the named function.
  const sig::moments chain = sig::gaussian_moments(g->function(), {0.2, 1.3});
  const sig::moments named =
      sig::gaussian_moments(sig::activation_function(activation_kind::gelu, 0.0), {0.2, 1.3});
  CHECK(chain.second == Approx(named.second).epsilon(1e-7));
  CHECK(chain.mean == Approx(named.mean).epsilon(1e-7));
}

TEST_CASE("hardswish by hand and Clip bounds from constants") {
  graph h;  // x * Clip(x + 3, 0, 6) / 6
  h.constants = {{"three", 3.0}, {"zero", 0.0}, {"six", 6.0}};
  h.add("Add", {"x", "three"}, "a");
  h.add("Clip", {"a", "zero", "six"}, "b");
  h.add("Mul", {"x", "b"}, "c");
  h.add("Div", {"c", "six"}, "y");
  auto p = h.compile("y");
  REQUIRE(p);
  check_same(*p, sig::activation_function(activation_kind::hardswish, 0.0));
}

TEST_CASE("ONNX attribute defaults: HardSigmoid 0.2/0.5, LeakyRelu 0.01, Selu") {
  graph g;
  g.add("HardSigmoid", {"x"}, "y");
  auto p = g.compile("y");
  REQUIRE(p);
  CHECK((*p)(1.0) == Approx(0.7));
  CHECK((*p)(-3.0) == 0.0);
  graph l;
  l.add("LeakyRelu", {"x"}, "y");
  CHECK((*l.compile("y"))(-2.0) == Approx(-0.02));
  graph s;
  s.add("Selu", {"x"}, "y");
  check_same(*s.compile("y"), sig::activation_function(activation_kind::selu, 0.0));
  // Selu's fixed point: unit second moment in, unit out.
  CHECK(sig::gaussian_moments(s.compile("y")->function(), {0.0, 1.0}).second ==
        Approx(1.0).epsilon(1e-6));
}

TEST_CASE("what is not an elementwise chain of the input is refused, with the reason") {
  std::string why;
  graph conv;
  conv.add("Conv", {"x", "w"}, "y");
  CHECK_FALSE(conv.compile("y", &why));
  CHECK(why == "Conv is not an elementwise op the moment pass knows");

  graph other;
  other.add("Mul", {"x", "gate"}, "y");  // a gate computed elsewhere
  CHECK_FALSE(other.compile("y", &why));
  CHECK(why == "'gate' is neither computed from the input nor a one-value constant");

  graph missing;
  missing.add("Relu", {"x"}, "r");
  CHECK_FALSE(missing.compile("z", &why));
  CHECK(why == "'z' is not computed by the nodes given");

  graph custom;
  custom.add("Relu", {"x"}, "y").set_domain("com.example");
  CHECK_FALSE(custom.compile("y", &why));
}
