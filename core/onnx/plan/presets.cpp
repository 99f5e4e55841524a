// The presets: each is a reference, a formula and the rules that say it.
// Checks against the model refuse a preset that would act on nothing.
#include "onnx_reinit/presets.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>
#include <utility>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/residual.h"

namespace onnx_reinit {
namespace {

using param_map = std::map<std::string, std::string>;

struct preset_def {
  preset_info info;
  param_map defaults;  // parameter -> default value
  // The rules, given the parameters.
  std::vector<std::string> (*rules)(const param_map&);
  // What the first rule must match in the model, said when it matches nothing.
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
  if (std::strtod(p.at("std").c_str(), nullptr) == 0.0) return {"layer:output&role:weight=zeros"};
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

const std::vector<preset_def>& definitions() {
  static const std::vector<preset_def> defs = {
      {{"zero-init-residual",
        "Goyal et al. 2017, Accurate, Large Minibatch SGD (arXiv:1706.02677); torchvision's "
        "zero_init_residual",
        "gamma = 0 for the last normalization scale of each residual branch (the norm between "
        "its last weighted layer and the join), so every block starts as the identity",
        ""},
       {},
       zero_init_residual,
       "a residual branch ending in a normalization (an eval export folds BatchNorm into the "
       "Conv, leaving none)"},
      {{"fixup", "Zhang, Dauphin & Ma, Fixup Initialization, ICLR 2019 (arXiv:1901.09321)",
        "for residual networks without normalization: W = 0 for the last weighted layer of "
        "each branch and for the output layer; the other weighted layers of a branch "
        "std = gain/sqrt(fan_in) * L^(-1/(2m-2)) (He init scaled), L branches in the stream, "
        "m weighted layers in the branch; branch multipliers 1",
        ""},
       {},
       fixup,
       "a residual branch"},
      {{"gpt2",
        "Radford et al. 2019, Language Models are Unsupervised Multitask Learners; as in "
        "Megatron-LM and nanoGPT",
        "every weight and embedding N(0, 0.02^2); the last projection of each residual branch "
        "N(0, (0.02/sqrt(2 n_layer))^2), written 0.02/sqrt(L) with L = 2 n_layer branches in "
        "the stream; norm scales 1, biases 0",
        ""},
       {},
       gpt2,
       "a residual branch"},
      {{"skipinit",
        "De & Smith 2020, Batch Normalization Biases Residual Blocks Towards the "
        "Identity Function in Deep Networks (arXiv:2002.10444)",
        "alpha = 0 for the learnable multiplier at the end of each residual branch", ""},
       {},
       zero_multiplier,
       "a residual branch ending in a multiplier (a Mul by a learnable constant)"},
      {{"rezero", "Bachlechner et al. 2020, ReZero is All You Need (arXiv:2003.04887)",
        "alpha = 0 for the learnable multiplier at the end of each residual branch", ""},
       {},
       zero_multiplier,
       "a residual branch ending in a multiplier (a Mul by a learnable constant)"},
      {{"layerscale",
        "Touvron et al. 2021, Going deeper with Image Transformers (CaiT, arXiv:2103.17239)",
        "diag(lambda) = value for the per-channel multiplier at the end of each residual branch",
        "value=1e-5: the multiplier's initial value"},
       {{"value", "1e-5"}},
       layerscale,
       "a residual branch ending in a multiplier (a Mul by a learnable constant)"},
      {{"small-head", "torchvision's VisionTransformer (zero head) and Fixup (zero classifier)",
        "W = 0 (std=0) or N(0, std^2) for the output layer (the weighted layer before a "
        "Softmax, a loss or a graph output), so the loss at init is close to ln C for C classes",
        "std=0: the output layer's standard deviation, 0 for zeros"},
       {{"std", "0"}},
       small_head,
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
       deepnet,
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
       t_fixup,
       "attention blocks (Softmax(Q K^T) V with weighted Q, K, V projections)"},
  };
  return defs;
}

const preset_def& find_preset(const std::string& name, const std::string& origin) {
  const auto& defs = definitions();
  auto it = std::find_if(defs.begin(), defs.end(),
                         [&](const preset_def& d) { return d.info.name == name; });
  if (it != defs.end()) return *it;
  std::string known;
  for (const preset_def& d : defs) known += (known.empty() ? "" : ", ") + d.info.name;
  throw rule_error(fmt::format("unknown preset '{}'; known: {}", name, known), origin);
}

std::string trimmed(std::string s) {
  auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), space));
  s.erase(std::find_if_not(s.rbegin(), s.rend(), space).base(), s.end());
  return s;
}

