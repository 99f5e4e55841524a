// Rules that choose a strategy per tensor: `MATCH=STRATEGY(k=v,...)` from the
// command line or a YAML file, and the default policy written as the same
// rules (docs/DESIGN.md section 7). The first rule that matches a tensor decides.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/registry.h"

namespace onnx_reinit {

// One `key:value` term of a match, or a bare name glob. Values may list
// alternatives with '|': "act:relu|gelu".
struct match_term {
  enum class kind { name, op, role, act, dtype, residual, layer, attention, transformer };
  kind field = kind::name;
  std::vector<std::string> alternatives;  // globs for `name`, exact words otherwise
};

// A strategy and its parameters as text, e.g. kaiming_normal(mode=fan_out).
// The strategy name `keep` keeps tensors byte for byte.
struct strategy_call {
  std::string strategy;
  std::vector<std::pair<std::string, std::string>> params;
  std::string to_string() const;
};

struct rule {
  std::vector<match_term> terms;  // all must hold ('&')
  strategy_call call;
  std::string text;    // canonical `MATCH=STRATEGY(...)` form
  std::string origin;  // "--rule 2", "rules.yaml:4", "policy"

  bool keeps() const { return call.strategy == "keep"; }
  bool has_name_term() const;
  // A name term other than `*` (`*&role:weight` names nothing), or a
  // residual:multiplier|norm term: terms that pick tensors by name or by
  // place, which may decide for a tensor of unknown role or a fixed
  // constant (a branch multiplier is a Mul operand, role unknown).
  bool names_tensors() const;
  bool matches(const tensor_analysis& tensor) const;
};

// Parses `MATCH=STRATEGY(k=v,...)`; MATCH terms are joined with '&' and are
// a name glob or op:TYPE, role:ROLE, act:ACTIVATION, dtype:TYPE,
// residual:PLACE (any, last, inner, norm, multiplier, skip, none: where the
// tensor sits in the residual structure, residual.h) or layer:output (the
// model's output layer). A parameter value holding an operator is an
// expression, evaluated per tensor (evaluate_parameter). Throws
// rule_error naming `origin` and what is wrong (unknown role/activation
// words included).
rule parse_rule(const std::string& text, const std::string& origin);

// A parameter value written as arithmetic over the tensor's figures, e.g.
// `std=0.02/sqrt(L)`: numbers, + - * / ^, parentheses, sqrt(), and the
// names L (branches in the tensor's residual stream), m (weighted layers in
// its branch), gain (of its activation), fan_in and fan_out. A value with no
// operator (`0.02`, `fan_in`) is no expression: nullopt, passed on as
// written. Throws rule_error naming `origin` when a name is undefined for
// the tensor (L outside a residual branch) or the result is not finite.
// Nesting (parentheses, sqrt, unary minus, '^' chains) deeper than
// max_expression_depth is a rule_error, also at parse_rule.
inline constexpr int max_expression_depth = 100;
std::optional<double> evaluate_parameter(const std::string& value, const tensor_analysis& tensor,
                                         const std::string& origin);

// Reads rules from YAML: a list (or a `rules:` key holding a list) whose
// items are either rule strings or maps {match, strategy, params}.
std::vector<rule> load_rules_file(const std::filesystem::path& path);

// The default policy, in order.
const std::vector<rule>& default_policy();

// A parameter a rule may give beside its strategy's own, applied by the host
// around any strategy: after the strategy fills the tensor, the host writes
// the parameter's value over the elements `elements` names. Declared with the
// same schema as a strategy's parameters and validated by the same code
// (resolve_params), so its errors read like theirs. The planner records the
// validated value and the elements in the plan (tensor_plan::adjustments);
// the sampler writes them and the report shows them, knowing no names.
struct host_param {
  param_info schema;
  // The element ranges [begin, end) of `tensor` that take the value; none:
  // the parameter does not claim this tensor (its plan carries nothing).
  std::vector<std::pair<std::int64_t, std::int64_t>> (*elements)(const tensor_analysis& tensor);
  // What it does, for --print-policy: "NAME=V sets ...".
  std::string note;
};

// Every host parameter; the one place their names appear.
const std::vector<host_param>& host_params();

// A parameter a rule may write as `auto`, resolved per tensor by the
// planner: gain=auto is the gain of the tensor's activation.
struct auto_param {
  std::string name;
  double (*value)(const tensor_analysis& tensor);
  // What it is, for --print-policy: "NAME=auto is ...".
  std::string note;
};

const std::vector<auto_param>& auto_params();

}  // namespace onnx_reinit
