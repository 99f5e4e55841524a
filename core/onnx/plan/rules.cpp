// Parsing and matching of user rules, and the default policy as rules.
#include "onnx_reinit/rules.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <limits>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/text.h"

namespace onnx_reinit {
namespace {

using detail::trim;

// The pieces of `s` between `sep`s, each without surrounding white space.
std::vector<std::string> trimmed_split(std::string_view s, char sep) {
  std::vector<std::string> parts = detail::split(s, sep);
  for (std::string& p : parts) p = std::string(trim(p));
  return parts;
}

const char* field_name(match_term::kind k) {
  switch (k) {
    case match_term::kind::name:
      return "name";
    case match_term::kind::op:
      return "op";
    case match_term::kind::role:
      return "role";
    case match_term::kind::act:
      return "act";
    case match_term::kind::dtype:
      return "dtype";
  }
  return "?";
}

std::string known_words(match_term::kind k) {
  std::vector<std::string> words;
  if (k == match_term::kind::role)
    for (tensor_role r : all_tensor_roles) words.emplace_back(to_string(r));
  if (k == match_term::kind::act)
    for (activation_kind a : all_activation_kinds) words.emplace_back(to_string(a));
  if (k == match_term::kind::dtype)
    for (auto t : {element_type::float32, element_type::float64, element_type::float16,
                   element_type::bfloat16})
      words.emplace_back(to_string(t));
  return fmt::format("{}", fmt::join(words, ", "));
}

void check_word(match_term::kind k, const std::string& word, const std::string& origin) {
  bool known = true;
  if (k == match_term::kind::role) known = parse_tensor_role(word).has_value();
  if (k == match_term::kind::act) known = parse_activation_kind(word).has_value();
  if (k == match_term::kind::dtype)
    known = word == "float32" || word == "float64" || word == "float16" || word == "bfloat16";
  if (!known)
    throw rule_error(
        fmt::format("unknown {} '{}' in rule; known: {}", field_name(k), word, known_words(k)),
        origin);
}

match_term parse_term(const std::string& text, const std::string& origin) {
  if (text.empty()) throw rule_error("empty match term in rule", origin);
  match_term term;
  const std::size_t colon = text.find(':');
  std::string value = text;
  if (colon != std::string::npos) {
    const std::string key = text.substr(0, colon);
    value = text.substr(colon + 1);
    if (key == "op")
      term.field = match_term::kind::op;
    else if (key == "role")
      term.field = match_term::kind::role;
    else if (key == "act")
      term.field = match_term::kind::act;
    else if (key == "dtype")
      term.field = match_term::kind::dtype;
    else if (key == "name")
      term.field = match_term::kind::name;
    else
      throw rule_error(fmt::format("unknown match key '{}' (use op:, role:, act:, dtype:, name: "
                                   "or a bare name glob)",
                                   key),
                       origin);
  }
  term.alternatives = trimmed_split(value, '|');
  for (const std::string& alt : term.alternatives) {
    if (alt.empty()) throw rule_error(fmt::format("empty value in match term '{}'", text), origin);
    check_word(term.field, alt, origin);
  }
  return term;
}

strategy_call parse_call(const std::string& text, const std::string& origin) {
  strategy_call call;
  const std::size_t open = text.find('(');
  call.strategy = trim(std::string_view(text).substr(0, open));
  if (call.strategy.empty()) throw rule_error("rule names no strategy", origin);
  for (char c : call.strategy)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'))
      throw rule_error(fmt::format("bad strategy name '{}'", call.strategy), origin);
  if (open == std::string::npos) return call;
  if (text.back() != ')')
    throw rule_error(fmt::format("missing ')' after parameters of '{}'", call.strategy), origin);
  const std::string inside(trim(std::string_view(text).substr(open + 1, text.size() - open - 2)));
  if (inside.empty()) return call;
  for (const std::string& item : trimmed_split(inside, ',')) {
    const std::size_t eq = item.find('=');
    const std::string_view key = trim(std::string_view(item).substr(0, eq));
    const std::string_view value =
        eq == std::string::npos ? "" : trim(std::string_view(item).substr(eq + 1));
    if (eq == std::string::npos || key.empty() || value.empty())
      throw rule_error(fmt::format("parameter '{}' of '{}' is not key=value", item, call.strategy),
                       origin);
    call.params.emplace_back(key, value);
  }
  return call;
}

std::string term_text(const match_term& t) {
  std::string alts = fmt::format("{}", fmt::join(t.alternatives, "|"));
  return t.field == match_term::kind::name ? alts : std::string(field_name(t.field)) + ":" + alts;
}

bool term_matches(const match_term& term, const tensor_analysis& tensor) {
  auto any = [&](auto&& pred) {
    return std::any_of(term.alternatives.begin(), term.alternatives.end(), pred);
  };
  switch (term.field) {
    case match_term::kind::name:
      return any([&](const std::string& g) { return glob_matches(g, tensor.info.name); });
    case match_term::kind::op:
      return any([&](const std::string& op) { return op == tensor.consumer_op; });
    case match_term::kind::role:
      return any([&](const std::string& r) { return r == to_string(tensor.info.role); });
    case match_term::kind::act:
      return any([&](const std::string& a) { return a == to_string(tensor.info.activation); });
    case match_term::kind::dtype:
      return tensor.is_float &&
             any([&](const std::string& d) { return d == to_string(tensor.info.dtype); });
  }
  return false;
}

rule rule_from_yaml(const YAML::Node& item, const std::string& origin) {
  if (item.IsScalar()) return parse_rule(item.as<std::string>(), origin);
  if (!item.IsMap() || !item["match"] || !item["strategy"])
    throw rule_error("a rule must be a string or a map with 'match' and 'strategy'", origin);
  std::string text = item["match"].as<std::string>() + "=" + item["strategy"].as<std::string>();
  if (const YAML::Node params = item["params"]) {
    if (!params.IsMap()) throw rule_error("'params' must be a map", origin);
    std::vector<std::string> kv;
    for (const auto& p : params)
      kv.push_back(p.first.as<std::string>() + "=" + p.second.as<std::string>());
    text += fmt::format("({})", fmt::join(kv, ","));  // GCC 12 -O3 misreads "(" + string
  }
  return parse_rule(text, origin);
}

}  // namespace

bool glob_matches(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

std::string strategy_call::to_string() const {
  if (params.empty()) return strategy;
  std::vector<std::string> kv;
  for (const auto& [k, v] : params) kv.push_back(k + "=" + v);
  return fmt::format("{}({})", strategy, fmt::join(kv, ","));
}

bool rule::has_name_term() const {
  return std::any_of(terms.begin(), terms.end(),
                     [](const match_term& t) { return t.field == match_term::kind::name; });
}

bool rule::matches(const tensor_analysis& tensor) const {
  return std::all_of(terms.begin(), terms.end(),
                     [&](const match_term& t) { return term_matches(t, tensor); });
}

rule parse_rule(const std::string& text, const std::string& origin) {
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos)
    throw rule_error(fmt::format("rule '{}' has no '=': expected MATCH=STRATEGY(k=v,...)", text),
                     origin);
  rule r;
  r.origin = origin;
  for (const std::string& t : trimmed_split(text.substr(0, eq), '&'))
    r.terms.push_back(parse_term(t, origin));
  r.call = parse_call(std::string(trim(std::string_view(text).substr(eq + 1))), origin);
  std::vector<std::string> terms;
  for (const match_term& t : r.terms) terms.push_back(term_text(t));
  r.text = fmt::format("{}={}", fmt::join(terms, "&"), r.call.to_string());
  return r;
}

std::vector<rule> load_rules_file(const std::filesystem::path& path) {
  // yaml-cpp's BadFile loses the cause; opening the file first keeps it.
  {
    std::ifstream probe;
    errno = 0;
    probe.open(path);
    std::error_code ec;
    if (!probe) throw io_error("cannot open rules file", path.string(), io_error::last_errno());
    if (std::filesystem::is_directory(path, ec))
      throw io_error("cannot open rules file", path.string(),
                     std::make_error_code(std::errc::is_a_directory));
  }
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::BadFile&) {
    throw io_error("cannot open rules file", path.string(), io_error::last_errno());
  } catch (const YAML::Exception& e) {
    throw rule_error(fmt::format("rules file is not valid YAML: {}", e.what()), path.string());
  }
  const YAML::Node list = root.IsMap() ? root["rules"] : root;
  if (!list || !list.IsSequence())
    throw rule_error("rules file must be a list of rules or have a 'rules:' list", path.string());
  std::vector<rule> rules;
  for (const YAML::Node& item : list) {
    const std::string origin = fmt::format("{}:{}", path.string(), item.Mark().line + 1);
    try {
      rules.push_back(rule_from_yaml(item, origin));
    } catch (const YAML::Exception& e) {
      throw rule_error(fmt::format("bad rule: {}", e.what()), origin);
    }
  }
  return rules;
}

