// The standard strategies (torch.nn.init and Keras initializers) as one
// static descriptor array. entry_point.cpp exports it; tests link it directly.
#pragma once

#include <initializer_list>
#include <span>
#include <vector>

#include "onnx_reinit/sdk/plugin_abi.h"

namespace onnx_reinit::standard {

inline constexpr const char* plugin_id = "standard";
inline constexpr const char* plugin_version = ONNX_REINIT_STANDARD_VERSION;

// Every standard strategy, in a fixed order; built once, lives forever. Its
// length is the sum of the families' lengths, never a number kept by hand.
std::span<const onnx_reinit_strategy_desc> standard_strategies();

// The families one after the other, every entry kept.
std::vector<onnx_reinit_strategy_desc> concatenate(
    std::initializer_list<std::span<const onnx_reinit_strategy_desc>> families);

}  // namespace onnx_reinit::standard
