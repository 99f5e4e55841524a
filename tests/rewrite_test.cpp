// End-to-end through the library: models built with the ONNX protobuf API
// are analysed, planned by the default policy, rewritten with the standard
// plugin, and the written values are checked against the formulas (computed
// here, independently of the plugin) with tolerances from the sample size.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <latch>
#include <map>
#include <numbers>
#include <random>
#include <thread>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/random.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/rewrite.h"
#include "support/onnx_builder.h"
#include "support/sample_stats.h"
#include "support/standard_registry.h"
#include "support/temp_dir.h"

namespace ori = onnx_reinit;
using ori::test::graph_builder;
using ori::test::make_attribute;
using ori::test::mean_of;
using ori::test::standard_registry;
using ori::test::variance_of;

namespace {

struct rewritten {
  ori::loaded_model model;
  std::vector<ori::tensor_plan> plans;
  ori::model_sample sample;
  std::vector<ori::tensor_outcome> outcomes;  // after save: with the achieved figures

  const ori::tensor_plan& plan(const std::string& name) const {
    for (const auto& p : plans)
      if (p.tensor.info.name == name) return p;
    FAIL("no tensor " << name);
    return plans.front();
  }
  std::vector<double> values(const std::string& name) const {
    for (const auto& t : ori::collect_model_tensors(model.proto()))
      if (t.ref.name == name) return ori::read_tensor_values<double>(model, *t.proto);
    FAIL("no tensor " << name);
    return {};
  }
};

rewritten rewrite(onnx::ModelProto proto, std::uint64_t seed = 1,
                  std::vector<ori::rule> rules = {}) {
  rewritten r{ori::loaded_model::from_proto(std::move(proto)), {}, {}, {}};
  ori::plan_options options;
  options.rules = std::move(rules);
  r.plans = ori::make_plan(ori::analyze_model(r.model), options);
  ori::rewrite_options ro;
  ro.seed = seed;
  ro.chunk_elements = 1000;  // exercise chunked parallel fills
  r.sample = ori::rewrite_model(r.model, r.plans, standard_registry(), ro);
  const ori::test::temp_dir dir("onnx_reinit_rewrite");
  ori::save_options so;
  so.check = false;  // some models here are fragments the checker refuses
  r.outcomes = ori::outcomes_of(r.sample, ori::save_model(r.model, dir / "out.onnx", so));
  return r;
}

// Original values; any constant will do, the tests look at what replaces them.
std::vector<float> filler(std::size_t n) {
  return std::vector<float>(n, 0.5f);
}

// Checks zero mean and variance `var` for draws with kurtosis `kurtosis`:
// standard errors sqrt(var/n) for the mean and var*sqrt((kurtosis-1)/n) for
// the variance; 6 of them bound a false failure below 1e-8, while a variance
// off by a factor of 2 is dozens of errors away at these sizes.
void check_distribution(const std::vector<double>& v, double var, double kurtosis) {
  const double n = static_cast<double>(v.size());
  INFO("n=" << n << " expected var " << var << " got " << variance_of(v));
  CHECK(std::abs(mean_of(v)) < 6 * std::sqrt(var / n));
  CHECK(std::abs(variance_of(v) - var) < 6 * var * std::sqrt((kurtosis - 1) / n));
}

constexpr double uniform_kurtosis = 1.8;
constexpr double normal_kurtosis = 3.0;
constexpr double truncated2_kurtosis = 2.37;  // N(0,1) cut at +-2, rounded up

void check_uniform_bound(const std::vector<double>& v, double bound) {
  for (double x : v) REQUIRE(std::abs(x) <= bound * (1 + 1e-6));
  check_distribution(v, bound * bound / 3.0, uniform_kurtosis);
}

}  // namespace

TEST_CASE("Conv before ReLU gets kaiming_normal with fan_in = C/g * rf") {
  graph_builder g;
  g.add_input("x", {1, 32, 8, 8});
  g.add_initializer("conv.w", {64, 32, 3, 3}, filler(64 * 32 * 9));
  g.add_initializer("conv.b", {64}, filler(64));
  g.add_node("Conv", {"x", "conv.w", "conv.b"}, {"c"},
             {make_attribute("pads", std::vector<std::int64_t>{1, 1, 1, 1})});
  g.add_node("Relu", {"c"}, {"y"});
  g.add_output("y", {1, 64, 8, 8});
  rewritten r = rewrite(g.model());
  CHECK(r.plan("conv.w").call.strategy == "kaiming_normal");
  check_distribution(r.values("conv.w"), 2.0 / (32 * 9), normal_kurtosis);
  for (double b : r.values("conv.b")) CHECK(b == 0.0);
  const auto& o = r.outcomes[0];
  CHECK(o.rewritten);
  CHECK(o.target_std == Approx(std::sqrt(2.0 / 288)));
  CHECK(o.achieved_std == Approx(o.target_std).epsilon(0.05));
}

