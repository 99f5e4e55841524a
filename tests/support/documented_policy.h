// Test support: the default policy as the README documents it, rule for rule
// in the order the rules are tried, and the rule lines of a policy text
// (comment and blank lines dropped), so the library's text and the CLI's
// --print-policy are held to one expected table.
#pragma once

#include <sstream>
#include <string>
#include <vector>

namespace onnx_reinit::test {

inline const std::vector<std::string>& documented_policy() {
  static const std::vector<std::string> rules = {
      "role:weight&op:LSTM|GRU|RNN=xavier_uniform",
      "role:recurrent_weight=orthogonal",
      "role:bias&op:LSTM=zeros(forget_bias=1)",
      "role:weight&act:relu|relu6|leaky_relu|prelu|elu|gelu|silu|hardswish|mish|softplus="
      "kaiming_normal(mode=fan_in,nonlinearity=auto)",
      "role:weight&act:selu=lecun_normal",
      "role:weight&act:tanh|sigmoid|hardsigmoid|linear=xavier_uniform(gain=auto)",
      "role:bias=zeros",
      "role:norm_scale|running_var=ones",
      "role:norm_bias|running_mean=zeros",
      "role:embedding=normal(mean=0,std=1)",
      "role:prelu_slope=constant(value=0.25)",
      "*=keep",
  };
  return rules;
}

inline std::vector<std::string> policy_rule_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') lines.push_back(line);
  return lines;
}

}  // namespace onnx_reinit::test
