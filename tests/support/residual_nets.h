// Test support: a small residual MLP whose branches end in a multiplier,
// as SkipInit/ReZero (scalar) and LayerScale (per channel) write them.
#pragma once

#include <fmt/format.h>

#include <string>
#include <vector>

#include "onnx_builder.h"

namespace onnx_reinit::test {

// x -> [MatMul w1 -> Relu -> MatMul w2 -> (+ b2) -> Mul gamma] + x, `blocks`
// times, then MatMul head -> Softmax. gamma has `gamma_dims` ({1}: a scalar).
inline onnx::ModelProto residual_mlp(int blocks, std::vector<std::int64_t> gamma_dims) {
  graph_builder g;
  g.add_input("x", {4, 8});
  std::string x = "x";
  for (int i = 0; i < blocks; ++i) {
    const std::string p = fmt::format("b{}.", i);
    g.add_initializer(p + "w1", {8, 8}, ramp(64));
    g.add_initializer(p + "w2", {8, 8}, ramp(64));
    g.add_initializer(p + "b2", {8}, ramp(8));
    std::int64_t n = 1;
    for (std::int64_t d : gamma_dims) n *= d;
    g.add_initializer(p + "gamma", gamma_dims,
                      std::vector<float>(static_cast<std::size_t>(n), 0.5f));
    g.add_node("MatMul", {x, p + "w1"}, {p + "h1"});
    g.add_node("Relu", {p + "h1"}, {p + "a1"});
    g.add_node("MatMul", {p + "a1", p + "w2"}, {p + "h2"});
    g.add_node("Add", {p + "h2", p + "b2"}, {p + "h2b"});
    g.add_node("Mul", {p + "h2b", p + "gamma"}, {p + "scaled"});
    g.add_node("Add", {p + "scaled", x}, {p + "out"});
    x = p + "out";
  }
  g.add_initializer("head", {8, 3}, ramp(24));
  g.add_node("MatMul", {x, "head"}, {"logits"});
  g.add_node("Softmax", {"logits"}, {"y"});
  g.add_output("y", {4, 3});
  return g.model();
}

}  // namespace onnx_reinit::test
