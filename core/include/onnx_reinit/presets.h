// Whole-model initialization recipes from the literature, written as rules
// over the residual structure (residual.h) so that `--print-policy --preset
// NAME` shows exactly what they do. Presets are tried after user rules and
// before the default policy.
//
//   std::vector<onnx_reinit::rule> rules = onnx_reinit::preset_rules("gpt2");
//   auto tensors = onnx_reinit::analyze_model(model);
//   onnx_reinit::check_preset("gpt2", tensors);  // throws rule_error if it cannot apply
//   options.rules.insert(options.rules.end(), rules.begin(), rules.end());
#pragma once

#include <string>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/rules.h"

namespace onnx_reinit {

struct preset_info {
  std::string name;
  std::string reference;  // the paper or library it follows
  std::string formula;    // what it sets, in words and symbols
  std::string params;     // "value=1e-5: ..." or ""
};

// Every preset, in the order --list-presets shows them.
const std::vector<preset_info>& preset_list();

// --list-presets: each preset with its reference, formula, parameters and rules.
std::string presets_text();

// The rules of `spec`, "NAME" or "NAME(k=v,...)", with origin "--preset
// NAME". Throws rule_error for an unknown preset or parameter.
std::vector<rule> preset_rules(const std::string& spec);

// Throws rule_error (naming the preset) when the model gives the preset
// nothing to act on, or has what the preset's paper excludes (fixup on a
// model with normalization layers).
void check_preset(const std::string& spec, const std::vector<tensor_analysis>& tensors);

}  // namespace onnx_reinit
