// Rewriting a model from C++: loads it, discovers the strategy plugins,
// analyses the graph, plans every tensor with the default policy, samples
// the new weights and saves the result, then prints the plan table.
//
//   rewrite_model MODEL OUTPUT [--seed N] [--plugin-dir DIR]...
#include <onnx_reinit/analysis.h>
#include <onnx_reinit/errors.h>
#include <onnx_reinit/model_io.h>
#include <onnx_reinit/plan.h>
#include <onnx_reinit/registry.h>
#include <onnx_reinit/report.h>
#include <onnx_reinit/rewrite.h>

#include <charconv>
#include <cstddef>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

int usage() {
  std::cerr << "usage: rewrite_model MODEL OUTPUT [--seed N] [--plugin-dir DIR]...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  namespace ori = onnx_reinit;
  ori::discovery_options discovery;
  ori::rewrite_options rewrite;
  std::vector<std::string> files;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    bool has_value = i + 1 < args.size();
    if (args[i] == "--plugin-dir" && has_value) {
      discovery.plugin_dirs.emplace_back(args[++i]);
    } else if (args[i] == "--seed" && has_value) {
      std::string_view n = args[++i];
      auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), rewrite.seed);
      if (ec != std::errc() || end != n.data() + n.size()) return usage();
    } else if (args[i].starts_with("--")) {
      return usage();
    } else {
      files.emplace_back(args[i]);
    }
  }
  if (files.size() != 2) return usage();

  try {
    ori::registry strategies = ori::registry::discover(discovery);
    ori::loaded_model model = ori::load_model(files[0]);
    // Default policy only: no user rules, every tensor considered.
    ori::plan_options policy;
    policy.strategies = &strategies;
    std::vector<ori::tensor_plan> plans = ori::make_plan(ori::analyze_model(model), policy);
    ori::validate_plan(plans, strategies);
    const ori::model_sample sample = ori::rewrite_model(model, plans, strategies, rewrite);
    const ori::save_result saved = ori::save_model(model, files[1]);
    std::cout << ori::plan_table(plans, ori::outcomes_of(sample, saved), false);
    std::cout << "wrote " << files[1] << " (seed " << rewrite.seed << ")\n";
  } catch (const ori::error& e) {
    std::cerr << "rewrite_model: error: " << e.what() << " (" << e.where() << ")\n";
    return 1;
  }
  return 0;
}
