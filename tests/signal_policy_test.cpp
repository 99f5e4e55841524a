// The signal policy (docs/DESIGN.md section 14): what it keeps of the
// textbook policy, the scales it solves, checked against numbers computed
// here by other means (a plain trapezoid rule, Monte Carlo), and the
// signal through depth measured by a forward pass over the written weights.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "onnx_reinit/reinit.h"
#include "support/fresh_temp_directory.h"
#include "support/onnx_builder.h"
#include "support/standard_registry.h"

namespace ori = onnx_reinit;
using ori::test::graph_builder;

namespace {

constexpr std::int64_t width = 64;

// Appends `act` (a fused op, or GELU as PyTorch's opset-13 export writes
// it) reading `x`; returns its output.
std::string add_activation(graph_builder& g, const std::string& act, const std::string& x) {
  if (act != "gelu") {
    g.add_node(act, {x}, {x + ".act"});
    return x + ".act";
  }
  g.add_node("Div", {x, "sqrt2"}, {x + ".d"});
  g.add_node("Erf", {x + ".d"}, {x + ".e"});
  g.add_node("Add", {x + ".e", "one"}, {x + ".a"});
  g.add_node("Mul", {x, x + ".a"}, {x + ".m"});
  g.add_node("Mul", {x + ".m", "half"}, {x + ".act"});
  return x + ".act";
}

// x [N, width] -> MatMul w -> Add b, `layers` times; `act` after each.
std::string add_linear(graph_builder& g, const std::string& name, const std::string& x,
                       std::int64_t out = width) {
  g.add_initializer(name + ".w", {width, out},
                    std::vector<float>(static_cast<std::size_t>(width * out), 0.01f));
  g.add_initializer(name + ".b", {out}, std::vector<float>(static_cast<std::size_t>(out), 0.0f));
  g.add_node("MatMul", {x, name + ".w"}, {name + ".mm"});
  g.add_node("Add", {name + ".mm", name + ".b"}, {name + ".y"});
  return name + ".y";
}

void add_scalars(graph_builder& g) {
  g.add_initializer("sqrt2", {}, {static_cast<float>(std::sqrt(2.0))});
  g.add_initializer("one", {}, {1.0f});
  g.add_initializer("half", {}, {0.5f});
}

onnx::ModelProto chain(const std::string& act, int layers) {
  graph_builder g;
  add_scalars(g);
  g.add_input("x", {-1, width});
  std::string x = "x";
  for (int i = 0; i < layers; ++i)
    x = add_activation(g, act, add_linear(g, fmt::format("l{}", i), x));
  g.add_node("Softmax", {add_linear(g, "head", x, 10)}, {"y"});
  g.add_output("y", {-1, 10});
  return g.model();
}

// x -> l0, then `blocks` times: s + l2(relu(l1(relu(s)))), then the head.
onnx::ModelProto residual(int blocks) {
  graph_builder g;
  add_scalars(g);
  g.add_input("x", {-1, width});
  std::string s = add_linear(g, "stem", "x");
  for (int i = 0; i < blocks; ++i) {
    const std::string p = fmt::format("b{}", i);
    std::string h = add_activation(g, "Relu", s);
    h = add_activation(g, "Relu", add_linear(g, p + ".l1", h));
    h = add_linear(g, p + ".l2", h);
    g.add_node("Add", {s, h}, {p + ".out"});
    s = p + ".out";
  }
  g.add_node("Softmax", {add_linear(g, "head", s, 10)}, {"y"});
  g.add_output("y", {-1, 10});
  return g.model();
}

ori::reinit_plan plan_of(const onnx::ModelProto& model, ori::init_policy policy) {
  ori::reinit_options options;
  options.policy = policy;
  return ori::plan_reinit(ori::loaded_model::from_proto(model), "m", options,
                          ori::test::standard_registry());
}

const ori::tensor_plan& find(const ori::reinit_plan& p, const std::string& name) {
  for (const ori::tensor_plan& t : p.plans)
    if (t.tensor.info.name == name) return t;
  FAIL("no tensor " << name);
  throw;
}

// The variance the plan's call aims at, from the strategy's own figures.
double planned_variance(const ori::tensor_plan& t) {
  const ori::configured_strategy s =
      ori::test::standard_registry().create(t.call.strategy, t.call.params);
  const auto m = s.target_moments(t.tensor.info);
  REQUIRE(m);
  return m->std * m->std;
}

// E[f(z)^2], z ~ N(0, q), by the trapezoid rule on [-12 sd, 12 sd]:
// independent of the adaptive quadrature the library uses.
template <class F>
double second_moment(F f, double q) {
  const double sd = std::sqrt(q);
  constexpr int n = 200000;
  const double lo = -12.0 * sd, h = 24.0 * sd / n;
  double sum = 0.0;
  for (int i = 0; i <= n; ++i) {
    const double z = lo + h * i;
    const double w = (i == 0 || i == n) ? 0.5 : 1.0;
    const double y = f(z);
    sum += w * y * y * std::exp(-z * z / (2 * q));
  }
  return sum * h / std::sqrt(2 * M_PI * q);
}

// Forward pass of the written model over a batch of N(0, 1) rows: the RMS of
// the stream read by the head over that of the first layer's output.
struct forward {
  ori::loaded_model model;
  std::vector<float> weights(const std::string& name) const {
    for (const onnx::TensorProto& t : model.proto().graph().initializer())
      if (t.name() == name) return ori::read_tensor_values<float>(model, t);
    FAIL("no initializer " << name);
    throw;
  }
  static void linear(const std::vector<float>& w, std::vector<double>& x, std::size_t rows) {
    std::vector<double> y(x.size(), 0.0);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t i = 0; i < width; ++i)
        for (std::size_t j = 0; j < width; ++j)
          y[r * width + j] += x[r * width + i] * w[i * width + j];
    x.swap(y);
  }
  static double rms(const std::vector<double>& x) {
    double s = 0.0;
    for (double v : x) s += v * v;
    return std::sqrt(s / static_cast<double>(x.size()));
  }
  static void relu(std::vector<double>& x) {
    for (double& v : x) v = std::max(v, 0.0);
  }
  double stream_growth(int blocks) const {
    constexpr std::size_t rows = 256;
    std::mt19937_64 gen(7);
    std::normal_distribution<double> normal;
    std::vector<double> s(rows * width);
    for (double& v : s) v = normal(gen);
    linear(weights("stem.w"), s, rows);
    const double first = rms(s);
    for (int i = 0; i < blocks; ++i) {
      std::vector<double> h = s;
      relu(h);
      linear(weights(fmt::format("b{}.l1.w", i)), h, rows);
      relu(h);
      linear(weights(fmt::format("b{}.l2.w", i)), h, rows);
      for (std::size_t k = 0; k < s.size(); ++k) s[k] += h[k];
    }
    return rms(s) / first;
  }
};

