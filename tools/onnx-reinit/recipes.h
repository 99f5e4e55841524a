// The command line's whole-model recipes: --preset NAME (repeatable, tried
// after --rule/--rules and before the policy) and --list-presets. The
// presets themselves live in the library (onnx_reinit/presets.h).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/rules.h"

namespace onnx_reinit::cli {

struct recipe_arguments {
  std::vector<std::string> presets;  // "NAME" or "NAME(k=v,...)"
  bool list_presets = false;
};

void add_recipe_options(CLI::App& app, recipe_arguments& a);

// The rules of every --preset, in the order given.
std::vector<rule> preset_rules(const recipe_arguments& a);

// Refuses (rule_error, exit 2) a preset the model gives nothing to act on.
void check_presets(const recipe_arguments& a, const std::vector<tensor_analysis>& tensors);

// --print-policy with presets: their rules, before the policy's text.
std::string presets_policy_text(const recipe_arguments& a);

}  // namespace onnx_reinit::cli
