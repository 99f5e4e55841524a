// End-to-end tests of the onnx-reinit command:
// models built with the ONNX protobuf API are written to a temp directory, the
// built executable runs on them as a child process, and its exit status,
// stdout, stderr, output models and reports are checked. Failures must leave
// the directory exactly as it was.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numbers>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <onnx/checker.h>
#include <nlohmann/json.hpp>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "support/cli_runner.h"
#include "support/documented_policy.h"
#include "support/model_structure.h"
#include "support/onnx_builder.h"
#include "support/sample_stats.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;
using json = nlohmann::json;
using ori::element_type;
using ori::test::graph_builder;
using ori::test::make_attribute;
using ori::test::mean_of;
using ori::test::ramp;
using ori::test::std_of;
using ori::test::storage_form;

using ori::test::check_error;
using ori::test::contains;
using ori::test::lines_of;
using ori::test::read_file;
using ori::test::read_proto;
using ori::test::run_cli;
using ori::test::run_result;
using ori::test::save_proto;
using ori::test::temp_dir;
using ori::test::write_file;

namespace {

// The plan table row of `tensor` (rows start with the name and a space).
std::string row_of(const std::string& table, const std::string& tensor) {
  for (const std::string& line : lines_of(table))
    if (line.rfind(tensor + " ", 0) == 0) return line;
  FAIL("no row for " << tensor << " in\n" << table);
  return {};
}

// ---------------------------------------------------------------------------
// Tensors of a written model

const onnx::TensorProto* find_tensor(const onnx::GraphProto& graph, const std::string& name) {
  for (const auto& t : graph.initializer())
    if (t.name() == name) return &t;
  for (const auto& node : graph.node()) {
    for (const auto& a : node.attribute()) {
      if (node.op_type() == "Constant" && a.name() == "value" && node.output(0) == name)
        return &a.t();
      if (a.has_g())
        if (const auto* t = find_tensor(a.g(), name)) return t;
    }
  }
  return nullptr;
}

const onnx::TensorProto& tensor_of(const onnx::ModelProto& model, const std::string& name) {
  const onnx::TensorProto* t = find_tensor(model.graph(), name);
  if (t == nullptr) FAIL("no tensor " << name);
  return *t;
}

// Values and little-endian bytes of a tensor, whatever its storage
// (external data included).
std::vector<double> values_of(const ori::loaded_model& m, const std::string& name) {
  return ori::read_tensor_values<double>(m, tensor_of(m.proto(), name));
}
std::string bytes_of(const ori::loaded_model& m, const std::string& name) {
  const ori::tensor_bytes_view view = ori::tensor_bytes(m, tensor_of(m.proto(), name));
  return {reinterpret_cast<const char*>(view.bytes().data()), view.size()};
}

// Relative bound on |sample std / std - 1| for n iid draws of kurtosis k: the
// sample variance has relative standard error sqrt((k-1)/n), so the sample
// std has half that; 6 of them make a false failure below 1e-8, while any
// wrong fan or gain (a factor >= 1.1 in std here) lies far outside.
double std_tolerance(std::size_t n, double kurtosis) {
  return 6.0 * std::sqrt((kurtosis - 1.0) / (4.0 * static_cast<double>(n)));
}
constexpr double normal_kurtosis = 3.0;
constexpr double uniform_kurtosis = 1.8;

void check_std(const std::vector<double>& v, double expected, double kurtosis) {
  const double n = static_cast<double>(v.size());
  INFO("n=" << n << " expected std " << expected << " got " << std_of(v));
  CHECK(std::abs(std_of(v) / expected - 1.0) < std_tolerance(v.size(), kurtosis));
  CHECK(std::abs(mean_of(v)) < 6.0 * expected / std::sqrt(n));
}

// Clears the data of every initializer (keeping names, dims, dtype and doc
// strings), so two models can be compared for everything but the values.
onnx::ModelProto without_values(onnx::ModelProto m) {
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    t.clear_raw_data();
    t.clear_float_data();
    t.clear_int32_data();
    t.clear_int64_data();
    t.clear_double_data();
  }
  return m;
}

// Checks that `out` is `in` with only initializer values changed: the
// structure (check_same_structure) and all the rest of the model equal.
void check_only_values_changed(const onnx::ModelProto& in, const onnx::ModelProto& out) {
  ori::test::check_same_structure(in, out);
  // And nothing else anywhere: the whole model but the values.
  CHECK(without_values(out).SerializeAsString() == without_values(in).SerializeAsString());
}

// ---------------------------------------------------------------------------
// Models

// Conv (+bias) -> Relu -> Reshape with an int64 shape initializer, and doc
// strings and metadata that must survive a rewrite.
onnx::ModelProto conv_relu_model() {
  graph_builder g("conv_net");
  g.add_input("x", {1, 16, 8, 8});
  g.add_initializer("conv.w", {32, 16, 3, 3}, ramp(32 * 16 * 9, -1.0f, 1.0f / 4096))
      .set_doc_string("conv weight");
  g.add_initializer("conv.b", {32}, ramp(32, 0.5f));
  g.add_initializer(ori::test::make_int64_tensor("shape", {2}, {1, 2048}));
  g.add_node("Conv", {"x", "conv.w", "conv.b"}, {"c"},
             {make_attribute("pads", std::vector<std::int64_t>{1, 1, 1, 1}),
              make_attribute("kernel_shape", std::vector<std::int64_t>{3, 3})},
             "conv")
      .set_doc_string("the only conv");
  g.add_node("Relu", {"c"}, {"r"}, {}, "relu");
  g.add_node("Reshape", {"r", "shape"}, {"y"}, {}, "flatten");
  g.add_output("y", {1, 2048});
  g.graph().set_doc_string("graph doc");
  onnx::ModelProto m = g.model();
  m.set_doc_string("model doc");
  m.set_producer_version("1.2.3");
  auto* p = m.add_metadata_props();
  p->set_key("author");
  p->set_value("cli tests");
  return m;
}

// Gemm -> Softmax: the classifier layer, linear.
onnx::ModelProto gemm_softmax_model() {
  graph_builder g;
  g.add_input("x", {4, 64});
  g.add_initializer("fc.w", {64, 10}, ramp(640, 0.1f, 0.001f));
  g.add_initializer("fc.b", {10}, ramp(10, 0.1f));
  g.add_node("Gemm", {"x", "fc.w", "fc.b"}, {"logits"});
  g.add_node("Softmax", {"logits"}, {"y"});
  g.add_output("y", {4, 10});
  return g.model();
}

// One LSTM layer: input 8, hidden 16, W/R/B initializers.
onnx::ModelProto lstm_model() {
  graph_builder g;
  g.add_input("X", {5, 2, 8});
  g.add_initializer("lstm.W", {1, 64, 8}, ramp(64 * 8, 0.0f, 0.01f));
  g.add_initializer("lstm.R", {1, 64, 16}, ramp(64 * 16, 0.0f, 0.01f));
  g.add_initializer("lstm.B", {1, 128}, ramp(128, 0.0f, 0.01f));
  g.add_node("LSTM", {"X", "lstm.W", "lstm.R", "lstm.B"}, {"Y"},
             {make_attribute("hidden_size", std::int64_t{16})});
  g.add_output("Y", {5, 1, 2, 16});
  return g.model();
}