TEST_CASE("grouped strided Conv before Tanh gets xavier_uniform with fractional fan_out") {
  graph_builder g;
  g.add_input("x", {1, 64, 16, 16});
  g.add_initializer("w", {128, 16, 3, 3}, filler(128 * 16 * 9));
  g.add_node("Conv", {"x", "w"}, {"c"},
             {make_attribute("group", std::int64_t{4}),
              make_attribute("strides", std::vector<std::int64_t>{2, 2})});
  g.add_node("Tanh", {"c"}, {"y"});
  g.add_output("y", {1, 128, 7, 7});
  rewritten r = rewrite(g.model());
  // fan_in = 16*9 = 144, fan_out = (128/4)*9/4 = 72; bound = 5/3 sqrt(6/216).
  CHECK(r.plan("w").tensor.info.fan_out == 72.0);
  check_uniform_bound(r.values("w"), 5.0 / 3.0 * std::sqrt(6.0 / 216.0));
}

TEST_CASE("ConvTranspose before Sigmoid divides fan_in by the stride") {
  graph_builder g;
  g.add_input("x", {1, 64, 8, 8});
  g.add_initializer("w", {64, 32, 4, 4}, filler(64 * 32 * 16));
  g.add_node("ConvTranspose", {"x", "w"}, {"c"},
             {make_attribute("strides", std::vector<std::int64_t>{2, 2})});
  g.add_node("Sigmoid", {"c"}, {"y"});
  g.add_output("y", {1, 32, 18, 18});
  rewritten r = rewrite(g.model());
  // fan_in = 64*16/4 = 256, fan_out = 32*16 = 512.
  check_uniform_bound(r.values("w"), std::sqrt(6.0 / 768.0));
}

TEST_CASE("Gemm with transB before Softmax is linear: xavier_uniform gain 1") {
  graph_builder g;
  g.add_input("x", {8, 256});
  g.add_initializer("fc.w", {100, 256}, filler(100 * 256));
  g.add_initializer("fc.b", {100}, filler(100));
  g.add_node("Gemm", {"x", "fc.w", "fc.b"}, {"z"}, {make_attribute("transB", std::int64_t{1})});
  g.add_node("Softmax", {"z"}, {"y"});
  g.add_output("y", {8, 100});
  rewritten r = rewrite(g.model());
  check_uniform_bound(r.values("fc.w"), std::sqrt(6.0 / 356.0));
}

TEST_CASE("MatMul before an Erf-form GELU gets kaiming_normal with fan_in K") {
  graph_builder g;
  g.add_input("x", {4, 128});
  g.add_initializer("w", {128, 256}, filler(128 * 256));
  g.add_initializer("sqrt2", {}, {1.4142135f});
  g.add_initializer("one", {}, {1.0f});
  g.add_initializer("half", {}, {0.5f});
  g.add_node("MatMul", {"x", "w"}, {"h"});
  g.add_node("Div", {"h", "sqrt2"}, {"d"});
  g.add_node("Erf", {"d"}, {"e"});
  g.add_node("Add", {"e", "one"}, {"a"});
  g.add_node("Mul", {"h", "a"}, {"m"});
  g.add_node("Mul", {"m", "half"}, {"y"});
  g.add_output("y", {4, 256});
  rewritten r = rewrite(g.model());
  CHECK(r.plan("w").tensor.info.activation == ori::activation_kind::gelu);
  check_distribution(r.values("w"), 2.0 / 128.0, normal_kurtosis);
  // The scalar constants of the GELU are kept byte for byte.
  CHECK(r.plan("sqrt2").action == ori::plan_action::keep);
  CHECK(r.values("sqrt2") == std::vector<double>{static_cast<double>(1.4142135f)});
}

