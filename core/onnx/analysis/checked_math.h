// Checked integer arithmetic for values that come from untrusted model
// attributes and dims: every product or sum the analysis forms from them
// goes through these, so an overflow is a nullopt, never a wrapped value
// (a wrapped 0 used as a divisor, or signed-overflow undefined behaviour).
#pragma once

#include <cstdint>
#include <optional>

// checked_mul and checked_product, shared with plugins.
#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit::detail {

inline std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

}  // namespace onnx_reinit::detail
