// What the tool tells the user: the per-tensor table on the terminal, the
// JSON report (docs/DESIGN.md section 8) and the default policy as text. Built
// only from library values, so C++ users get the same output.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/rewrite.h"
#include "onnx_reinit/transfer.h"

namespace onnx_reinit {

struct report_header {
  std::string model;
  std::uint64_t seed = 0;
  fan_convention convention = fan_convention::semantic;
  // With --from: the report gains a top-level `transfer` object.
  std::optional<transfer_summary> transfer;
  // The policy and the moment pass's assumptions and warnings: the report's
  // `policy` and `signal` fields.
  signal_summary signal;
};

std::string_view to_string(fan_convention c);

// The JSON report: tool_version, model, seed, fan_convention, policy,
// signal {assumptions, warnings}, tensors[] with one entry per tensor in
// model order (weighted layers' weights carry predicted_output_rms,
// predicted_read_rms and signal_basis; null elsewhere). NaN figures are written as null.
std::string report_json(const report_header& header, const std::vector<tensor_plan>& plans,
                        const std::vector<tensor_outcome>& outcomes);

// A fixed-width table, one row per tensor. `verbose` adds notes and rules.
std::string plan_table(const std::vector<tensor_plan>& plans,
                       const std::vector<tensor_outcome>& outcomes, bool verbose);

// The default policy, one rule per line with what it is for.
std::string policy_text();

// The loaded plugins, every strategy with its parameter schema (type,
// default, range, help) and the plugin load errors: aligned text, or a JSON
// document {plugins[], strategies[], load_errors[]}. What `--list [--json]`
// prints.
std::string format_strategy_list(const registry& strategies, bool as_json = false);

// One strategy: summary, formula, plugin, how it is filled, parameters. What
// `--describe NAME` prints. Throws unknown_strategy_error for an unknown
// name, with the registry's message ("did you mean '<nearest>'?").
std::string describe_strategy(const registry& strategies, std::string_view name);

}  // namespace onnx_reinit