TEST_CASE("MatMul before Selu gets lecun_normal, truncated at 2 std") {
  graph_builder g;
  g.add_input("x", {4, 200});
  g.add_initializer("w", {200, 100}, filler(200 * 100));
  g.add_node("MatMul", {"x", "w"}, {"h"});
  g.add_node("Selu", {"h"}, {"y"});
  g.add_output("y", {4, 100});
  rewritten r = rewrite(g.model());
  auto v = r.values("w");
  const double cut = 2.0 * std::sqrt(1.0 / 200.0) / 0.87962566103423978;
  for (double x : v) REQUIRE(std::abs(x) <= cut * (1 + 1e-6));
  check_distribution(v, 1.0 / 200.0, truncated2_kurtosis);
}

TEST_CASE("LSTM: xavier per gate block, orthogonal recurrence, forget-gate bias 1") {
  const std::int64_t hidden = 64, input = 96;
  graph_builder g;
  g.add_input("x", {5, 1, input});
  g.add_initializer("W", {1, 4 * hidden, input}, filler(4 * hidden * input));
  g.add_initializer("R", {1, 4 * hidden, hidden}, filler(4 * hidden * hidden));
  g.add_initializer("B", {1, 8 * hidden}, filler(8 * hidden));
  g.add_node("LSTM", {"x", "W", "R", "B"}, {"y"}, {make_attribute("hidden_size", hidden)});
  g.add_output("y", {5, 1, 1, hidden});
  rewritten r = rewrite(g.model());
  check_uniform_bound(r.values("W"), std::sqrt(6.0 / double(input + hidden)));
  // Each gate block of R is an orthogonal H x H matrix.
  auto rv = r.values("R");
  for (std::int64_t gate = 0; gate < 4; ++gate) {
    const double* q = rv.data() + gate * hidden * hidden;
    double worst = 0;
    for (std::int64_t i = 0; i < hidden; ++i)
      for (std::int64_t j = 0; j < hidden; ++j) {
        double dot = 0;
        for (std::int64_t k = 0; k < hidden; ++k) dot += q[i * hidden + k] * q[j * hidden + k];
        worst = std::max(worst, std::abs(dot - (i == j ? 1.0 : 0.0)));
      }
    CHECK(worst < 1e-5);
  }
  // ONNX gate order i, o, f, c: the input-bias rows of f are [2H, 3H).
  auto b = r.values("B");
  for (std::int64_t i = 0; i < 8 * hidden; ++i)
    CHECK(b[i] == ((i >= 2 * hidden && i < 3 * hidden) ? 1.0 : 0.0));
}

TEST_CASE("embeddings, norms and PReLU slopes get their fixed values") {
  graph_builder g;
  g.add_input("tokens", {4}, onnx::TensorProto::INT64);
  g.add_input("img", {1, 8, 4, 4});
  g.add_initializer("emb", {500, 64}, filler(500 * 64));
  g.add_initializer("bn.s", {8}, filler(8));
  g.add_initializer("bn.b", {8}, filler(8));
  g.add_initializer("bn.m", {8}, filler(8));
  g.add_initializer("bn.v", {8}, filler(8));
  g.add_initializer("slope", {8, 1, 1}, filler(8));
  g.add_node("Gather", {"emb", "tokens"}, {"e"});
  g.add_node("BatchNormalization", {"img", "bn.s", "bn.b", "bn.m", "bn.v"}, {"n"});
  g.add_node("PRelu", {"n", "slope"}, {"p"});
  g.add_output("e", {4, 64});
  g.add_output("p", {1, 8, 4, 4});
  rewritten r = rewrite(g.model());
  check_distribution(r.values("emb"), 1.0, normal_kurtosis);
  for (double v : r.values("bn.s")) CHECK(v == 1.0);
  for (double v : r.values("bn.b")) CHECK(v == 0.0);
  for (double v : r.values("bn.m")) CHECK(v == 0.0);
  for (double v : r.values("bn.v")) CHECK(v == 1.0);
  for (double v : r.values("slope")) CHECK(v == 0.25);
}

TEST_CASE("float16, bfloat16 and float64 weights keep their dtype and storage") {
  for (auto type :
       {ori::element_type::float16, ori::element_type::bfloat16, ori::element_type::float64}) {
    for (auto form : {ori::test::storage_form::raw, ori::test::storage_form::typed}) {
      graph_builder g;
      g.add_input("x", {2, 256});
      g.add_initializer("w", {256, 128}, filler(256 * 128), type, form);
      g.add_node("MatMul", {"x", "w"}, {"h"});
      g.add_node("Relu", {"h"}, {"y"});
      g.add_output("y", {2, 128});
      rewritten r = rewrite(g.model());
      INFO(to_string(type) << (form == ori::test::storage_form::raw ? " raw" : " typed"));
      const onnx::TensorProto& t = r.model.proto().graph().initializer(0);
      CHECK(t.data_type() == ori::test::onnx_type(type));
      CHECK(ori::storage_of(t) ==
            (form == ori::test::storage_form::raw ? ori::tensor_storage::raw_data
             : type == ori::element_type::float64 ? ori::tensor_storage::double_data
                                                  : ori::tensor_storage::int32_data));
      check_distribution(r.values("w"), 2.0 / 256.0, normal_kurtosis);
      // The report's achieved std is measured on the stored (rounded) values.
      CHECK(r.outcomes[0].achieved_std ==
            Approx(std::sqrt(variance_of(r.values("w")))).epsilon(1e-3));
    }
  }
}

