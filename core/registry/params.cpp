// Parameter text and values: parsing user input against a strategy's schema,
// formatting defaults and ranges, and the nearest-name suggestions used in
// every "unknown name" message.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/format.h"
#include "onnx_reinit/internal/text.h"
#include "onnx_reinit/registry.h"

namespace onnx_reinit {
namespace {

using detail::trim;
using format_detail::format_number;

std::string format_value(param_type type, double number, const std::string& choice) {
  switch (type) {
    case param_type::number:
      return format_number(number);
    case param_type::integer:
      return fmt::format("{}", static_cast<std::int64_t>(number));
    case param_type::boolean:
      return number != 0.0 ? "true" : "false";
    case param_type::choice:
      return choice;
  }
  return {};
}

std::optional<bool> parse_bool(std::string_view s) {
  std::string lower(trim(s));
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (std::string_view t : {"true", "1", "yes", "on"})
    if (lower == t) return true;
  for (std::string_view f : {"false", "0", "no", "off"})
    if (lower == f) return false;
  return std::nullopt;
}

// Doubles carry integers exactly up to 2^53.
constexpr double max_exact_integer = 9007199254740992.0;

struct param_context {
  std::string_view strategy;
  const param_info& info;

  [[noreturn]] void fail(std::string_view what) const {
    throw param_error(fmt::format("strategy '{}': parameter '{}' {}", strategy, info.name, what),
                      fmt::format("{}.{}", strategy, info.name));
  }

  void check_range(double v, std::string_view given) const {
    bool below = info.min_exclusive ? !(v > info.min_value) : !(v >= info.min_value);
    bool above = info.max_exclusive ? !(v < info.max_value) : !(v <= info.max_value);
    if (below || above)
      fail(fmt::format("is out of range: got {}, allowed {}", given, info.range_text()));
  }

  double from_number(double v, std::string_view given) const {
    switch (info.type) {
      case param_type::number:
        if (!std::isfinite(v)) fail(fmt::format("expects a finite number, got '{}'", given));
        check_range(v, given);
        return v;
      case param_type::integer:
        if (!std::isfinite(v) || std::trunc(v) != v || std::fabs(v) > max_exact_integer)
          fail(fmt::format("expects an integer, got '{}'", given));
        check_range(v, given);
        return v;
      case param_type::boolean:
        if (v != 0.0 && v != 1.0) fail(fmt::format("expects true or false, got '{}'", given));
        return v;
      case param_type::choice:
        break;
    }
    fail(fmt::format("expects one of {}, got '{}'", info.range_text(), given));
  }

  void from_text(std::string_view text, resolved_param& out) const {
    std::string shown(text);
    switch (info.type) {
      case param_type::number: {
        std::optional<double> v = detail::parse_number<double>(text);
        if (!v) fail(fmt::format("expects a number, got '{}'", shown));
        out.number = from_number(*v, shown);
        return;
      }
      case param_type::integer: {
        std::optional<std::int64_t> v = detail::parse_number<std::int64_t>(text);
        if (!v) fail(fmt::format("expects an integer, got '{}'", shown));
        out.number = from_number(static_cast<double>(*v), shown);
        return;
      }
      case param_type::boolean: {
        std::optional<bool> v = parse_bool(text);
        if (!v)
          fail(fmt::format("expects true or false (also 1/0, yes/no, on/off), got '{}'", shown));
        out.number = *v ? 1.0 : 0.0;
        return;
      }
      case param_type::choice: {
        std::string_view t = trim(text);
        for (const std::string& c : info.choices)
          if (c == t) {
            out.choice = c;
            return;
          }
        std::optional<std::string> near = nearest_name(t, info.choices);
        fail(fmt::format("must be one of {}, got '{}'{}", info.range_text(), shown,
                         near ? fmt::format(" (did you mean '{}'?)", *near) : std::string()));
      }
    }
  }

  void from_value(const param_value& value, resolved_param& out) const {
    if (const std::string* s = std::get_if<std::string>(&value)) return from_text(*s, out);
    if (const bool* b = std::get_if<bool>(&value)) {
      if (info.type != param_type::boolean)
        fail(fmt::format("expects {}, got the boolean {}", type_phrase(), *b));
      out.number = *b ? 1.0 : 0.0;
      return;
    }
    double v = 0.0;
    std::string shown;
    if (const double* d = std::get_if<double>(&value)) {
      v = *d;
      shown = format_number(*d);
    } else {
      std::int64_t i = std::get<std::int64_t>(value);
      v = static_cast<double>(i);
      shown = fmt::format("{}", i);
    }
    out.number = from_number(v, shown);
  }

