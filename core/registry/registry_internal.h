// Shared between the registry's sources: what a configured strategy holds
// so that its plugin instance is destroyed before its library can unload.
#pragma once

#include <boost/dll/shared_library.hpp>

#include <memory>
#include <string>
#include <vector>

#include "onnx_reinit/registry.h"
#include "onnx_reinit/sdk/plugin_abi.h"

namespace onnx_reinit {

struct configured_strategy::state {
  // Declared first so it is released last: `instance` and the function
  // pointers below live in the library.
  std::shared_ptr<const boost::dll::shared_library> library;
  std::string name;
  std::string plugin_id;
  std::string plugin_path;
  bool elementwise = false;
  // The values the instance was created from; plugins may keep pointers to
  // the choice strings, so they live as long as the instance.
  std::vector<resolved_param> params;
  std::vector<onnx_reinit_param_value> c_values;
  void (*destroy)(void*) = nullptr;
  int (*fill)(const void*, const onnx_reinit_tensor_info*, const onnx_reinit_rng*,
              const onnx_reinit_span*, char*, size_t) = nullptr;
  int (*target_moments)(const void*, const onnx_reinit_tensor_info*, double*, double*, char*,
                        size_t) = nullptr;
  void* instance = nullptr;

  state() = default;
  state(const state&) = delete;
  state& operator=(const state&) = delete;
  ~state() {
    if (instance != nullptr && destroy != nullptr) destroy(instance);
  }
};

}  // namespace onnx_reinit
