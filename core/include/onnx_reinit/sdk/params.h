// Strategy parameters: schema builders for plugin authors and the read-only
// view of validated values a strategy is created from. The host validates
// names, types and ranges against the schema before a strategy sees them.
// Part of the plugin SDK: standard library only.
#pragma once

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

#include "onnx_reinit/sdk/plugin_abi.h"

namespace onnx_reinit {

inline constexpr double no_limit = std::numeric_limits<double>::infinity();

// constexpr builders for onnx_reinit_param_schema entries.
namespace param {

constexpr onnx_reinit_param_schema number(const char* name, double default_value, const char* help,
                                          double min_value = -no_limit, double max_value = no_limit,
                                          std::uint32_t range_flags = 0) {
  return {name,        ONNX_REINIT_PARAM_FLOAT,
          range_flags, default_value,
          min_value,   max_value,
          nullptr,     nullptr,
          help};
}

// A float that must be > 0 (standard deviations, scales).
constexpr onnx_reinit_param_schema positive(const char* name, double default_value,
                                            const char* help) {
  return number(name, default_value, help, 0.0, no_limit, ONNX_REINIT_RANGE_MIN_EXCLUSIVE);
}

constexpr onnx_reinit_param_schema integer(const char* name, std::int64_t default_value,
                                           const char* help, double min_value = -no_limit,
                                           double max_value = no_limit) {
  return {name,      ONNX_REINIT_PARAM_INT,
          0,         static_cast<double>(default_value),
          min_value, max_value,
          nullptr,   nullptr,
          help};
}

constexpr onnx_reinit_param_schema boolean(const char* name, bool default_value, const char* help) {
  return {name, ONNX_REINIT_PARAM_BOOL, 0, default_value ? 1.0 : 0.0, 0.0, 1.0, nullptr, nullptr,
          help};
}

// `choices` is '|'-separated: "fan_in|fan_out|fan_avg".
constexpr onnx_reinit_param_schema choice(const char* name, const char* choices,
                                          const char* default_choice, const char* help) {
  return {name,    ONNX_REINIT_PARAM_CHOICE, 0,   0.0, -no_limit, no_limit,
          choices, default_choice,           help};
}

}  // namespace param

// The validated values a strategy is created from, in schema order.
class param_values {
 public:
  param_values(const onnx_reinit_param_value* values, std::uint32_t count)
      : values_(values), count_(count) {}

  double number(std::string_view name) const { return find(name).number; }
  std::int64_t integer(std::string_view name) const {
    return static_cast<std::int64_t>(find(name).number);
  }
  bool boolean(std::string_view name) const { return find(name).number != 0.0; }
  std::string_view choice(std::string_view name) const {
    const onnx_reinit_param_value& v = find(name);
    if (v.choice == nullptr)
      throw std::invalid_argument("parameter '" + std::string(name) + "' is not a choice");
    return v.choice;
  }

 private:
  const onnx_reinit_param_value& find(std::string_view name) const {
    for (std::uint32_t i = 0; i < count_; ++i)
      if (values_[i].name != nullptr && name == values_[i].name) return values_[i];
    throw std::invalid_argument("no value for parameter '" + std::string(name) + "'");
  }

  const onnx_reinit_param_value* values_;
  std::uint32_t count_;
};

}  // namespace onnx_reinit
