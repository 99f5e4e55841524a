// Hostile model files through the library: every fuzzer finding
// as a regression test, the size limits, and the load-time checks that keep
// any allocation from an untrusted size. Files in fuzz/regressions/ are the
// minimised fuzzer inputs themselves.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"
#include "support/onnx_builder.h"

namespace fs = std::filesystem;
using namespace onnx_reinit;
using onnx_reinit::test::graph_builder;
using onnx_reinit::test::make_attribute;
using onnx_reinit::test::make_int64_tensor;
using onnx_reinit::test::ramp;

namespace {

std::string serialize(const onnx::ModelProto& m) {
  std::string bytes;
  REQUIRE(m.SerializeToString(&bytes));
  return bytes;
}

loaded_model load_bytes(const std::string& bytes, const load_options& options = {}) {
  return load_model_from_bytes(std::as_bytes(std::span(bytes.data(), bytes.size())), "test.onnx",
                               {}, options);
}

// The fuzz target's whole path: load, analyse, plan, read every float tensor.
void fuzz_path(const std::string& bytes) {
  loaded_model m = load_bytes(bytes);
  const auto plans = make_plan(analyze_model(m), plan_options{});
  for (const auto& t : std::as_const(m).proto().graph().initializer())
    if (float_element_type(t)) (void)read_tensor_values<double>(m, t);
  (void)plans;
}

onnx::ModelProto dense(std::vector<std::int64_t> w_dims, std::string raw,
                       int type = onnx::TensorProto::FLOAT) {
  graph_builder g;
  g.add_input("x", {-1, 4});
  onnx::TensorProto w;
  w.set_name("w");
  w.set_data_type(type);
  for (auto d : w_dims) w.add_dims(d);
  w.set_raw_data(std::move(raw));
  g.add_initializer(w);
  g.add_node("MatMul", {"x", "w"}, {"h"});
  g.add_node("Relu", {"h"}, {"y"});
  g.add_output("y", {-1, 4});
  return g.model();
}

}  // namespace

TEST_CASE("fuzz regressions: every input in fuzz/regressions/ fails cleanly or loads") {
  const fs::path dir = fs::path(ONNX_REINIT_SOURCE_DIR) / "fuzz" / "regressions";
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(in), {}};
    INFO(e.path());
    try {
      fuzz_path(bytes);
    } catch (const error&) {
      // a clean refusal is the expected outcome
    }
    ++files;
  }
  CHECK(files >= 2);
}

TEST_CASE("fuzz finding 1: an untyped tensor whose dims overflow is refused at load") {
  // Found by model_fuzzer: an initializer of data type UNDEFINED with twelve
  // dims around 100 reached tensor_info::set_default_blocks, whose product
  // overflowed int64 (UBSan). Load now checks every tensor's dims.
  onnx::ModelProto m = dense({4, 4}, std::string(64, '\0'));
  onnx::TensorProto& t = *m.mutable_graph()->add_initializer();
  t.set_name("untyped");
  for (std::int64_t d : {107, 101, 114, 110, 101, 108, 95, 115, 104, 97, 112, 101}) t.add_dims(d);
  CHECK_THROWS_AS(load_bytes(serialize(m)), model_error);
  CHECK_THROWS_WITH(load_bytes(serialize(m)),
                    Catch::Contains("'untyped'") && Catch::Contains("overflows int64"));
  // Zero first does not excuse the rest: sub-products are taken later.
  onnx::ModelProto z = dense({0, std::int64_t{1} << 40, std::int64_t{1} << 40}, "");
  CHECK_THROWS_WITH(load_bytes(serialize(z)), Catch::Contains("overflows int64"));
}

