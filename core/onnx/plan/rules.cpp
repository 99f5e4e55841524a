// Parsing and matching of user rules, and the default policy as rules.
#include "onnx_reinit/rules.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <fnmatch.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string_view>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/internal/text.h"
#include "onnx_reinit/plan.h"

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
    case match_term::kind::residual:
      return "residual";
    case match_term::kind::layer:
      return "layer";
    case match_term::kind::attention:
      return "attention";
    case match_term::kind::transformer:
      return "transformer";
  }
  return "?";
}

// The keys of match terms, spelled by field_name, in the order the error
// for an unknown key lists them.
constexpr match_term::kind match_keys[] = {
    match_term::kind::op,        match_term::kind::role,        match_term::kind::act,
    match_term::kind::dtype,     match_term::kind::residual,    match_term::kind::layer,
    match_term::kind::attention, match_term::kind::transformer, match_term::kind::name};

std::optional<match_term::kind> match_key(std::string_view key) {
  for (match_term::kind k : match_keys)
    if (key == field_name(k)) return k;
  return std::nullopt;
}

// "op:, role:, ..., name:".
std::string match_keys_text() {
  std::vector<std::string> keys;
  for (match_term::kind k : match_keys) keys.push_back(fmt::format("{}:", field_name(k)));
  return fmt::format("{}", fmt::join(keys, ", "));
}

// Words of residual:PLACE and layer:POSITION.
constexpr std::string_view residual_words[] = {"any",        "last", "inner", "norm",
                                               "multiplier", "skip", "none"};
constexpr std::string_view layer_words[] = {"output"};
// Words of attention:PLACE (a layer's part, or its side) and
// transformer:MODEL (what the graph tells of the model).
constexpr std::string_view attention_words[] = {"query", "key", "value",   "output",
                                                "ffn",   "any", "encoder", "decoder"};
constexpr std::string_view transformer_words[] = {"decoder", "encoder-decoder", "unknown", "none"};

// Which words a match key takes; empty for keys checked otherwise.
std::vector<std::string_view> fixed_words(match_term::kind k) {
  switch (k) {
    case match_term::kind::residual:
      return {std::begin(residual_words), std::end(residual_words)};
    case match_term::kind::layer:
      return {std::begin(layer_words), std::end(layer_words)};
    case match_term::kind::attention:
      return {std::begin(attention_words), std::end(attention_words)};
    case match_term::kind::transformer:
      return {std::begin(transformer_words), std::end(transformer_words)};
    default:
      return {};
  }
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
  for (std::string_view w : fixed_words(k)) words.emplace_back(w);
  return fmt::format("{}", fmt::join(words, ", "));
}

void check_word(match_term::kind k, const std::string& word, const std::string& origin) {
  bool known = true;
  if (k == match_term::kind::role) known = parse_tensor_role(word).has_value();
  if (k == match_term::kind::act) known = parse_activation_kind(word).has_value();
  if (k == match_term::kind::dtype)
    known = word == "float32" || word == "float64" || word == "float16" || word == "bfloat16";
  if (const auto words = fixed_words(k); !words.empty())
    known = std::find(words.begin(), words.end(), word) != words.end();
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
    const std::optional<match_term::kind> field = match_key(key);
    if (!field)
      throw rule_error(fmt::format("unknown match key '{}' (use {} or a bare name glob)", key,
                                   match_keys_text()),
                       origin);
    term.field = *field;
  }
  term.alternatives = trimmed_split(value, '|');
  for (const std::string& alt : term.alternatives) {
    if (alt.empty()) throw rule_error(fmt::format("empty value in match term '{}'", text), origin);
    check_word(term.field, alt, origin);
  }
  return term;
}

// Parameter expressions: a recursive-descent evaluator over
//   sum := product (('+'|'-') product)*   product := power (('*'|'/') power)*
//   power := unary ('^' power)?           unary := '-' unary | atom
//   atom := number | name | sqrt '(' sum ')' | '(' sum ')'
// With no tensor (at parse time) names read as 1, to check the syntax.
// Nesting ('(', sqrt, unary '-', the right side of '^') is bounded by
// max_expression_depth: each level is a stack frame, and a hostile rule
// of 30,000 '(' would otherwise overflow the stack.
class expression {
 public:
  expression(std::string_view text, const tensor_analysis* tensor, const std::string& origin)
      : text_(text), tensor_(tensor), origin_(origin) {}

