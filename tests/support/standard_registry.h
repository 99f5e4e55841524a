// Test support: a registry holding only the standard plugin from the build
// tree, loaded once per test process.
#pragma once

#include "onnx_reinit/registry.h"

namespace onnx_reinit::test {

inline const registry& standard_registry() {
  static const registry r = [] {
    registry reg;
    reg.load_directory(ONNX_REINIT_BUILD_PLUGIN_DIR);
    return reg;
  }();
  return r;
}

}  // namespace onnx_reinit::test
