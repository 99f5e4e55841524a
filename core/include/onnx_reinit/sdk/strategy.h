// The C++ interface a strategy implements, and the conversions between
// tensor_info and its C mirror used on both sides of the plugin boundary.
// Part of the plugin SDK: standard library only.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

#include "onnx_reinit/sdk/plugin_abi.h"
#include "onnx_reinit/sdk/rng.h"
#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit {

// A configured initialization strategy. `first` is the index, within the
// whole tensor, of out[0]: element-wise strategies may be called on chunks;
// the others always get the whole tensor (first == 0). Throw
// std::invalid_argument for a tensor the strategy cannot fill.
//
// THREAD SAFETY: the host calls fill() and target_moments() on ONE instance
// from several threads at once, for different tensors and for different
// chunks of one tensor. Both are const and must stay truly const: no
// `mutable` caches or scratch buffers, no unsynchronized statics; keep
// per-call state in locals. Only construction and destruction are
// single-threaded.
class strategy {
 public:
  virtual ~strategy() = default;
  virtual void fill(const tensor_info& tensor, const rng_stream& rng, std::uint64_t first,
                    std::span<float> out) const = 0;
  virtual void fill(const tensor_info& tensor, const rng_stream& rng, std::uint64_t first,
                    std::span<double> out) const = 0;

  struct moments {
    double mean = 0.0;
    double std = 0.0;
  };
  // The mean and standard deviation this strategy aims at for `tensor`
  // (shown in reports beside what was achieved); nullopt when it cannot say.
  // An exception is a failure: the host reports it, naming the strategy.
  virtual std::optional<moments> target_moments(const tensor_info& tensor) const {
    (void)tensor;
    return std::nullopt;
  }
};

// Implements both fill overloads with one template member of Derived:
//   template <class T> void fill_values(const tensor_info&, const rng_stream&,
//                                       std::uint64_t first, std::span<T>) const;
template <class Derived>
class basic_strategy : public strategy {
 public:
  void fill(const tensor_info& tensor, const rng_stream& rng, std::uint64_t first,
            std::span<float> out) const final {
    static_cast<const Derived*>(this)->fill_values(tensor, rng, first, out);
  }
  void fill(const tensor_info& tensor, const rng_stream& rng, std::uint64_t first,
            std::span<double> out) const final {
    static_cast<const Derived*>(this)->fill_values(tensor, rng, first, out);
  }
};

namespace sdk_detail {

// The fields tensor_info and its C mirror share by name and type, copied in
// either direction: one list, so the two conversions cannot drift apart.
template <class To, class From>
void copy_common_fields(To& to, const From& from) {
  to.activation_param = from.activation_param;
  to.gain = from.gain;
  to.fan_in = from.fan_in;
  to.fan_out = from.fan_out;
  to.receptive_field = from.receptive_field;
  to.groups = from.groups;
  to.gate_count = from.gate_count;
  to.block_count = from.block_count;
  to.block_rows = from.block_rows;
  to.block_cols = from.block_cols;
}

}  // namespace sdk_detail

// The C mirror of a tensor_info; valid while `info` lives and is unchanged.
inline onnx_reinit_tensor_info to_c(const tensor_info& info) {
  onnx_reinit_tensor_info c{};
  c.struct_size = sizeof(onnx_reinit_tensor_info);
  c.name = info.name.c_str();
  c.shape = info.shape.data();
  c.rank = static_cast<std::uint32_t>(info.shape.size());
  c.dtype = static_cast<std::uint32_t>(info.dtype);
  c.role = static_cast<std::uint32_t>(info.role);
  c.activation = static_cast<std::uint32_t>(info.activation);
  sdk_detail::copy_common_fields(c, info);
  return c;
}

// Throws std::runtime_error for a struct smaller than this SDK's minimum
// (nothing past its end is read); a larger one comes from a newer host and
// its extra fields are ignored.
inline tensor_info from_c(const onnx_reinit_tensor_info& c) {
  if (c.struct_size < ONNX_REINIT_TENSOR_INFO_MIN_SIZE)
    throw std::runtime_error("the host's tensor info is " + sdk_detail::decimal(c.struct_size) +
                             " bytes, this plugin needs at least " +
                             sdk_detail::decimal(ONNX_REINIT_TENSOR_INFO_MIN_SIZE) +
                             " (is the host older than the plugin's SDK?)");
  if (c.rank > 0 && c.shape == nullptr)
    throw std::runtime_error("the host's tensor info has rank " + sdk_detail::decimal(c.rank) +
                             " but no shape");
  tensor_info info;
  info.name = c.name != nullptr ? c.name : "";
  if (c.rank > 0) info.shape.assign(c.shape, c.shape + c.rank);
  info.dtype = static_cast<element_type>(c.dtype);
  info.role = static_cast<tensor_role>(c.role);
  info.activation = static_cast<activation_kind>(c.activation);
  sdk_detail::copy_common_fields(info, c);
  return info;
}

}  // namespace onnx_reinit
