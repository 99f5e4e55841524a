// The orthonormal factor of a tall matrix by blocked Householder QR, for the
// orthogonal strategy: panels of columns factored one at a time, each
// panel's reflectors applied to the rest as one block (two matrix products),
// and Q formed the same way from the last block back, touching only the
// rows and columns each block reaches (as LAPACK's geqrf and orgqr).
//
// The column work of every block application is split into chunks of a
// fixed width, run in parallel on the host's threads (sdk/parallel.h): the
// chunks and the arithmetic inside each never depend on the thread count,
// so neither do the bytes.
//
//   std::vector<float> g = ...;  // m x n, column-major, m >= n
//   onnx_reinit::standard::sign_corrected_q(g.data(), m, n, host_threads(rng));
//   // g now holds Q with Q^T Q = I and diag(R) >= 0
#pragma once

#include <cstdint>

#include "onnx_reinit/sdk/parallel.h"

namespace onnx_reinit::standard {

// Overwrites the m x n column-major matrix `a` (m >= n) with the Q of its QR
// decomposition, each column multiplied by the sign of R's diagonal entry
// (a zero entry, of probability 0, keeps its column): the Haar-distributed
// Q of torch.nn.init.orthogonal_ when `a` is Gaussian. Computes in T, on
// `threads`.
template <class T>
void sign_corrected_q(T* a, std::int64_t m, std::int64_t n, const host_threads& threads);

extern template void sign_corrected_q<float>(float*, std::int64_t, std::int64_t,
                                             const host_threads&);
extern template void sign_corrected_q<double>(double*, std::int64_t, std::int64_t,
                                              const host_threads&);

}  // namespace onnx_reinit::standard
