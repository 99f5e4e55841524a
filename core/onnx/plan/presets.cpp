// The presets: each is a reference, a formula and the rules that say it.
// Checks against the model refuse a preset that would act on nothing.
#include "onnx_reinit/presets.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/internal/text.h"
#include "onnx_reinit/residual.h"

namespace onnx_reinit {
namespace {

using param_map = std::map<std::string, std::string>;
using tensor_list = std::vector<tensor_analysis>;

struct preset_def;

// Throws rule_error (origin "--preset NAME") when the model gives the
// preset nothing to act on, or has what the preset's paper excludes.
using preset_check = void (*)(const preset_def& def, const param_map& params,
                              const tensor_list& tensors, const std::string& origin);

struct preset_def {
  preset_info info;
  // Parameter -> default value. A value given must be one of `words` when
  // the preset has words for it, otherwise a finite number >= 0.
  param_map defaults;
  std::map<std::string, std::vector<std::string>> words;
  // The rules, given the parameters.
  std::vector<std::string> (*rules)(const param_map&);
  preset_check check;
  // What the preset acts on, said when the model has none.
  const char* needs;
};

std::vector<std::string> zero_init_residual(const param_map&) {
  return {"residual:norm&role:norm_scale=zeros"};
}

std::vector<std::string> fixup(const param_map&) {
  return {"residual:last&role:weight=zeros", "layer:output&role:weight=zeros",
          "residual:inner&role:weight=normal(mean=0,std=gain/sqrt(fan_in)*L^(-1/(2*m-2)))",
          "residual:multiplier=ones"};
}

std::vector<std::string> gpt2(const param_map&) {
  return {"residual:last&role:weight=normal(mean=0,std=0.02/sqrt(L))",
          "role:weight=normal(mean=0,std=0.02)", "role:embedding=normal(mean=0,std=0.02)",
          "role:norm_scale=ones", "role:bias|norm_bias=zeros"};
}

std::vector<std::string> zero_multiplier(const param_map&) {
  return {"residual:multiplier=zeros"};
}

std::vector<std::string> layerscale(const param_map& p) {
  return {fmt::format("residual:multiplier=constant(value={})", p.at("value"))};
}

std::vector<std::string> small_head(const param_map& p) {
  if (detail::parse_number<double>(p.at("std")) == 0.0) return {"layer:output&role:weight=zeros"};
  return {fmt::format("layer:output&role:weight=normal(mean=0,std={})", p.at("std"))};
}

// DeepNet and T-Fixup: `architecture` auto guards each formula with what
// the graph tells (transformer:...); encoder or decoder states it for a
// model whose graph cannot tell, all of its blocks on that side.
std::vector<std::string> deepnet(const param_map& p) {
  auto scaled = [](const char* beta) {
    return fmt::format("attention:value|output|ffn&role:weight=xavier_normal(gain={})", beta);
  };
  std::vector<std::string> rules = {"attention:query|key&role:weight=xavier_normal(gain=1)"};
  if (p.at("architecture") != "auto") {
    rules.push_back(scaled("(8*layers)^(-1/4)"));
    return rules;
  }
  rules.push_back(fmt::format("transformer:decoder&{}", scaled("(8*M)^(-1/4)")));
  rules.push_back(fmt::format("transformer:encoder-decoder&attention:encoder&{}",
                              scaled("0.87*(N^4*M)^(-1/16)")));
  rules.push_back(
      fmt::format("transformer:encoder-decoder&attention:decoder&{}", scaled("(12*M)^(-1/4)")));
  return rules;
}

std::vector<std::string> t_fixup(const param_map& p) {
  auto scaled = [](const char* factor) {
    return fmt::format("attention:value|output|ffn&role:weight=xavier_uniform(gain={})", factor);
  };
  auto embedding = [](const char* factor) {
    return fmt::format("role:embedding=normal(mean=0,std=d^(-1/2)*{})", factor);
  };
  std::vector<std::string> rules = {"attention:query|key&role:weight=xavier_uniform(gain=1)"};
  const std::string& arch = p.at("architecture");
  if (arch != "auto") {
    const char* factor = arch == "encoder" ? "0.67*layers^(-1/4)" : "(9*layers)^(-1/4)";
    rules.push_back(scaled(factor));
    rules.push_back(embedding(factor));
    return rules;
  }
  rules.push_back(fmt::format("transformer:decoder&{}", scaled("(9*M)^(-1/4)")));
  rules.push_back(fmt::format("transformer:decoder&{}", embedding("(9*M)^(-1/4)")));
  rules.push_back(
      fmt::format("transformer:encoder-decoder&attention:encoder&{}", scaled("0.67*N^(-1/4)")));
  rules.push_back(
      fmt::format("transformer:encoder-decoder&attention:decoder&{}", scaled("(9*M)^(-1/4)")));
  rules.push_back(fmt::format("transformer:encoder-decoder&{}", embedding("(9*M)^(-1/4)")));
  return rules;
}

// The checks: the first rule must match a tensor (most presets); fixup
// also refuses normalization; deepnet and t-fixup need attention blocks
// whose architecture is known.

void first_rule_matches(const preset_def& def, const param_map& params, const tensor_list& tensors,
                        const std::string& origin) {
  const rule first = parse_rule(def.rules(params).front(), origin);
  if (std::none_of(tensors.begin(), tensors.end(),
                   [&](const tensor_analysis& t) { return first.matches(t); }))
    throw rule_error(
        fmt::format("preset {} needs {}; the model has none", def.info.name, def.needs), origin);
}

void without_normalization(const preset_def& def, const param_map& params,
                           const tensor_list& tensors, const std::string& origin) {
  first_rule_matches(def, params, tensors, origin);
  auto norm = std::find_if(tensors.begin(), tensors.end(), [](const tensor_analysis& t) {
    return t.info.role == tensor_role::norm_scale;
  });
  if (norm != tensors.end())
    throw rule_error(fmt::format("{} is for residual networks without normalization; '{}' is "
                                 "a norm scale (use zero-init-residual instead)",
                                 def.info.name, norm->info.name),
                     origin);
}

// deepnet, t-fixup: the graph must show attention blocks with separate
// q, k, v projections, and tell its architecture unless the parameter does.
void transformer_blocks(const preset_def& def, const param_map& params, const tensor_list& tensors,
                        const std::string& origin) {
  using kind = transformer_place::kind;
  const std::string& name = def.info.name;
  const auto with_blocks = std::find_if(tensors.begin(), tensors.end(), [](const auto& t) {
    return t.transformer.model != kind::none;
  });
  if (with_blocks == tensors.end())
    throw rule_error(fmt::format("preset {} needs {}; the model has none", name, def.needs),
                     origin);
  const transformer_place& model = with_blocks->transformer;
  for (const tensor_analysis& t : tensors)
    if (t.info.role == tensor_role::weight && t.transformer.value &&
        (t.transformer.query || t.transformer.key))
      throw rule_error(
          fmt::format("'{}' is a fused q/k/v projection: {} scales only its value rows, which "
                      "a rule cannot say; export separate q, k, v projections, or decide it "
                      "with --rule",
                      t.info.name, name),
          origin);
  const std::string& arch = params.at("architecture");
  if (arch == "auto" && model.model == kind::unknown)
    throw rule_error(
        fmt::format("the graph does not tell an encoder from a decoder: its {} self-attention "
                    "blocks show no causal mask and no cross-attention; say --preset "
                    "'{}(architecture=encoder)' or '{}(architecture=decoder)'",
                    model.layers, name, name),
        origin);
  if (arch != "auto" && model.model == kind::encoder_decoder)
    throw rule_error(fmt::format("the graph shows an encoder-decoder (cross-attention); "
                                 "architecture={} is for one-stack models: use --preset {}",
                                 arch, name),
                     origin);
}

// The architecture parameter of deepnet and t-fixup.
const std::map<std::string, std::vector<std::string>> architecture_words = {
    {"architecture", {"auto", "encoder", "decoder"}}};

const std::vector<preset_def>& definitions() {
  static const std::vector<preset_def> defs = {
      {{"zero-init-residual",
        "Goyal et al. 2017, Accurate, Large Minibatch SGD (arXiv:1706.02677); torchvision's "
        "zero_init_residual",
        "gamma = 0 for the last normalization scale of each residual branch (the norm between "
        "its last weighted layer and the join), so every block starts as the identity",
        ""},
       {},
       {},
       zero_init_residual,
       first_rule_matches,
       "a residual branch ending in a normalization (an eval export folds BatchNorm into the "
       "Conv, leaving none)"},
      {{"fixup", "Zhang, Dauphin & Ma, Fixup Initialization, ICLR 2019 (arXiv:1901.09321)",
        "for residual networks without normalization: W = 0 for the last weighted layer of "
        "each branch and for the output layer; the other weighted layers of a branch "
        "std = gain/sqrt(fan_in) * L^(-1/(2m-2)) (He init scaled), L branches in the stream, "
        "m weighted layers in the branch; branch multipliers 1",
        ""},
       {},
       {},
       fixup,
       without_normalization,
       "a residual branch"},
      {{"gpt2",
        "Radford et al. 2019, Language Models are Unsupervised Multitask Learners; as in "
        "Megatron-LM and nanoGPT",
        "every weight and embedding N(0, 0.02^2); the last projection of each residual branch "
        "N(0, (0.02/sqrt(2 n_layer))^2), written 0.02/sqrt(L) with L = 2 n_layer branches in "
        "the stream; norm scales 1, biases 0",
        ""},
       {},
       {},
       gpt2,
       first_rule_matches,
       "a residual branch"},
      {{"skipinit",
        "De & Smith 2020, Batch Normalization Biases Residual Blocks Towards the "
        "Identity Function in Deep Networks (arXiv:2002.10444)",
        "alpha = 0 for the learnable multiplier at the end of each residual branch", ""},
       {},
       {},
       zero_multiplier,
       first_rule_matches,
       "a residual branch ending in a multiplier (a Mul by a learnable constant)"},
      {{"rezero", "Bachlechner et al. 2020, ReZero is All You Need (arXiv:2003.04887)",
        "alpha = 0 for the learnable multiplier at the end of each residual branch", ""},
       {},
       {},
       zero_multiplier,
       first_rule_matches,
       "a residual branch ending in a multiplier (a Mul by a learnable constant)"},
      {{"layerscale",
        "Touvron et al. 2021, Going deeper with Image Transformers (CaiT, arXiv:2103.17239)",
        "diag(lambda) = value for the per-channel multiplier at the end of each residual branch",
        "value=1e-5: the multiplier's initial value"},
       {{"value", "1e-5"}},
       {},
       layerscale,
       first_rule_matches,
       "a residual branch ending in a multiplier (a Mul by a learnable constant)"},
      {{"small-head", "torchvision's VisionTransformer (zero head) and Fixup (zero classifier)",
        "W = 0 (std=0) or N(0, std^2) for the output layer (the weighted layer before a "
        "Softmax, a loss or a graph output), so the loss at init is close to ln C for C classes",
        "std=0: the output layer's standard deviation, 0 for zeros"},
       {{"std", "0"}},
       {},
       small_head,
       first_rule_matches,
       "an output layer (a weighted layer before a Softmax, a loss or a graph output)"},
      {{"deepnet",
        "Wang et al. 2022, DeepNet: Scaling Transformers to 1,000 Layers (arXiv:2203.00555); "
        "as torchscale's deepnorm init",
        "Xavier normal with gain beta for the value, output and feed-forward projections, "
        "gain 1 for query and key: decoder-only beta = (8M)^(-1/4); encoder-decoder: encoder "
        "beta = 0.87 (N^4 M)^(-1/16), decoder beta = (12M)^(-1/4); encoder-only (stated with "
        "architecture=encoder) beta = (8N)^(-1/4). N, M: encoder and decoder layers (their "
        "self-attention blocks). DeepNorm's alpha multiplies the skip, a constant of the "
        "architecture, not a weight: not set",
        "architecture=auto: auto (the graph tells: causal mask = decoder, cross-attention = "
        "encoder-decoder), encoder or decoder"},
       {{"architecture", "auto"}},
       architecture_words,
       deepnet,
       transformer_blocks,
       "attention blocks (Softmax(Q K^T) V with weighted Q, K, V projections)"},
      {{"t-fixup",
        "Huang et al. 2020, Improving Transformer Optimization Through Better Initialization "
        "(ICML 2020), as in layer6ai-labs/T-Fixup",
        "Xavier uniform for every attention and feed-forward projection, then the value, "
        "output and feed-forward ones scaled: encoder 0.67 N^(-1/4), decoder (9M)^(-1/4); "
        "input embeddings N(0, d^(-1)) (std d^(-1/2), d the width) scaled by (9M)^(-1/4) "
        "(0.67 N^(-1/4) for an encoder-only model). For Transformers without LayerNorm (the "
        "paper removes it)",
        "architecture=auto: auto (the graph tells: causal mask = decoder, cross-attention = "
        "encoder-decoder), encoder or decoder"},
       {{"architecture", "auto"}},
       architecture_words,
       t_fixup,
       transformer_blocks,
       "attention blocks (Softmax(Q K^T) V with weighted Q, K, V projections)"},
  };
  return defs;
}

const preset_def& find_preset(const std::string& name, const std::string& origin) {
  const auto& defs = definitions();
  auto it = std::find_if(defs.begin(), defs.end(),
                         [&](const preset_def& d) { return d.info.name == name; });
  if (it != defs.end()) return *it;
  std::vector<std::string> known;
  for (const preset_def& d : defs) known.push_back(d.info.name);
  throw rule_error(fmt::format("unknown preset '{}'; known: {}", name, fmt::join(known, ", ")),
                   origin);
}

// "auto, encoder or decoder".
std::string alternatives_text(const std::vector<std::string>& words) {
  if (words.size() < 2) return fmt::format("{}", fmt::join(words, ""));
  return fmt::format("{} or {}", fmt::join(words.begin(), words.end() - 1, ", "), words.back());
}

// Checks `value` of parameter `key` against the preset's words for it, or
// as a finite number >= 0.
void check_value(const preset_def& def, const std::string& key, const std::string& value,
                 const std::string& origin) {
  if (auto it = def.words.find(key); it != def.words.end()) {
    if (std::find(it->second.begin(), it->second.end(), value) == it->second.end())
      throw rule_error(
          fmt::format("{} must be {}, not '{}'", key, alternatives_text(it->second), value),
          origin);
    return;
  }
  const std::optional<double> v = detail::parse_number<double>(value);
  if (!v || !std::isfinite(*v) || *v < 0)
    throw rule_error(fmt::format("{} must be a finite number >= 0, not '{}'", key, value), origin);
}

// "NAME" or "NAME(k=v,...)": the definition and its parameters, defaults filled.
std::pair<const preset_def*, param_map> parse_spec(const std::string& spec) {
  const std::size_t open = spec.find('(');
  const std::string name(detail::trim(std::string_view(spec).substr(0, open)));
  const std::string origin = fmt::format("--preset {}", name);
  const preset_def& def = find_preset(name, origin);
  param_map params = def.defaults;
  if (open == std::string::npos) return {&def, params};
  if (spec.back() != ')') throw rule_error("missing ')' after the preset's parameters", origin);
  const std::string_view inside = std::string_view(spec).substr(open + 1, spec.size() - open - 2);
  for (const std::string& part : detail::split(inside, ',')) {
    const std::string_view item = detail::trim(part);
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    const std::string key(detail::trim(item.substr(0, eq)));
    if (eq == std::string::npos || params.count(key) == 0)
      throw rule_error(
          fmt::format("preset {} takes {}, not '{}'", name,
                      def.info.params.empty() ? "no parameters" : def.info.params, item),
          origin);
    const std::string value(detail::trim(item.substr(eq + 1)));
    check_value(def, key, value, origin);
    params[key] = value;
  }
  return {&def, params};
}

}  // namespace

const std::vector<preset_info>& preset_list() {
  static const std::vector<preset_info> list = [] {
    std::vector<preset_info> out;
    for (const preset_def& d : definitions()) out.push_back(d.info);
    return out;
  }();
  return list;
}

std::vector<rule> preset_rules(const std::string& spec) {
  const auto [def, params] = parse_spec(spec);
  std::vector<rule> rules;
  for (const std::string& text : def->rules(params))
    rules.push_back(parse_rule(text, fmt::format("--preset {}", def->info.name)));
  return rules;
}

void check_preset(const std::string& spec, const std::vector<tensor_analysis>& tensors) {
  const auto [def, params] = parse_spec(spec);
  def->check(*def, params, tensors, fmt::format("--preset {}", def->info.name));
}

std::string presets_text() {
  std::string out;
  for (const preset_def& d : definitions()) {
    out += fmt::format("{}\n  reference: {}\n  formula:   {}\n", d.info.name, d.info.reference,
                       d.info.formula);
    if (!d.info.params.empty()) out += fmt::format("  parameter: {}\n", d.info.params);
    for (const std::string& r : d.rules(d.defaults)) out += fmt::format("  rule:      {}\n", r);
    out += "\n";
  }
  return out;
}

}  // namespace onnx_reinit
