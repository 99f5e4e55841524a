// Checked integer arithmetic for values that come from untrusted model
// attributes and dims: every product or sum the analysis forms from them
// goes through these, so an overflow is a nullopt, never a wrapped value
// (a wrapped 0 used as a divisor, or signed-overflow undefined behaviour).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace onnx_reinit::detail {

inline std::optional<std::int64_t> checked_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<std::int64_t> checked_add(std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// Product of `values`, all of which must be >= 0; nullopt on a negative
// value or an overflow. An overflow is reported even after a zero factor,
// since callers also form partial products of the same list.
inline std::optional<std::int64_t> checked_product(std::span<const std::int64_t> values) {
  std::int64_t p = 1, nonzero = 1;
  for (std::int64_t v : values) {
    if (v < 0) return std::nullopt;
    if (v == 0) {
      p = 0;
      continue;
    }
    auto n = checked_mul(nonzero, v);
    if (!n) return std::nullopt;
    nonzero = *n;
    if (p != 0) p = nonzero;
  }
  return p;
}

}  // namespace onnx_reinit::detail
