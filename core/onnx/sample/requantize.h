// --quantized requantize (docs/DESIGN.md section 7): the bytes of quantized
// weights and biases drawn in float and quantized back, and of the scales
// of their DequantizeLinear. Internal to the sampler.
#pragma once

#include <vector>

#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/rewrite.h"

namespace onnx_reinit::detail {

// The sample row of a scale set by requantization: strategy "requantize",
// no target, no source yet.
tensor_sample requantized_scale_sample(const tensor_plan& plan);

// Replaces, for every requantized plan, the sample's source: on entry the
// source of a quantized weight or bias yields its float32 values drawn as
// for a float layer (the strategy, its stream); on return it yields the
// integer codes, and each scale's source the new scales. Symmetric int8
// weights: scale = max|w| / 127 per channel along the DequantizeLinear's
// axis (or per tensor), codes round(w / scale) in [-127, 127]; asymmetric
// (uint8, or a non-zero zero point): the zero point z is kept and the scale
// is the smallest that holds every value, max(max w / (hi - z), min w /
// (lo - z)); int32 biases: scale = input scale x weight scale (float32
// product, the weight's new scale when it is requantized), codes round(b /
// scale) saturated to int32. A zero scale (all values 0) becomes 1. Ties
// round to even. Sources read the model's current scales when sampled and
// own everything they need.
void requantize_sources(const loaded_model& model, const std::vector<tensor_plan>& plans,
                        model_sample& sample);

}  // namespace onnx_reinit::detail
