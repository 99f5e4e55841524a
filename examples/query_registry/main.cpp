// Querying the registry from C++: lists every plugin and strategy with its
// parameters, prints the load errors, and samples one strategy on a small
// tensor.
//
//   query_registry [--plugin FILE]... [--plugin-dir DIR]... [--no-default]
//                  [--sample NAME] [--param KEY=VALUE]... [--strict]
//
// --strict exits with status 1 when any plugin failed to load.
#include <onnx_reinit/errors.h>
#include <onnx_reinit/random.h>
#include <onnx_reinit/registry.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

int usage() {
  std::cerr << "usage: query_registry [--plugin FILE]... [--plugin-dir DIR]... [--no-default]\n"
               "                      [--sample NAME] [--param KEY=VALUE]... [--strict]\n";
  return 2;
}

void print_strategy(const onnx_reinit::strategy_info& s) {
  std::cout << "  " << s.name << (s.elementwise ? "" : "  [whole tensor]") << "\n"
            << "      " << s.summary << "\n"
            << "      " << s.formula << "\n";
  for (const onnx_reinit::param_info& p : s.params) {
    std::cout << "      " << p.name << " : " << onnx_reinit::to_string(p.type) << " = "
              << p.default_text();
    if (std::string range = p.range_text(); !range.empty()) std::cout << "  in " << range;
    std::cout << "  -- " << p.help << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  onnx_reinit::discovery_options options;
  std::string sample;
  onnx_reinit::param_text_list params;
  bool strict = false;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string_view { return i + 1 < args.size() ? args[++i] : ""; };
    if (args[i] == "--plugin") {
      options.plugin_files.emplace_back(value());
    } else if (args[i] == "--plugin-dir") {
      options.plugin_dirs.emplace_back(value());
    } else if (args[i] == "--no-default") {
      options.use_default_dir = false;
    } else if (args[i] == "--sample") {
      sample = value();
    } else if (args[i] == "--param") {
      std::string_view kv = value();
      std::size_t eq = kv.find('=');
      if (eq == std::string_view::npos) return usage();
      params.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else if (args[i] == "--strict") {
      strict = true;
    } else {
      return usage();
    }
  }

  onnx_reinit::registry registry = onnx_reinit::registry::discover(options);

  std::cout << "plugins:\n";
  for (const onnx_reinit::plugin_info& p : registry.plugins())
    std::cout << "  " << p.id << " " << p.version << "  (" << p.path << ", " << p.strategies.size()
              << " strategies)\n";
  std::cout << "strategies:\n";
  for (const onnx_reinit::strategy_info& s : registry.strategies()) print_strategy(s);
  std::cout << "load errors: " << registry.load_errors().size() << "\n";
  for (const onnx_reinit::plugin_load_error& e : registry.load_errors())
    std::cout << "  " << e.path << ": " << onnx_reinit::to_string(e.kind) << ": " << e.message
              << "\n";

  if (sample.empty() && !registry.strategies().empty()) sample = registry.strategies()[0].name;
  if (!sample.empty()) {
    try {
      onnx_reinit::configured_strategy s = registry.create(sample, params);
      // A 16x32 weight followed by a ReLU, as the ONNX analysis would
      // describe it.
      onnx_reinit::tensor_info t;
      t.name = "example.weight";
      t.shape = {16, 32};
      t.role = onnx_reinit::tensor_role::weight;
      t.fan_in = 32;
      t.fan_out = 16;
      t.activation = onnx_reinit::activation_kind::relu;
      t.gain = std::sqrt(2.0);
      t.set_default_blocks();
      std::vector<float> values(static_cast<std::size_t>(t.element_count()));
      s.fill(t, onnx_reinit::make_tensor_rng(1, t.name), 0, std::span<float>(values));

      double mean = 0, sq = 0;
      for (float v : values) mean += v;
      mean /= static_cast<double>(values.size());
      for (float v : values) sq += (v - mean) * (v - mean);
      std::cout << "sampled " << s.description() << " on " << t.name << " [16, 32], seed 1:\n  ";
      for (std::size_t i = 0; i < 6; ++i) std::cout << values[i] << " ";
      std::cout << "...\n  mean " << mean << ", std "
                << std::sqrt(sq / static_cast<double>(values.size() - 1)) << "\n";
    } catch (const onnx_reinit::error& e) {
      std::cerr << "query_registry: error: " << e.what() << " (" << e.where() << ")\n";
      return 1;
    }
  }
  return strict && !registry.load_errors().empty() ? 1 : 0;
}
