// --preset and --list-presets: option declarations and the glue between
// them and the library's presets.
#include "recipes.h"

#include <fmt/format.h>

#include <filesystem>

#include "onnx_reinit/errors.h"

#include "onnx_reinit/presets.h"

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

transfer_stage::transfer_stage(const recipe_arguments& a, const load_options& options) {
  for (const std::string& m : a.maps) maps_.push_back(parse_prefix_map(m));
  if (!a.from.empty()) pretrained_.emplace(load_model(a.from, options));
}

void transfer_stage::check_usage(const recipe_arguments& a, const std::string& output) {
  if (!a.maps.empty() && a.from.empty())
    throw usage_error("--map goes with --from PRETRAINED", "command line");
  std::vector<prefix_map> maps;
  for (const std::string& m : a.maps) maps.push_back(parse_prefix_map(m));
  check_prefix_maps(maps);
  std::error_code ec;
  if (!a.from.empty() && !output.empty() && std::filesystem::equivalent(a.from, output, ec))
    throw usage_error(fmt::format("refusing to overwrite the pretrained model '{}'", a.from),
                      "command line");
}

void transfer_stage::plan(std::vector<tensor_plan>& plans, const plan_options& options) {
  if (pretrained_) summary_ = plan_transfer(*pretrained_, maps_, options, plans);
}

void transfer_stage::copy(loaded_model& model, const std::vector<tensor_plan>& plans) const {
  if (pretrained_) copy_transferred(model, *pretrained_, plans);
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