const std::vector<rule>& default_policy() {
  // DESIGN.md section 7. Recurrent rules come first: their weights also have
  // a (tanh) activation and would otherwise fall under the generic ones.
  static const std::vector<rule> policy = [] {
    const char* texts[] = {
        "role:weight&op:LSTM|GRU|RNN=xavier_uniform",
        "role:recurrent_weight=orthogonal",
        "role:bias&op:LSTM=zeros(forget_bias=1)",
        ("role:weight&act:relu|relu6|leaky_relu|prelu|elu|gelu|silu|hardswish|mish|softplus="
         "kaiming_normal(mode=fan_in,nonlinearity=auto)"),
        "role:weight&act:selu=lecun_normal",
        "role:weight&act:tanh|sigmoid|hardsigmoid|linear=xavier_uniform(gain=auto)",
        "role:bias=zeros",
        "role:norm_scale|running_var=ones",
        "role:norm_bias|running_mean=zeros",
        "role:embedding=normal(mean=0,std=1)",
        "role:prelu_slope=constant(value=0.25)",
        "*=keep",
    };
    std::vector<rule> rules;
    for (const char* t : texts) rules.push_back(parse_rule(t, "policy"));
    return rules;
  }();
  return policy;
}

const std::vector<host_param>& host_params() {
  static const std::vector<host_param> params = [] {
    param_info forget;
    forget.name = "forget_bias";
    forget.type = param_type::number;
    forget.min_value = -std::numeric_limits<double>::infinity();
    forget.max_value = std::numeric_limits<double>::infinity();
    forget.help = "LSTM forget-gate input biases set to this value after the strategy";
    auto apply = [](tensor_plan& plan, double value) {
      // PyTorch's b_hh (the second half of an LSTM's B) holds no forget-gate
      // input rows: only tensors that do get the value.
      if (!plan.tensor.forget_gate_ranges.empty()) plan.forget_bias = value;
    };
    return std::vector<host_param>{{forget, apply}};
  }();
  return params;
}

const std::vector<auto_param>& auto_params() {
  static const std::vector<auto_param> params = {
      {"gain", [](const tensor_analysis& t) { return t.info.gain; }},
  };
  return params;
}

}  // namespace onnx_reinit