TEST_CASE("the same seed gives the same bytes; another seed other bytes") {
  auto build = [] {
    graph_builder g;
    g.add_input("x", {2, 64});
    g.add_initializer("a", {64, 64}, filler(64 * 64));
    g.add_initializer("b", {64, 64}, filler(64 * 64));
    g.add_node("MatMul", {"x", "a"}, {"h"});
    g.add_node("MatMul", {"h", "b"}, {"y"});
    g.add_output("y", {2, 64});
    return g.model();
  };
  auto one = rewrite(build(), 7), two = rewrite(build(), 7), other = rewrite(build(), 8);
  CHECK(one.values("a") == two.values("a"));
  CHECK(one.values("a") != other.values("a"));
  CHECK(one.values("a") != one.values("b"));
}

TEST_CASE("a failing strategy names the tensor and strategy") {
  graph_builder g;
  g.add_input("x", {2, 4});
  g.add_initializer("w", {4, 4}, filler(16));
  g.add_node("MatMul", {"x", "w"}, {"y"});
  g.add_output("y", {2, 4});
  ori::loaded_model model = ori::loaded_model::from_proto(g.model());
  ori::plan_options options;
  options.rules = {ori::parse_rule("w=dirac", "--rule 1")};
  auto plans = ori::make_plan(ori::analyze_model(model), options);
  try {
    ori::rewrite_model(model, plans, standard_registry(), {});
    FAIL("dirac filled a 2-D tensor");
  } catch (const ori::strategy_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("dirac"));
    CHECK_THAT(std::string(e.what()) + e.where(), Catch::Contains("w"));
  }
}

TEST_CASE("unknown strategies and bad parameters fail before any tensor is touched") {
  std::vector<ori::tensor_plan> plans(1);
  plans[0].action = ori::plan_action::rewrite;
  plans[0].rule = "w=xavier_unifrom";
  plans[0].rule_origin = "--rule 1";
  plans[0].call.strategy = "xavier_unifrom";
  try {
    ori::validate_plan(plans, standard_registry());
    FAIL("unknown strategy accepted");
  } catch (const ori::unknown_strategy_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("xavier_uniform"));
    CHECK_THAT(e.where(), Catch::Contains("--rule 1"));
  }
  plans[0].call = {"normal", {{"sdt", "0.1"}}};
  try {
    ori::validate_plan(plans, standard_registry());
    FAIL("bad parameter accepted");
  } catch (const ori::param_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("std"));
  }
}

TEST_CASE("the progress callback is never entered from two threads at once") {
  // Many small tensors, filled in parallel: without serialisation two
  // workers finishing together would both be inside the callback. The sleep
  // widens the window so an unserialised call overlaps on any machine with
  // two or more cores.
  constexpr int layers = 24;
  graph_builder g;
  g.add_input("x", {2, 64});
  std::string previous = "x";
  for (int i = 0; i < layers; ++i) {
    const std::string w = fmt::format("w{}", i), h = fmt::format("h{}", i);
    g.add_initializer(w, {64, 64}, filler(64 * 64));
    g.add_node("MatMul", {previous, w}, {h});
    previous = h;
  }
  g.add_output(previous, {2, 64});
  ori::loaded_model model = ori::loaded_model::from_proto(g.model());
  const auto plans = ori::make_plan(ori::analyze_model(model), {});

  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> calls{0};
  std::uint64_t last_done = 0;
  bool monotonic = true;
  std::uint64_t final_done = 0, final_total = 0;
  ori::rewrite_options options;
  options.threads = 4;
  options.chunk_elements = 512;
  options.progress = [&](std::uint64_t done, std::uint64_t total) {
    if (inside.fetch_add(1) != 0) ++overlaps;
    ++calls;
    monotonic = monotonic && done >= last_done;
    last_done = done;
    final_done = done;
    final_total = total;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    inside.fetch_sub(1);
  };
  ori::rewrite_model(model, plans, standard_registry(), options);
  CHECK(calls == layers);
  CHECK(overlaps == 0);
  CHECK(monotonic);
  CHECK(final_total == std::uint64_t{layers} * 64 * 64 * sizeof(float));  // bytes
  CHECK(final_done == final_total);
}

