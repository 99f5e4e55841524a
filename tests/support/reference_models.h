// Test support: the PyTorch reference exports (ResNet-18/50, MobileNetV2, a
// small ViT, a small GPT, the GPT with separate q, k, v projections and
// the same without its causal mask, each as <name>_train.onnx and <name>_eval.onnx)
// that the export_reference_models fixture writes into the build tree
// (tools/scripts/export_reference_models.py). The including test defines
// ONNX_REINIT_REFERENCE_MODELS.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

namespace onnx_reinit::test {

inline std::filesystem::path reference_model(const std::string& file) {
  const std::filesystem::path path = std::filesystem::path(ONNX_REINIT_REFERENCE_MODELS) / file;
  INFO("run the export_reference_models test (ctest fixture) first");
  REQUIRE(std::filesystem::exists(path));
  return path;
}

}  // namespace onnx_reinit::test
