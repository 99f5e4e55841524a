// Transfer from a pretrained model: every float tensor whose name (after
// prefix renames), dtype and shape match a tensor of the pretrained model is
// copied byte for byte instead of sampled; the rest follow the rules and
// policy. Name matches with another shape or dtype, and pretrained tensors
// left unused, are listed.
//
//   auto pretrained = onnx_reinit::load_model("backbone.onnx");
//   auto plans = onnx_reinit::make_plan(onnx_reinit::analyze_model(model), options);
//   auto summary = onnx_reinit::plan_transfer(pretrained, {{"encoder.", "backbone."}}, options,
//                                             plans);
//   onnx_reinit::rewrite_model(model, plans, registry, rewrite_options);
//   onnx_reinit::copy_transferred(model, pretrained, plans);  // before save_model
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"

namespace onnx_reinit {

// `OLD_PREFIX=NEW_PREFIX`: a pretrained tensor named OLD_PREFIX... is looked
// for as NEW_PREFIX... in the model. The first map whose prefix fits applies.
struct prefix_map {
  std::string from;
  std::string to;
};
// Parses "OLD=NEW" (either side may be empty, not both); throws usage_error.
prefix_map parse_prefix_map(const std::string& text);

struct transfer_mismatch {
  std::string name;    // in the model
  std::string source;  // in the pretrained model
  std::string dtype, source_dtype;
  std::vector<std::int64_t> shape, source_shape;
};

struct transfer_summary {
  std::string pretrained;  // path of the pretrained model
  std::size_t transferred = 0;
  std::vector<transfer_mismatch> mismatches;
  // Pretrained tensors whose (mapped) name is no float tensor of the model;
  // name matches with another shape or dtype are in `mismatches` instead.
  std::vector<std::string> unused;
};

// Marks as plan_action::transfer every float tensor of `plans` (not kept by
// --only/--skip in `options`) that has a pretrained match, whatever rule
// decided it. The main graph's initializers and Constant values only, on
// both sides.
transfer_summary plan_transfer(const loaded_model& pretrained, const std::vector<prefix_map>& maps,
                               const plan_options& options, std::vector<tensor_plan>& plans);

// Sets every transferred tensor's bytes from its pretrained source: at once
// for inline tensors, while save_model streams the model for external ones
// (so `pretrained` must stay alive until then), a window at a time from the
// pretrained data (mapped, never read whole).
void copy_transferred(loaded_model& model, const loaded_model& pretrained,
                      const std::vector<tensor_plan>& plans);

// The mismatches and unused tensors as text lines for the terminal.
std::string transfer_text(const transfer_summary& summary);

}  // namespace onnx_reinit
