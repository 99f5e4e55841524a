// The residual structure of a model: every Add (or 2-input Sum) joining a
// skip path and a branch holding weighted layers, grouped into streams (the
// chain of joins one residual stream passes through). Whole-model recipes
// (fixup, gpt2, zero-init-residual...) and the rule terms `residual:...`
// read it. Built from the graph as exporters write it: BatchNorm folded into
// Conv, decomposed LayerNorm, Linear as MatMul + Add.
//
//   onnx_reinit::loaded_model model = onnx_reinit::load_model("resnet50.onnx");
//   onnx_reinit::residual_structure r = onnx_reinit::find_residual_structure(model);
//   fmt::print("{}\n", r);  // "stream 1: 16 branches ..." then one line per branch
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "onnx_reinit/format.h"
#include "onnx_reinit/model_io.h"

namespace onnx_reinit {

// One residual branch: the path from the fork (where skip and branch part)
// to the join, without the skip.
struct residual_branch {
  int stream = 0;    // 0-based stream index
  int index = 0;     // 0-based position of the branch in its stream
  std::string join;  // name of the Add/Sum (its output when unnamed)
  // "identity", or the name of the skip's projection layer (one Conv, Gemm
  // or MatMul, possibly followed by a norm).
  std::string skip = "identity";
  std::vector<std::string> skip_tensors;  // the projection's weight (and bias)
  // Weight tensor of each weighted layer in the branch, in node order. The
  // last one is the branch's last weighted layer.
  std::vector<std::string> layers;
  // Scale of the normalization between the last weighted layer and the
  // join ("" when none: no norm there, or BatchNorm folded into the Conv).
  std::string last_norm_scale;
  // A constant multiplying the branch's output after everything else
  // (SkipInit/ReZero scalar, LayerScale per-channel vector), "" when none.
  std::string multiplier;
  bool multiplier_is_scalar = false;
};

struct residual_structure {
  std::vector<residual_branch> branches;  // in join order
  std::vector<int> stream_sizes;          // L of each stream: its branch count
};

// Where one tensor sits in the residual structure (tensor_analysis::residual).
struct residual_position {
  enum class part { layer, norm, multiplier, skip };
  part where = part::layer;
  int stream = 0;        // 0-based
  int stream_count = 1;  // streams in the model
  int branch = 0;        // 0-based in the stream
  int branch_count = 0;  // L: branches in the stream
  int layer = 0;         // layer: 0-based position in the branch
  int layer_count = 0;   // m: weighted layers in the branch
  bool is_last_layer() const { return where == part::layer && layer + 1 == layer_count; }
};

std::string_view to_string(residual_position::part p);

// Where a tensor sits in the model's Transformer structure: the attention
// blocks (Softmax(Q K^T) V with weighted Q, K, V and output projections) and
// the feed-forward layers (the other layers of the residual branches of a
// stream holding attention), and what the graph says of the model: a causal
// mask marks decoder self-attention, K/V read from another stream than Q
// marks cross-attention (an encoder-decoder). Read by the rule terms
// `attention:...` and `transformer:...` and the presets deepnet, t-fixup.
struct transformer_place {
  // The model: no attention blocks, decoder-only (every self-attention
  // causal), encoder-decoder (cross-attention), or `unknown`: attention with
  // neither a causal mask nor cross-attention in sight (an encoder, or a
  // decoder whose mask is a graph input), which the graph cannot tell.
  enum class kind { none, decoder, encoder_decoder, unknown };
  enum class stack { none, encoder, decoder, unknown };
  kind model = kind::none;
  int encoder_layers = 0;  // N: self-attention blocks of the encoder
  int decoder_layers = 0;  // M: self-attention blocks of the decoder
  int layers = 0;          // all self-attention blocks
  // This tensor's layer, when weight or bias of one. A fused q/k/v
  // projection is query, key and value at once.
  bool query = false, key = false, value = false, output = false, ffn = false;
  stack side = stack::none;
  bool in_block() const { return query || key || value || output || ffn; }
};

std::string_view to_string(transformer_place::kind k);

// Reads the residual structure of the main graph. The values of constants
// are read through model I/O, external data included.
residual_structure find_residual_structure(const loaded_model& model);
residual_structure find_residual_structure(const onnx::ModelProto& model);

}  // namespace onnx_reinit

// "branch 5 of 8, layer 2 of 2" (with "stream 2 of 3, " before it when the
// model has several streams); "branch 5 of 8, last norm" and so on.
template <>
struct fmt::formatter<onnx_reinit::residual_position>
    : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::residual_position& p, Context& ctx) const {
    auto out = ctx.out();
    if (p.stream_count > 1)
      out = fmt::format_to(out, "stream {} of {}, ", p.stream + 1, p.stream_count);
    out = fmt::format_to(out, "branch {} of {}, ", p.branch + 1, p.branch_count);
    using part = onnx_reinit::residual_position::part;
    switch (p.where) {
      case part::layer:
        return fmt::format_to(out, "layer {} of {}", p.layer + 1, p.layer_count);
      case part::norm:
        return fmt::format_to(out, "last norm");
      case part::multiplier:
        return fmt::format_to(out, "multiplier");
      case part::skip:
        return fmt::format_to(out, "skip projection");
    }
    return out;
  }
};

// One line per stream, then one per branch: "stream 1: 8 branches", then
// "  branch 1: join add_1, skip identity, 2 layers (conv1.w, conv2.w), last
// norm bn2.scale".
template <>
struct fmt::formatter<onnx_reinit::residual_structure>
    : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::residual_structure& r, Context& ctx) const {
    auto out = ctx.out();
    if (r.branches.empty()) return fmt::format_to(out, "no residual branches\n");
    for (std::size_t s = 0; s < r.stream_sizes.size(); ++s) {
      out = fmt::format_to(out, "stream {}: {} branches\n", s + 1, r.stream_sizes[s]);
      for (const auto& b : r.branches) {
        if (b.stream != static_cast<int>(s)) continue;
        out = fmt::format_to(out, "  branch {}: join {}, skip {}, {} layers ({})", b.index + 1,
                             b.join, b.skip, b.layers.size(), fmt::join(b.layers, ", "));
        if (!b.last_norm_scale.empty())
          out = fmt::format_to(out, ", last norm {}", b.last_norm_scale);
        if (!b.multiplier.empty())
          out = fmt::format_to(out, ", {} multiplier {}",
                               b.multiplier_is_scalar ? "scalar" : "per-channel", b.multiplier);
        out = fmt::format_to(out, "\n");
      }
    }
    return out;
  }
};
