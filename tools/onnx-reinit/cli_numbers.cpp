// Strict parsing of numeric command line options (see cli_numbers.h).
#include "cli_numbers.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>
#include <string>

#include "onnx_reinit/errors.h"

namespace onnx_reinit::cli {
namespace {

constexpr const char* command_line = "command line";

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::uint64_t parse_unsigned(std::string_view option, std::string_view text, std::uint64_t max) {
  std::uint64_t value = 0;
  const char* end = text.data() + text.size();
  const bool ok = all_digits(text) && std::from_chars(text.data(), end, value).ec == std::errc() &&
                  value <= max;
  if (!ok)
    throw usage_error(fmt::format("{}: '{}' is not an integer in [0, {}]", option, text, max),
                      command_line);
  return value;
}

std::uint64_t parse_byte_size(std::string_view option, std::string_view text) {
  const auto split =
      std::find_if(text.begin(), text.end(), [](char c) { return c < '0' || c > '9'; });
  const std::string_view digits = text.substr(0, static_cast<std::size_t>(split - text.begin()));
  std::string suffix(text.substr(digits.size()));
  std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  int shift = -1;
  if (suffix.empty() || suffix == "b")
    shift = 0;
  else if (suffix == "k" || suffix == "kb" || suffix == "kib")
    shift = 10;
  else if (suffix == "m" || suffix == "mb" || suffix == "mib")
    shift = 20;
  else if (suffix == "g" || suffix == "gb" || suffix == "gib")
    shift = 30;
  else if (suffix == "t" || suffix == "tb" || suffix == "tib")
    shift = 40;
  std::uint64_t value = 0;
  const bool parsed =
      shift >= 0 && all_digits(digits) &&
      std::from_chars(digits.data(), digits.data() + digits.size(), value).ec == std::errc();
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  if (!parsed || (shift > 0 && value > (max >> shift)))
    throw usage_error(fmt::format("{}: '{}' is not a byte count in [0, {}] (digits, then "
                                  "optionally kb, mb, gb or tb)",
                                  option, text, max),
                      command_line);
  return value << shift;
}

}  // namespace onnx_reinit::cli
