// Writing a strategy plugin in C++: describe each strategy class and export
// the descriptor with one macro. The trampolines here turn every exception
// into an error code and message, so none crosses the plugin boundary.
//
//   class my_init : public onnx_reinit::basic_strategy<my_init> {
//    public:
//     explicit my_init(const onnx_reinit::param_values& p) : std_(p.number("std")) {}
//     template <class T>
//     void fill_values(const onnx_reinit::tensor_info&, const onnx_reinit::rng_stream& rng,
//                      std::uint64_t first, std::span<T> out) const {
//       rng.normal(out, first, 0.0, std_);
//     }
//    private:
//     double std_;
//   };
//   constexpr onnx_reinit_param_schema my_params[] = {
//       onnx_reinit::param::positive("std", 0.02, "standard deviation")};
//   const onnx_reinit_strategy_desc my_strategies[] = {
//       onnx_reinit::describe_strategy<my_init>("my_init", "N(0, std^2)", "N(0, std^2)",
//                                               my_params, ONNX_REINIT_STRATEGY_ELEMENTWISE)};
//   ONNX_REINIT_PLUGIN("my.plugin", "1.0.0", my_strategies)
//
// The host calls fill_values (and target_moments) on ONE instance from
// several threads at once, across tensors and across chunks of a tensor: set
// members in the constructor, only read them afterwards (strategy.h).
//
// Part of the plugin SDK: standard library only.
#pragma once

#include <cstddef>
#include <cstring>
#include <exception>
#include <iterator>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string_view>
#include <type_traits>

#include "onnx_reinit/sdk/params.h"
#include "onnx_reinit/sdk/plugin_abi.h"
#include "onnx_reinit/sdk/rng.h"
#include "onnx_reinit/sdk/strategy.h"
#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit {
namespace plugin_detail {

inline void write_error(char* buffer, std::size_t size, std::string_view message) noexcept {
  if (buffer == nullptr || size == 0) return;
  std::size_t n = message.size() < size - 1 ? message.size() : size - 1;
  std::memcpy(buffer, message.data(), n);
  buffer[n] = '\0';
}

// Runs `body`, mapping exceptions to status codes and messages.
template <class Body>
int guarded(char* error, std::size_t error_size, Body&& body) noexcept {
  try {
    body();
    return ONNX_REINIT_OK;
  } catch (const std::invalid_argument& e) {
    write_error(error, error_size, e.what());
    return ONNX_REINIT_INVALID_ARGUMENT;
  } catch (const std::bad_alloc&) {
    write_error(error, error_size, "out of memory");
    return ONNX_REINIT_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    write_error(error, error_size, e.what());
    return ONNX_REINIT_ERROR;
  } catch (...) {
    write_error(error, error_size, "unknown exception");
    return ONNX_REINIT_ERROR;
  }
}

template <class T>
int create(const onnx_reinit_param_value* values, std::uint32_t count, void** instance, char* error,
           std::size_t error_size) noexcept {
  return guarded(error, error_size,
                 [&] { *instance = static_cast<strategy*>(new T(param_values(values, count))); });
}

inline void destroy(void* instance) noexcept {
  delete static_cast<strategy*>(instance);
}

inline int fill(const void* instance, const onnx_reinit_tensor_info* tensor,
                const onnx_reinit_rng* rng, const onnx_reinit_span* out, char* error,
                std::size_t error_size) noexcept {
  return guarded(error, error_size, [&] {
    const strategy& s = *static_cast<const strategy*>(instance);
    tensor_info info = from_c(*tensor);
    rng_stream stream(*rng);
    if (out->dtype == ONNX_REINIT_FLOAT32)
      s.fill(info, stream, out->first,
             std::span<float>(static_cast<float*>(out->data), out->count));
    else if (out->dtype == ONNX_REINIT_FLOAT64)
      s.fill(info, stream, out->first,
             std::span<double>(static_cast<double*>(out->data), out->count));
    else
      throw std::invalid_argument("fill buffer must be float32 or float64");
  });
}

// ONNX_REINIT_UNKNOWN when the strategy cannot say; an exception is an
// error with its message, which the host reports.
inline int target_moments(const void* instance, const onnx_reinit_tensor_info* tensor, double* mean,
                          double* std, char* error, std::size_t error_size) noexcept {
  bool known = false;
  int status = guarded(error, error_size, [&] {
    const strategy& s = *static_cast<const strategy*>(instance);
    std::optional<strategy::moments> m = s.target_moments(from_c(*tensor));
    if (!m) return;
    known = true;
    *mean = m->mean;
    *std = m->std;
  });
  if (status != ONNX_REINIT_OK) return status;
  return known ? ONNX_REINIT_OK : ONNX_REINIT_UNKNOWN;
}

// The plugin descriptor for a static array (or anything with std::data and
// std::size) of strategy entries.
template <class Strategies>
onnx_reinit_plugin_desc make_plugin_desc(const char* plugin_id, const char* plugin_version,
                                         const Strategies& strategies) {
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(*std::data(strategies))>,
                               onnx_reinit_strategy_desc>,
                "ONNX_REINIT_PLUGIN takes an array of onnx_reinit_strategy_desc");
  return {ONNX_REINIT_ABI_VERSION,
          sizeof(onnx_reinit_plugin_desc),
          plugin_id,
          plugin_version,
          std::data(strategies),
          static_cast<std::uint32_t>(std::size(strategies))};
}

}  // namespace plugin_detail

// The descriptor entry for strategy class T (constructible from
// param_values, derived from onnx_reinit::strategy).
template <class T, std::size_t N>
constexpr onnx_reinit_strategy_desc describe_strategy(const char* name, const char* summary,
                                                      const char* formula,
                                                      const onnx_reinit_param_schema (&params)[N],
                                                      std::uint32_t flags) {
  return {sizeof(onnx_reinit_strategy_desc),
          name,
          summary,
          formula,
          params,
          static_cast<std::uint32_t>(N),
          flags,
          &plugin_detail::create<T>,
          &plugin_detail::destroy,
          &plugin_detail::fill,
          &plugin_detail::target_moments};
}

// The same for a strategy without parameters.
template <class T>
constexpr onnx_reinit_strategy_desc describe_strategy(const char* name, const char* summary,
                                                      const char* formula, std::uint32_t flags) {
  return {sizeof(onnx_reinit_strategy_desc),
          name,
          summary,
          formula,
          nullptr,
          0,
          flags,
          &plugin_detail::create<T>,
          &plugin_detail::destroy,
          &plugin_detail::fill,
          &plugin_detail::target_moments};
}

}  // namespace onnx_reinit

// Defines the plugin's one exported symbol. `strategies` is a static array
// of onnx_reinit_strategy_desc (or a function call returning a span of them;
// it is evaluated once). plugin_abi.h declares the symbol, so a hand-written
// entry point of another type does not compile.
#define ONNX_REINIT_PLUGIN(plugin_id, plugin_version, strategies)                              \
  extern "C" ONNX_REINIT_EXPORT const onnx_reinit_plugin_desc* onnx_reinit_plugin_entry(       \
      void) noexcept {                                                                         \
    static const onnx_reinit_plugin_desc descriptor =                                          \
        ::onnx_reinit::plugin_detail::make_plugin_desc(plugin_id, plugin_version, strategies); \
    return &descriptor;                                                                        \
  }
