// The command line's whole-model recipes: --preset NAME (repeatable, tried
// after --rule/--rules and before the policy), --list-presets, and
// --from PRETRAINED with --map OLD=NEW. The presets and the transfer
// themselves live in the library (presets.h, transfer.h).
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/rules.h"
#include "onnx_reinit/transfer.h"

namespace onnx_reinit::cli {

struct recipe_arguments {
  std::vector<std::string> presets;  // "NAME" or "NAME(k=v,...)"
  bool list_presets = false;
  std::string from;               // pretrained model
  std::vector<std::string> maps;  // OLD_PREFIX=NEW_PREFIX
};

void add_recipe_options(CLI::App& app, recipe_arguments& a);

// The rules of every --preset, in the order given.
std::vector<rule> preset_rules(const recipe_arguments& a);

// Refuses (rule_error, exit 2) a preset the model gives nothing to act on.
void check_presets(const recipe_arguments& a, const std::vector<tensor_analysis>& tensors);

// --print-policy with presets: their rules, before the policy's text.
std::string presets_policy_text(const recipe_arguments& a);

// --from: loads the pretrained model (read-only; kept until the model is
// saved, since external tensors are copied while saving), marks the plans
// it supplies and copies their bytes after the rewrite.
class transfer_stage {
 public:
  transfer_stage(const recipe_arguments& a, const load_options& options);
  // Usage errors: --map without --from, --from naming the output.
  static void check_usage(const recipe_arguments& a, const std::string& output);
  void plan(std::vector<tensor_plan>& plans, const plan_options& options);
  void copy(loaded_model& model, const std::vector<tensor_plan>& plans) const;
  const std::optional<transfer_summary>& summary() const { return summary_; }

 private:
  std::optional<loaded_model> pretrained_;
  std::vector<prefix_map> maps_;
  std::optional<transfer_summary> summary_;
};

}  // namespace onnx_reinit::cli
