// --preset and --list-presets: option declarations and the glue between
// them and the library's presets.
#include "recipes.h"

#include <fmt/format.h>

#include "onnx_reinit/presets.h"

namespace onnx_reinit::cli {

void add_recipe_options(CLI::App& app, recipe_arguments& a) {
  app.add_option("--preset", a.presets,
                 "apply a whole-model recipe NAME or NAME(k=v); repeatable, tried after "
                 "--rule/--rules and before the policy (see --list-presets)");
  app.add_flag("--list-presets", a.list_presets,
               "list the presets with their reference, formula and rules");
}

std::vector<rule> preset_rules(const recipe_arguments& a) {
  std::vector<rule> rules;
  for (const std::string& spec : a.presets)
    for (rule& r : onnx_reinit::preset_rules(spec)) rules.push_back(std::move(r));
  return rules;
}

void check_presets(const recipe_arguments& a, const std::vector<tensor_analysis>& tensors) {
  for (const std::string& spec : a.presets) check_preset(spec, tensors);
}

std::string presets_policy_text(const recipe_arguments& a) {
  std::string out;
  for (const std::string& spec : a.presets) {
    out += fmt::format("# --preset {}: tried after user rules, before the policy.\n", spec);
    for (const rule& r : onnx_reinit::preset_rules(spec)) out += r.text + "\n";
  }
  return out;
}

}  // namespace onnx_reinit::cli
