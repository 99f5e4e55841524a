// number_or_null: how the JSON documents (the report, the inspection)
// write a figure: the number, or null where it is NaN or
// infinite (JSON has no such numbers).
#pragma once

#include <nlohmann/json.hpp>

#include <cmath>

namespace onnx_reinit {

inline nlohmann::ordered_json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::ordered_json(v) : nlohmann::ordered_json(nullptr);
}

}  // namespace onnx_reinit
