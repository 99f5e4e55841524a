// Small text helpers the host's parsers share (rules, parameter values,
// presets, plugin paths), so every parser trims, splits and reads numbers
// the same way:
//   split(" a | b ", '|')             // {" a ", " b "}
//   trim(" a ")                       // "a"
//   parse_number<double>(" +0.02 ")   // 0.02, under any locale
// For joining, use fmt::join; for writing numbers, format_number in format.h.
// Internal (onnx_reinit/internal/ is never installed): no public header
// may include it.
#pragma once

#include <cctype>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace onnx_reinit::detail {

// `s` without leading and trailing white space.
inline std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The pieces of `s` between `sep`s, empty ones included: "a||b" gives
// {"a", "", "b"} and "" gives {""}.
inline std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  while (true) {
    const std::size_t p = s.find(sep);
    out.emplace_back(s.substr(0, p));
    if (p == std::string_view::npos) break;
    s.remove_prefix(p + 1);
  }
  return out;
}

// The number at the start of `s` in C's notation ("0.02", "-1e-5", "inf"),
// read with std::from_chars: the same under every locale (strtod would
// stop at the '.' under a comma-decimal one). Returns how many characters
// it took, 0 when `s` starts with no number. The one reader of numbers in
// the host's text; parse_number reads a whole field with it.
template <class T>
std::size_t read_number(std::string_view s, T& value) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  return ec == std::errc() ? static_cast<std::size_t>(end - s.data()) : 0;
}

// `s` as one number (double or an integer type), white space around it
// and one leading '+' allowed; nullopt for anything else or out of range.
template <class T>
std::optional<T> parse_number(std::string_view s) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  T value{};
  if (s.empty() || read_number(s, value) != s.size()) return std::nullopt;
  return value;
}

}  // namespace onnx_reinit::detail
