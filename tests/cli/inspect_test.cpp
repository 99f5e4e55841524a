// End-to-end tests of `onnx-reinit MODEL --inspect [--json]` and
// `-o OUT --calibrate lsuv`: the JSON contract, the table, the report's LSUV
// fields, bytes independent of --threads, the --plot files, and failures
// that write nothing.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <random>

#include "support/cli_runner.h"
#include "support/onnx_builder.h"

namespace ori = onnx_reinit;
using namespace ori::test;
using json = nlohmann::ordered_json;  // keeps the document's field order

namespace {

// x[N,32] -> 6 x (Gemm + Relu) with PyTorch's default init, then Gemm.
onnx::ModelProto mlp() {
  graph_builder g;
  g.add_input("x", {-1, 32});
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> u(-1.0f / std::sqrt(32.0f), 1.0f / std::sqrt(32.0f));
  std::string h = "x";
  for (int i = 0; i < 7; ++i) {
    std::vector<float> w(32 * 32), b(32);
    for (auto& v : w) v = u(gen);
    for (auto& v : b) v = u(gen);
    const std::string n = std::to_string(i);
    g.add_initializer("fc" + n + ".weight", {32, 32}, w);
    g.add_initializer("fc" + n + ".bias", {32}, b);
    g.add_node("Gemm", {h, "fc" + n + ".weight", "fc" + n + ".bias"}, {"z" + n},
               {make_attribute("transB", std::int64_t{1})});
    h = "z" + n;
    if (i < 6) {
      g.add_node("Relu", {h}, {"a" + n});
      h = "a" + n;
    }
  }
  g.add_output(h, {-1, 32});
  return g.model();
}

// The text of an SVG with its character references (PLplot's SVG driver
// writes every character as &#xNN;) decoded.
[[maybe_unused]] std::string decoded_svg(const std::string& svg) {
  std::string out;
  for (std::size_t i = 0; i < svg.size(); ++i) {
    if (svg.compare(i, 3, "&#x") == 0) {
      const std::size_t end = svg.find(';', i);
      if (end != std::string::npos) {
        out += static_cast<char>(std::stoi(svg.substr(i + 3, end - i - 3), nullptr, 16));
        i = end;
        continue;
      }
    }
    out += svg[i];
  }
  return out;
}

}  // namespace

