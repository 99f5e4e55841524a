// The planner: applies --only/--skip, user rules, then the default policy to
// each analysed tensor, and resolves `auto` parameter values.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/sdk/gains.h"

namespace onnx_reinit {
namespace {

bool any_glob(const std::vector<std::string>& globs, const std::string& name) {
  return std::any_of(globs.begin(), globs.end(),
                     [&](const std::string& g) { return glob_matches(g, name); });
}

tensor_plan kept(const tensor_analysis& tensor, std::string reason) {
  tensor_plan plan;
  plan.tensor = tensor;
  plan.action = plan_action::keep;
  plan.reason = std::move(reason);
  return plan;
}

// Why a tensor is never rewritten, whatever the rules say; "" when it may
// be: not float (quantized weights aside under requantize), a quantization
// scale or zero point, or kept by the analysis for a reason other than an
// unknown role.
std::string never_rewritten(const tensor_analysis& tensor, const plan_options& options) {
  if (tensor.quantized)
    return options.requantize && tensor.quantized->unsupported.empty() ? std::string{}
                                                                       : tensor.keep_reason;
  if (!tensor.is_float)
    return tensor.keep_reason.empty() ? "not a float tensor" : tensor.keep_reason;
  if (tensor.quantization_parameter ||
      (!tensor.keep_reason.empty() && tensor.info.role != tensor_role::unknown))
    return tensor.keep_reason;
  return {};
}

bool names_explicitly(const rule& r) {
  return std::any_of(r.terms.begin(), r.terms.end(), [](const match_term& t) {
    return t.field == match_term::kind::name &&
           std::any_of(t.alternatives.begin(), t.alternatives.end(),
                       [](const std::string& g) { return g != "*"; });
  });
}

// The first rule matching `tensor`, or null.
const rule* first_match(const tensor_analysis& tensor, const std::vector<rule>& rules) {
  for (const rule& r : rules)
    if (r.matches(tensor)) return &r;
  return nullptr;
}

// A name alternative of `r` that is `name` itself, not a pattern.
bool names_literally(const rule& r, const std::string& name) {
  return std::any_of(r.terms.begin(), r.terms.end(), [&](const match_term& t) {
    return t.field == match_term::kind::name &&
           std::any_of(t.alternatives.begin(), t.alternatives.end(), [&](const std::string& g) {
             return g.find_first_of("*?[\\") == std::string::npos && g == name;
           });
  });
}

rule_error never_rewritten_error(const rule& r, const tensor_analysis& tensor,
                                 const std::string& why) {
  return rule_error(
      fmt::format("rule '{}' names '{}' ({} {}), which is never rewritten: {}", r.text,
                  tensor.info.name, tensor.data_type, to_string(tensor.info.role), why),
      r.origin);
}

// A user rule that names a tensor the tool never rewrites is an error, not
// a rule silently ignored: a rule whose name term is that tensor's name, or
// a rule with a name pattern that decides first for such tensors and
// rewrites none (a glob that also catches shape constants beside the
// weights it rewrites is fine). `keep` rules may name anything.
void refuse_rules_naming_never_rewritten(const std::vector<tensor_analysis>& tensors,
                                         const std::vector<tensor_plan>& plans,
                                         const plan_options& options) {
  std::vector<std::pair<const rule*, std::size_t>> refused;  // rule, first such tensor
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::string why = never_rewritten(tensors[i], options);
    if (why.empty()) continue;
    const rule* r = first_match(tensors[i], options.rules);
    if (r == nullptr || r->keeps() || !names_explicitly(*r)) continue;
    if (names_literally(*r, tensors[i].info.name)) throw never_rewritten_error(*r, tensors[i], why);
    if (std::none_of(refused.begin(), refused.end(), [&](const auto& e) { return e.first == r; }))
      refused.emplace_back(r, i);
  }
  for (const auto& entry : refused) {
    const rule& r = *entry.first;
    const bool decides_some = std::any_of(plans.begin(), plans.end(), [&](const tensor_plan& p) {
      return p.action == plan_action::rewrite && p.rule == r.text && p.rule_origin == r.origin;
    });
    const tensor_analysis& tensor = tensors[entry.second];
    if (!decides_some) throw never_rewritten_error(r, tensor, never_rewritten(tensor, options));
  }
}

// A rule may decide for a tensor of unknown role, or one whose values form a
// fixed constant, only if it names tensors explicitly: role- or op-based
// rules (and the policy) describe learned layers the analysis recognised.
bool rule_applies(const rule& r, const tensor_analysis& tensor) {
  const bool needs_name =
      tensor.info.role == tensor_role::unknown || !tensor.fixed_constant.empty();
  if (needs_name && !r.names_tensors()) return false;
  return r.matches(tensor);
}

const host_param* find_host_param(const std::string& name) {
  for (const host_param& p : host_params())
    if (p.schema.name == name) return &p;
  return nullptr;
}

const auto_param* find_auto_param(const std::string& name) {
  for (const auto_param& p : auto_params())
    if (p.name == name) return &p;
  return nullptr;
}

// Validates a host parameter with the schema code every strategy parameter
// goes through, for every tensor the rule decides (so a bad value is always
// an error), and records it in the plan when the tensor takes it.
void apply_host_param(tensor_plan& plan, const host_param& param, const std::string& value,
                      const rule& r) {
  strategy_info schema;
  schema.name = r.call.strategy;
  schema.params = {param.schema};
  double number = 0.0;
  try {
    number = resolve_params(schema, {{param.schema.name, value}}).front().number;
  } catch (const param_error& e) {
    throw param_error(e.what(), fmt::format("rule '{}' from {}", r.text, r.origin));
  }
  auto elements = param.elements(plan.tensor);
  if (!elements.empty())
    plan.adjustments.push_back({param.schema.name, number, std::move(elements)});
}

tensor_plan from_rule(const tensor_analysis& tensor, const rule& r) {
  if (r.keeps()) {
    tensor_plan plan =
        kept(tensor, tensor.keep_reason.empty() ? fmt::format("kept by rule '{}'", r.text)
                                                : tensor.keep_reason);
    plan.rule = r.text;
    plan.rule_origin = r.origin;
    return plan;
  }
  tensor_plan plan;
  plan.tensor = tensor;
  plan.action = plan_action::rewrite;
  plan.rule = r.text;
  plan.rule_origin = r.origin;
  plan.call.strategy = r.call.strategy;
  for (const auto& [key, value] : r.call.params) {
    if (const host_param* host = find_host_param(key)) {
      apply_host_param(plan, *host, value, r);
      continue;
    }
    if (const auto_param* automatic = value == "auto" ? find_auto_param(key) : nullptr) {
      plan.call.params.emplace_back(key, format_detail::format_number(automatic->value(tensor)));
      continue;
    }
    if (auto number = evaluate_parameter(value, tensor, r.origin)) {
      plan.call.params.emplace_back(key, format_detail::format_number(*number));
      continue;
    }
    plan.call.params.emplace_back(key, value);
  }
  return plan;
}

tensor_plan plan_one(const tensor_analysis& analysed, const plan_options& options) {
  if (std::string why = never_rewritten(analysed, options); !why.empty())
    return kept(analysed, why);  // rules naming it: refuse_rules_naming_never_rewritten
  // A quantized weight under requantize is planned as its float layer's.
  tensor_analysis requantized;
  if (analysed.quantized) {
    requantized = analysed;
    requantized.keep_reason.clear();
  }
  const tensor_analysis& tensor = analysed.quantized ? requantized : analysed;
  const std::string& name = tensor.info.name;
  if (!options.only.empty() && !any_glob(options.only, name))
    return kept(tensor, "not selected by --only");
  if (any_glob(options.skip, name)) return kept(tensor, "excluded by --skip");
  for (const rule& r : options.rules)
    if (rule_applies(r, tensor)) return from_rule(tensor, r);
  if (options.use_default_policy)
    for (const rule& r : default_policy())
      if (rule_applies(r, tensor)) return from_rule(tensor, r);
  if (!tensor.fixed_constant.empty()) return kept(tensor, tensor.fixed_constant);
  return kept(tensor, tensor.keep_reason.empty() ? "no rule matches" : tensor.keep_reason);
}

// The constant a rewrite call writes, when its strategy says it writes one
// (target moments with std 0); nullopt when it draws values, cannot say, or
// no registry was given to ask.
std::optional<double> written_constant(const tensor_plan& plan, const registry* strategies) {
  if (strategies == nullptr) return std::nullopt;
  const configured_strategy strategy = strategies->create(plan.call.strategy, plan.call.params);
  const std::optional<configured_strategy::moments> m = strategy.target_moments(plan.tensor.info);
  if (!m || m->std != 0.0) return std::nullopt;
  return m->mean;
}

// The PReLU slope the plan writes for `slope`, which sets the gain of the
// weights before that PReLU (docs/DESIGN.md: alpha is the slope's initial value):
// the trained value when kept, the constant its strategy declares it writes;
// otherwise PyTorch's initial 0.25, with a note.
std::pair<double, std::string> written_slope(const tensor_plan& slope, double trained,
                                             const registry* strategies) {
  if (slope.action != plan_action::rewrite) return {trained, {}};
  if (std::optional<double> value = written_constant(slope, strategies)) return {*value, {}};
  return {default_prelu_slope,
          fmt::format("PReLU slope '{}' is drawn by {}; gain uses the initial slope {}",
                      slope.tensor.info.name, slope.call.strategy, default_prelu_slope)};
}

// --quantized requantize: each requantized weight or bias rewrites the
// scale of its DequantizeLinear too (a bias's is input scale x weight
// scale), which the plan and the report list as rewritten.
void plan_requantized_scales(std::vector<tensor_plan>& plans) {
  for (const tensor_plan& p : plans) {
    if (p.action != plan_action::rewrite || !p.tensor.quantized) continue;
    const quantized_tensor& q = *p.tensor.quantized;
    auto scale = std::find_if(plans.begin(), plans.end(), [&](const tensor_plan& s) {
      return s.tensor.info.name == q.scale && s.tensor.ref.graph_path == p.tensor.ref.graph_path;
    });
    if (scale == plans.end()) continue;  // the analysis found it a constant: not reached
    scale->action = plan_action::rewrite;
    scale->call = {"requantize", {}};
    scale->rule = "requantize";
    scale->rule_origin = "--quantized requantize";
    scale->reason.clear();
    scale->requantized_from = p.tensor.info.name;
    scale->tensor.notes.push_back(
        p.tensor.info.role == tensor_role::bias
            ? fmt::format("requantized: input scale x the scale of '{}', for bias '{}'", q.weight,
                          p.tensor.info.name)
            : fmt::format("requantized: max|w|{} of the new values of '{}'",
                          q.symmetric ? " / 127 (int8)" : " over the range beside the zero point",
                          p.tensor.info.name));
  }
  for (tensor_plan& p : plans) {
    if (!p.tensor.quantized || !p.tensor.quantized->unsupported.empty()) continue;
    const quantized_tensor& q = *p.tensor.quantized;
    if (p.action == plan_action::rewrite) {
      p.tensor.notes.push_back(
          fmt::format("requantized: drawn in float, quantized to {} with {} scale '{}'{}",
                      p.tensor.data_type, q.channels > 1 ? "per-channel" : "per-tensor", q.scale,
                      q.channels > 1 ? fmt::format(" along axis {}", q.axis) : std::string{}));
      continue;
    }
    if (p.tensor.info.role != tensor_role::bias) continue;
    auto weight = std::find_if(plans.begin(), plans.end(), [&](const tensor_plan& w) {
      return w.tensor.info.name == q.weight && w.action == plan_action::rewrite;
    });
    if (weight != plans.end())
      p.tensor.notes.push_back(fmt::format(
          "kept while weight '{}' is requantized: its scale no longer equals input scale x weight "
          "scale (the model computes the same bias; fused integer kernels may not)",
          q.weight));
  }
}

}  // namespace

