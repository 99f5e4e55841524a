// The signal policy (docs/DESIGN.md section 14): the moment pass over the
// graph under the plan, and the solve that sets each policy-decided
// weight's scale so that what the next layer reads has second moment 1,
// residual branches add a bounded share to their stream, and logits start
// small. Fills tensor_plan::predicted for every weighted layer.
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <set>
#include <unordered_map>

#include "graph_index.h"
#include "length_map.h"
#include "moment_pass.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/registry.h"

namespace onnx_reinit {

std::string_view to_string(init_policy p) {
  return p == init_policy::signal ? "signal" : "textbook";
}

init_policy parse_init_policy(std::string_view text) {
  if (text == "signal") return init_policy::signal;
  if (text == "textbook") return init_policy::textbook;
  throw usage_error(fmt::format("--policy: expected 'signal' or 'textbook', got '{}'", text),
                    "command line");
}

namespace {

using signal::moments;

// The distribution family of a textbook call, for the variance_scaling call
// that replaces it: the shape of the values stays, only their scale moves.
std::string_view family_of(const std::string& strategy) {
  if (strategy.find("uniform") != std::string::npos) return "uniform";
  if (strategy == "lecun_normal" || strategy == "truncated_normal") return "truncated_normal";
  return "untruncated_normal";
}

class solver {
 public:
  solver(const loaded_model& model, std::vector<tensor_plan>& plans, const registry& strategies,
         const signal_options& options)
      : model_(model),
        plans_(plans),
        strategies_(strategies),
        options_(options),
        index_(model.proto(), &model) {
    for (tensor_plan& p : plans_)
      if (p.tensor.ref.graph_path.empty()) by_name_[p.tensor.info.name] = &p;
    residual_ = find_residual_structure(model);
    for (const residual_branch& b : residual_.branches)
      if (!b.layers.empty()) last_layer_branch_[b.layers.back()] = &b;
    // The joins' nodes, by the label residual_branch::join gives them.
    for (const onnx::NodeProto& n : model.proto().graph().node())
      joins_.emplace(detail::node_label(n), &n);
    for (const tensor_plan& p : plans_)
      if (p.rule_origin == "policy" && p.tensor.info.role == tensor_role::weight &&
          !p.tensor.output_layer && !last_layer_branch_.count(p.tensor.info.name))
        ++chain_layers_[{p.tensor.info.activation, p.tensor.info.activation_param}];
  }

  signal_summary run() {
    signal::moment_pass_hooks hooks;
    hooks.constant = [this](const std::string& name) { return constant(name); };
    hooks.layer = [this](const signal::layer_visit& v) { layer(v); };
    const signal::moment_pass_result r = signal::run_moment_pass(index_, model_.proto(), hooks);
    predict(r);
    signal_summary summary;
    summary.policy = options_.policy;
    for (const auto& [what, count] : r.assumptions)
      summary.assumptions.push_back(count > 1 ? fmt::format("{} x{}", what, count) : what);
    for (const std::string& s : shared_) summary.assumptions.push_back(s);
    summary.warnings = depth_warnings();
    return summary;
  }

 private:
  const loaded_model& model_;
  std::vector<tensor_plan>& plans_;
  const registry& strategies_;
  const signal_options& options_;
  detail::model_index index_;
  std::unordered_map<std::string, tensor_plan*> by_name_;
  residual_structure residual_;
  std::unordered_map<std::string, const residual_branch*> last_layer_branch_;
  std::unordered_map<std::string, const onnx::NodeProto*> joins_;
  std::unordered_map<std::string, std::optional<moments>> constants_;
  std::set<std::string> visited_;
  std::vector<std::string> shared_;
  // Layers whose weight the pass reached: (layer output, plan).
  std::vector<std::pair<std::string, tensor_plan*>> layers_;
  // Solved layers per activation.
  std::map<std::pair<activation_kind, double>, int> solved_;

  tensor_plan* plan_of(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }

  // A rewritten tensor's moments are its strategy's target; a kept one's
  // are its bytes'.
  std::optional<moments> constant(const std::string& name) {
    if (auto it = constants_.find(name); it != constants_.end()) return it->second;
    std::optional<moments> m;
    const tensor_plan* p = plan_of(name);
    if (p != nullptr && p->action == plan_action::rewrite && p->requantized_from.empty()) {
      m = target_of(*p);
    } else if (p == nullptr || p->action == plan_action::keep) {
      if (const onnx::TensorProto* t = index_.constant(name, 0)) m = kept_moments(p, *t);
    }
    constants_[name] = m;
    return m;
  }

  // A kept constant's moments from its bytes: float tensors read in
  // blocks (a kept backbone may be gigabytes: never held whole), others
  // (small integer constants) decoded.
  std::optional<moments> kept_moments(const tensor_plan* p, const onnx::TensorProto& t) const {
    if (p == nullptr || !p->tensor.is_float) {
      std::optional<std::vector<double>> v = index_.values(t, std::size_t{1} << 20);
      if (!v) return std::nullopt;
      return signal::moments_of(*v);
    }
    double sum = 0.0, squares = 0.0, count = 0.0;
    try {
      scan_tensor_values(model_, t, [&](std::span<const double> block) {
        for (double v : block) {
          sum += v;
          squares += v * v;
        }
        count += static_cast<double>(block.size());
      });
    } catch (const std::exception&) {
      return std::nullopt;  // unreadable: an assumption, not an error of the plan
    }
    if (count == 0) return std::nullopt;
    return moments{sum / count, squares / count};
  }