  double evaluate() {
    const double v = sum();
    skip_space();
    if (pos_ != text_.size()) fail(fmt::format("unexpected '{}'", text_.substr(pos_)));
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw rule_error(fmt::format("bad parameter expression '{}': {}", text_, what), origin_);
  }
  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
  }
  bool take(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) return ++pos_, true;
    return false;
  }
  double sum() {
    double v = product();
    for (;;) {
      if (take('+'))
        v += product();
      else if (take('-'))
        v -= product();
      else
        return v;
    }
  }
  double product() {
    double v = power();
    for (;;) {
      if (take('*'))
        v *= power();
      else if (take('/'))
        v /= power();
      else
        return v;
    }
  }
  // One level deeper for the life of the guard; fails past the limit.
  class nested {
   public:
    explicit nested(expression& e) : e_(e) {
      if (++e_.depth_ > max_expression_depth)
        e_.fail(fmt::format("nested deeper than {} levels", max_expression_depth));
    }
    ~nested() { --e_.depth_; }
    nested(const nested&) = delete;
    nested& operator=(const nested&) = delete;

   private:
    expression& e_;
  };
  double power() {
    const double base = unary();
    if (!take('^')) return base;
    const nested level(*this);
    return std::pow(base, power());
  }
  double unary() {
    if (!take('-')) return atom();
    const nested level(*this);
    return -unary();
  }
  double atom() {
    skip_space();
    if (take('(')) {
      const nested level(*this);
      const double v = sum();
      if (!take(')')) fail("missing ')'");
      return v;
    }
    const std::size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_'))
      ++pos_;
    const std::string word(text_.substr(start, pos_ - start));
    if (word.empty())
      fail(pos_ < text_.size() ? fmt::format("unexpected '{}'", text_[pos_])
                               : std::string("missing operand"));
    if (std::isdigit(static_cast<unsigned char>(word[0])) || word[0] == '.') return number(start);
    if (word == "sqrt") {
      if (!take('(')) fail("sqrt needs '('");
      const nested level(*this);
      const double v = sum();
      if (!take(')')) fail("missing ')'");
      return std::sqrt(v);
    }
    return name(word);
  }
  double number(std::size_t start) {
    double v = 0.0;
    const std::size_t used = detail::read_number(text_.substr(start), v);
    if (used == 0) fail("bad number");
    pos_ = start + used;
    return v;
  }
  double name(const std::string& word) const {
    const bool known = word == "L" || word == "m" || word == "gain" || word == "fan_in" ||
                       word == "fan_out" || word == "N" || word == "M" || word == "layers" ||
                       word == "d";
    if (!known)
      fail(fmt::format("unknown name '{}' (use L, m, gain, fan_in, fan_out, N, M, layers, d)",
                       word));
    if (tensor_ == nullptr) return 1.0;
    if (word == "gain") return tensor_->info.gain;
    if (word == "fan_in") return tensor_->info.fan_in;
    if (word == "fan_out") return tensor_->info.fan_out;
    if (word == "N" || word == "M" || word == "layers") return transformer_count(word);
    if (word == "d") return embedding_width();
    const auto& r = tensor_->residual;
    if (!r || r->where == residual_position::part::skip)
      fail(fmt::format("'{}' is not in a residual branch, so {} is undefined for it",
                       tensor_->info.name, word));
    return word == "L" ? r->branch_count : r->layer_count;
  }

  // N, M, layers: encoder, decoder and all self-attention blocks.
  double transformer_count(const std::string& word) const {
    const transformer_place& t = tensor_->transformer;
    const int count = word == "N" ? t.encoder_layers : word == "M" ? t.decoder_layers : t.layers;
    if (count == 0)
      fail(fmt::format("the model has no {} (attention blocks seen: {}), so {} is undefined",
                       word == "N"   ? "encoder self-attention"
                       : word == "M" ? "decoder self-attention"
                                     : "self-attention",
                       t.layers, word));
    return count;
  }

  // d: an embedding table's width, whatever the fan convention.
  double embedding_width() const {
    const auto& shape = tensor_->info.shape;
    if (tensor_->info.role != tensor_role::embedding || shape.size() != 2)
      fail(fmt::format("'{}' is not an embedding table, so d is undefined for it",
                       tensor_->info.name));
    return static_cast<double>(shape[1]);
  }

  std::string_view text_;
  const tensor_analysis* tensor_;
  const std::string& origin_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

