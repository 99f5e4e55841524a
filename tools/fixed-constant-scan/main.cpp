// fixed-constant-scan MODEL_OR_DIR...: runs the fixed-constant detector on
// every float tensor the analysis gives a checked role (weights, recurrent
// weights, embeddings, bias tables) in the given models (directories are
// searched for *.onnx), printing one line per flagged tensor and the count
// of flagged over checked tensors. Values are decoded through model I/O (any
// storage form, external data too) up to the detector's element cap, so
// large tensors are checked on a prefix of rows, as documented in
// fixed_constants.h. Used to measure the false-positive rate on trained
// weights; unreadable models are listed and skipped.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "fixed_constants.h"
#include "onnx_reinit/analysis.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;

int main(int argc, char** argv) {
  std::vector<fs::path> models;
  for (int i = 1; i < argc; ++i) {
    const fs::path p = argv[i];
    if (fs::is_directory(p)) {
      for (const auto& e : fs::recursive_directory_iterator(p))
        if (e.is_regular_file() && e.path().extension() == ".onnx") models.push_back(e.path());
    } else {
      models.push_back(p);
    }
  }
  std::sort(models.begin(), models.end());
  std::size_t checked = 0, flagged = 0, failed = 0;
  for (const auto& path : models) {
    try {
      auto model = ori::load_model(path);
      const auto analysis = ori::analyze_model(model);
      const auto tensors = ori::collect_model_tensors(std::as_const(model).proto());
      for (std::size_t i = 0; i < analysis.size(); ++i) {
        const auto& a = analysis[i];
        if (!a.is_float || !a.keep_reason.empty() ||
            !ori::detail::fixed_constant_check_applies(a.info.role, a.info.shape))
          continue;
        const auto count = static_cast<std::size_t>(a.info.element_count());
        std::vector<double> values(std::min(count, ori::detail::fixed_constant_max_elements));
        ori::read_tensor_values<double>(model, *tensors[i].proto, 0, std::span<double>(values));
        ++checked;
        const auto reason = ori::detail::fixed_constant_reason(values, a.info.shape, {a.info.role});
        if (!reason) continue;
        ++flagged;
        fmt::print("{}\t{}\t[{}]\t{} {}\t{}\n", path.string(), a.info.name,
                   fmt::join(a.info.shape, ","), a.consumer_op, ori::to_string(a.info.role),
                   *reason);
      }
    } catch (const std::exception& e) {
      ++failed;
      fmt::print(stderr, "skipped {}: {}\n", path.string(), e.what());
    }
  }
  fmt::print("models {} (unreadable {}), tensors checked {}, flagged {}\n", models.size(), failed,
             checked, flagged);
  return 0;
}