std::string quantized_summary(const std::vector<tensor_plan>& plans) {
  std::size_t kept_count = 0, unsupported = 0, requantized = 0;
  for (const tensor_plan& p : plans) {
    if (!p.tensor.quantized) continue;
    if (p.action == plan_action::rewrite) {
      ++requantized;
    } else if (p.reason == p.tensor.keep_reason) {  // kept for being quantized
      ++kept_count;
      unsupported += p.tensor.quantized->unsupported.empty() ? 0 : 1;
    }
  }
  const char* plural = kept_count == 1 ? "" : "s";
  if (kept_count == 0) return {};
  if (kept_count == unsupported)
    return fmt::format("{} quantized weight{} kept: not requantizable (the plan says why)",
                       kept_count, plural);
  if (requantized == 0 && unsupported == 0)
    return fmt::format("{} quantized weight{} kept; --quantized requantize rewrites them",
                       kept_count, plural);
  return fmt::format(
      "{} quantized weight{} kept; --quantized requantize rewrites {} of them (the "
      "plan says why not the others)",
      kept_count, plural, kept_count - unsupported);
}

std::vector<tensor_plan> make_plan(const std::vector<tensor_analysis>& tensors,
                                   const plan_options& options) {
  std::vector<tensor_plan> plans;
  plans.reserve(tensors.size());
  for (const tensor_analysis& t : tensors) plans.push_back(plan_one(t, options));
  // Weights before a PReLU are planned again with the gain of the slope the
  // plan writes (the policy resets trained slopes to 0.25).
  for (tensor_plan& p : plans) {
    const tensor_analysis& t = p.tensor;
    if (t.info.activation != activation_kind::prelu || t.prelu_slope_tensor.empty()) continue;
    auto slope = std::find_if(plans.begin(), plans.end(), [&](const tensor_plan& q) {
      return q.tensor.info.role == tensor_role::prelu_slope &&
             q.tensor.info.name == t.prelu_slope_tensor;
    });
    if (slope == plans.end()) continue;
    auto [value, note] = written_slope(*slope, t.info.activation_param, options.strategies);
    if (value == t.info.activation_param && note.empty()) continue;
    tensor_analysis adjusted = t;
    adjusted.info.activation_param = value;
    adjusted.info.gain = activation_gain(activation_kind::prelu, value);
    if (!note.empty()) adjusted.notes.push_back(note);
    p = plan_one(adjusted, options);
  }
  if (options.requantize) plan_requantized_scales(plans);
  refuse_rules_naming_never_rewritten(tensors, plans, options);
  return plans;
}

}  // namespace onnx_reinit
