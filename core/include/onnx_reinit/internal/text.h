// Small text helpers the host's parsers share (rules, parameter values,
// plugin paths), so every parser trims and splits the same way:
//   split(" a | b ", '|')  // {" a ", " b "}
//   trim(" a ")            // "a"
// For joining, use fmt::join; for numbers, format_number in format.h.
// Internal (onnx_reinit/internal/ is never installed): no public header
// may include it.
#pragma once

#include <cctype>
#include <string>
#include <string_view>
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

}  // namespace onnx_reinit::detail