forward written(const onnx::ModelProto& model, ori::init_policy policy, const std::string& tag) {
  const auto dir = ori::test::fresh_temp_directory("signal-policy-" + tag);
  ori::reinit_plan p = plan_of(model, policy);
  ori::reinit_output out;
  out.path = dir / "out.onnx";
  ori::execute_reinit(p, out);
  return {ori::load_model(out.path)};
}

}  // namespace

TEST_CASE("On ReLU and SELU chains the signal policy writes the textbook calls") {
  for (const char* act : {"Relu", "Selu"}) {
    const onnx::ModelProto m = chain(act, 6);
    const ori::reinit_plan signal = plan_of(m, ori::init_policy::signal);
    const ori::reinit_plan textbook = plan_of(m, ori::init_policy::textbook);
    for (int i = 0; i < 6; ++i) {
      const std::string w = fmt::format("l{}.w", i);
      INFO(act << " " << w);
      CHECK(find(signal, w).call.to_string() == find(textbook, w).call.to_string());
      // He (2 / fan_in) for ReLU, LeCun (1 / fan_in) for SELU.
      CHECK(planned_variance(find(signal, w)) * width ==
            Approx(std::string(act) == "Relu" ? 2.0 : 1.0).epsilon(1e-6));
    }
  }
}

