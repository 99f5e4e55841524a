// Parallel loops in a strategy's fill, on the host's threads: the host
// offers its loop through the API table that comes with every random
// stream (plugin_abi.h, onnx_reinit_rng_api::parallel_for), so a plugin's
// loop shares the run's threads (as many as --threads allows) with the
// host's own loops instead of starting threads of its own. Without it (an
// older host) the loop runs in order on the calling thread. Standard
// library only, like the rest of the SDK.
//   const host_threads threads(rng);
//   threads.parallel_for(blocks, [&](std::uint64_t b) { fill_block(b); });
// Call b must write only its own data and its values must not depend on
// which thread runs it, so the bytes never depend on the thread count.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>

#include "onnx_reinit/sdk/plugin_abi.h"
#include "onnx_reinit/sdk/rng.h"

namespace onnx_reinit {

namespace sdk_detail {

// One loop's body behind the C boundary: an exception stops the calls not
// yet started and is rethrown in the caller (never across the boundary).
template <class Body>
struct parallel_call {
  explicit parallel_call(const Body& b) : body(b) {}
  const Body& body;
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // written once, by the call that set `failed`

  static void run(void* context, std::uint64_t index) noexcept {
    auto& call = *static_cast<parallel_call*>(context);
    if (call.failed.load(std::memory_order_relaxed)) return;
    try {
      call.body(index);
    } catch (...) {
      if (!call.failed.exchange(true)) call.error = std::current_exception();
    }
  }
};

}  // namespace sdk_detail

// The host's threads, as a fill receives them with its random stream.
// Cheap to copy; a default-constructed one runs loops in order.
class host_threads {
 public:
  host_threads() = default;
  explicit host_threads(const rng_stream& rng) {
    const onnx_reinit_rng_api* api = rng.c_state().api;
    constexpr std::size_t needed =
        offsetof(onnx_reinit_rng_api, parallel_for) + sizeof(api->parallel_for);
    if (api != nullptr && api->struct_size >= needed) run_ = api->parallel_for;
  }

  // body(i) for every i in [0, count); returns when all have run. The
  // first exception a call throws is rethrown here.
  template <class Body>
  void parallel_for(std::uint64_t count, const Body& body) const {
    if (run_ == nullptr) {
      for (std::uint64_t i = 0; i < count; ++i) body(i);
      return;
    }
    sdk_detail::parallel_call<Body> call(body);
    run_(count, &sdk_detail::parallel_call<Body>::run, &call);
    if (call.error) std::rethrow_exception(call.error);
  }

 private:
  void (*run_)(std::uint64_t, void (*)(void*, std::uint64_t), void*) = nullptr;
};

}  // namespace onnx_reinit
