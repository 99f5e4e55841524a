// The standard strategies, gathered from their source files into the one
// array the plugin exports.
#include "standard_strategies.h"

#include "strategy_lists.h"

namespace onnx_reinit::standard {

std::vector<onnx_reinit_strategy_desc> concatenate(
    std::initializer_list<std::span<const onnx_reinit_strategy_desc>> families) {
  std::vector<onnx_reinit_strategy_desc> all;
  for (std::span<const onnx_reinit_strategy_desc> family : families)
    all.insert(all.end(), family.begin(), family.end());
  return all;
}

std::span<const onnx_reinit_strategy_desc> standard_strategies() {
  static const std::vector<onnx_reinit_strategy_desc> all = concatenate(
      {fixed_distribution_strategies(), fan_scaled_strategies(), structured_strategies()});
  return all;
}

}  // namespace onnx_reinit::standard
