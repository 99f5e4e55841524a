// The runtime stage in a build without ONNX Runtime: the API exists, and
// every call that needs a session says how to get one.
#include "onnx_reinit/runtime.h"

namespace onnx_reinit {

namespace {
[[noreturn]] void unavailable() {
  throw runtime_unavailable_error(
      "onnx-reinit was built without ONNX Runtime, so it cannot run models; configure with "
      "-DONNX_REINIT_RUNTIME=ON after tools/fetch_onnxruntime.sh (tools/setup.sh does both)",
      "");
}
}  // namespace

bool runtime_available() {
  return false;
}
std::string runtime_version() {
  return {};
}

inspection inspect_model(const loaded_model&, const runtime_options&, const inspect_thresholds&) {
  unavailable();
}

inspection inspect_model(const loaded_model&, const std::vector<tensor_analysis>&,
                         const runtime_options&, const inspect_thresholds&) {
  unavailable();
}

std::vector<lsuv_result> calibrate_lsuv(loaded_model&, const std::vector<tensor_plan>&,
                                        const runtime_options&, const lsuv_options&) {
  unavailable();
}

std::vector<lsuv_result> calibrate_lsuv(loaded_model&, const std::vector<tensor_analysis>&,
                                        const std::vector<tensor_plan>&, const runtime_options&,
                                        const lsuv_options&) {
  unavailable();
}

}  // namespace onnx_reinit
