// The command line's whole-model recipes: --preset NAME (repeatable, tried
// after --rule/--rules and before the policy), --list-presets, and
// --from PRETRAINED with --map OLD=NEW. The presets and the transfer
// themselves run in the library (presets.h, transfer.h, reinit.h).
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace onnx_reinit::cli {

struct recipe_arguments {
  std::vector<std::string> presets;  // "NAME" or "NAME(k=v,...)"
  bool list_presets = false;
  std::string from;               // pretrained model
  std::vector<std::string> maps;  // OLD_PREFIX=NEW_PREFIX
};

void add_recipe_options(CLI::App& app, recipe_arguments& a);

// --print-policy with presets: their rules, before the policy's text.
std::string presets_policy_text(const recipe_arguments& a);

}  // namespace onnx_reinit::cli
