// 16-bit float conversions (float16 and bfloat16): round to nearest, ties to
// even; NaN stays NaN. What the writer stores for 16-bit tensors and what
// every reader decodes them with:
//   const std::uint16_t bits = float_to_half_bits(0.1f);
//   const float back = half_bits_to_float(bits);  // 0.0999755859375f
#pragma once

#include <cstdint>

namespace onnx_reinit {

std::uint16_t float_to_half_bits(float value);
std::uint16_t float_to_bfloat16_bits(float value);
float half_bits_to_float(std::uint16_t bits);      // exact
float bfloat16_bits_to_float(std::uint16_t bits);  // exact

}  // namespace onnx_reinit