  std::optional<moments> target_of(const tensor_plan& p) const {
    const configured_strategy s = strategies_.create(p.call.strategy, p.call.params);
    const std::optional<configured_strategy::moments> t = s.target_moments(p.tensor.info);
    if (!t) return std::nullopt;
    return moments{t->mean, t->std * t->std + t->mean * t->mean};
  }

  void layer(const signal::layer_visit& v) {
    tensor_plan* p = plan_of(v.weight);
    if (p == nullptr) return;
    if (!visited_.insert(v.weight).second) {
      shared_.push_back(
          fmt::format("{}: shared by several layers, its scale set at its first use", v.weight));
      return;
    }
    layers_.emplace_back(v.output, p);
    if (options_.policy != init_policy::signal || p->action != plan_action::rewrite ||
        p->rule_origin != "policy" || p->tensor.info.role != tensor_role::weight ||
        p->tensor.quantized)
      return;
    solve(*p, v);
  }

  void solve(tensor_plan& p, const signal::layer_visit& v) {
    signal_prediction& pred = p.predicted.emplace();
    if (v.norm_follows) {
      pred.basis = "norm follows: textbook kept";
      return;
    }
    if (!(v.input.second > 0.0) || !(v.fan_in > 0.0)) return;
    const tensor_info& info = p.tensor.info;
    const signal::scalar_function f =
        signal::activation_function(info.activation, info.activation_param);
    double q = 0.0;
    if (p.tensor.output_layer) {
      q = options_.output_rms * options_.output_rms;
      pred.basis = fmt::format("output layer: logits RMS {:g}", options_.output_rms);
    } else {
      const double read = options_.target;
      // A branch's last layer adds to the stream: the activation the walk
      // finds after the join reads the sum, not this layer alone.
      if (auto b = last_layer_branch_.find(info.name); b != last_layer_branch_.end())
        q = branch_share(*b->second, v, pred.basis);
      else
        q = operating_point(info, f, read);
      if (pred.basis.empty()) {
        const double reads = info.activation == activation_kind::linear ? q : reads_at(info, f, q);
        pred.basis =
            info.activation == activation_kind::linear
                ? fmt::format("next layer reads second moment {:g}", read)
                : fmt::format("next layer reads second moment {:.3g} ({}: pre-activation {:.3g})",
                              reads, to_string(info.activation), q);
        if (reads > read * 1.01)
          pred.basis +=
              fmt::format(", moved up from {:g} so a scale error stays below 10x over {} layers",
                          read, 2 * chain_layers_[{info.activation, info.activation_param}]);
      }
      ++solved_[{info.activation, info.activation_param}];
    }
    const double variance = q / (v.fan_in * v.input.second * v.output_scale * v.output_scale);
    const std::optional<moments> textbook = target_of(p);
    if (textbook && textbook->second > 0 &&
        std::abs(std::sqrt(variance / textbook->variance()) - 1.0) <= 0.01) {
      pred.basis += "; textbook within 1%";
      return;
    }
    p.call = strategy_call{"variance_scaling",
                           {{"scale", fmt::format("{:.9g}", variance * info.fan_in)},
                            {"mode", "fan_in"},
                            {"distribution", std::string(family_of(p.call.strategy))}}};
    p.rule = pred.basis;
    p.rule_origin = "signal";
    constants_.erase(info.name);
  }

  // The second moment a residual branch's last layer gives the stream: the
  // rest of the target when the skip falls short of it, else 1/L of the
  // skip's (L branches in the stream), so the stream stays bounded at any
  // depth and a branch whose skip meets the target starts nearly off.
  double branch_share(const residual_branch& b, const signal::layer_visit& v, std::string& basis) {
    const int count = residual_.stream_sizes.at(static_cast<std::size_t>(b.stream));
    std::optional<moments> skip;
    if (auto join = joins_.find(b.join); join != joins_.end())
      for (const std::string& in : join->second->input())
        if (std::optional<moments> m = v.known(in)) skip = m;
    const double target = options_.target;
    const double q_skip = skip ? skip->second : target;
    const double share = std::max(target - q_skip, std::min(target, q_skip) / count);
    basis = fmt::format("residual branch {} of {}: adds {:.3g} to a skip of {:.3g}", b.index + 1,
                        count, share, q_skip);
    return share;
  }

