// The host side of random streams: the Philox kernels behind
// onnx_reinit_rng_api (uniform, normal, truncated normal; float and double),
// and the stream for one tensor under one seed. The mapping from counters
// to values is defined in rng.h.
#pragma once

#include <cstdint>
#include <string_view>

#include "onnx_reinit/plugin_abi.h"
#include "onnx_reinit/rng.h"

namespace onnx_reinit {

// The function table handed to plugins; lives for the whole process.
const onnx_reinit_rng_api& host_rng_api();

// The stream for `tensor_name` under `seed` (stream id 0).
onnx_reinit_rng make_tensor_rng(std::uint64_t seed, std::string_view tensor_name);

}  // namespace onnx_reinit
