// Strict parsing of the numeric command line options (--seed, --threads,
// --max-tensor-bytes, ...): a value that is not a plain decimal integer in
// range is a usage error naming the option, never a silent wrap or clamp.
#pragma once

#include <cstdint>
#include <string_view>

namespace onnx_reinit::cli {

// Decimal digits only (no sign, no spaces, no hex), at most `max`. Throws
// usage_error("--seed: '-1' is not an integer in [0, ...]").
std::uint64_t parse_unsigned(std::string_view option, std::string_view text, std::uint64_t max);

// A byte count: decimal digits with an optional suffix, case-insensitive:
// b; k, kb, kib; m, mb, mib; g, gb, gib; t, tb, tib (all powers of 1024).
// Throws usage_error for anything else or a value over 2^64 - 1.
std::uint64_t parse_byte_size(std::string_view option, std::string_view text);

}  // namespace onnx_reinit::cli
