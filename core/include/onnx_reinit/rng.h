// Reproducible random streams: how a (seed, tensor name) pair becomes a
// Philox4x32-10 key, how counters are laid out, and the C++ view of the
// host-provided stream that strategies draw from. Part of the plugin SDK:
// standard library and Random123 only.
//
// The definition, so another implementation can reproduce every byte:
//
//   name_hash = FNV-1a 64 of the tensor name's bytes
//               (offset 0xcbf29ce484222325, prime 0x100000001b3)
//   key64     = splitmix64(splitmix64(seed) ^ name_hash)
//   key       = { low32(key64), high32(key64) }
//   counter   = { low32(block), high32(block), low32(stream), high32(stream) }
//   words     = Philox4x32-10(counter, key)      -> w[0..3]
//
// Element i of a fill maps to Philox blocks as follows (float = 24-bit
// mantissa draws, double = 53-bit draws; u24(w) = (w >> 8) * 2^-24,
// u53(hi, lo) = (((hi << 32) | lo) >> 11) * 2^-53):
//
//   uniform   float : block i/4, u = u24(w[i%4]);      x = low + u * (high - low)
//             double: block i/2, u = u53(w[2j+1], w[2j]) with j = i%2
//   normal    float : block i/4, pair j = (i%4)/2: u1 = u24(w[2j]) + 2^-24, u2 = u24(w[2j+1])
//             double: block i/2, u1 = u53(w[1], w[0]) + 2^-53, u2 = u53(w[3], w[2])
//             r = sqrt(-2 ln u1), t = 2 pi u2, z = (i even) ? r cos t : r sin t
//             x = mean + std * z
//   truncated float : block i/4, u = u24(w[i%4]) + 2^-25
//             double: block i/2, u = u53(w[2j+1], w[2j]) + 2^-54 with j = i%2
//             z = Phi^-1(Phi(a) + u (Phi(b) - Phi(a))), clamped to [a, b]
//             x = mean + std * z        (inverse CDF: one counter, one value)
//             when a > 0 the mirrored interval [-b, -a] is sampled and z negated,
//             which keeps Phi away from 1 where doubles lose precision
//
// The float paths compute in double and round once to float.
#pragma once

#include <Random123/philox.h>

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>

#include "onnx_reinit/plugin_abi.h"

namespace onnx_reinit {

constexpr std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The Philox key for one tensor under one seed.
constexpr std::array<std::uint32_t, 2> derive_key(std::uint64_t seed, std::string_view tensor_name) {
  std::uint64_t k = splitmix64(splitmix64(seed) ^ fnv1a64(tensor_name));
  return {static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(k >> 32)};
}

// The four 32-bit words of one Philox4x32-10 block.
inline std::array<std::uint32_t, 4> philox_block(const std::array<std::uint32_t, 2>& key,
                                                 std::uint64_t stream, std::uint64_t block) {
  r123::Philox4x32 philox;
  r123::Philox4x32::ctr_type ctr = {{static_cast<std::uint32_t>(block),
                                     static_cast<std::uint32_t>(block >> 32),
                                     static_cast<std::uint32_t>(stream),
                                     static_cast<std::uint32_t>(stream >> 32)}};
  r123::Philox4x32::key_type k = {{key[0], key[1]}};
  r123::Philox4x32::ctr_type out = philox(ctr, k);
  return {out[0], out[1], out[2], out[3]};
}

template <class T>
constexpr std::uint32_t dtype_code() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "fills are float or double");
  return std::is_same_v<T, float> ? ONNX_REINIT_FLOAT32 : ONNX_REINIT_FLOAT64;
}

// The C++ view of a host-provided random stream. Cheap to copy.
class rng_stream {
 public:
  explicit rng_stream(const onnx_reinit_rng& state) : state_(state) {}

  // Fills `out`, whose first element is element `first` of the tensor.
  template <class T>
  void uniform(std::span<T> out, std::uint64_t first, double low, double high) const {
    onnx_reinit_span s = make_span(out, first);
    state_.api->uniform(&state_, &s, low, high);
  }

  template <class T>
  void normal(std::span<T> out, std::uint64_t first, double mean, double std) const {
    onnx_reinit_span s = make_span(out, first);
    state_.api->normal(&state_, &s, mean, std);
  }

  // `a` and `b` are in units of `std` around `mean` (Keras/JAX semantics).
  template <class T>
  void truncated_normal(std::span<T> out, std::uint64_t first, double mean, double std,
                        double a = -2.0, double b = 2.0) const {
    onnx_reinit_span s = make_span(out, first);
    state_.api->truncated_normal(&state_, &s, mean, std, a, b);
  }

  // An independent stream for the same tensor (e.g. positions vs values).
  rng_stream substream(std::uint64_t id) const {
    onnx_reinit_rng next = state_;
    next.stream = id;
    return rng_stream(next);
  }

  // Raw Philox words of counter block `block` of this stream.
  std::array<std::uint32_t, 4> block(std::uint64_t index) const {
    return philox_block({state_.key[0], state_.key[1]}, state_.stream, index);
  }

  const onnx_reinit_rng& c_state() const { return state_; }

 private:
  template <class T>
  static onnx_reinit_span make_span(std::span<T> out, std::uint64_t first) {
    return onnx_reinit_span{out.data(), first, out.size(), dtype_code<T>()};
  }

  onnx_reinit_rng state_;
};

}  // namespace onnx_reinit