TEST_CASE("fuzz finding 2: a Reshape to an overflowing shape is not evaluated") {
  // Found by model_fuzzer: Reshape's target came from a Constant holding
  // huge values; the layout evaluator multiplied them (UBSan, int64
  // overflow in layout.cpp). Such shapes now read as unknown.
  graph_builder g;
  g.add_input("x", {-1, 4});
  g.add_initializer("w", {4, 4}, ramp(16));
  g.add_constant(
      make_int64_tensor("shape", {3}, {std::int64_t{1} << 40, std::int64_t{1} << 40, -1}));
  g.add_constant(make_int64_tensor("shape2", {2}, {std::numeric_limits<std::int64_t>::max(), 3}));
  g.add_node("Reshape", {"w", "shape"}, {"w2"});
  g.add_node("Reshape", {"w", "shape2"}, {"w3"});
  g.add_node("Concat", {"w3", "w3"}, {"w4"}, {make_attribute("axis", std::int64_t{0})});
  g.add_node("MatMul", {"x", "w2"}, {"h"});
  g.add_node("MatMul", {"h", "w4"}, {"y"});
  g.add_output("y", {-1, 4});
  const onnx::ModelProto m = g.model();
  std::vector<tensor_analysis> a;
  REQUIRE_NOTHROW(a = analyze_model(m));
  CHECK_NOTHROW(fuzz_path(serialize(m)));
}

TEST_CASE("read_tensor_values checks the data before allocating from dims") {
  // A tensor claiming 2^40 elements with 16 bytes of data, reached without
  // load's checks (a model built in memory): a model_error, not bad_alloc.
  loaded_model m = loaded_model::from_proto(
      dense({std::int64_t{1} << 20, std::int64_t{1} << 20}, std::string(16, '\0')));
  const onnx::TensorProto& w = std::as_const(m).proto().graph().initializer(0);
  CHECK_THROWS_AS(read_tensor_values<float>(m, w), model_error);
}

TEST_CASE("hostile tensors are refused at load with a clear error") {
  struct hostile {
    const char* what;
    onnx::ModelProto model;
    const char* message;
  };
  onnx::ModelProto typed_short = dense({4, 4}, "");
  typed_short.mutable_graph()->mutable_initializer(0)->clear_raw_data();
  for (int i = 0; i < 3; ++i)
    typed_short.mutable_graph()->mutable_initializer(0)->add_float_data(1);
  const hostile cases[] = {
      {"negative dims", dense({-1, 4}, std::string(16, '\0')), "negative dimension (-1)"},
      {"dims overflow", dense({1LL << 32, 1LL << 32, 16}, ""), "overflows int64"},
      {"raw_data short", dense({4, 4}, std::string(10, '\0')), "raw_data holds 10 bytes"},
      {"raw_data long", dense({2, 2}, std::string(64, '\0')), "raw_data holds 64 bytes"},
      {"float_data short", typed_short, "float_data holds 3 values"},
      {"2^40 elements", dense({1LL << 20, 1LL << 20}, ""), "per-tensor limit"},
      {"2^40 float16", dense({1LL << 20, 1LL << 20}, "", onnx::TensorProto::FLOAT16),
       "per-tensor limit"},
  };
  for (const hostile& h : cases) {
    INFO(h.what);
    CHECK_THROWS_WITH(load_bytes(serialize(h.model)), Catch::Contains(h.message));
  }
  std::string truncated = serialize(dense({4, 4}, std::string(64, '\0')));
  truncated.resize(truncated.size() / 2);
  CHECK_THROWS_WITH(load_bytes(truncated), Catch::Contains("corrupt or truncated protobuf"));
}

TEST_CASE("size limits: per tensor and total, with limit_error, and lifted") {
  const std::string bytes = serialize(dense({64, 64}, std::string(64 * 64 * 4, '\0')));
  load_options tight;
  tight.max_tensor_bytes = 1024;
  CHECK_THROWS_AS(load_bytes(bytes, tight), limit_error);
  CHECK_THROWS_WITH(load_bytes(bytes, tight), Catch::Contains("tensor 'w' is 16384 bytes"));
  load_options total;
  total.max_total_bytes = 16383;
  CHECK_THROWS_AS(load_bytes(bytes, total), limit_error);
  total.max_total_bytes = 16384;
  CHECK_NOTHROW(load_bytes(bytes, total));
  load_options none;
  none.max_tensor_bytes = none.max_total_bytes = load_options::no_size_limit;
  CHECK_NOTHROW(load_bytes(bytes, none));
}

