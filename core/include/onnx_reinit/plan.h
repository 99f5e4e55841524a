// The planner: user rules first, then the default policy, decide for every
// tensor whether and how it is rewritten (docs/DESIGN.md section 1, Planner).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/format.h"
#include "onnx_reinit/rules.h"

namespace onnx_reinit {

class registry;

// transfer: copied byte for byte from a pretrained model (transfer.h).
enum class plan_action { rewrite, keep, transfer };

// A host parameter's value, written by the host over `elements` of the
// tensor after its strategy fills it (host_param in rules.h).
struct host_adjustment {
  std::string name;  // the host parameter's
  double value = 0.0;
  std::vector<std::pair<std::int64_t, std::int64_t>> elements;  // [begin, end)
};

// What the moment pass predicts for a weighted layer's weight (docs/DESIGN.md
// section 14), under the input assumption (N(0, 1) per element).
struct signal_prediction {
  double output_rms = 0.0;  // RMS of the layer's output 0
  double read_rms = 0.0;    // RMS of what the next layer reads (after the activation)
  // How the signal policy set the scale, or why it kept the textbook one:
  // "next layer reads second moment 1 (relu: pre-activation 2)", "norm follows:
  // textbook kept", "residual branch: 1/8 of the stream", "output layer: logits
  // RMS 0.1", "textbook within 1%".
  std::string basis;
};

struct tensor_plan {
  tensor_analysis tensor;
  plan_action action = plan_action::keep;
  strategy_call call;       // rewrite: the strategy and its parameters, `auto` resolved
  std::string rule;         // the deciding rule's text, or "" when kept by analysis
  std::string rule_origin;  // "--rule 1", "rules.yaml:3", "policy"
  std::string reason;       // keep: why
  // Host-applied after the strategy, in rule order: the host parameters
  // (host_params in rules.h) the deciding rule gives and this tensor takes.
  std::vector<host_adjustment> adjustments;
  // transfer: the pretrained tensor's name.
  std::string transfer_source;
  // --quantized requantize: the quantized weight or bias whose new values
  // set this tensor's (the scale of its DequantizeLinear); action rewrite,
  // call.strategy "requantize", no registry strategy.
  std::string requantized_from;
  // Weighted layers' weights (of the main graph): the moment pass's figures.
  std::optional<signal_prediction> predicted;

  // The value of host parameter `name` in this plan, nullopt when it has none.
  std::optional<double> host_value(std::string_view name) const {
    for (const host_adjustment& a : adjustments)
      if (a.name == name) return a.value;
    return std::nullopt;
  }
};

struct plan_options {
  std::vector<rule> rules;        // user rules, tried before the policy
  std::vector<std::string> only;  // name globs; non-empty: others are kept
  std::vector<std::string> skip;  // name globs kept
  bool use_default_policy = true;
  // The strategies the plan names, asked what a PReLU slope's call writes:
  // a strategy whose target moments have std 0 writes their mean, which
  // sets the gain of the weights before that PReLU. Without a registry
  // every rewritten slope counts as drawn (PyTorch's initial 0.25, noted).
  const registry* strategies = nullptr;
  // --quantized requantize: quantized weights and biases (tensor_analysis::
  // quantized) are planned like float ones, drawn in float and quantized
  // back (requantize.h); false keeps them.
  bool requantize = false;
};

// The default policy: `signal` solves each policy-decided weight's scale
// over the whole graph (docs/DESIGN.md section 14); `textbook` keeps each
// tensor's own formula (the policy before 0.2, byte for byte).
enum class init_policy { signal, textbook };
std::string_view to_string(init_policy p);
// "signal" or "textbook"; usage_error otherwise.
init_policy parse_init_policy(std::string_view text);

struct signal_options {
  init_policy policy = init_policy::signal;
  // Output layers' logits: this RMS, so the loss at initialization is
  // close to ln C for C classes.
  double output_rms = 0.1;
  // What every next layer reads: this second moment.
  double target = 1.0;
};

// What the moment pass says of the whole model.
struct signal_summary {
  init_policy policy = init_policy::signal;
  // Ops whose moments were assumed (no rule, recurrent, unknown shapes), with counts.
  std::vector<std::string> assumptions;
  // Activations whose length map amplifies a scale error so fast that the
  // signal cannot be held over the network's depth by any fixed per-layer
  // scale: "gelu: an error in scale passes 10x after 17 layers; 64 gelu layers".
  std::vector<std::string> warnings;
};

// The moment pass over `model` under `plans` (fills tensor_plan::predicted);
// with init_policy::signal, first solves the scale of every weight the
// default policy decided (rule_origin "policy"), replacing its call by
// variance_scaling when its textbook std is more than 1% off.
// Deterministic; reads no tensor data but the kept constants'.
signal_summary apply_signal_policy(const loaded_model& model, std::vector<tensor_plan>& plans,
                                   const registry& strategies, const signal_options& options);

// One plan per analysed tensor, in the same order. A user rule whose name
// glob (other than `*`) picks a tensor that is never rewritten (not float,
// a quantization scale or zero point, a quantized weight without
// `requantize`, a tensor the analysis keeps), and that would decide it, is a
// rule_error naming the rule, the tensor and why, unless the rule keeps. Parameters written
// `auto` that rules.h declares (auto_params) are resolved here: gain=auto
// becomes the tensor's activation gain; for a weight before a PReLU, the
// gain of the slope the plan writes for that PReLU's slope tensor
// (tensor_analysis::prelu_slope_tensor). Host parameters (host_params)
// are validated by their schema (param_error naming the rule) and taken out
// of the strategy's parameters into tensor_plan::adjustments.
std::vector<tensor_plan> make_plan(const std::vector<tensor_analysis>& tensors,
                                   const plan_options& options);

// "53 quantized weights kept; --quantized requantize rewrites them" when
// the plan keeps quantized weights or biases for being quantized (with
// their count and why under requantize); "" when none.
std::string quantized_summary(const std::vector<tensor_plan>& plans);

// True when `name` matches the shell glob `pattern` (fnmatch, no flags).
bool glob_matches(const std::string& pattern, const std::string& name);

}  // namespace onnx_reinit

// "conv.w: rewrite kaiming_normal(mode=fan_in) [policy: role:weight&...]"
// or "shape: keep (not a float tensor)".
template <>
struct fmt::formatter<onnx_reinit::tensor_plan> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::tensor_plan& p, Context& ctx) const {
    auto out = fmt::format_to(ctx.out(), "{}: ", p.tensor.info.name);
    if (p.action == onnx_reinit::plan_action::rewrite) {
      out = fmt::format_to(out, "rewrite {}", p.call.to_string());
      for (const onnx_reinit::host_adjustment& a : p.adjustments)
        out = fmt::format_to(out, " {}={:.6g}", a.name, a.value);
    } else if (p.action == onnx_reinit::plan_action::transfer) {
      out = fmt::format_to(out, "transfer from {}", p.transfer_source);
    } else {
      out = fmt::format_to(out, "keep");
      if (!p.reason.empty()) out = fmt::format_to(out, " ({})", p.reason);
    }
    if (!p.rule_origin.empty()) out = fmt::format_to(out, " [{}: {}]", p.rule_origin, p.rule);
    return out;
  }
};
