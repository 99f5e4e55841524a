// The sampler and rewrite step: creates each planned strategy once through
// the registry, fills every planned tensor from its reproducible stream
// (chunks in parallel where the strategy is element-wise), checks the values
// and stores them in the model, keeping dtype and storage form.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "onnx_reinit/format.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/registry.h"

namespace onnx_reinit {

struct rewrite_options {
  std::uint64_t seed = 0;
  unsigned threads = 0;  // 0: all cores. Never changes the output.
  // Element-wise strategies fill tensors in chunks of this many elements.
  std::uint64_t chunk_elements = std::uint64_t{1} << 18;
  // Called after each rewritten tensor (or window of a streamed one) with
  // (done, total) element counts. Called from one thread at a time (the
  // library serialises the calls), with `done` increasing, but not always
  // from the same thread; keep it short, it holds up the worker calling it.
  std::function<void(std::uint64_t, std::uint64_t)> progress;
};

// What happened to one tensor; one per plan, in plan order.
struct tensor_outcome {
  bool rewritten = false;
  std::string strategy;  // "kaiming_normal(a=0, mode=fan_in, nonlinearity=auto)"
  std::vector<resolved_param> params;
  double target_mean = 0.0;    // NaN when the strategy cannot say
  double target_std = 0.0;     // NaN when the strategy cannot say
  double achieved_mean = 0.0;  // of the values written (after 16-bit rounding)
  double achieved_std = 0.0;   // population std of the values written
};

// The name a tensor's random stream is keyed by: its name, prefixed by the
// graph path for tensors inside subgraphs (so equal names in different
// subgraphs get different values).
std::string stream_name(const tensor_ref& ref);

// Creates one configured strategy per distinct call in `plans`, so unknown
// strategies and bad parameters fail before any tensor is touched.
// Throws unknown_strategy_error / param_error naming the rule.
void validate_plan(const std::vector<tensor_plan>& plans, const registry& strategies);

// One outcome per plan. Tensors stored as external data are sampled while
// save_model streams them to disk, so their figures are final only after
// the model has been saved; inline tensors' figures are final at once.
using rewrite_outcomes = std::shared_ptr<const std::vector<tensor_outcome>>;

// For --plan: the outcome each plan would have, with parameters resolved and
// target moments, without sampling (rewritten false, achieved figures NaN).
std::vector<tensor_outcome> preview_outcomes(const std::vector<tensor_plan>& plans,
                                             const registry& strategies);

// Samples every tensor planned for rewrite. Inline tensors are filled now
// and stored in `model`; external tensors get a producer that generates
// them chunk by chunk when save_model writes them, so memory stays bounded
// by a few chunks whatever the model size. `plans` must come from
// analyze_model(model) in order. Throws strategy_error when a
// strategy fails or produces a non-finite value, naming the tensor,
// strategy and plugin (from save_model for external tensors); the model must
// then not be saved.
rewrite_outcomes rewrite_model(loaded_model& model, const std::vector<tensor_plan>& plans,
                               const registry& strategies, const rewrite_options& options);

}  // namespace onnx_reinit

// "rewritten kaiming_normal(a=0, mode=fan_in, nonlinearity=auto) target
// mean=0 std=0.117851 achieved mean=0.0003 std=0.1179", or "kept". Unknown
// figures print as "?".
template <>
struct fmt::formatter<onnx_reinit::tensor_outcome> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::tensor_outcome& o, Context& ctx) const {
    using onnx_reinit::format_detail::figure;
    if (o.strategy.empty()) return fmt::format_to(ctx.out(), "kept");
    return fmt::format_to(ctx.out(), "{} {} target mean={} std={} achieved mean={} std={}",
                          o.rewritten ? "rewritten" : "planned", o.strategy, figure(o.target_mean),
                          figure(o.target_std), figure(o.achieved_mean), figure(o.achieved_std));
  }
};