// An expression holds an operator and is not a plain number ("1e-5").
bool is_expression(const std::string& value) {
  if (detail::parse_number<double>(value)) return false;
  return value.find_first_of("+-*/^(") != std::string::npos;
}

void check_expression(const std::string& value, const std::string& origin) {
  if (is_expression(value)) expression(value, nullptr, origin).evaluate();
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
    check_expression(call.params.back().second, origin);
  }
  return call;
}

std::string term_text(const match_term& t) {
  std::string alts = fmt::format("{}", fmt::join(t.alternatives, "|"));
  return t.field == match_term::kind::name ? alts : std::string(field_name(t.field)) + ":" + alts;
}

bool residual_place_matches(std::string_view word, const tensor_analysis& tensor) {
  using part = residual_position::part;
  const auto& r = tensor.residual;
  if (word == "none") return !r || r->where == part::skip;
  if (!r) return false;
  if (word == "any") return r->where != part::skip;
  if (word == "last") return r->is_last_layer();
  if (word == "inner") return r->where == part::layer && !r->is_last_layer();
  if (word == "norm") return r->where == part::norm;
  if (word == "multiplier") return r->where == part::multiplier;
  return word == "skip" && r->where == part::skip;
}

bool attention_place_matches(std::string_view word, const transformer_place& t) {
  using stack = transformer_place::stack;
  if (word == "any") return t.in_block();
  if (word == "encoder") return t.in_block() && t.side == stack::encoder;
  if (word == "decoder") return t.in_block() && t.side == stack::decoder;
  return (word == "query" && t.query) || (word == "key" && t.key) || (word == "value" && t.value) ||
         (word == "output" && t.output) || (word == "ffn" && t.ffn);
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
    case match_term::kind::residual:
      return any([&](const std::string& w) { return residual_place_matches(w, tensor); });
    case match_term::kind::layer:
      return tensor.output_layer;
    case match_term::kind::attention:
      return any(
          [&](const std::string& w) { return attention_place_matches(w, tensor.transformer); });
    case match_term::kind::transformer:
      return any([&](const std::string& w) { return w == to_string(tensor.transformer.model); });
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

std::optional<double> evaluate_parameter(const std::string& value, const tensor_analysis& tensor,
                                         const std::string& origin) {
  if (!is_expression(value)) return std::nullopt;
  const double v = expression(value, &tensor, origin).evaluate();
  if (!std::isfinite(v))
    throw rule_error(
        fmt::format("parameter expression '{}' is not finite for '{}'", value, tensor.info.name),
        origin);
  return v;
}

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

bool rule::names_tensors() const {
  return std::any_of(terms.begin(), terms.end(), [](const match_term& t) {
    if (t.field == match_term::kind::name)  // `*` alone names nothing
      return std::any_of(t.alternatives.begin(), t.alternatives.end(),
                         [](const std::string& g) { return g != "*"; });
    return t.field == match_term::kind::residual &&
           std::all_of(t.alternatives.begin(), t.alternatives.end(),
                       [](const std::string& w) { return w == "multiplier" || w == "norm"; });
  });
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
  // docs/DESIGN.md section 7. Recurrent rules come first: their weights also have
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
    // PyTorch's b_hh (the second half of an LSTM's B) holds no forget-gate
    // input rows: only tensors that do take the value.
    auto forget_rows = [](const tensor_analysis& t) { return t.forget_gate_ranges; };
    return std::vector<host_param>{
        {forget, forget_rows,
         "forget_bias=V sets the LSTM forget-gate input bias after the strategy"}};
  }();
  return params;
}

const std::vector<auto_param>& auto_params() {
  static const std::vector<auto_param> params = {
      {"gain", [](const tensor_analysis& t) { return t.info.gain; },
       "gain=auto is the gain of the tensor's activation"},
  };
  return params;
}

}  // namespace onnx_reinit
