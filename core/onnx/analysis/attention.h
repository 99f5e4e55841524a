// Finding the attention blocks of the main graph on the analysis' model
// index (onnx_reinit/residual.h has transformer_place, what it yields per
// tensor): for each Softmax feeding a MatMul, the projections of its value
// path, of Q and K (the MatMul the scores come from) and the output
// projection after it; whether its scores carry a causal mask; whether K/V
// read another stream than Q (cross-attention). The other layers of
// residual branches in streams holding attention are the feed-forward ones.
#pragma once

#include <unordered_map>

#include "graph_index.h"
#include "onnx_reinit/residual.h"
#include "residual.h"

namespace onnx_reinit::detail {

struct attention_lookup {
  transformer_place model;  // the model-wide fields only
  // Weighted node -> its place (model-wide fields filled too).
  std::unordered_map<int, transformer_place> layers;
};

attention_lookup find_attention_lookup(const model_index& index, const residual_lookup& residual);

}  // namespace onnx_reinit::detail