TEST_CASE("cyclic graphs, dangling inputs and a 10,000-node chain analyse without crashing") {
  graph_builder cyc;
  cyc.add_input("x", {-1, 8});
  cyc.add_initializer("w", {8, 8}, ramp(64));
  cyc.add_node("MatMul", {"x", "w"}, {"a"});
  cyc.add_node("Add", {"a", "b"}, {"c"});
  cyc.add_node("Relu", {"c"}, {"b"});
  cyc.add_node("Gemm", {"nowhere", "w", "nothing"}, {"d"});
  cyc.add_node("Identity", {"b"}, {"y"});
  cyc.add_output("y", {-1, 8});
  CHECK_NOTHROW(fuzz_path(serialize(cyc.model())));

  graph_builder chain;
  chain.add_input("x", {-1, 8});
  chain.add_initializer("w", {8, 8}, ramp(64));
  chain.add_node("MatMul", {"x", "w"}, {"t0"});
  for (int i = 0; i < 10000; ++i)
    chain.add_node(i % 2 ? "Relu" : "Identity", {fmt::format("t{}", i)},
                   {fmt::format("t{}", i + 1)});
  chain.add_output("t10000", {-1, 8});
  std::vector<tensor_analysis> a;
  CHECK_NOTHROW(a = analyze_model(chain.model()));
  CHECK_NOTHROW(fuzz_path(serialize(chain.model())));
}

TEST_CASE("fuzz finding 3: a float tensor used as a shape with huge values is not converted") {
  // Found by model_fuzzer: a float initializer fed Reshape's shape input;
  // converting -6.6e35 to int64 was undefined (UBSan, layout.cpp
  // const_ints). Such value lists now read as unknown.
  graph_builder g;
  g.add_input("x", {-1, 4});
  g.add_initializer("w", {4, 4}, ramp(16));
  g.add_initializer("shape", {2}, {-6.6e35f, 1e30f});
  g.add_node("Reshape", {"w", "shape"}, {"w2"});
  g.add_node("MatMul", {"x", "w2"}, {"y"});
  g.add_output("y", {-1, 4});
  CHECK_NOTHROW(analyze_model(g.model()));
  CHECK_NOTHROW(fuzz_path(serialize(g.model())));
}

// ---------------------------------------------------------------------------
// Hostile attributes: every attribute the analysis does arithmetic with is
// checked against the tensor's dims; a mismatch or an overflow gives the
// default view and a note, never a crash or undefined behaviour.

namespace {

constexpr std::int64_t two_32 = std::int64_t{1} << 32;
constexpr std::int64_t two_61 = std::int64_t{1} << 61;
constexpr std::int64_t int64_min = std::numeric_limits<std::int64_t>::min();
constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();

const tensor_analysis& find(const std::vector<tensor_analysis>& a, const std::string& name) {
  for (const auto& t : a)
    if (t.ref.name == name) return t;
  FAIL("no tensor " << name);
  throw;
}

bool has_note(const tensor_analysis& t, const std::string& word) {
  for (const auto& n : t.notes)
    if (n.find(word) != std::string::npos) return true;
  return false;
}

// The matrix view always tiles the tensor exactly, with finite positive fans.
void check_sane(const tensor_analysis& t) {
  INFO(t.ref.name);
  CHECK(t.info.block_count * t.info.block_rows * t.info.block_cols == t.info.element_count());
  CHECK(std::isfinite(t.info.fan_in));
  CHECK(std::isfinite(t.info.fan_out));
  CHECK(t.info.fan_in > 0);
  CHECK(t.info.fan_out > 0);
  CHECK(t.info.groups >= 1);
}

// LSTM with H = 2, I = 3: W [1, 8, 3], R [1, 8, 2], B [1, 16].
onnx::ModelProto lstm(std::optional<std::int64_t> hidden_size) {
  graph_builder g;
  g.add_input("x", {5, 1, 3});
  g.add_initializer("W", {1, 8, 3}, ramp(24));
  g.add_initializer("R", {1, 8, 2}, ramp(16));
  g.add_initializer("B", {1, 16}, ramp(16));
  std::vector<onnx::AttributeProto> attrs;
  if (hidden_size) attrs.push_back(make_attribute("hidden_size", *hidden_size));
  g.add_node("LSTM", {"x", "W", "R", "B"}, {"y"}, attrs);
  g.add_output("y", {5, 1, 1, 2});
  return g.model();
}

// Conv weight [4, 2, 3, 3] on 4 input channels: group 2 is the true value.
onnx::ModelProto conv(std::vector<onnx::AttributeProto> attrs) {
  graph_builder g;
  g.add_input("x", {1, 4, 8, 8});
  g.add_initializer("w", {4, 2, 3, 3}, ramp(72));
  g.add_initializer("b", {4}, ramp(4));
  g.add_node("Conv", {"x", "w", "b"}, {"y"}, std::move(attrs));
  g.add_output("y", {1, 4, 6, 6});
  return g.model();
}

}  // namespace

