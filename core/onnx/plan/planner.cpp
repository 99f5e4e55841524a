// The planner: applies --only/--skip, user rules, then the default policy to
// each analysed tensor, and resolves `auto` parameter values.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/plan.h"

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

// Tensors that can never be rewritten: not float, or kept by the analysis
// for a reason other than an unknown role (e.g. quantized).
bool must_keep(const tensor_analysis& tensor) {
  return !tensor.is_float ||
         (!tensor.keep_reason.empty() && tensor.info.role != tensor_role::unknown);
}

// A rule may decide for a tensor of unknown role, or one whose values form a
// fixed constant, only if it names tensors explicitly: role- or op-based
// rules (and the policy) describe learned layers the analysis recognised.
bool rule_applies(const rule& r, const tensor_analysis& tensor) {
  const bool needs_name =
      tensor.info.role == tensor_role::unknown || !tensor.fixed_constant.empty();
  if (needs_name && !r.has_name_term()) return false;
  if (needs_name && r.terms.size() == 1 && r.terms[0].alternatives == std::vector<std::string>{"*"})
    return false;
  return r.matches(tensor);
}

std::string format_number(double v) {
  return fmt::format("{}", v);
}

double parse_forget_bias(const std::string& text, const rule& r) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !std::isfinite(value))
    throw rule_error(fmt::format("forget_bias must be a finite number, not '{}'", text), r.origin);
  return value;
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
    if (key == "forget_bias") {
      plan.forget_bias = parse_forget_bias(value, r);
      continue;
    }
    if (key == "gain" && value == "auto") {
      plan.call.params.emplace_back(key, format_number(tensor.info.gain));
      continue;
    }
    plan.call.params.emplace_back(key, value);
  }
  return plan;
}

tensor_plan plan_one(const tensor_analysis& tensor, const plan_options& options) {
  if (must_keep(tensor))
    return kept(tensor, tensor.keep_reason.empty() ? "not a float tensor" : tensor.keep_reason);
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

}  // namespace

std::vector<tensor_plan> make_plan(const std::vector<tensor_analysis>& tensors,
                                   const plan_options& options) {
  std::vector<tensor_plan> plans;
  plans.reserve(tensors.size());
  for (const tensor_analysis& t : tensors) plans.push_back(plan_one(t, options));
  return plans;
}

}  // namespace onnx_reinit
