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

#include "onnx_reinit/format.h"
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
// Throws usage_error naming both when two maps give the same OLD prefix
// different NEW ones (one of them would silently win).
void check_prefix_maps(const std::vector<prefix_map>& maps);

struct transfer_mismatch {
  std::string name;    // in the model
  std::string source;  // in the pretrained model
  std::string dtype, source_dtype;
  std::vector<std::int64_t> shape, source_shape;
};

// A model tensor with a pretrained match that is kept instead: the analysis
// keeps it (a fixed constant such as a DFT basis or a filterbank, a
// quantized or empty tensor, one of unknown role) and no rule names it.
struct transfer_kept {
  std::string name;
  std::string reason;  // the analysis's
};

struct transfer_summary {
  std::string pretrained;  // path of the pretrained model
  std::size_t transferred = 0;
  std::vector<transfer_mismatch> mismatches;
  std::vector<transfer_kept> kept;
  // Pretrained float tensors whose (mapped) name is no float tensor of the
  // model; name matches with another shape or dtype are in `mismatches`,
  // matches kept by the analysis in `kept`. Non-float pretrained tensors
  // (shape constants, indices) could never be transferred and are not listed.
  std::vector<std::string> unused;
};

// Marks as plan_action::transfer every float tensor of `plans` (not kept by
// --only/--skip in `options`) that has a pretrained match, whatever rule
// decided it; except a tensor the analysis keeps (fixed_constant or
// keep_reason set), which is transferred only when a rule names it (its plan
// is a rewrite) and is otherwise listed in `kept`. The main graph's
// initializers and Constant values only, on both sides. Throws usage_error
// when two pretrained tensors would be copied into the same model tensor.
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

// "from backbone.onnx: 3 transferred, 1 mismatched, 0 kept, 2 unused"
template <>
struct fmt::formatter<onnx_reinit::transfer_summary> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::transfer_summary& s, Context& ctx) const {
    return fmt::format_to(ctx.out(), "from {}: {} transferred, {} mismatched, {} kept, {} unused",
                          s.pretrained, s.transferred, s.mismatches.size(), s.kept.size(),
                          s.unused.size());
  }
};
