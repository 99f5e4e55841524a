// Configured strategies: the host side of a plugin's fill, turning status
// codes into strategy_error with the strategy, tensor and plugin message.
#include <fmt/format.h>

#include <span>
#include <string>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/sdk/strategy.h"
#include "registry_internal.h"

namespace onnx_reinit {
namespace {

const configured_strategy::state& checked(const configured_strategy::state* s) {
  if (s == nullptr) throw usage_error("use of an empty configured_strategy", "");
  return *s;
}

template <class T>
void fill_span(const configured_strategy::state& s, const tensor_info& tensor,
               const onnx_reinit_rng& rng, std::uint64_t first, std::span<T> out) {
  if (!s.elementwise && first != 0)
    throw usage_error(fmt::format("strategy '{}' is not elementwise and must fill tensor '{}' "
                                  "whole (first element {}, not 0)",
                                  s.name, tensor.name, first),
                      tensor.name);
  // The plugin calls through this table; one too small would send it past
  // the end.
  if (rng.api == nullptr || rng.api->struct_size < ONNX_REINIT_RNG_API_MIN_SIZE)
    throw usage_error(
        fmt::format("random stream for tensor '{}' has {} (at least {} bytes needed)", tensor.name,
                    rng.api == nullptr ? std::string("no API table")
                                       : fmt::format("a {}-byte API table", rng.api->struct_size),
                    ONNX_REINIT_RNG_API_MIN_SIZE),
        tensor.name);
  onnx_reinit_tensor_info c_tensor = to_c(tensor);
  onnx_reinit_span span{out.data(), first, out.size(), dtype_code<T>()};
  char message[1024] = "";
  int status = s.fill(s.instance, &c_tensor, &rng, &span, message, sizeof message);
  if (status == ONNX_REINIT_OK) return;
  message[sizeof message - 1] = '\0';
  throw strategy_error(
      fmt::format("strategy '{}' ({}) failed on tensor '{}': {}", s.name, s.plugin_id, tensor.name,
                  *message != '\0' ? message : "no message"),
      tensor.name);
}

}  // namespace

const std::string& configured_strategy::name() const {
  return checked(state_.get()).name;
}
bool configured_strategy::elementwise() const {
  return checked(state_.get()).elementwise;
}
const std::string& configured_strategy::plugin_id() const {
  return checked(state_.get()).plugin_id;
}
const std::string& configured_strategy::plugin_path() const {
  return checked(state_.get()).plugin_path;
}
const std::vector<resolved_param>& configured_strategy::params() const {
  return checked(state_.get()).params;
}

std::optional<configured_strategy::moments> configured_strategy::target_moments(
    const tensor_info& tensor) const {
  const state& s = checked(state_.get());
  if (s.target_moments == nullptr) return std::nullopt;
  const onnx_reinit_tensor_info c_tensor = to_c(tensor);
  moments m;
  char message[1024] = "";
  int status = s.target_moments(s.instance, &c_tensor, &m.mean, &m.std, message, sizeof message);
  if (status == ONNX_REINIT_OK) return m;
  if (status == ONNX_REINIT_UNKNOWN) return std::nullopt;
  message[sizeof message - 1] = '\0';
  throw strategy_error(
      fmt::format("strategy '{}' ({}) failed to give the target moments of tensor "
                  "'{}': {}",
                  s.name, s.plugin_id, tensor.name, *message != '\0' ? message : "no message"),
      tensor.name);
}

std::string configured_strategy::description() const {
  const state& s = checked(state_.get());
  if (s.params.empty()) return s.name;
  return fmt::format("{}({})", s.name, to_string(s.params));
}

void configured_strategy::fill(const tensor_info& tensor, const onnx_reinit_rng& rng,
                               std::uint64_t first, std::span<float> out) const {
  fill_span(checked(state_.get()), tensor, rng, first, out);
}

void configured_strategy::fill(const tensor_info& tensor, const onnx_reinit_rng& rng,
                               std::uint64_t first, std::span<double> out) const {
  fill_span(checked(state_.get()), tensor, rng, first, out);
}

}  // namespace onnx_reinit