  std::string type_phrase() const {
    switch (info.type) {
      case param_type::number:
        return "a number";
      case param_type::integer:
        return "an integer";
      case param_type::boolean:
        return "true or false";
      case param_type::choice:
        return fmt::format("one of {}", info.range_text());
    }
    return {};
  }
};

}  // namespace

std::string_view to_string(param_type t) {
  switch (t) {
    case param_type::number:
      return "float";
    case param_type::integer:
      return "int";
    case param_type::boolean:
      return "bool";
    case param_type::choice:
      return "choice";
  }
  return "invalid";
}

std::string param_info::default_text() const {
  return format_value(type, default_number, default_choice);
}

std::string param_info::range_text() const {
  switch (type) {
    case param_type::choice:
      return fmt::format("{}", fmt::join(choices, "|"));
    case param_type::boolean:
      return {};
    case param_type::number:
    case param_type::integer:
      break;
  }
  if (std::isinf(min_value) && min_value < 0 && std::isinf(max_value) && max_value > 0) return {};
  auto bound = [&](double v) {
    if (std::isinf(v)) return std::string(v < 0 ? "-inf" : "inf");
    return type == param_type::integer ? fmt::format("{}", static_cast<std::int64_t>(v))
                                       : format_number(v);
  };
  bool lo_open = min_exclusive || std::isinf(min_value);
  bool hi_open = max_exclusive || std::isinf(max_value);
  return fmt::format("{}{}, {}{}", lo_open ? '(' : '[', bound(min_value), bound(max_value),
                     hi_open ? ')' : ']');
}

const param_info* strategy_info::find_param(std::string_view n) const {
  for (const param_info& p : params)
    if (p.name == n) return &p;
  return nullptr;
}

std::string resolved_param::text() const {
  return format_value(type, number, choice);
}

std::string to_string(std::span<const resolved_param> params) {
  std::vector<std::string> items;
  for (const resolved_param& p : params) items.push_back(fmt::format("{}={}", p.name, p.text()));
  return fmt::format("{}", fmt::join(items, ", "));
}

std::optional<std::string> nearest_name(std::string_view name,
                                        std::span<const std::string> candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = 0;
  std::vector<std::size_t> row;
  for (const std::string& c : candidates) {
    // Levenshtein distance, one row at a time.
    row.resize(c.size() + 1);
    for (std::size_t j = 0; j <= c.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= name.size(); ++i) {
      std::size_t diagonal = row[0];
      row[0] = i;
      for (std::size_t j = 1; j <= c.size(); ++j) {
        std::size_t up = row[j];
        std::size_t cost = name[i - 1] == c[j - 1] ? 0 : 1;
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + cost});
        diagonal = up;
      }
    }
    if (!best || row[c.size()] < best_distance) {
      best = c;
      best_distance = row[c.size()];
    }
  }
  return best;
}

std::vector<resolved_param> resolve_params(const strategy_info& info,
                                           const param_value_list& given) {
  std::vector<resolved_param> out;
  out.reserve(info.params.size());
  for (const param_info& p : info.params) {
    resolved_param r;
    r.name = p.name;
    r.type = p.type;
    r.number = p.default_number;
    r.choice = p.default_choice;
    out.push_back(std::move(r));
  }
  std::vector<std::string> names;
  for (const param_info& p : info.params) names.push_back(p.name);

  for (const auto& [name, value] : given) {
    // Captured by name, not as a structured binding: clang before 16 cannot.
    const std::string& given_name = name;
    auto it = std::find_if(info.params.begin(), info.params.end(),
                           [&](const param_info& p) { return p.name == given_name; });
    if (it == info.params.end()) {
      std::string where = fmt::format("{}.{}", info.name, name);
      if (names.empty())
        throw param_error(
            fmt::format("strategy '{}' takes no parameters, got '{}'", info.name, name), where);
      throw param_error(
          fmt::format("strategy '{}' has no parameter '{}'; did you mean '{}'? "
                      "(parameters: {})",
                      info.name, name, *nearest_name(name, names), fmt::join(names, ", ")),
          where);
    }
    resolved_param& r = out[static_cast<std::size_t>(it - info.params.begin())];
    if (!r.is_default)
      throw param_error(
          fmt::format("strategy '{}': parameter '{}' is given more than once", info.name, name),
          fmt::format("{}.{}", info.name, name));
    param_context{info.name, *it}.from_value(value, r);
    r.is_default = false;
  }
  return out;
}

}  // namespace onnx_reinit
