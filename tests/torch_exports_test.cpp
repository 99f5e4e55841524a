// Graphs as PyTorch writes them: small modules exported at opsets 9 to 17 by
// tools/scripts/make_torch_exports.py (checked in under tests/exports/torch/).
// The exporter decomposes norms and activations differently at each opset
// (LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add before 17, Hardswish as
// x*HardSigmoid(x) before 14, Mish, SiLU, GroupNorm and hand-written
// activations always) and folds BatchNorm into convolutions. For every
// module, each export must get the activations written by hand in
// expected.json, and all exports of one module must get the same plan.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;

namespace {

const fs::path exports_dir = fs::path(ONNX_REINIT_SOURCE_DIR) / "tests" / "exports" / "torch";

nlohmann::json expectations() {
  std::ifstream in(exports_dir / "expected.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

// The exports of one case, by opset: "<case>_opset<N>.onnx".
std::map<int, fs::path> exports_of(const std::string& name) {
  std::map<int, fs::path> out;
  const std::string prefix = name + "_opset";
  for (const auto& entry : fs::directory_iterator(exports_dir)) {
    const std::string file = entry.path().filename().string();
    if (!file.starts_with(prefix) || entry.path().extension() != ".onnx") continue;
    const std::string opset = file.substr(prefix.size(), file.size() - prefix.size() - 5);
    if (opset.find_first_not_of("0123456789") == std::string::npos)
      out.emplace(std::stoi(opset), entry.path());
  }
  return out;
}

// Weight inputs of the weighted layers in node order, read from the graph
// itself: Gemm/Conv/MatMul input 1, LSTM inputs 1 and 2, each traced back
// through the layout nodes PyTorch puts in front of them (Transpose for
// x @ W^T; Unsqueeze, and the Slice/Concat that reorder the gates, for the
// LSTM; a Concat is followed through its first input).
std::vector<std::string> weights_in_node_order(const onnx::GraphProto& graph) {
  std::map<std::string, std::string> layout_input;
  for (const auto& node : graph.node())
    if ((node.op_type() == "Transpose" || node.op_type() == "Unsqueeze" ||
         node.op_type() == "Slice" || node.op_type() == "Concat") &&
        node.input_size() >= 1)
      layout_input[node.output(0)] = node.input(0);
  auto source = [&](std::string value) {
    for (auto it = layout_input.find(value); it != layout_input.end();
         it = layout_input.find(value))
      value = it->second;
    return value;
  };
  std::vector<std::string> out;
  for (const auto& node : graph.node()) {
    const std::string& op = node.op_type();
    if ((op == "Gemm" || op == "Conv" || op == "MatMul") && node.input_size() > 1)
      out.push_back(source(node.input(1)));
    if (op == "LSTM") {
      out.push_back(source(node.input(1)));
      out.push_back(source(node.input(2)));
    }
  }
  return out;
}

struct export_plan {
  std::vector<ori::tensor_plan> weights;  // in node order
  std::map<std::string, ori::tensor_plan> by_name;
};

export_plan plan_export(const fs::path& file) {
  const ori::loaded_model model = ori::load_model(file);
  const auto plans = ori::make_plan(ori::analyze_model(model), ori::plan_options{});
  export_plan out;
  for (const auto& p : plans) out.by_name.emplace(p.tensor.info.name, p);
  for (const auto& name : weights_in_node_order(model.proto().graph())) {
    auto it = out.by_name.find(name);
    INFO(file.filename().string() << ": weight " << name);
    REQUIRE(it != out.by_name.end());
    out.weights.push_back(it->second);
  }
  return out;
}

// Everything the plan says about a weight, as one comparable line.
std::string summary(const ori::tensor_plan& p) {
  const auto& i = p.tensor.info;
  std::string params;
  for (const auto& [k, v] : p.call.params) params += fmt::format("{}={},", k, v);
  return fmt::format("role {} fans {}/{} act {}({}) gain {} -> {} {}({})", to_string(i.role),
                     i.fan_in, i.fan_out, to_string(i.activation), i.activation_param, i.gain,
                     p.action == ori::plan_action::rewrite ? "rewrite" : "keep " + p.reason,
                     p.call.strategy, params);
}

}  // namespace

TEST_CASE("every PyTorch export gets the activations read from its module", "[exports]") {
  const auto expected = expectations();
  std::size_t cases = 0;
  for (const auto& [name, want] : expected.items()) {
    if (name.starts_with("_")) continue;
    const auto files = exports_of(name);
    INFO("case " << name);
    REQUIRE(files.size() >= 2);  // at least two opsets of every module
    ++cases;
    for (const auto& [opset, file] : files) {
      INFO("opset " << opset);
      const export_plan plan = plan_export(file);
      const auto& acts = want.at("weights");
      REQUIRE(plan.weights.size() == acts.size());
      for (std::size_t k = 0; k < acts.size(); ++k) {
        INFO("weight " << k << " '" << plan.weights[k].tensor.info.name
                       << "': " << summary(plan.weights[k]));
        CHECK(to_string(plan.weights[k].tensor.info.activation) == acts[k].get<std::string>());
        CHECK(plan.weights[k].action == ori::plan_action::rewrite);
        if (want.contains("params"))
          CHECK(plan.weights[k].tensor.info.activation_param ==
                Approx(want["params"][k].get<double>()).margin(1e-6));
      }
      if (want.contains("roles"))
        for (const auto& [tensor, role] : want["roles"].items()) {
          INFO("tensor " << tensor);
          auto it = plan.by_name.find(tensor);
          REQUIRE(it != plan.by_name.end());
          CHECK(to_string(it->second.tensor.info.role) == role.get<std::string>());
        }
    }
  }
  CHECK(cases >= 20);
}

TEST_CASE("all exports of one module get the same plan", "[exports]") {
  const auto expected = expectations();
  for (const auto& [name, want] : expected.items()) {
    if (name.starts_with("_")) continue;
    INFO("case " << name);
    std::vector<std::string> first;
    int first_opset = 0;
    for (const auto& [opset, file] : exports_of(name)) {
      const export_plan plan = plan_export(file);
      std::vector<std::string> lines;
      for (const auto& w : plan.weights) lines.push_back(summary(w));
      if (first.empty()) {
        first = lines;
        first_opset = opset;
        continue;
      }
      INFO("opset " << first_opset << " vs opset " << opset);
      CHECK(lines == first);
    }
  }
}
