// The host side of random streams: the Philox kernels behind
// onnx_reinit_rng_api (uniform, normal, truncated normal; float and double),
// and the stream for one tensor under one seed. The mapping from counters
// to values is defined in rng.h.
#pragma once

#include <cstdint>
#include <string_view>

#include "onnx_reinit/sdk/plugin_abi.h"
#include "onnx_reinit/sdk/rng.h"

namespace onnx_reinit {

// The function table handed to plugins; lives for the whole process.
const onnx_reinit_rng_api& host_rng_api();

// The stream for `tensor_name` under `seed` (stream id 0).
onnx_reinit_rng make_tensor_rng(std::uint64_t seed, std::string_view tensor_name);

// Fill out[0, count) with elements [first, first + count) of a float32
// tensor: the same bytes as host_rng_api()'s fills on a float32
// span, without the function table. Vectorized (Highway, dispatched at run
// time to the best instruction set of the CPU), single-threaded, and any
// split of a range into calls gives the same bytes; callers parallelize by
// splitting. These are the entry points for benchmarks.
void fill_uniform_f32(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                      std::uint64_t count, double low, double high);
void fill_normal_f32(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                     std::uint64_t count, double mean, double std);
// `a` and `b` in units of `std` around `mean`, as rng_stream::truncated_normal.
void fill_truncated_normal_f32(const onnx_reinit_rng& rng, float* out, std::uint64_t first,
                               std::uint64_t count, double mean, double std, double a, double b);

// The Highway target those fills run on here, e.g. "AVX3" (AVX-512), "AVX2",
// "SSE4" or "EMU128" (portable scalar); the bytes are the same on all.
const char* rng_simd_target();

}  // namespace onnx_reinit
