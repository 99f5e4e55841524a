// The terminal table, the JSON report and the policy listing.
#include "onnx_reinit/report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "json_number.h"
#include "onnx_reinit/format.h"
#include "onnx_reinit/internal/text.h"
#include "onnx_reinit/version.h"

namespace onnx_reinit {
namespace {

using json = nlohmann::ordered_json;

using format_detail::not_known;

json params_json(const std::vector<resolved_param>& params) {
  json out = json::object();
  for (const resolved_param& p : params) {
    switch (p.type) {
      case param_type::number:
        out[p.name] = p.number;
        break;
      case param_type::integer:
        out[p.name] = static_cast<std::int64_t>(p.number);
        break;
      case param_type::boolean:
        out[p.name] = p.number != 0.0;
        break;
      case param_type::choice:
        out[p.name] = p.choice;
        break;
    }
  }
  return out;
}

json tensor_json(const tensor_plan& plan, const tensor_outcome& outcome) {
  const tensor_analysis& t = plan.tensor;
  const tensor_info& info = t.info;
  const bool rewrite = plan.action == plan_action::rewrite;
  json j;
  j["name"] = info.name;
  j["dtype"] = t.is_float ? std::string(to_string(info.dtype)) : t.data_type;
  j["shape"] = info.shape;
  j["consumer_op"] = t.consumer_op;
  j["role"] = std::string(to_string(info.role));
  // A quantized weight has its float layer's fans.
  const bool fans = t.is_float || t.quantized;
  j["fan_in"] = number_or_null(fans ? info.fan_in : not_known);
  j["fan_out"] = number_or_null(fans ? info.fan_out : not_known);
  j["activation"] = std::string(to_string(info.activation));
  j["activation_param"] = info.activation_param;
  j["gain"] = info.gain;
  j["strategy"] = rewrite ? json(plan.call.strategy) : json(nullptr);
  j["params"] = rewrite ? params_json(outcome.params) : json::object();
  const bool transfer = plan.action == plan_action::transfer;
  // From what was written (outcomes_of), so it cannot disagree with the
  // bytes; "planned" under --plan, where nothing is written.
  j["action"] = outcome.transferred   ? "transferred"
                : outcome.rewritten   ? "rewritten"
                : rewrite || transfer ? "planned"
                                      : "kept";
  j["reason"] = rewrite ? fmt::format("rule '{}' ({})", plan.rule, plan.rule_origin) : plan.reason;
  j["target_std"] = number_or_null(rewrite ? outcome.target_std : not_known);
  const bool written = outcome.rewritten || outcome.transferred;
  j["achieved_mean"] = number_or_null(written ? outcome.achieved_mean : not_known);
  j["achieved_std"] = number_or_null(written ? outcome.achieved_std : not_known);
  // Additions beyond docs/DESIGN.md section 8.
  j["target_mean"] = number_or_null(rewrite ? outcome.target_mean : not_known);
  j["graph"] = t.ref.graph_path;
  j["origin"] = t.ref.origin == tensor_origin::initializer ? "initializer" : "constant_node";
  j["rule"] = plan.rule;
  // One field per host parameter (host_params), null where the plan has none.
  for (const host_param& hp : host_params()) {
    const std::optional<double> v = plan.host_value(hp.schema.name);
    j[hp.schema.name] = v ? json(*v) : json(nullptr);
  }
  j["notes"] = t.notes;
  j["residual"] = t.residual ? json(fmt::format("{}", *t.residual)) : json(nullptr);
  j["output_layer"] = t.output_layer;
  j["source"] = transfer ? json(plan.transfer_source) : json(nullptr);
  const std::optional<signal_prediction>& predicted = plan.predicted;
  j["predicted_output_rms"] = predicted ? number_or_null(predicted->output_rms) : json(nullptr);
  j["predicted_read_rms"] = predicted ? number_or_null(predicted->read_rms) : json(nullptr);
  j["signal_basis"] = predicted ? json(predicted->basis) : json(nullptr);
  return j;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

std::string fan_text(double v) {
  return fmt::format("{:.6g}", v);
}

json transfer_json(const transfer_summary& s) {
  json j;
  j["pretrained"] = s.pretrained;
  j["transferred"] = s.transferred;
  j["mismatches"] = json::array();
  for (const transfer_mismatch& m : s.mismatches)
    j["mismatches"].push_back({{"name", m.name},
                               {"source", m.source},
                               {"dtype", m.dtype},
                               {"source_dtype", m.source_dtype},
                               {"shape", m.shape},
                               {"source_shape", m.source_shape}});
  j["kept"] = json::array();
  for (const transfer_kept& k : s.kept)
    j["kept"].push_back({{"name", k.name}, {"reason", k.reason}});
  j["unused"] = s.unused;
  return j;
}

// "attention value, decoder", "ffn, encoder": the tensor's layer in an attention
// block or feed-forward branch, and its side when the graph tells it.
std::string attention_text(const transformer_place& t) {
  std::vector<std::string> parts;
  for (const auto& [on, word] :
       {std::pair{t.query, "query"}, std::pair{t.key, "key"}, std::pair{t.value, "value"},
        std::pair{t.output, "output"}, std::pair{t.ffn, "ffn"}})
    if (on) parts.emplace_back(word);
  const char* side = t.side == transformer_place::stack::encoder   ? ", encoder"
                     : t.side == transformer_place::stack::decoder ? ", decoder"
                                                                   : "";
  return fmt::format("{}{}{}", t.ffn ? "" : "attention ", fmt::join(parts, "+"), side);
}

// `text` as '#' comment lines of at most 80 columns, broken at spaces.
// (Words gathered per line and joined by fmt: GCC 12 misreads string
// appends in this loop as overlapping copies, -Wrestrict.)
std::string comment_lines(const std::string& text) {
  constexpr std::size_t width = 80;
  std::vector<std::vector<std::string>> lines(1);
  std::size_t used = 1;  // the '#'
  for (std::string& word : detail::split(text, ' ')) {
    if (!lines.back().empty() && used + 1 + word.size() > width) {
      lines.emplace_back();
      used = 1;
    }
    used += 1 + word.size();
    lines.back().push_back(std::move(word));
  }
  std::string out;
  for (const auto& words : lines) out += fmt::format("# {}\n", fmt::join(words, " "));
  return out;
}

}  // namespace

std::string_view to_string(fan_convention c) {
  return c == fan_convention::torch ? "torch" : "semantic";
}

std::string report_json(const report_header& header, const std::vector<tensor_plan>& plans,
                        const std::vector<tensor_outcome>& outcomes) {
  json root;
  root["tool_version"] = tool_version;
  root["model"] = header.model;
  root["seed"] = header.seed;
  root["fan_convention"] = std::string(to_string(header.convention));
  root["policy"] = std::string(to_string(header.signal.policy));
  root["signal"] = {{"assumptions", header.signal.assumptions},
                    {"warnings", header.signal.warnings}};
  json tensors = json::array();
  for (std::size_t i = 0; i < plans.size(); ++i)
    tensors.push_back(tensor_json(plans[i], outcomes[i]));
  root["tensors"] = std::move(tensors);
  if (header.transfer) root["transfer"] = transfer_json(*header.transfer);
  return root.dump(2) + "\n";
}
std::string plan_table(const std::vector<tensor_plan>& plans,
                       const std::vector<tensor_outcome>& outcomes, bool verbose) {
  std::string out =
      fmt::format("{:<32} {:<14} {:<18} {:<16} {:>9} {:>9} {:<11} {}\n", "tensor", "shape", "op",
                  "role", "fan_in", "fan_out", "activation", "decision");
  for (std::size_t i = 0; i < plans.size(); ++i) {
    const tensor_plan& p = plans[i];
    const tensor_info& info = p.tensor.info;
    const bool rewrite = p.action == plan_action::rewrite;
    std::string decision = rewrite ? outcomes[i].strategy : "keep: " + p.reason;
    if (p.action == plan_action::transfer) decision = "transferred from " + p.transfer_source;
    if (rewrite && std::isfinite(outcomes[i].target_std) && outcomes[i].target_std > 0)
      decision += fmt::format("  std={:.4g}", outcomes[i].target_std);
    if (rewrite && outcomes[i].rewritten)
      decision += fmt::format("  got={:.4g}", outcomes[i].achieved_std);
    for (const host_adjustment& a : p.adjustments)
      decision += fmt::format("  {}={}", a.name, a.value);
    if (p.tensor.residual) decision += fmt::format("  [{}]", *p.tensor.residual);
    if (p.tensor.output_layer) decision += "  [output layer]";
    if (p.predicted && p.predicted->output_rms > 0)
      decision += fmt::format("  predicted rms: out={:.3g} read={:.3g}", p.predicted->output_rms,
                              p.predicted->read_rms);
    if (p.tensor.transformer.in_block())
      decision += fmt::format("  [{}]", attention_text(p.tensor.transformer));
    out += fmt::format("{:<32} {:<14} {:<18} {:<16} {:>9} {:>9} {:<11} {}\n", info.name,
                       shape_text(info.shape), p.tensor.consumer_op, to_string(info.role),
                       p.tensor.is_float || p.tensor.quantized ? fan_text(info.fan_in) : "-",
                       p.tensor.is_float || p.tensor.quantized ? fan_text(info.fan_out) : "-",
                       to_string(info.activation), decision);
    if (verbose) {
      if (rewrite) out += fmt::format("    rule: {} ({})\n", p.rule, p.rule_origin);
      if (p.predicted && !p.predicted->basis.empty())
        out += fmt::format("    signal: {}\n", p.predicted->basis);
      for (const std::string& note : p.tensor.notes) out += fmt::format("    note: {}\n", note);
    }
  }
  return out;
}

std::string policy_text() {
  // What `auto` and the host parameters mean, from their tables.
  std::vector<std::string> notes;
  for (const auto_param& p : auto_params()) notes.push_back(p.note);
  for (const host_param& p : host_params()) notes.push_back(p.note);
  notes.emplace_back("keep leaves the bytes untouched.");
  std::string out =
      "# The default policy: tried after user rules, in order; the first match decides.\n"
      "# MATCH terms: name glob, op:TYPE, role:ROLE, act:ACTIVATION, dtype:TYPE,\n"
      "# residual:any|last|inner|norm|multiplier|skip|none, layer:output,\n"
      "# attention:query|key|value|output|ffn|any|encoder|decoder,\n"
      "# transformer:decoder|encoder-decoder|unknown|none, joined by '&'.\n";
  out += comment_lines(fmt::format("{}", fmt::join(notes, "; ")));
  out +=
      "# Non-float tensors are always kept (quantized weights and biases unless\n"
      "# --quantized requantize), and a rule naming one is an error; tensors of unknown\n"
      "# role are rewritten only by user rules that name them (a name glob other than '*').\n";
  for (const rule& r : default_policy()) out += r.text + "\n";
  return out;
}

}  // namespace onnx_reinit