TEST_CASE("hostile hidden_size: LSTM gate blocks fall back to the default view with a note") {
  SECTION("the true hidden_size and none give gate blocks of H rows") {
    for (auto h : {std::optional<std::int64_t>{2}, std::optional<std::int64_t>{}}) {
      const auto a = analyze_model(lstm(h));
      CHECK(find(a, "W").info.block_count == 4);
      CHECK(find(a, "W").info.block_rows == 2);
      CHECK(find(a, "R").info.block_cols == 2);
      CHECK(find(a, "W").notes.empty());
      CHECK(find(a, "B").forget_gate_ranges ==
            std::vector<std::pair<std::int64_t, std::int64_t>>{{4, 6}});
      for (const char* n : {"W", "R", "B"}) check_sane(find(a, n));
    }
  }
  for (std::int64_t h : {two_32, two_61, std::int64_t{-2}, std::int64_t{0}, std::int64_t{3},
                         std::int64_t{1}, int64_min, int64_max}) {
    DYNAMIC_SECTION("hidden_size " << h) {
      std::vector<tensor_analysis> a;
      REQUIRE_NOTHROW(a = analyze_model(lstm(h)));
      for (const char* n : {"W", "R", "B"}) check_sane(find(a, n));
      CHECK(has_note(find(a, "W"), "hidden_size"));
      CHECK(has_note(find(a, "R"), "hidden_size"));
      CHECK(has_note(find(a, "B"), "hidden_size"));
      // Default matrix view of the stored tensor: fans from its last two dims.
      CHECK(find(a, "W").info.block_count == 1);
      CHECK(find(a, "W").info.fan_in == 3);
      CHECK(find(a, "W").info.fan_out == 8);
      CHECK(find(a, "R").info.fan_in == 2);
      CHECK(find(a, "B").forget_gate_ranges.empty());
      CHECK_NOTHROW(fuzz_path(serialize(lstm(h))));
    }
  }
}

TEST_CASE("hostile group: must divide the channels, else group 1 with a note") {
  const auto good = analyze_model(conv({make_attribute("group", std::int64_t{2})}));
  CHECK(find(good, "w").info.groups == 2);
  CHECK(find(good, "w").info.fan_out == 2 * 9);
  CHECK(find(good, "w").notes.empty());
  for (std::int64_t g :
       {std::int64_t{0}, std::int64_t{-1}, std::int64_t{3}, two_32, two_61, int64_min, int64_max}) {
    INFO("group " << g);
    std::vector<tensor_analysis> a;
    REQUIRE_NOTHROW(a = analyze_model(conv({make_attribute("group", g)})));
    const auto& w = find(a, "w");
    check_sane(w);
    CHECK(has_note(w, "group"));
    CHECK(w.info.groups == 1);
    CHECK(w.info.fan_in == 2 * 9);
    CHECK(w.info.fan_out == 4 * 9);
    CHECK_NOTHROW(fuzz_path(serialize(conv({make_attribute("group", g)}))));
  }
}

TEST_CASE("hostile strides: positive, bounded, one per spatial axis, else ignored with a note") {
  using ints = std::vector<std::int64_t>;
  const auto good = analyze_model(conv({make_attribute("strides", ints{2, 2})}));
  CHECK(find(good, "w").info.fan_out == 4 * 9 / 4.0);
  for (const ints& s : {ints{0, 1}, ints{-1, -1}, ints{1, -2}, ints{two_61, two_61},
                        ints{int64_max, 2}, ints{int64_min, int64_min}, ints{2}, ints{1, 1, 1}}) {
    INFO("strides " << s.size() << ": " << s[0]);
    std::vector<tensor_analysis> a;
    REQUIRE_NOTHROW(a = analyze_model(conv({make_attribute("strides", s)})));
    const auto& w = find(a, "w");
    check_sane(w);
    CHECK(has_note(w, "strides"));
    CHECK(w.info.fan_out == 4 * 9);
  }
}