#ifdef ONNX_REINIT_NO_RUNTIME
TEST_CASE("--inspect says the tool was built without the runtime", "[cli][inspect]") {
  temp_dir dir;
  save_proto(mlp(), dir / "m.onnx");
  check_error(run_cli({(dir / "m.onnx").string(), "--inspect"}), 1, {"without ONNX Runtime"});
}
#else
TEST_CASE("--inspect --json prints the documented document", "[cli][inspect]") {
  temp_dir dir;
  save_proto(mlp(), dir / "m.onnx");
  auto r = run_cli({(dir / "m.onnx").string(), "--inspect", "--json", "--batch", "64"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  json j = json::parse(r.out);
  std::vector<std::string> keys;
  for (auto& [k, v] : j.items()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"model", "batch", "inputs", "layers", "summary"});
  CHECK(j["batch"] == 64);
  REQUIRE(j["inputs"].size() == 1);
  CHECK(j["inputs"][0]["name"] == "x");
  CHECK(j["inputs"][0]["shape"] == json::array({64, 32}));
  CHECK(j["inputs"][0]["source"] == "normal(0, 1)");
  REQUIRE(j["layers"].size() == 7);
  const std::vector<std::string> fields = {"name",
                                           "op",
                                           "output",
                                           "mean",
                                           "std",
                                           "act",
                                           "act_std",
                                           "dead_fraction",
                                           "saturated_fraction",
                                           "max_abs",
                                           "nonfinite",
                                           "ratio_to_first",
                                           "rms",
                                           "predicted_rms",
                                           "flags"};
  for (std::size_t i = 0; i < 7; ++i) {
    const auto& l = j["layers"][i];
    std::vector<std::string> got;
    for (auto& [k, v] : l.items()) got.push_back(k);
    CHECK(got == fields);
    CHECK(l["name"] == fmt::format("fc{}.weight", i));
    CHECK(l["output"] == fmt::format("z{}", i));
    CHECK(l["act"] == (i < 6 ? "relu" : "linear"));
  }
  CHECK(j["layers"][0]["ratio_to_first"] == 1.0);
  CHECK(j["layers"][6]["dead_fraction"].is_null());
  // PyTorch's default init shrinks the std about sqrt(1/6) per ReLU layer
  // (U(+-1/sqrt(n)) has variance 1/(3n); ReLU halves the second moment),
  // with the biases holding it up; six layers fall well below 0.25.
  CHECK(j["summary"]["last_first_ratio"].get<double>() < 0.25);
  CHECK(j["summary"]["flags"][0] == "vanishing");
  // "dead" exactly where more than 9 in 10 ReLU outputs are zero.
  for (const auto& l : j["layers"]) {
    const bool dead = std::find(l["flags"].begin(), l["flags"].end(), "dead") != l["flags"].end();
    CHECK(dead == (l["dead_fraction"].is_number() && l["dead_fraction"].get<double>() > 0.9));
  }
  CHECK(j["summary"]["worst_layer"] != "fc0.weight");
}

TEST_CASE("--inspect prints a table and a summary", "[cli][inspect]") {
  temp_dir dir;
  save_proto(mlp(), dir / "m.onnx");
  auto r = run_cli({(dir / "m.onnx").string(), "--inspect"});
  REQUIRE(r.status == 0);
  CHECK(contains(r.out, "fc3.weight"));
  CHECK(contains(r.out, "summary: 7 layers, last/first std ratio"));
  CHECK(contains(r.out, "vanishing"));
  CHECK(dir.snapshot().size() == 1);  // nothing written
}

TEST_CASE("-o --calibrate lsuv: report fields, and the same bytes for any --threads",
          "[cli][inspect][lsuv]") {
  temp_dir dir;
  save_proto(mlp(), dir / "m.onnx");
  std::string bytes[2];
  for (int t = 0; t < 2; ++t) {
    const std::string out = (dir / fmt::format("o{}.onnx", t)).string();
    const std::string report = (dir / fmt::format("r{}.json", t)).string();
    auto r = run_cli({(dir / "m.onnx").string(), "-o", out, "--calibrate", "lsuv", "--report",
                      report, "--threads", std::to_string(t + 1), "--inspect", "--json", "--batch",
                      "128", "-q"});
    INFO(r.err);
    REQUIRE(r.status == 0);
    bytes[t] = read_file(out);
    json rep = json::parse(read_file(report));
    int calibrated = 0, scaled = 0;
    for (const auto& tensor : rep["tensors"]) {
      const std::string name = tensor["name"];
      if (name.ends_with(".weight")) {
        ++calibrated;
        CHECK(std::abs(tensor["lsuv_std"].get<double>() - 1.0) <= 0.05);
        // Layers the default policy already left within the tolerance
        // need no scaling.
        CHECK(tensor["lsuv_iterations"].get<int>() >= 0);
        CHECK(tensor["lsuv_iterations"].get<int>() <= 10);
        scaled += tensor["lsuv_iterations"].get<int>() > 0 ? 1 : 0;
        CHECK(tensor["lsuv_scale"].get<double>() > 0);
      } else {
        CHECK(tensor["lsuv_scale"].is_null());
      }
    }
    CHECK(calibrated == 7);
    CHECK(scaled > 0);
    json shown = json::parse(r.out);
    CHECK(shown["original"]["summary"]["flags"][0] == "vanishing");
    for (const auto& l : shown["rewritten"]["layers"])
      CHECK(std::abs(l["std"].get<double>() - 1.0) <= 0.05);
  }
  CHECK(bytes[0] == bytes[1]);
  // A tighter tolerance gives other bytes: the option reaches the library.
  auto r = run_cli({(dir / "m.onnx").string(), "-o", (dir / "tight.onnx").string(), "--calibrate",
                    "lsuv", "--lsuv-tol", "0.001", "--batch", "128", "-q"});
  REQUIRE(r.status == 0);
  CHECK(read_file(dir / "tight.onnx") != bytes[0]);
}

TEST_CASE("runtime failures write nothing", "[cli][inspect]") {
  temp_dir dir;
  auto proto = mlp();
  auto* n = proto.mutable_graph()->add_node();
  n->set_op_type("NoSuchOp");
  n->set_domain("ai.example");
  n->add_input("z6");
  n->add_output("extra");
  auto* op = proto.add_opset_import();
  op->set_domain("ai.example");
  op->set_version(1);
  save_proto(proto, dir / "bad.onnx");
  save_proto(mlp(), dir / "m.onnx");
  const auto before = dir.snapshot();
  check_error(run_cli({(dir / "bad.onnx").string(), "-o", (dir / "o.onnx").string(), "--calibrate",
                       "lsuv", "--report", (dir / "r.json").string()}),
              1, {"ONNX Runtime cannot load the model", "NoSuchOp", "bad.onnx"});
  check_error(run_cli({(dir / "m.onnx").string(), "--inspect", "--input-shape", "y=1x32"}), 2,
              {"no graph input named 'y'"});
  check_error(run_cli({(dir / "m.onnx").string(), "--calibrate", "lsuv"}), 2, {"-o OUT"});
  check_error(run_cli({(dir / "m.onnx").string(), "--inspect", "--batch", "0"}), 2, {"batch size"});
  check_error(
      run_cli({(dir / "bad.onnx").string(), "--inspect", "--plot", (dir / "p.svg").string()}), 1,
      {"ONNX Runtime cannot load the model"});
  check_error(run_cli({(dir / "bad.onnx").string(), "-o", (dir / "o.onnx").string(), "--inspect",
                       "--plot", (dir / "p.png").string()}),
              1, {"ONNX Runtime cannot load the model"});
  check_error(run_cli({(dir / "m.onnx").string(), "--inspect", "--plot", (dir / "p.pdf").string()}),
              2, {"must end in .svg or .png"});
  check_error(run_cli({(dir / "m.onnx").string(), "--plot", (dir / "p.svg").string()}), 2,
              {"--plot goes with --inspect"});
  check_error(run_cli({(dir / "m.onnx").string(), "--inspect", "--plot",
                       (dir / "no_such_dir" / "p.svg").string()}),
              1, {"cannot write file", "no_such_dir"});
  CHECK(dir.snapshot() == before);
}

TEST_CASE("--plot draws the inspections with PLplot as SVG or PNG", "[cli][inspect][plot]") {
  temp_dir dir;
  save_proto(mlp(), dir / "m.onnx");
  auto alone =
      run_cli({(dir / "m.onnx").string(), "--inspect", "--plot", (dir / "m.svg").string()});
  INFO(alone.err);
  REQUIRE(alone.status == 0);
  const std::string svg = decoded_svg(read_file(dir / "m.svg"));
  CHECK(svg.starts_with("<?xml"));
  CHECK(contains(svg, "<svg"));
  CHECK(contains(svg, "Per-layer output std"));
  CHECK(contains(svg, ">model<"));  // the legend: one series
  CHECK_FALSE(contains(svg, "rewritten"));

  // Original, rewritten and calibrated; the plot is written with the model.
  auto r = run_cli({(dir / "m.onnx").string(), "-o", (dir / "o.onnx").string(), "--inspect",
                    "--calibrate", "lsuv", "--plot", (dir / "o.svg").string(), "-q"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  const std::string three = decoded_svg(read_file(dir / "o.svg"));
  for (const char* label : {">original<", ">rewritten<", ">calibrated (lsuv)<"})
    CHECK(contains(three, label));

  auto png = run_cli({(dir / "m.onnx").string(), "--inspect", "--plot", (dir / "m.png").string()});
  REQUIRE(png.status == 0);
  CHECK(read_file(dir / "m.png").starts_with("\x89PNG\r\n\x1a\n"));
}
#endif
