// The onnx-reinit command's run from C++ (reinit.h): plans MODEL with the
// tensors of PRETRAINED transferred (--from), inspects the model before and
// after the rewrite with ONNX Runtime (--inspect), writes OUT with its
// report, and prints the plan, the transfer summary, the inspect document
// and the result, all as the library gives them.
//
//   reinit_model MODEL PRETRAINED OUT [--seed N] [--plugin-dir DIR]
#include <fmt/format.h>
#include <onnx_reinit/errors.h>
#include <onnx_reinit/reinit.h>

#include <charconv>
#include <string>
#include <string_view>
#include <vector>

namespace {

int usage() {
  fmt::print(stderr, "usage: reinit_model MODEL PRETRAINED OUT [--seed N] [--plugin-dir DIR]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  namespace ori = onnx_reinit;
  ori::reinit_options options;
  options.inspect = true;
  ori::plugin_options plugins;
  std::vector<std::string> paths;
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const bool has_value = i + 1 < args.size();
    if (args[i] == "--seed" && has_value) {
      const std::string_view n = args[++i];
      auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), options.seed);
      if (ec != std::errc() || end != n.data() + n.size()) return usage();
    } else if (args[i] == "--plugin-dir" && has_value) {
      plugins.dirs.emplace_back(args[++i]);
    } else if (args[i].starts_with("--")) {
      return usage();
    } else {
      paths.emplace_back(args[i]);
    }
  }
  if (paths.size() != 3) return usage();
  options.from = paths[1];

  try {
    const ori::registry strategies = ori::load_strategies(plugins);
    ori::reinit_plan plan = ori::plan_reinit(paths[0], options, strategies);
    fmt::print("plan: {}\n", plan);
    if (plan.header.transfer)
      fmt::print("transfer: {}\n{}", *plan.header.transfer,
                 ori::transfer_text(*plan.header.transfer));
    ori::reinit_output output;
    output.path = paths[2];
    output.report = paths[2] + ".report.json";
    const ori::reinit_result result = ori::execute_reinit(plan, output);
    fmt::print("{}", result.inspection_json());
    fmt::print("result: {}\n", result);
  } catch (const ori::error& e) {
    fmt::print(stderr, "reinit_model: {} ({})\n", e.what(), e.where());
    return 1;
  }
  return 0;
}