  // The pre-activation second moment q at which E[f(z)^2], z ~ N(0, q),
  // is `read`; q = 1 when no q up to 64 reaches it (tanh, sigmoid: bounded).
  double pre_activation_for(const tensor_info& info, const signal::scalar_function& f,
                            double read) const {
    if (info.activation == activation_kind::linear) return read;
    auto second = [&](double q) { return signal::post_activation_second_moment(f, q); };
    double lo = 1e-6, hi = max_q;
    if (second(hi) < read) return options_.target;
    if (second(lo) > read) return lo;
    // 40 halvings of the log-range [1e-6, 64]: q to about 1e-11 relative.
    for (int i = 0; i < 40; ++i) {
      const double mid = std::sqrt(lo * hi);
      (second(mid) < read ? lo : hi) = mid;
    }
    return std::sqrt(lo * hi);
  }

  // Where a scale error grows along the chain (elasticity above 1: GELU,
  // SiLU), the read target holds only if the error stays below 10x over
  // twice the layers that use the activation; deeper chains move to a
  // larger pre-activation scale, where the map is nearly scale-free (like
  // ReLU's), and read more than 1: the first q, by factors of 1.25 up to
  // 64, whose ten-fold error depth is long enough.
  double operating_point(const tensor_info& info, const signal::scalar_function& f, double read) {
    const std::pair<activation_kind, double> key{info.activation, info.activation_param};
    if (auto it = operating_.find(key); it != operating_.end()) return it->second;
    double q = pre_activation_for(info, f, read);
    const auto depth = static_cast<double>(chain_layers_[key]);
    // A ten-fold error over 2 x depth layers: elasticity below 10^(1/(2 depth)).
    const double allowed = std::pow(10.0, 1.0 / std::max(2.0 * depth, 1.0));
    double e = signal::elasticity(f, q);
    while (e > allowed && q * 1.25 <= max_q) {
      q *= 1.25;
      e = signal::elasticity(f, q);
    }
    elasticity_[key] = e;
    operating_[key] = q;
    return q;
  }
  // E[f(z)^2] at the operating point, once per activation.
  double reads_at(const tensor_info& info, const signal::scalar_function& f, double q) {
    const std::pair<activation_kind, double> key{info.activation, info.activation_param};
    auto it = reads_.find(key);
    if (it == reads_.end())
      it = reads_.emplace(key, signal::post_activation_second_moment(f, q)).first;
    return it->second;
  }
  std::map<std::pair<activation_kind, double>, double> reads_;
  static constexpr double max_q = 64.0;
  std::map<std::pair<activation_kind, double>, double> operating_;
  std::map<std::pair<activation_kind, double>, double> elasticity_;  // at operating_
  std::map<std::pair<activation_kind, double>, int> chain_layers_;

  // The moments of the activation the analysis names applied to `z`
  // (decomposed activations have no output value of their own); layers of
  // a deep chain share them.
  moments after(const tensor_info& info, const moments& z) {
    const std::string key = fmt::format("{}|{:a}|{:.12g}|{:.12g}", to_string(info.activation),
                                        info.activation_param, z.mean, z.second);
    if (auto it = after_.find(key); it != after_.end()) return it->second;
    const moments y = signal::moments_after(
        signal::activation_function(info.activation, info.activation_param), z);
    after_.emplace(key, y);
    return y;
  }
  std::unordered_map<std::string, moments> after_;

  void predict(const signal::moment_pass_result& r) {
    auto rms_of = [&](const std::string& v) -> std::optional<double> {
      auto it = r.values.find(v);
      if (it == r.values.end()) return std::nullopt;
      return std::sqrt(std::max(it->second.m.second, 0.0));
    };
    for (auto& [output, p] : layers_) {
      std::optional<double> out = rms_of(output);
      if (!out) continue;
      signal_prediction& pred = p->predicted ? *p->predicted : p->predicted.emplace();
      pred.output_rms = *out;
      const tensor_info& info = p->tensor.info;
      const std::string& act_in =
          p->tensor.activation_input.empty() ? output : p->tensor.activation_input;
      std::optional<double> read =
          p->tensor.activation_output.empty() ? std::nullopt : rms_of(p->tensor.activation_output);
      if (!read) {
        auto it = r.values.find(act_in);
        if (it != r.values.end()) read = std::sqrt(std::max(after(info, it->second.m).second, 0.0));
      }
      pred.read_rms = read.value_or(*out);
      if (pred.basis.empty())
        pred.basis = options_.policy == init_policy::signal ? "decided by a rule: not solved"
                                                            : "textbook policy";
    }
  }

  std::vector<std::string> depth_warnings() const {
    std::vector<std::string> out;
    for (const auto& [key, count] : solved_) {
      auto el = elasticity_.find(key);
      if (el == elasticity_.end() || !(el->second > 1.0)) continue;
      // As tenfold_error_depth: ln 10 / ln elasticity.
      const double depth = std::log(10.0) / std::log(el->second);
      if (count > depth)
        out.push_back(fmt::format(
            "{}: an error in the signal's scale grows 10x every {:.0f} layers, and {} layers "
            "have it: data-driven calibration (--calibrate) can correct what the formulas miss",
            to_string(key.first), depth, count));
    }
    return out;
  }
};

}  // namespace

signal_summary apply_signal_policy(const loaded_model& model, std::vector<tensor_plan>& plans,
                                   const registry& strategies, const signal_options& options) {
  return solver(model, plans, strategies, options).run();
}

}  // namespace onnx_reinit
