// --preset, --list-presets, --from and --map: option declarations, and the
// presets' rules for --print-policy.
#include "recipes.h"

#include <fmt/format.h>

#include "onnx_reinit/presets.h"
#include "onnx_reinit/rules.h"

namespace onnx_reinit::cli {

void add_recipe_options(CLI::App& app, recipe_arguments& a) {
  app.add_option("--preset", a.presets,
                 "apply a whole-model recipe NAME or NAME(k=v); repeatable, tried after "
                 "--rule/--rules and before the policy (see --list-presets)");
  app.add_flag("--list-presets", a.list_presets,
               "list the presets with their reference, formula and rules");
  app.add_option("--from", a.from,
                 "copy every tensor whose name, dtype and shape match a tensor of PRETRAINED, "
                 "byte for byte; the rest by rules and policy");
  app.add_option("--map", a.maps,
                 "with --from: OLD_PREFIX=NEW_PREFIX renames pretrained tensors; repeatable");
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