// x -> MatMul a.w -> Add a.b -> Relu -> MatMul b.w -> Add b.b -> y.
// a.w: kaiming_normal, std sqrt(2/in); b.w: xavier_uniform, std
// sqrt(2/(hidden+out)); biases zeros. Original values are non-zero ramps so
// that every rewrite changes them.
onnx::ModelProto two_layer_model(std::int64_t in, std::int64_t hidden, std::int64_t out,
                                 element_type type = element_type::float32,
                                 storage_form form = storage_form::raw) {
  graph_builder g;
  auto n = [](std::int64_t a, std::int64_t b = 1) { return static_cast<std::size_t>(a * b); };
  g.add_input("x", {-1, in}, type);
  g.add_initializer("a.w", {in, hidden}, ramp(n(in, hidden), 0.5f, 1e-6f), type, form);
  g.add_initializer("a.b", {hidden}, ramp(n(hidden), 0.25f, 1e-3f), type, form);
  g.add_initializer("b.w", {hidden, out}, ramp(n(hidden, out), 0.5f, 1e-5f), type, form);
  g.add_initializer("b.b", {out}, ramp(n(out), 0.25f), type, form);
  g.add_node("MatMul", {"x", "a.w"}, {"h0"});
  g.add_node("Add", {"h0", "a.b"}, {"h1"});
  g.add_node("Relu", {"h1"}, {"h2"});
  g.add_node("MatMul", {"h2", "b.w"}, {"o0"});
  g.add_node("Add", {"o0", "b.b"}, {"y"});
  g.add_output("y", {-1, out}, type);
  return g.model();
}

// ---------------------------------------------------------------------------
// Reports

const json& tensor_entry(const json& report, const std::string& name) {
  for (const json& t : report.at("tensors"))
    if (t.at("name") == name) return t;
  FAIL("no report entry for " << name);
  return report;
}

const std::vector<std::string> report_fields = {
    "name",          "dtype",       "shape",      "consumer_op",      "role",
    "fan_in",        "fan_out",     "activation", "activation_param", "gain",
    "strategy",      "params",      "action",     "reason",           "target_std",
    "achieved_mean", "achieved_std"};

const std::vector<std::string> standard_strategies = {"zeros",
                                                      "ones",
                                                      "constant",
                                                      "uniform",
                                                      "normal",
                                                      "truncated_normal",
                                                      "variance_scaling",
                                                      "xavier_uniform",
                                                      "xavier_normal",
                                                      "kaiming_uniform",
                                                      "kaiming_normal",
                                                      "lecun_uniform",
                                                      "lecun_normal",
                                                      "torch_default",
                                                      "orthogonal",
                                                      "identity",
                                                      "dirac",
                                                      "sparse"};

const fs::path standard_plugin = fs::path(ONNX_REINIT_BUILD_PLUGIN_DIR) / "standard.so";

}  // namespace

// ---------------------------------------------------------------------------
// Listings

