// Printing the values every stage produces (docs/DESIGN.md section 1: each arrow
// is a value you can print): fmt::formatter specialisations for tensor_info
// here, and for tensor_analysis, tensor_plan and tensor_outcome at the end of
// analysis.h, plan.h and rewrite.h, which include this header. With
// <fmt/ranges.h>, std::vector of any of them prints too:
//   fmt::print("{}\n", plans);          // [conv.w: rewrite kaiming_normal..., ...]
// Kept out of tensor_info.h, which is part of the plugin SDK (no fmt there).
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <limits>
#include <string>

#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit::format_detail {

// A base for formatters that accept only "{}".
struct plain_formatter {
  constexpr auto parse(fmt::format_parse_context& ctx) {
    auto it = ctx.begin();
    if (it != ctx.end() && *it != '}') throw fmt::format_error("no format spec is supported");
    return it;
  }
};

// A figure that is not known: NaN, printed "?" and written as JSON null.
inline constexpr double not_known = std::numeric_limits<double>::quiet_NaN();

// The shortest text that reads back as the same double ("0.1", "1e-05",
// "2"): how parameter values are written wherever they may be parsed again.
inline std::string format_number(double v) {
  return fmt::format("{}", v);
}

// A figure that may be unknown (NaN): "?" then.
inline std::string figure(double v) {
  return std::isnan(v) ? std::string("?") : fmt::format("{:.6g}", v);
}

}  // namespace onnx_reinit::format_detail

// "conv.w float32 [32, 16, 3, 3] weight fan_in=144 fan_out=288 act=relu
// gain=1.41421 blocks=1x32x144"
template <>
struct fmt::formatter<onnx_reinit::tensor_info> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::tensor_info& t, Context& ctx) const {
    auto out = fmt::format_to(ctx.out(), "{} {} [{}] {} fan_in={:.6g} fan_out={:.6g} act={}",
                              t.name, to_string(t.dtype), fmt::join(t.shape, ", "),
                              to_string(t.role), t.fan_in, t.fan_out, to_string(t.activation));
    if (t.activation_param != 0.0) out = fmt::format_to(out, "({:.6g})", t.activation_param);
    return fmt::format_to(out, " gain={:.6g} blocks={}x{}x{}", t.gain, t.block_count, t.block_rows,
                          t.block_cols);
  }
};
