// Learned weight or fixed constant: decides from a tensor's values alone
// whether a tensor in a weight slot is a fixed, non-learned constant (DFT
// basis, window, filterbank, smoothing kernel, position table, coordinate
// grid, identity...)
// that rewriting would silently break (docs/DESIGN.md section 6, "Learned or
// fixed"). Pure: no graph access, no names; the analysis decodes the values
// and supplies the context.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit::detail {

// At most this many values are decoded for the check (2 MiB of doubles:
// covers every fixed constant seen in real models, the largest being a
// [257,1,512] STFT basis of 131,584 values). A caller may pass fewer values
// than the shape holds: they are then read as a prefix of the tensor, cut to
// whole slices along the first dimension (rows of a table, output channels
// of a Conv), and only the tests that hold for a prefix of rows run (DFT
// basis, sinusoid and position tables, filterbank, one-hot rows, integers,
// coordinate grids stored coordinates last);
// the tests that need the whole tensor (identity, permutation, window,
// smoothing kernel) are skipped. Those are small in practice.
inline constexpr std::size_t fixed_constant_max_elements = std::size_t{1} << 18;

struct constant_context {
  tensor_role role = tensor_role::weight;
  // Stop a spectral test once the rows seen decide it (same answer, far
  // fewer FFTs on learned weights); false runs every row, for tests.
  bool stop_early = true;
};

// Whether the check runs for a tensor of this role. It runs where the
// default policy would sample fresh random values over a constant:
//  - weight (Conv, ConvTranspose, Gemm, MatMul), recurrent_weight and
//    embedding (Gather tables: sinusoidal position tables, one-hot or
//    identity lookups);
//  - bias only when it has at least two dimensions larger than 1: a table
//    added after a projection (a position table added to a MatMul output is
//    read as the MatMul's bias), never a plain bias vector.
// It does not run for norm_scale, norm_bias, running_mean, running_var and
// prelu_slope: their policy values (ones, zeros, 0.25) are themselves the
// conventional constants, so a fixed all-ones scale rewritten with ones is
// unchanged; nor for unknown roles, which are kept anyway.
bool fixed_constant_check_applies(tensor_role role, std::span<const std::int64_t> shape);

// The reason shown to users when `values` (row-major, as decoded, possibly a
// prefix: see fixed_constant_max_elements) form a fixed constant, e.g.
// "values form a DFT basis (rows are windowed sinusoids)"; nullopt for
// values that look learned (or random, or all zero: zero initialisation is
// an initialisation, not a constant to keep). Only the values and the shape
// are used; never names.
std::optional<std::string> fixed_constant_reason(std::span<const double> values,
                                                 std::span<const std::int64_t> shape,
                                                 const constant_context& context = {});

}  // namespace onnx_reinit::detail