TEST_CASE("--list shows every standard strategy with its parameters and the plugin path") {
  const run_result r = run_cli({"--list"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.err.empty());
  for (const std::string& name : standard_strategies)
    CHECK(contains(r.out, "\n" + name + " [standard]  "));
  CHECK(contains(r.out, standard_plugin.string()));
  CHECK(contains(r.out, "plugin standard "));
  CHECK(!contains(r.out, "not loaded"));
  // Parameter lines under their strategy, with defaults and ranges.
  const std::string normal = r.out.substr(r.out.find("\nnormal [standard]"));
  CHECK(std::regex_search(normal, std::regex("\n    std +float +default 1 +in \\(0, inf\\)")));
}

TEST_CASE("--list --json has strategies with parameter schemas") {
  const run_result r = run_cli({"--list", "--json"});
  REQUIRE(r.status == 0);
  const json j = json::parse(r.out);
  std::set<std::string> names;
  for (const json& s : j.at("strategies")) {
    names.insert(s.at("name").get<std::string>());
    CHECK(s.at("params").is_array());
    CHECK(!s.at("formula").get<std::string>().empty());
    CHECK(fs::equivalent(s.at("plugin_path").get<std::string>(), standard_plugin));
  }
  for (const std::string& name : standard_strategies) CHECK(names.count(name) == 1);
  CHECK(j.at("load_errors").empty());
  REQUIRE(j.at("plugins").size() == 1);
  CHECK(j.at("plugins")[0].at("id") == "standard");
  CHECK(fs::equivalent(j.at("plugins")[0].at("path").get<std::string>(), standard_plugin));

  auto param = [&](const std::string& strategy, const std::string& name) -> const json& {
    for (const json& s : j.at("strategies"))
      if (s.at("name") == strategy)
        for (const json& p : s.at("params"))
          if (p.at("name") == name) return p;
    FAIL("no parameter " << strategy << "." << name);
    return j;
  };
  const json& mode = param("kaiming_normal", "mode");
  CHECK(mode.at("type") == "choice");
  CHECK(mode.at("default") == "fan_in");
  CHECK(mode.at("choices") == json::array({"fan_in", "fan_out"}));
  const json& std_param = param("normal", "std");
  CHECK(std_param.at("type") == "float");
  CHECK(std_param.at("default") == "1");
  CHECK(std_param.at("range") == "(0, inf)");
  CHECK(param("constant", "value").at("default") == "0");
  CHECK(param("xavier_uniform", "gain").at("range") == "(0, inf)");
}

TEST_CASE("--describe prints the formula; a typo suggests the nearest name") {
  const run_result r = run_cli({"--describe", "xavier_uniform"});
  REQUIRE(r.status == 0);
  CHECK(r.out.rfind("xavier_uniform: ", 0) == 0);
  CHECK(contains(r.out, "formula: U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))"));
  CHECK(contains(r.out, "\n    gain "));

  const run_result typo = run_cli({"--describe", "xavier_unifrom"});
  check_error(typo, 1, {"'xavier_unifrom'", "did you mean 'xavier_uniform'?"});
}

TEST_CASE("--print-policy lists the default policy rules in order") {
  const run_result r = run_cli({"--print-policy"});
  REQUIRE(r.status == 0);
  CHECK(onnx_reinit::test::policy_rule_lines(r.out) == onnx_reinit::test::documented_policy());
}

TEST_CASE("--version, --help and command line usage errors") {
  const run_result version = run_cli({"--version"});
  CHECK(version.status == 0);
  CHECK(std::regex_match(version.out, std::regex("onnx-reinit [0-9]+\\.[0-9]+\\.[0-9]+\n")));

  const run_result help = run_cli({"--help"});
  CHECK(help.status == 0);
  for (const char* flag :
       {"--seed", "--threads", "--rule", "--rules", "--only", "--skip", "--fan-convention",
        "--report", "--plugin", "--plugin-dir", "--external-data", "--in-place", "--plan", "--list",
        "--describe", "--print-policy"})
    CHECK(contains(help.out, flag));

  check_error(run_cli({"--frobnicate"}), 2, {"--frobnicate"});
  check_error(run_cli({}), 2, {"no MODEL"});
  check_error(run_cli({"--seed", "many"}), 2, {"--seed"});
  check_error(run_cli({"x.onnx", "--plan", "--fan-convention", "pytorch"}), 2,
              {"--fan-convention"});
}

// ---------------------------------------------------------------------------
// --plan

TEST_CASE("--plan shows the chosen strategies and writes nothing") {
  temp_dir dir;
  save_proto(conv_relu_model(), dir / "conv.onnx");
  save_proto(gemm_softmax_model(), dir / "gemm.onnx");
  save_proto(lstm_model(), dir / "lstm.onnx");
  const auto before = dir.snapshot();

  const run_result conv = run_cli({(dir / "conv.onnx").string(), "--plan"});
  INFO(conv.err);
  REQUIRE(conv.status == 0);
  const std::string w = row_of(conv.out, "conv.w");
  CHECK(contains(w, "kaiming_normal(a=0, mode=fan_in, nonlinearity=auto)"));
  CHECK(std::regex_search(w, std::regex(" Conv +weight +144 +288 +relu ")));
  CHECK(contains(row_of(conv.out, "conv.b"), " zeros"));
  CHECK(contains(row_of(conv.out, "shape"), "keep: "));

  const run_result gemm = run_cli({(dir / "gemm.onnx").string(), "--plan", "--policy", "textbook"});
  REQUIRE(gemm.status == 0);
  CHECK(std::regex_search(row_of(gemm.out, "fc.w"),
                          std::regex(" Gemm +weight +64 +10 +linear +xavier_uniform\\(gain=1\\)")));
  CHECK(contains(row_of(gemm.out, "fc.b"), " zeros"));

  const run_result lstm = run_cli({(dir / "lstm.onnx").string(), "--plan"});
  REQUIRE(lstm.status == 0);
  CHECK(std::regex_search(row_of(lstm.out, "lstm.W"), std::regex(" 8 +16 .* xavier_uniform")));
  CHECK(std::regex_search(row_of(lstm.out, "lstm.R"), std::regex(" 16 +16 .* orthogonal")));
  const std::string b = row_of(lstm.out, "lstm.B");
  CHECK(contains(b, " zeros"));
  CHECK(contains(b, "forget_bias=1"));

  CHECK(dir.snapshot() == before);
}

TEST_CASE("--plan --json has every report field per tensor") {
  temp_dir dir;
  save_proto(conv_relu_model(), dir / "conv.onnx");
  save_proto(gemm_softmax_model(), dir / "gemm.onnx");
  const auto before = dir.snapshot();

  const run_result r = run_cli({(dir / "conv.onnx").string(), "--plan", "--json", "--seed", "5"});
  REQUIRE(r.status == 0);
  const json j = json::parse(r.out);
  CHECK(j.at("model") == (dir / "conv.onnx").string());
  CHECK(j.at("seed") == 5);
  CHECK(j.at("fan_convention") == "semantic");
  CHECK(j.at("tool_version").is_string());
  REQUIRE(j.at("tensors").size() == 3);
  std::vector<std::string> order;
  for (const json& t : j.at("tensors")) {
    order.push_back(t.at("name"));
    for (const std::string& field : report_fields) {
      INFO(t.at("name") << " field " << field);
      CHECK(t.contains(field));
    }
  }
  CHECK(order == std::vector<std::string>{"conv.w", "conv.b", "shape"});

  const json& w = tensor_entry(j, "conv.w");
  CHECK(w.at("dtype") == "float32");
  CHECK(w.at("shape") == json::array({32, 16, 3, 3}));
  CHECK(w.at("consumer_op") == "Conv");
  CHECK(w.at("role") == "weight");
  CHECK(w.at("fan_in").get<double>() == 144.0);
  CHECK(w.at("fan_out").get<double>() == 288.0);
  CHECK(w.at("activation") == "relu");
  CHECK(w.at("gain").get<double>() == Approx(std::numbers::sqrt2));
  CHECK(w.at("strategy") == "kaiming_normal");
  CHECK(w.at("params").at("mode") == "fan_in");
  CHECK(w.at("action") == "planned");
  CHECK(contains(w.at("reason"), "policy"));
  CHECK(w.at("target_std").get<double>() == Approx(std::sqrt(2.0 / 144.0)));
  CHECK(w.at("achieved_mean").is_null());
  CHECK(w.at("achieved_std").is_null());

  const json& b = tensor_entry(j, "conv.b");
  CHECK(b.at("role") == "bias");
  CHECK(b.at("strategy") == "zeros");
  CHECK(b.at("target_std").get<double>() == 0.0);

  const json& shape = tensor_entry(j, "shape");
  CHECK(shape.at("action") == "kept");
  CHECK(shape.at("strategy").is_null());
  CHECK(!shape.at("reason").get<std::string>().empty());

  // The default (signal) policy gives the output layer logits of RMS 0.1:
  // it reads the graph input, second moment 1, over fan_in 64.
  const run_result sg = run_cli({(dir / "gemm.onnx").string(), "--plan", "--json"});
  REQUIRE(sg.status == 0);
  const json sj = json::parse(sg.out);
  CHECK(sj.at("policy") == "signal");
  CHECK(tensor_entry(sj, "fc.w").at("strategy") == "variance_scaling");
  CHECK(tensor_entry(sj, "fc.w").at("target_std").get<double>() == Approx(0.1 / 8.0));
  CHECK(tensor_entry(sj, "fc.w").at("predicted_output_rms").get<double>() == Approx(0.1));

  const run_result g =
      run_cli({(dir / "gemm.onnx").string(), "--plan", "--json", "--policy", "textbook"});
  REQUIRE(g.status == 0);
  const json gj = json::parse(g.out);
  CHECK(gj.at("policy") == "textbook");
  const json& fc = tensor_entry(gj, "fc.w");
  CHECK(fc.at("consumer_op") == "Gemm");
  CHECK(fc.at("fan_in").get<double>() == 64.0);
  CHECK(fc.at("fan_out").get<double>() == 10.0);
  CHECK(fc.at("activation") == "linear");
  CHECK(fc.at("gain").get<double>() == 1.0);
  CHECK(fc.at("strategy") == "xavier_uniform");
  CHECK(fc.at("params").at("gain").get<double>() == 1.0);
  CHECK(fc.at("target_std").get<double>() == Approx(std::sqrt(2.0 / 74.0)));

  CHECK(dir.snapshot() == before);
}

TEST_CASE("--fan-convention torch uses PyTorch's fans") {
  temp_dir dir;
  // A grouped, strided Conv (where the conventions differ) feeding a Gemm
  // with transB (weight stored [N, K] as in PyTorch, where they agree).
  graph_builder g;
  g.add_input("x", {1, 8, 9, 9});
  g.add_initializer("conv.w", {8, 4, 3, 3}, ramp(8 * 4 * 9));
  g.add_initializer(ori::test::make_int64_tensor("shape", {2}, {1, 128}));
  g.add_initializer("fc.w", {10, 128}, ramp(1280));
  g.add_node("Conv", {"x", "conv.w"}, {"c"},
             {make_attribute("group", std::int64_t{2}),
              make_attribute("strides", std::vector<std::int64_t>{2, 2})});
  g.add_node("Relu", {"c"}, {"r"});
  g.add_node("Reshape", {"r", "shape"}, {"f"});
  g.add_node("Gemm", {"f", "fc.w"}, {"y"}, {make_attribute("transB", std::int64_t{1})});
  g.add_output("y", {1, 10});
  save_proto(g.model(), dir / "m.onnx");

  const run_result semantic = run_cli({(dir / "m.onnx").string(), "--plan", "--json"});
  const run_result torch =
      run_cli({(dir / "m.onnx").string(), "--plan", "--json", "--fan-convention", "torch"});
  REQUIRE(semantic.status == 0);
  REQUIRE(torch.status == 0);
  const json s = json::parse(semantic.out);
  const json t = json::parse(torch.out);
  CHECK(t.at("fan_convention") == "torch");
  // semantic: fan_out = (M/g) * rf / s = 4 * 9 / 4; torch: shape[0] * rf.
  CHECK(tensor_entry(s, "conv.w").at("fan_in").get<double>() == 36.0);
  CHECK(tensor_entry(s, "conv.w").at("fan_out").get<double>() == 9.0);
  CHECK(tensor_entry(t, "conv.w").at("fan_in").get<double>() == 36.0);
  CHECK(tensor_entry(t, "conv.w").at("fan_out").get<double>() == 72.0);
  CHECK(tensor_entry(t, "conv.w").at("target_std").get<double>() == Approx(std::sqrt(2.0 / 36.0)));
  // Gemm [N, K] with transB is PyTorch's Linear layout: fan_in = K both ways.
  for (const json* j : {&s, &t}) {
    CHECK(tensor_entry(*j, "fc.w").at("fan_in").get<double>() == 128.0);
    CHECK(tensor_entry(*j, "fc.w").at("fan_out").get<double>() == 10.0);
  }
}

TEST_CASE("--fan-convention torch reads a Gemm weight stored [K, N] in PyTorch's layout") {
  temp_dir dir;
  save_proto(gemm_softmax_model(), dir / "gemm.onnx");
  const run_result semantic = run_cli({(dir / "gemm.onnx").string(), "--plan", "--json"});
  const run_result torch =
      run_cli({(dir / "gemm.onnx").string(), "--plan", "--json", "--fan-convention", "torch"});
  REQUIRE(semantic.status == 0);
  REQUIRE(torch.status == 0);
  // docs/DESIGN.md section 5: a [K, N] weight is read as [N, K], so fan_in =
  // shape[1] of that = K = 64 and fan_out = N = 10, as with `semantic`.
  for (const std::string* out : {&semantic.out, &torch.out}) {
    const json j = json::parse(*out);
    const json& fc = tensor_entry(j, "fc.w");
    CHECK(fc.at("fan_in").get<double>() == 64.0);
    CHECK(fc.at("fan_out").get<double>() == 10.0);
  }
}

// ---------------------------------------------------------------------------
// Rewriting

TEST_CASE("rewrite with --report: structure kept, values rewritten, report consistent") {
  temp_dir dir;
  const onnx::ModelProto input = conv_relu_model();
  save_proto(input, dir / "in.onnx");
  const std::string input_bytes = read_file(dir / "in.onnx");

  const run_result r = run_cli({(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string(),
                                "--report", (dir / "report.json").string(), "--seed", "7"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(r.out.empty());
  CHECK(contains(r.err, "rewrote 2 of 3 tensors"));
  CHECK(read_file(dir / "in.onnx") == input_bytes);
  CHECK_NOTHROW(onnx::checker::check_model((dir / "out.onnx").string()));

  const onnx::ModelProto output = read_proto(dir / "out.onnx");
  check_only_values_changed(input, output);
  CHECK(output.graph().initializer(0).doc_string() == "conv weight");

  const ori::loaded_model in = ori::load_model(dir / "in.onnx");
  const ori::loaded_model out = ori::load_model(dir / "out.onnx");
  CHECK(bytes_of(out, "shape") == bytes_of(in, "shape"));
  CHECK(tensor_of(output, "shape").SerializeAsString() ==
        tensor_of(input, "shape").SerializeAsString());
  CHECK(bytes_of(out, "conv.w") != bytes_of(in, "conv.w"));
  const std::vector<double> w = values_of(out, "conv.w");
  check_std(w, std::sqrt(2.0 / 144.0), normal_kurtosis);
  for (double v : values_of(out, "conv.b")) CHECK(v == 0.0);

  const json report = json::parse(read_file(dir / "report.json"));
  CHECK(report.at("model") == (dir / "in.onnx").string());
  CHECK(report.at("seed") == 7);
  CHECK(report.at("fan_convention") == "semantic");
  for (const json& t : report.at("tensors"))
    for (const std::string& field : report_fields) {
      INFO(t.at("name") << " field " << field);
      CHECK(t.contains(field));
    }
  const json& rw = tensor_entry(report, "conv.w");
  CHECK(rw.at("action") == "rewritten");
  CHECK(contains(rw.at("reason"), "policy"));
  const double target = rw.at("target_std").get<double>();
  CHECK(target == Approx(std::sqrt(2.0 / 144.0)));
  // The achieved figures are those of the values written.
  CHECK(rw.at("achieved_std").get<double>() == Approx(std_of(w)).epsilon(1e-6));
  CHECK(rw.at("achieved_mean").get<double>() == Approx(mean_of(w)).margin(1e-9));
  CHECK(std::abs(rw.at("achieved_std").get<double>() / target - 1.0) <
        std_tolerance(w.size(), normal_kurtosis));
  const json& rb = tensor_entry(report, "conv.b");
  CHECK(rb.at("action") == "rewritten");
  CHECK(rb.at("achieved_std").get<double>() == 0.0);
  const json& rs = tensor_entry(report, "shape");
  CHECK(rs.at("action") == "kept");
  CHECK(!rs.at("reason").get<std::string>().empty());
  CHECK(rs.at("achieved_std").is_null());
}

TEST_CASE("same seed gives the same bytes for any thread count; --only and --skip") {
  temp_dir dir;
  // a.w has 600k elements, more than two default chunks of 2^18.
  const onnx::ModelProto input = two_layer_model(600, 1000, 10);
  save_proto(input, dir / "in.onnx");
  // The textbook policy: each tensor by its own formula, so --skip and
  // --only leave the others' bytes as the full run writes them (under the
  // signal policy a kept layer changes what the next one is solved for).
  auto rewrite = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args{
        (dir / "in.onnx").string(), "-o", (dir / out).string(), "-q", "--policy", "textbook"};
    args.insert(args.end(), extra.begin(), extra.end());
    const run_result r = run_cli(args);
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.err.empty());  // -q
    return read_file(dir / out);
  };
  const std::string one = rewrite("t1.onnx", {"--seed", "42", "--threads", "1"});
  const std::string eight = rewrite("t8.onnx", {"--seed", "42", "--threads", "8"});
  const std::string other = rewrite("s43.onnx", {"--seed", "43", "--threads", "8"});
  CHECK(one == eight);
  CHECK(one != other);

  const ori::loaded_model in = ori::load_model(dir / "in.onnx");
  const ori::loaded_model full = ori::load_model(dir / "t1.onnx");
  const ori::loaded_model reseeded = ori::load_model(dir / "s43.onnx");
  CHECK(bytes_of(full, "a.w") != bytes_of(in, "a.w"));
  CHECK(bytes_of(full, "b.w") != bytes_of(in, "b.w"));
  CHECK(bytes_of(full, "a.w") != bytes_of(reseeded, "a.w"));
  CHECK(bytes_of(full, "b.w") != bytes_of(reseeded, "b.w"));
  check_std(values_of(full, "a.w"), std::sqrt(2.0 / 600.0), normal_kurtosis);
  check_std(values_of(full, "b.w"), std::sqrt(2.0 / 1010.0), uniform_kurtosis);

  rewrite("only.onnx", {"--seed", "42", "--only", "a*"});
  rewrite("skip.onnx", {"--seed", "42", "--skip", "a*", "--threads", "3"});
  const ori::loaded_model only = ori::load_model(dir / "only.onnx");
  const ori::loaded_model skip = ori::load_model(dir / "skip.onnx");
  for (const std::string name : {"a.w", "a.b"}) {
    CHECK(bytes_of(only, name) == bytes_of(full, name));
    CHECK(bytes_of(skip, name) == bytes_of(in, name));
  }
  for (const std::string name : {"b.w", "b.b"}) {
    CHECK(bytes_of(only, name) == bytes_of(in, name));
    CHECK(bytes_of(skip, name) == bytes_of(full, name));
  }
  check_only_values_changed(input, read_proto(dir / "only.onnx"));
}

TEST_CASE("--rule and --rules FILE are tried in order before the policy") {
  temp_dir dir;
  save_proto(conv_relu_model(), dir / "in.onnx");
  write_file(dir / "rules.yaml",
             "rules:\n"
             "  - \"conv.b=constant(value=3)\"\n"
             "  - match: \"conv.*\"\n"
             "    strategy: normal\n"
             "    params: {mean: 0, std: 0.01}\n"
             "  - \"conv.w=zeros\"\n");
  const run_result r = run_cli({(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string(),
                                "--rule", "conv.b=ones", "--rules", (dir / "rules.yaml").string(),
                                "--report", (dir / "report.json").string(), "-v"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  // -v prints the table with the deciding rule of each tensor.
  CHECK(contains(r.out, "    rule: conv.b=ones (--rule 1)\n"));
  CHECK(contains(r.out, "    rule: conv.*=normal(mean=0,std=0.01) ("));
  const ori::loaded_model out = ori::load_model(dir / "out.onnx");
  // conv.b: --rule 1 before the file's line 2; conv.w: the file's line 3
  // before its line 6 and before the policy.
  for (double v : values_of(out, "conv.b")) CHECK(v == 1.0);
  check_std(values_of(out, "conv.w"), 0.01, normal_kurtosis);
  const json report = json::parse(read_file(dir / "report.json"));
  CHECK(contains(tensor_entry(report, "conv.b").at("reason"), "--rule 1"));
  CHECK(contains(tensor_entry(report, "conv.w").at("reason"), "rules.yaml:3"));
  CHECK(tensor_entry(report, "conv.w").at("params").at("std").get<double>() == 0.01);
  // The int64 shape no rule named stays as it was.
  CHECK(tensor_entry(report, "shape").at("action") == "kept");
  const ori::loaded_model in = ori::load_model(dir / "in.onnx");
  CHECK(bytes_of(out, "shape") == bytes_of(in, "shape"));
}

TEST_CASE("bad rules, strategies and parameters fail with one line naming the culprit") {
  temp_dir dir;
  save_proto(conv_relu_model(), dir / "in.onnx");
  write_file(dir / "rules.yaml", "- \"conv.b=ones\"\n- \"role:wieght=zeros\"\n");
  const auto before = dir.snapshot();
  const std::string in = (dir / "in.onnx").string();
  const std::string out = (dir / "out.onnx").string();

  check_error(run_cli({in, "-o", out, "--rule", "conv.w"}), 2, {"--rule 1", "conv.w"});
  // A rule cannot turn an int64 shape into floats: naming it is an error,
  // not a rule silently ignored (a keep rule may name it).
  check_error(run_cli({in, "-o", out, "--rule", "conv.b=ones", "--rule", "shape=zeros"}), 2,
              {"rule 'shape=zeros' names 'shape'", "never rewritten", "--rule 2"});
  check_error(run_cli({in, "-o", out, "--rule", "conv.b=ones", "--rule", "role:wieght=zeros"}), 2,
              {"--rule 2", "wieght"});
  check_error(run_cli({in, "-o", out, "--rules", (dir / "rules.yaml").string()}), 2,
              {"rules.yaml:2", "wieght"});
  check_error(run_cli({in, "-o", out, "--rule", "conv.w=xavier_unifrom"}), 1,
              {"'xavier_unifrom'", "did you mean 'xavier_uniform'", "--rule 1"});
  check_error(run_cli({in, "-o", out, "--rule", "conv.w=normal(stdd=0.1)"}), 1,
              {"parameter 'stdd'", "--rule 1"});
  check_error(run_cli({in, "-o", out, "--rule", "conv.w=normal(std=-1)"}), 1,
              {"parameter 'std'", "-1", "--rule 1"});
  check_error(run_cli({in, "--plan", "--rule", "conv.w=kaiming_normal(mode=fan_avg)"}), 1,
              {"parameter 'mode'", "fan_avg"});
  check_error(run_cli({in, "-o", out, "--rules", (dir / "missing.yaml").string()}), 1,
              {"missing.yaml"});
  CHECK(dir.snapshot() == before);
}

TEST_CASE("usage and input failures leave everything as it was") {
  temp_dir dir;
  save_proto(conv_relu_model(), dir / "in.onnx");
  fs::create_directories(dir / "sub");
  std::mt19937 gen(3);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(gen());
  write_file(dir / "corrupt.onnx", noise);
  const auto before = dir.snapshot();
  const std::string in = (dir / "in.onnx").string();
  const std::string out = (dir / "out.onnx").string();

  check_error(run_cli({in}), 2, {"-o OUT"});
  check_error(run_cli({"-o", out}), 2, {"no MODEL"});
  check_error(run_cli({in, "-o", in}), 2, {"refusing to overwrite the input", "--in-place"});
  check_error(run_cli({in, "-o", (dir / "sub" / ".." / "in.onnx").string()}), 2,
              {"refusing to overwrite the input", "--in-place"});
  check_error(run_cli({in, "-o", out, "--in-place"}), 2, {"--in-place"});
  check_error(run_cli({in, "-o", out, "--json"}), 2, {"--json"});
  check_error(run_cli({in, "-o", out, "--bogus-flag"}), 2, {"--bogus-flag"});
  check_error(run_cli({(dir / "missing.onnx").string(), "-o", out}), 1, {"missing.onnx"});
  check_error(run_cli({(dir / "corrupt.onnx").string(), "-o", out}), 1, {"corrupt.onnx"});
  check_error(run_cli({in, "-o", (dir / "no_such_dir" / "out.onnx").string()}), 1, {"no_such_dir"});
  check_error(run_cli({in, "-o", out, "--plugin", (dir / "nope.so").string()}), 1, {"nope.so"});
  CHECK(dir.snapshot() == before);
}

TEST_CASE("a model whose external data file is missing is refused naming it") {
  temp_dir dir;
  onnx::ModelProto m = two_layer_model(16, 128, 4);
  for (auto& t : *m.mutable_graph()->mutable_initializer())
    if (t.name() == "a.w") ori::test::set_external(t, "a_w.bin", 0, 16 * 128 * 4);
  save_proto(m, dir / "in.onnx");
  const auto before = dir.snapshot();
  check_error(run_cli({(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string()}), 1,
              {"a_w.bin", "'a.w'"});
  check_error(run_cli({(dir / "in.onnx").string(), "--plan"}), 1, {"a_w.bin", "'a.w'"});
  CHECK(dir.snapshot() == before);

  // With the file present (but too short) the length is refused instead.
  write_file(dir / "a_w.bin", std::string(100, '\0'));
  const auto short_file = dir.snapshot();
  check_error(run_cli({(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string()}), 1,
              {"a_w.bin"});
  CHECK(dir.snapshot() == short_file);
}

TEST_CASE("--in-place overwrites the model with rewritten values") {
  temp_dir dir;
  const onnx::ModelProto input = gemm_softmax_model();
  save_proto(input, dir / "m.onnx");
  const std::string original = read_file(dir / "m.onnx");
  const run_result r = run_cli({(dir / "m.onnx").string(), "--in-place", "--seed", "3"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(read_file(dir / "m.onnx") != original);
  CHECK(std::vector<fs::path>(fs::directory_iterator(dir.path()), fs::directory_iterator()) ==
        std::vector<fs::path>{dir / "m.onnx"});
  CHECK_NOTHROW(onnx::checker::check_model((dir / "m.onnx").string()));
  check_only_values_changed(input, read_proto(dir / "m.onnx"));
  const ori::loaded_model out = ori::load_model(dir / "m.onnx");
  // xavier_uniform with fan_in 64, fan_out 10: bound sqrt(6/74).
  for (double v : values_of(out, "fc.w")) CHECK(std::abs(v) <= std::sqrt(6.0 / 74.0));
  for (double v : values_of(out, "fc.b")) CHECK(v == 0.0);

  // The same seed on the original gives the same bytes through -o.
  write_file(dir / "orig.onnx", original);
  REQUIRE(run_cli({(dir / "orig.onnx").string(), "-o", (dir / "o.onnx").string(), "--seed", "3"})
              .status == 0);
  CHECK(read_file(dir / "o.onnx") == read_file(dir / "m.onnx"));
}

TEST_CASE("--external-data writes one aligned data file with the same values") {
  temp_dir dir;
  save_proto(two_layer_model(64, 300, 10), dir / "in.onnx");
  fs::create_directories(dir / "out");
  const run_result ext =
      run_cli({(dir / "in.onnx").string(), "-o", (dir / "out" / "m.onnx").string(),
               "--external-data", "weights.bin", "--seed", "9"});
  INFO(ext.err);
  REQUIRE(ext.status == 0);
  const run_result inl =
      run_cli({(dir / "in.onnx").string(), "-o", (dir / "inline.onnx").string(), "--seed", "9"});
  REQUIRE(inl.status == 0);
  REQUIRE(fs::exists(dir / "out" / "weights.bin"));
  CHECK_NOTHROW(onnx::checker::check_model((dir / "out" / "m.onnx").string()));

  const onnx::ModelProto proto = read_proto(dir / "out" / "m.onnx");
  std::set<std::string> external;
  for (const auto& t : proto.graph().initializer()) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) continue;
    external.insert(t.name());
    CHECK(t.raw_data().empty());
    std::map<std::string, std::string> kv;
    for (const auto& e : t.external_data()) kv[e.key()] = e.value();
    CHECK(kv["location"] == "weights.bin");
    CHECK(std::stoull(kv["offset"]) % 4096 == 0);
    CHECK(std::stoull(kv["offset"]) + std::stoull(kv["length"]) <=
          fs::file_size(dir / "out" / "weights.bin"));
  }
  // a.w (76.8 kB), a.b (1200 B) and b.w (12 kB) reach the 1024-byte minimum;
  // b.b (40 B) stays inline.
  CHECK(external == std::set<std::string>{"a.w", "a.b", "b.w"});

  const ori::loaded_model a = ori::load_model(dir / "out" / "m.onnx");
  const ori::loaded_model b = ori::load_model(dir / "inline.onnx");
  for (const std::string name : {"a.w", "a.b", "b.w", "b.b"})
    CHECK(bytes_of(a, name) == bytes_of(b, name));
}

TEST_CASE("a model with external data keeps its layout, and --in-place replaces the data") {
  temp_dir dir;
  onnx::ModelProto m = two_layer_model(64, 128, 4);
  // a.w and b.w in one data file, b.w at an unaligned offset after a.w.
  std::string data;
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.name() != "a.w" && t.name() != "b.w") continue;
    const std::string raw = t.raw_data();
    const std::uint64_t offset = data.size();
    data += raw;
    ori::test::set_external(t, "weights.data", offset, raw.size());
  }
  save_proto(m, dir / "in.onnx");
  write_file(dir / "weights.data", data);
  fs::create_directories(dir / "out");
  const run_result r =
      run_cli({(dir / "in.onnx").string(), "-o", (dir / "out" / "m.onnx").string(), "--seed", "4"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(read_file(dir / "weights.data") == data);
  CHECK_NOTHROW(onnx::checker::check_model((dir / "out" / "m.onnx").string()));
  const onnx::ModelProto output = read_proto(dir / "out" / "m.onnx");
  for (const std::string name : {"a.w", "b.w"}) {
    const onnx::TensorProto& t = tensor_of(output, name);
    CHECK(t.data_location() == onnx::TensorProto::EXTERNAL);
    CHECK(t.external_data(0).value() == "weights.data");
  }
  CHECK(tensor_of(output, "a.b").data_location() != onnx::TensorProto::EXTERNAL);
  const ori::loaded_model in = ori::load_model(dir / "in.onnx");
  const ori::loaded_model out = ori::load_model(dir / "out" / "m.onnx");
  CHECK(bytes_of(out, "a.w") != bytes_of(in, "a.w"));
  check_std(values_of(out, "a.w"), std::sqrt(2.0 / 64.0), normal_kurtosis);

  // In place: the model and its data file are replaced, with the same values
  // as the run into out/.
  const run_result p = run_cli({(dir / "in.onnx").string(), "--in-place", "--seed", "4", "-q"});
  INFO(p.err);
  REQUIRE(p.status == 0);
  // Written under a fresh name, the old data file removed.
  CHECK(!fs::exists(dir / "weights.data"));
  CHECK(read_file(dir / "weights.data.r1") != data);
  const ori::loaded_model replaced = ori::load_model(dir / "in.onnx");
  for (const std::string name : {"a.w", "a.b", "b.w", "b.b"})
    CHECK(bytes_of(replaced, name) == bytes_of(out, name));
}

TEST_CASE("float16, bfloat16 and float64 models keep their dtype and storage") {
  struct dtype_case {
    element_type type;
    storage_form form;
    onnx::TensorProto::DataType onnx_type;
  };
  const dtype_case cases[] = {
      {element_type::float16, storage_form::typed, onnx::TensorProto::FLOAT16},
      {element_type::bfloat16, storage_form::raw, onnx::TensorProto::BFLOAT16},
      {element_type::float64, storage_form::typed, onnx::TensorProto::DOUBLE},
      {element_type::float64, storage_form::raw, onnx::TensorProto::DOUBLE},
  };
  for (const dtype_case& c : cases) {
    DYNAMIC_SECTION(ori::to_string(c.type) << (c.form == storage_form::raw ? " raw" : " typed")) {
      temp_dir dir;
      const onnx::ModelProto input = two_layer_model(128, 64, 8, c.type, c.form);
      save_proto(input, dir / "in.onnx");
      const run_result r = run_cli({(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string(),
                                    "--report", (dir / "r.json").string()});
      INFO(r.err);
      REQUIRE(r.status == 0);
      const onnx::ModelProto output = read_proto(dir / "out.onnx");
      check_only_values_changed(input, output);
      for (const std::string name : {"a.w", "a.b", "b.w", "b.b"}) {
        const onnx::TensorProto& before = tensor_of(input, name);
        const onnx::TensorProto& after = tensor_of(output, name);
        CHECK(after.data_type() == c.onnx_type);
        CHECK(after.raw_data().size() == before.raw_data().size());
        CHECK(after.int32_data_size() == before.int32_data_size());
        CHECK(after.double_data_size() == before.double_data_size());
        CHECK(after.float_data_size() == 0);
      }
      const ori::loaded_model out = ori::load_model(dir / "out.onnx");
      const ori::loaded_model in = ori::load_model(dir / "in.onnx");
      CHECK(bytes_of(out, "a.w") != bytes_of(in, "a.w"));
      check_std(values_of(out, "a.w"), std::sqrt(2.0 / 128.0), normal_kurtosis);
      for (double v : values_of(out, "a.b")) CHECK(v == 0.0);
      const json report = json::parse(read_file(dir / "r.json"));
      CHECK(tensor_entry(report, "a.w").at("dtype") == std::string(ori::to_string(c.type)));
    }
  }
}

TEST_CASE("Constant-node weights and If subgraph initializers are rewritten") {
  temp_dir dir;
  graph_builder then_b("then");
  then_b.add_initializer("then.w", {64, 32}, ramp(64 * 32, 0.5f, 1e-4f));
  then_b.add_node("MatMul", {"x", "then.w"}, {"t0"});
  then_b.add_node("Relu", {"t0"}, {"t1"});
  then_b.add_output("t1", {1, 32});
  graph_builder else_b("else");
  else_b.add_initializer("else.w", {64, 32}, ramp(64 * 32, 0.5f, 1e-4f));
  else_b.add_node("MatMul", {"x", "else.w"}, {"e0"});
  else_b.add_node("Tanh", {"e0"}, {"e1"});
  else_b.add_output("e1", {1, 32});
  graph_builder g;
  g.add_input("x", {1, 64});
  g.add_input("cond", {}, onnx::TensorProto::BOOL);
  g.add_constant(ori::test::make_tensor("const.w", {32, 16}, ramp(32 * 16, 0.5f, 1e-3f)),
                 "const_w");
  g.add_node("If", {"cond"}, {"branch"},
             {make_attribute("then_branch", then_b.graph()),
              make_attribute("else_branch", else_b.graph())},
             "If_0");
  g.add_node("MatMul", {"branch", "const.w"}, {"m"});
  g.add_node("Relu", {"m"}, {"y"});
  g.add_output("y", {1, 16});
  const onnx::ModelProto input = g.model();
  save_proto(input, dir / "in.onnx");

  const run_result r = run_cli({(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string(),
                                "--report", (dir / "r.json").string()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK_NOTHROW(onnx::checker::check_model((dir / "out.onnx").string()));
  const onnx::ModelProto output = read_proto(dir / "out.onnx");
  const ori::loaded_model in = ori::load_model(dir / "in.onnx");
  const ori::loaded_model out = ori::load_model(dir / "out.onnx");
  for (const std::string name : {"const.w", "then.w", "else.w"})
    CHECK(bytes_of(out, name) != bytes_of(in, name));
  check_std(values_of(out, "const.w"), std::sqrt(2.0 / 32.0), normal_kurtosis);
  check_std(values_of(out, "then.w"), std::sqrt(2.0 / 64.0), normal_kurtosis);
  const double tanh_bound = 5.0 / 3.0 * std::sqrt(6.0 / 96.0);
  for (double v : values_of(out, "else.w")) CHECK(std::abs(v) <= tanh_bound * (1 + 1e-6));
  check_std(values_of(out, "else.w"), tanh_bound / std::sqrt(3.0), uniform_kurtosis);

  // Only the tensors changed: clearing them everywhere makes the models equal.
  auto cleared = [](onnx::ModelProto m) {
    auto* node = m.mutable_graph()->mutable_node(0);
    node->mutable_attribute(0)->mutable_t()->clear_raw_data();
    auto* branch = m.mutable_graph()->mutable_node(1);
    for (auto& a : *branch->mutable_attribute())
      a.mutable_g()->mutable_initializer(0)->clear_raw_data();
    return m;
  };
  CHECK(cleared(output).SerializeAsString() == cleared(input).SerializeAsString());

  const json report = json::parse(read_file(dir / "r.json"));
  for (const std::string name : {"const.w", "then.w", "else.w"})
    CHECK(tensor_entry(report, name).at("action") == "rewritten");
  CHECK(tensor_entry(report, "else.w").at("activation") == "tanh");
}

#ifdef ONNX_REINIT_FIXTURE_GOOD_PLUGIN
TEST_CASE("--plugin FILE and ONNX_REINIT_PLUGIN_PATH add strategies for rules") {
  temp_dir dir;
  save_proto(conv_relu_model(), dir / "in.onnx");
  const run_result r =
      run_cli({(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string(), "--plugin",
               ONNX_REINIT_FIXTURE_GOOD_PLUGIN, "--rule",
               "conv.w=fixture_index(value=0.5,offset=1)", "--rule", "conv.b=fixture_whole"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  const ori::loaded_model out = ori::load_model(dir / "out.onnx");
  // fixture_index: element i is offset + value * i, so chunking and the
  // parameters are visible; fixture_whole writes the fan_in it was given
  // (a Conv bias has its layer's fan_in, 16 * 3 * 3).
  const std::vector<double> w = values_of(out, "conv.w");
  for (std::size_t i = 0; i < w.size(); ++i)
    if (w[i] != 1.0 + 0.5 * static_cast<double>(i)) FAIL("conv.w[" << i << "] = " << w[i]);
  for (double v : values_of(out, "conv.b")) CHECK(v == 144.0);

  // Without --plugin the strategy is unknown.
  check_error(run_cli({(dir / "in.onnx").string(), "--plan", "--rule", "conv.w=fixture_index"}), 1,
              {"fixture_index"});

  const run_result env = run_cli(
      {"--list"}, {std::string("ONNX_REINIT_PLUGIN_PATH=") + ONNX_REINIT_FIXTURE_ENV_PLUGIN_DIR});
  REQUIRE(env.status == 0);
  CHECK(contains(env.out, "\nfixture_env [fixture.env]  "));
  CHECK(contains(env.out, "\nxavier_uniform [standard]  "));
  CHECK(!contains(run_cli({"--list"}).out, "fixture_env"));
}
#endif

// ---------------------------------------------------------------------------
// Promises of the command line: strict numbers, usage errors, reports

TEST_CASE("numeric options out of range or not numbers are usage errors") {
  temp_dir dir;
  save_proto(conv_relu_model(), dir / "in.onnx");
  const auto before = dir.snapshot();
  const std::string in = (dir / "in.onnx").string();
  const std::string out = (dir / "out.onnx").string();
  for (const char* bad : {"-1", "99999999999999999999999", "18446744073709551616", "1.5", "0x10",
                          "+3", " 7", "7 ", ""}) {
    INFO("--seed '" << bad << "'");
    check_error(run_cli({in, "-o", out, "--seed", bad}), 2, {"--seed", "(command line)"});
  }
  for (const char* bad : {"-1", "4294967296", "two"}) {
    INFO("--threads '" << bad << "'");
    check_error(run_cli({in, "-o", out, "--threads", bad}), 2, {"--threads", "(command line)"});
  }
  for (const char* bad : {"-1", "-1kb", "20000000tb", "18446744073709551616", "1.5gb", "12xb"}) {
    INFO("--max-tensor-bytes '" << bad << "'");
    check_error(run_cli({in, "-o", out, "--max-tensor-bytes", bad}), 2,
                {"--max-tensor-bytes", "(command line)"});
    check_error(run_cli({in, "-o", out, "--max-total-bytes", bad}), 2,
                {"--max-total-bytes", "(command line)"});
  }
  CHECK(dir.snapshot() == before);

  // The largest values are accepted, and a suffix multiplies by 1024^k: 1kb
  // refuses conv.w (18432 bytes) while 18kb does not.
  CHECK(run_cli({in, "--plan", "--seed", "18446744073709551615"}).status == 0);
  check_error(run_cli({in, "--plan", "--max-tensor-bytes", "1kb"}), 1, {"conv.w"});
  CHECK(run_cli({in, "--plan", "--max-tensor-bytes", "18KB"}).status == 0);
  CHECK(run_cli({in, "--plan", "--max-tensor-bytes", "17kb"}).status == 1);
}

TEST_CASE("every usage error ends with (command line); --rule errors name the rule") {
  temp_dir dir;
  save_proto(conv_relu_model(), dir / "in.onnx");
  const std::string in = (dir / "in.onnx").string();
  const std::string out = (dir / "out.onnx").string();
  auto usage = [](const run_result& r, const std::string& mention) {
    check_error(r, 2, {mention});
    INFO(r.err);
    CHECK(r.err.size() > 15);
    CHECK(r.err.substr(r.err.size() - 15) == "(command line)\n");
  };
  usage(run_cli({"--frobnicate"}), "--frobnicate");
  usage(run_cli({in, "-o", out, "--seed"}), "--seed");
  usage(run_cli({}), "no MODEL");
  usage(run_cli({in}), "-o OUT");
  usage(run_cli({in, "-o", in}), "refusing to overwrite the input");
  usage(run_cli({in, "-o", out, "--in-place"}), "--in-place");
  usage(run_cli({in, "--plan", "-o", out}), "--plan");
  usage(run_cli({in, "-o", out, "--json"}), "--json");
  usage(run_cli({in, "-o", out, "--external-data", "sub/x.data"}), "plain file name");
  usage(run_cli({in, "-o", out, "--report", in}), "--report");
  usage(run_cli({in, "-o", out, "--report", out}), "--report");
  usage(run_cli({"--list", "--report", (dir / "r.json").string()}), "--report");
  const run_result rule = run_cli({in, "-o", out, "--rule", "conv.w"});
  check_error(rule, 2, {"(--rule 1)"});
}

TEST_CASE("a report that cannot be written writes nothing, the model included") {
  temp_dir dir;
  save_proto(conv_relu_model(), dir / "in.onnx");
  fs::create_directories(dir / "a_dir");
  const auto before = dir.snapshot();
  const std::string in = (dir / "in.onnx").string();
  const std::string out = (dir / "out.onnx").string();

  const run_result missing =
      run_cli({in, "-o", out, "--report", (dir / "no_such_dir" / "r.json").string()});
  check_error(missing, 1, {"cannot write file", "no_such_dir", "No such file or directory"});
  CHECK(dir.snapshot() == before);
  check_error(run_cli({in, "-o", out, "--report", (dir / "a_dir").string()}), 1,
              {"a_dir", "Is a directory"});
  check_error(run_cli({in, "-o", out, "--report", (dir / "in.onnx" / "r.json").string()}), 1,
              {"Not a directory"});
  check_error(run_cli({in, "--plan", "--report", (dir / "no_such_dir" / "r.json").string()}), 1,
              {"No such file or directory"});
  CHECK(dir.snapshot() == before);

  // A run that fails while sampling (a strategy refusing a tensor) leaves
  // neither the model nor the report, nor a staged report.
  check_error(run_cli({in, "-o", out, "--report", (dir / "r.json").string(), "--rule",
                       "conv.b=orthogonal"}),
              1, {"orthogonal", "conv.b"});
  CHECK(dir.snapshot() == before);
}

TEST_CASE("--plan --report FILE writes the plan report, the same as --plan --json") {
  temp_dir dir;
  save_proto(conv_relu_model(), dir / "in.onnx");
  const std::string in = (dir / "in.onnx").string();
  const run_result json_run = run_cli({in, "--plan", "--json", "--seed", "3"});
  REQUIRE(json_run.status == 0);
  const run_result r =
      run_cli({in, "--plan", "--seed", "3", "--report", (dir / "plan.json").string()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(row_of(r.out, "conv.w"), "kaiming_normal"));  // the table still prints
  const std::string written = read_file(dir / "plan.json");
  CHECK(written == json_run.out);
  const json j = json::parse(written);
  CHECK(tensor_entry(j, "conv.w").at("action") == "planned");
  CHECK(tensor_entry(j, "shape").at("action") == "kept");
  // Only the report was added: no staged temp file left beside it.
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file() ? 1 : 0;
  CHECK(files == 2);
}