TEST_CASE("kernel_shape disagreeing with the weight: the weight's dims win, with a note") {
  using ints = std::vector<std::int64_t>;
  const auto good = analyze_model(conv({make_attribute("kernel_shape", ints{3, 3})}));
  CHECK(find(good, "w").notes.empty());
  for (const ints& k : {ints{5, 5}, ints{3}, ints{0, 0}, ints{two_61, -1}}) {
    const auto a = analyze_model(conv({make_attribute("kernel_shape", k)}));
    const auto& w = find(a, "w");
    check_sane(w);
    CHECK(has_note(w, "kernel_shape"));
    CHECK(w.info.receptive_field == 9);
    CHECK(w.info.fan_in == 2 * 9);
  }
}

TEST_CASE("hostile layout attributes read as unknown layout, not a wrong shape") {
  // w [8, 3] reaches MatMul through a layout op with bad attributes; the
  // evaluator must not invent a shape, so the fans come from w itself.
  using ints = std::vector<std::int64_t>;
  auto model = [](const std::string& op, std::vector<onnx::AttributeProto> attrs,
                  std::vector<std::string> extra = {}) {
    graph_builder g;
    g.add_input("x", {-1, 8});
    g.add_initializer("w", {8, 3}, ramp(24));
    g.add_initializer("v", {8, 5}, ramp(40));
    std::vector<std::string> inputs{"w"};
    inputs.insert(inputs.end(), extra.begin(), extra.end());
    g.add_node(op, inputs, {"w0", "w1"}, std::move(attrs));
    g.add_node("MatMul", {"x", op == "Split" ? "w1" : "w0"}, {"y"});
    g.add_output("y", {-1, 3});
    return g.model();
  };
  struct hostile {
    const char* what;
    onnx::ModelProto m;
  };
  const hostile cases[] = {
      {"Transpose perm not a permutation",
       model("Transpose", {make_attribute("perm", ints{0, 0})})},
      {"Transpose perm out of range",
       model("Transpose", {make_attribute("perm", ints{0, two_61})})},
      {"Split sizes negative", model("Split", {make_attribute("split", ints{-2, 10})})},
      {"Split sizes overflow",
       model("Split", {make_attribute("split", ints{int64_max, int64_max, 8})})},
      {"Split sizes not summing to the dim", model("Split", {make_attribute("split", ints{1, 9})})},
      {"Split axis out of range", model("Split", {make_attribute("axis", two_61)})},
      {"Squeeze axes out of range", model("Squeeze", {make_attribute("axes", ints{two_61})})},
      {"Unsqueeze axes out of range",
       model("Unsqueeze", {make_attribute("axes", ints{int64_min})})},
      {"Concat other dims disagree",
       model("Concat", {make_attribute("axis", std::int64_t{0})}, {"v"})},
      {"Concat axis out of range", model("Concat", {make_attribute("axis", int64_max)}, {"w"})},
      {"Flatten axis out of range", model("Flatten", {make_attribute("axis", int64_min)})},
      {"Slice extreme starts and ends", model("Slice", {make_attribute("starts", ints{int64_min}),
                                                        make_attribute("ends", ints{int64_max})})},
      {"Slice axes out of range",
       model("Slice", {make_attribute("starts", ints{0}), make_attribute("ends", ints{1}),
                       make_attribute("axes", ints{two_61})})},
  };
  for (const hostile& h : cases) {
    INFO(h.what);
    std::vector<tensor_analysis> a;
    REQUIRE_NOTHROW(a = analyze_model(h.m));
    CHECK(find(a, "w").info.fan_in == 8);
    CHECK(find(a, "w").info.fan_out == 3);
    CHECK_NOTHROW(fuzz_path(serialize(h.m)));
  }
}

TEST_CASE("hostile transB and transA are read as ONNX Runtime does, with a note") {
  for (std::int64_t t : {two_32, std::int64_t{-1}, int64_min}) {
    graph_builder g;
    g.add_input("x", {-1, 8});
    g.add_initializer("w", {3, 8}, ramp(24));
    g.add_node("Gemm", {"x", "w"}, {"y"}, {make_attribute("transB", t)});
    g.add_output("y", {-1, 3});
    const auto a = analyze_model(g.model());
    INFO("transB " << t);
    CHECK(has_note(find(a, "w"), "transB"));
    CHECK(find(a, "w").info.fan_in == 8);  // any non-zero value transposes
    CHECK(find(a, "w").info.fan_out == 3);
  }
}