TEST_CASE("the bytes are those of 8 workers filling the chunks in any order, on any machine") {
  // rewrite_model clamps its thread count to the cores (2 on CI), so
  // comparing its threads=1 and threads=8 output means different things on
  // different machines. Here the test itself plays 8 workers: the chunks
  // rewrite_model splits each tensor into (chunk_elements = 1000) are taken
  // from a shuffled queue by 8 real threads started together, each calling
  // the tensor's strategy on its own chunk, and the result must be the
  // library's bytes.
  graph_builder g;
  g.add_input("x", {2, 96});
  g.add_initializer("relu_w", {96, 130}, filler(96 * 130));
  g.add_initializer("tanh_w", {130, 70}, filler(130 * 70));
  g.add_initializer("selu_w", {70, 50}, filler(70 * 50), ori::element_type::float64);
  g.add_node("MatMul", {"x", "relu_w"}, {"a"});
  g.add_node("Relu", {"a"}, {"b"});
  g.add_node("MatMul", {"b", "tanh_w"}, {"c"});
  g.add_node("Tanh", {"c"}, {"d"});
  g.add_node("MatMul", {"d", "selu_w"}, {"e"});
  g.add_node("Selu", {"e"}, {"y"});
  g.add_output("y", {2, 50});
  g.add_input("ids", {4});
  g.add_initializer("table", {300, 17}, filler(300 * 17));
  g.add_node("Gather", {"table", "ids"}, {"emb"});
  g.add_output("emb", {4, 17});
  const std::uint64_t seed = 99;
  auto run = [&](unsigned threads) {
    rewritten r{ori::loaded_model::from_proto(g.model()), {}, {}, {}};
    r.plans = ori::make_plan(ori::analyze_model(r.model), {});
    ori::rewrite_options ro;
    ro.seed = seed;
    ro.threads = threads;
    ro.chunk_elements = 1000;
    r.sample = ori::rewrite_model(r.model, r.plans, standard_registry(), ro);
    return r;
  };
  const rewritten one = run(1), many = run(8);
  int checked = 0;
  for (const ori::tensor_plan& p : one.plans) {
    if (p.action != ori::plan_action::rewrite) continue;
    INFO(p.tensor.info.name << " " << p.call.to_string());
    const ori::configured_strategy s = standard_registry().create(p.call.strategy, p.call.params);
    REQUIRE(s.elementwise());
    const onnx_reinit_rng rng = ori::make_tensor_rng(seed, ori::stream_name(p.tensor.ref));
    const std::size_t n = static_cast<std::size_t>(p.tensor.info.element_count());
    std::vector<std::size_t> starts;
    for (std::size_t first = 0; first < n; first += 1000) starts.push_back(first);
    std::mt19937 order(static_cast<std::uint32_t>(n));
    std::shuffle(starts.begin(), starts.end(), order);
    std::vector<double> expected(n);
    std::vector<float> as_float(n);
    const bool is_double = p.tensor.info.dtype == ori::element_type::float64;
    std::atomic<std::size_t> next{0};
    std::latch go(8);
    std::vector<std::thread> workers;
    for (int w = 0; w < 8; ++w)
      workers.emplace_back([&] {
        go.arrive_and_wait();
        for (std::size_t k; (k = next++) < starts.size();) {
          const std::size_t len = std::min<std::size_t>(1000, n - starts[k]);
          if (is_double)
            s.fill(p.tensor.info, rng, starts[k],
                   std::span<double>(expected).subspan(starts[k], len));
          else
            s.fill(p.tensor.info, rng, starts[k],
                   std::span<float>(as_float).subspan(starts[k], len));
        }
      });
    for (auto& w : workers) w.join();
    if (!is_double) expected.assign(as_float.begin(), as_float.end());
    CHECK(one.values(p.tensor.info.name) == expected);
    CHECK(many.values(p.tensor.info.name) == expected);
    ++checked;
  }
  // Kaiming (relu), xavier (tanh), lecun (selu, float64), embedding normal;
  // biases are absent, so every rewritten tensor spans several chunks.
  CHECK(checked == 4);
}
