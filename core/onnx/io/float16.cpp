// 16-bit float conversions (float16.h), by Eigen's types.
#include "onnx_reinit/io/float16.h"

#include <bit>

#include <Eigen/Core>

namespace onnx_reinit {

// Eigen's conversions round to nearest even, keep subnormals, and map every
// NaN to the quiet NaN of its sign (0x7e00 / 0x7fc0, payload dropped).
std::uint16_t float_to_half_bits(float value) {
  return std::bit_cast<std::uint16_t>(Eigen::half(value));
}

std::uint16_t float_to_bfloat16_bits(float value) {
  return std::bit_cast<std::uint16_t>(Eigen::bfloat16(value));
}

float half_bits_to_float(std::uint16_t bits) {
  return static_cast<float>(std::bit_cast<Eigen::half>(bits));
}

float bfloat16_bits_to_float(std::uint16_t bits) {
  return static_cast<float>(std::bit_cast<Eigen::bfloat16>(bits));
}

}  // namespace onnx_reinit
