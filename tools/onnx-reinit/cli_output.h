// Text and JSON for the registry listings of the CLI (--list, --describe).
#pragma once

#include <string>
#include <string_view>

#include "onnx_reinit/registry.h"

namespace onnx_reinit::cli {

std::string list_text(const registry& strategies);
std::string list_json(const registry& strategies);
// Throws unknown_strategy_error (with the nearest name) for an unknown name.
std::string describe_text(const registry& strategies, std::string_view name);

}  // namespace onnx_reinit::cli
