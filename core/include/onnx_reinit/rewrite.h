// The sampler (docs/DESIGN.md section 1): turns a plan into the value of what a
// rewrite will write (a model_sample: per tensor the strategy, its targets
// and a source generating the bytes on demand), stages it into the model,
// and joins it with what the writer returned into report rows. Every value
// prints with fmt:
//   auto sample = onnx_reinit::rewrite_model(model, plans, registry, {.seed = 7});
//   auto saved = onnx_reinit::save_model(model, "out.onnx");
//   fmt::print("{}\n{}\n", sample, onnx_reinit::outcomes_of(sample, saved));
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
  // Called by apply_sample after each inline tensor it generates, with
  // (done, total) bytes of those tensors (save_options::progress counts the
  // external ones as save_model streams them). Called from one thread at a time (the
  // library serialises the calls), with `done` increasing, but not always
  // from the same thread; keep it short, it holds up the worker calling it.
  std::function<void(std::uint64_t, std::uint64_t)> progress;
};

// What the sampler will write for one tensor; one per plan, in plan order.
struct tensor_sample {
  tensor_ref ref;
  // The plan's decision: only `rewrite` gets a source here; `transfer` is
  // the transfer stage's to write; `keep` may be written by no stage.
  plan_action action = plan_action::keep;
  std::string strategy;  // "kaiming_normal(a=0, mode=fan_in, nonlinearity=auto)"; "": kept
  std::vector<resolved_param> params;
  double target_mean = 0.0;  // NaN when the strategy cannot say (or kept)
  double target_std = 0.0;   // NaN when the strategy cannot say (or kept)
  // The new bytes, generated from the tensor's random stream when read (any
  // number of times, always the same bytes); null when the tensor is kept.
  std::shared_ptr<const byte_source> source;
};

// The sampler's value: what a rewrite will write, tensor by tensor.
struct model_sample {
  std::uint64_t seed = 0;
  std::vector<tensor_sample> tensors;
};

// One row of the report: the plan's strategy and targets, and what the
// writer achieved; one per plan, in plan order.
struct tensor_outcome {
  bool rewritten = false;    // the writer wrote it, from the sample (calibration included)
  bool transferred = false;  // the writer wrote it, from the pretrained model
  std::string strategy;      // "kaiming_normal(a=0, mode=fan_in, nonlinearity=auto)"
  std::vector<resolved_param> params;
  double target_mean = 0.0;    // NaN when the strategy cannot say
  double target_std = 0.0;     // NaN when the strategy cannot say
  double achieved_mean = 0.0;  // of the values written (after 16-bit rounding); NaN unless written
  double achieved_std = 0.0;   // population std of the values written; NaN unless written
};

// The name a tensor's random stream is keyed by: its name, prefixed by the
// graph path for tensors inside subgraphs (so equal names in different
// subgraphs get different values).
std::string stream_name(const tensor_ref& ref);

// Creates one configured strategy per distinct call in `plans`, so unknown
// strategies and bad parameters fail before any tensor is touched.
// Throws unknown_strategy_error / param_error naming the rule.
void validate_plan(const std::vector<tensor_plan>& plans, const registry& strategies);

// What `plans` will write into `model`, without generating anything yet:
// each rewritten tensor gets a source that fills it chunk by chunk (chunks
// in parallel where the strategy is element-wise) from its Philox stream
// when read, checking every value is finite (strategy_error naming the
// tensor, strategy and plugin otherwise, raised by whoever reads it).
// `plans` must come from analyze_model(model) in order (usage_error).
// Changes nothing. Sources own what they need: the sample may outlive the
// model, the plans and the registry.
model_sample sample_model(const loaded_model& model, const std::vector<tensor_plan>& plans,
                          const registry& strategies, const rewrite_options& options);

// Stages `sample` into `model`: inline tensors are generated now (in
// parallel, calling options.progress), external ones keep their source
// pending until save_model streams it, so memory stays bounded by a few
// windows whatever the model size. Reads of the model see the new values.
void apply_sample(loaded_model& model, const model_sample& sample, const rewrite_options& options);

// sample_model then apply_sample; returns the sample.
model_sample rewrite_model(loaded_model& model, const std::vector<tensor_plan>& plans,
                           const registry& strategies, const rewrite_options& options);

// The report rows: the sample's strategies and targets with the figures the
// writer returned (achieved figures NaN and rewritten false for tensors the
// writer did not write, e.g. before saving). Built from what was written,
// so the report cannot disagree with the bytes: a tensor is `rewritten` or
// `transferred` only if the writer wrote it. The plan is law: a written
// tensor that the plan keeps (or that is no tensor of the sample) throws
// `error` naming it, so a save whose before_commit builds the report
// publishes nothing.
std::vector<tensor_outcome> outcomes_of(const model_sample& sample, const save_result& written);

// After save_model: throws `error` unless the writer wrote exactly the
// tensors the plan hands to a stage (rewritten or transferred), no more
// (see outcomes_of) and no fewer. The CLI runs it in before_commit.
void check_written_follows_plan(const model_sample& sample, const save_result& written);

// For --plan: the outcome each plan would have, with parameters resolved and
// target moments, without sampling (rewritten false, achieved figures NaN).
std::vector<tensor_outcome> preview_outcomes(const std::vector<tensor_plan>& plans,
                                             const registry& strategies);

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

// "conv.w: kaiming_normal(a=0, mode=fan_in, nonlinearity=auto) target mean=0
// std=0.117851 <- 4608 bytes from kaiming_normal seed=7 stream 'conv.w'", or
// "shape: kept".
template <>
struct fmt::formatter<onnx_reinit::tensor_sample> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::tensor_sample& t, Context& ctx) const {
    using onnx_reinit::format_detail::figure;
    const std::string name = onnx_reinit::stream_name(t.ref);
    if (!t.source) return fmt::format_to(ctx.out(), "{}: kept", name);
    return fmt::format_to(ctx.out(), "{}: {} target mean={} std={} <- {}", name, t.strategy,
                          figure(t.target_mean), figure(t.target_std), t.source->describe());
  }
};

// "seed 7: [conv.w: kaiming_normal(...) ..., shape: kept]"
template <>
struct fmt::formatter<onnx_reinit::model_sample> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::model_sample& s, Context& ctx) const {
    return fmt::format_to(ctx.out(), "seed {}: [{}]", s.seed, fmt::join(s.tensors, ", "));
  }
};

// "conv.w float32 x288 mean=0.0003 std=0.1179"
template <>
struct fmt::formatter<onnx_reinit::written_tensor> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::written_tensor& t, Context& ctx) const {
    using onnx_reinit::format_detail::figure;
    return fmt::format_to(ctx.out(), "{} {} x{} mean={} std={}", onnx_reinit::stream_name(t.ref),
                          t.is_float ? to_string(t.dtype) : "integer", t.count, figure(t.mean),
                          figure(t.std));
  }
};

// "wrote [conv.w float32 x288 mean=... std=..., ...]", then "; the input's
// checker failure kept: <message>" when there is one.
template <>
struct fmt::formatter<onnx_reinit::save_result> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::save_result& r, Context& ctx) const {
    auto out = fmt::format_to(ctx.out(), "wrote [{}]", fmt::join(r.written, ", "));
    if (r.checker_failure)
      out = fmt::format_to(out, "; the input's checker failure kept: {}", *r.checker_failure);
    return out;
  }
};
