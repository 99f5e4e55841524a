// Inspecting a model from C++: loads it, runs it with ONNX Runtime on a
// synthesized batch (runtime.h) and prints, for every weighted layer in
// topological order, its output std, the ratio to the first layer's and
// the flags, then the summary.
//
//   inspect_model MODEL [--batch N]
#include <onnx_reinit/errors.h>
#include <onnx_reinit/model_io.h>
#include <onnx_reinit/runtime.h>

#include <charconv>
#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

int usage() {
  std::cerr << "usage: inspect_model MODEL [--batch N]\n";
  return 2;
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ",") + w;
  return out.empty() ? "-" : out;
}

}  // namespace

int main(int argc, char** argv) {
  namespace ori = onnx_reinit;
  ori::runtime_options options;
  std::vector<std::string_view> args(argv + 1, argv + argc);
  std::string model_path;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--batch" && i + 1 < args.size()) {
      std::string_view n = args[++i];
      auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), options.batch);
      if (ec != std::errc() || end != n.data() + n.size()) return usage();
    } else if (args[i].starts_with("--") || !model_path.empty()) {
      return usage();
    } else {
      model_path = args[i];
    }
  }
  if (model_path.empty()) return usage();

  try {
    const ori::loaded_model model = ori::load_model(model_path);
    const ori::inspection r = ori::inspect_model(model, options);
    std::printf("ONNX Runtime %s, batch %lld\n", ori::runtime_version().c_str(),
                static_cast<long long>(r.batch));
    for (const ori::layer_stats& l : r.layers)
      std::printf("%-16s %-8s std %-10.4g ratio %-8.3g %s\n", l.name.c_str(), l.op.c_str(), l.std,
                  l.ratio_to_first, joined(l.flags).c_str());
    std::printf("last/first std ratio %.3g, worst layer %s, flags %s\n", r.summary.last_first_ratio,
                r.summary.worst_layer.c_str(), joined(r.summary.flags).c_str());
  } catch (const ori::error& e) {
    std::cerr << "inspect_model: " << e.what() << " (" << e.where() << ")\n";
    return 1;
  }
  return 0;
}