TEST_CASE("tanh layers read second moment 1 at the first layer, E[tanh^2] after") {
  const ori::reinit_plan p = plan_of(chain("Tanh", 4), ori::init_policy::signal);
  // tanh cannot reach a second moment of 1: each pre-activation is held at 1.
  const double e_tanh2 = second_moment([](double z) { return std::tanh(z); }, 1.0);
  CHECK(e_tanh2 == Approx(0.394294).epsilon(1e-5));
  CHECK(planned_variance(find(p, "l0.w")) * width == Approx(1.0).epsilon(1e-6));
  for (int i = 1; i < 4; ++i) {
    const ori::tensor_plan& t = find(p, fmt::format("l{}.w", i));
    CHECK(planned_variance(t) * width == Approx(1.0 / e_tanh2).epsilon(1e-5));
    REQUIRE(t.predicted);
    CHECK(t.predicted->output_rms == Approx(1.0).epsilon(1e-6));
    CHECK(t.predicted->read_rms == Approx(std::sqrt(e_tanh2)).epsilon(1e-5));
  }
}

TEST_CASE("After a decomposed GELU the next layer reads second moment 1 (Monte Carlo)") {
  const ori::reinit_plan p = plan_of(chain("gelu", 4), ori::init_policy::signal);
  auto gelu = [](double z) { return 0.5 * z * (1.0 + std::erf(z / std::sqrt(2.0))); };
  for (int i = 1; i < 4; ++i) {
    // Each hidden layer reads second moment 1, so its pre-activation has
    // second moment fan_in x Var(w).
    const double q = planned_variance(find(p, fmt::format("l{}.w", i))) * width;
    std::mt19937_64 gen(42 + static_cast<unsigned>(i));
    std::normal_distribution<double> z(0.0, std::sqrt(q));
    constexpr int n = 1'000'000;
    double sum = 0.0, sum2 = 0.0;
    for (int k = 0; k < n; ++k) {
      const double y = gelu(z(gen));
      sum += y * y;
      sum2 += y * y * y * y;
    }
    const double mean = sum / n;
    const double se = std::sqrt((sum2 / n - mean * mean) / n);
    INFO("layer " << i << " q " << q << " E[gelu^2] " << mean << " +- " << se);
    CHECK(std::abs(mean - 1.0) < 5.0 * se);
    // The textbook gain sqrt(2) would give E[gelu^2] = 0.85 here, far outside.
    CHECK(5.0 * se < 0.02);
  }
}

TEST_CASE("Residual branches keep a 100-block stream without norms bounded") {
  const onnx::ModelProto m = residual(100);
  const double signal = written(m, ori::init_policy::signal, "s").stream_growth(100);
  const double textbook = written(m, ori::init_policy::textbook, "t").stream_growth(100);
  INFO("signal " << signal << ", textbook " << textbook);
  CHECK(signal >= 0.5);
  CHECK(signal <= 2.0);
  CHECK(textbook > 1e3);
  const ori::reinit_plan p = plan_of(m, ori::init_policy::signal);
  // The first branch adds 1/L of a unit skip.
  CHECK(planned_variance(find(p, "b0.l2.w")) == Approx(1.0 / 100 / (width * 1.0)).epsilon(1e-6));
}

TEST_CASE("Logits start small; a rule's weight is not solved") {
  ori::reinit_options options;
  options.rules = {"l1.w=normal(std=0.5)"};
  const ori::reinit_plan p = ori::plan_reinit(ori::loaded_model::from_proto(chain("Relu", 3)), "m",
                                              options, ori::test::standard_registry());
  // The head reads ReLU outputs of second moment 1: logits of RMS 0.1.
  CHECK(planned_variance(find(p, "head.w")) * width == Approx(0.01).epsilon(1e-6));
  const ori::tensor_plan& ruled = find(p, "l1.w");
  CHECK(ruled.call.strategy == "normal");
  REQUIRE(ruled.predicted);
  // 64 x 0.25 x E[relu(z)^2] with z ~ N(0, 2): 64 x 0.25 x 1 = 16.
  CHECK(ruled.predicted->output_rms == Approx(4.0).epsilon(1e-6));
  CHECK(ori::parse_init_policy("textbook") == ori::init_policy::textbook);
  CHECK_THROWS_AS(ori::parse_init_policy("fancy"), ori::usage_error);
}