// "NAME" or "NAME(k=v,...)": the definition and its parameters, defaults filled.
std::pair<const preset_def*, param_map> parse_spec(const std::string& spec) {
  const std::size_t open = spec.find('(');
  const std::string name = trimmed(spec.substr(0, open));
  const std::string origin = fmt::format("--preset {}", name);
  const preset_def& def = find_preset(name, origin);
  param_map params = def.defaults;
  if (open == std::string::npos) return {&def, params};
  if (spec.back() != ')') throw rule_error("missing ')' after the preset's parameters", origin);
  std::string inside = spec.substr(open + 1, spec.size() - open - 2);
  for (std::size_t start = 0; start <= inside.size();) {
    std::size_t comma = std::min(inside.find(',', start), inside.size());
    const std::string item = trimmed(inside.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    const std::string key = trimmed(item.substr(0, eq));
    if (eq == std::string::npos || params.count(key) == 0)
      throw rule_error(
          fmt::format("preset {} takes {}, not '{}'", name,
                      def.info.params.empty() ? "no parameters" : def.info.params, item),
          origin);
    const std::string value = trimmed(item.substr(eq + 1));
    if (key == "architecture") {
      if (value != "auto" && value != "encoder" && value != "decoder")
        throw rule_error(
            fmt::format("architecture must be auto, encoder or decoder, not '{}'", value), origin);
      params[key] = value;
      continue;
    }
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !std::isfinite(v) || v < 0)
      throw rule_error(fmt::format("{} must be a finite number >= 0, not '{}'", key, value),
                       origin);
    params[key] = value;
  }
  return {&def, params};
}

// deepnet, t-fixup: the graph must show attention blocks with separate
// q, k, v projections, and tell its architecture unless the parameter does.
void check_transformer(const std::string& name, const param_map& params,
                       const std::vector<tensor_analysis>& tensors, const std::string& origin) {
  using kind = transformer_place::kind;
  const auto with_blocks = std::find_if(tensors.begin(), tensors.end(), [](const auto& t) {
    return t.transformer.model != kind::none;
  });
  if (with_blocks == tensors.end())
    throw rule_error(fmt::format("preset {} needs attention blocks (Softmax(Q K^T) V with "
                                 "weighted Q, K, V projections); the model has none",
                                 name),
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
  const std::string origin = fmt::format("--preset {}", def->info.name);
  if (params.count("architecture") != 0)
    return check_transformer(def->info.name, params, tensors, origin);
  const rule first = parse_rule(def->rules(params).front(), origin);
  if (std::none_of(tensors.begin(), tensors.end(),
                   [&](const tensor_analysis& t) { return first.matches(t); }))
    throw rule_error(
        fmt::format("preset {} needs {}; the model has none", def->info.name, def->needs), origin);
  if (def->info.name != "fixup") return;
  auto norm = std::find_if(tensors.begin(), tensors.end(), [](const tensor_analysis& t) {
    return t.info.role == tensor_role::norm_scale;
  });
  if (norm != tensors.end())
    throw rule_error(fmt::format("fixup is for residual networks without normalization; '{}' is "
                                 "a norm scale (use zero-init-residual instead)",
                                 norm->info.name),
                     origin);
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
