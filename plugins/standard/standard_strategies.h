// The standard strategies (torch.nn.init and Keras initializers) as one
// static descriptor array. plugin.cpp exports it; tests link it directly.
#pragma once

#include <cstddef>

#include "onnx_reinit/plugin_abi.h"

namespace onnx_reinit::standard {

inline constexpr const char* plugin_id = "standard";
inline constexpr const char* plugin_version = ONNX_REINIT_STANDARD_VERSION;

inline constexpr std::size_t strategy_count = 18;
using strategy_array = onnx_reinit_strategy_desc[strategy_count];

// Every standard strategy, in a fixed order; built once, lives forever.
const strategy_array& standard_strategies();

}  // namespace onnx_reinit::standard
