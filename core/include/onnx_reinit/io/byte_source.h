// A tensor's new bytes, produced on demand: what the sampler hands the
// writer, and what write_tensor_source (tensor_data.h) stores for save_model
// to stream. A source of bytes already in memory:
//   auto source = bytes_in_memory(std::vector<std::byte>(16));
//   std::vector<std::byte> out(source->size());
//   source->read(0, out);
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace onnx_reinit {

// A tensor's new little-endian element bytes, produced on demand. Sources
// are deterministic and free of side effects: reading a range twice gives
// the same bytes and changes nothing, so a source can be read for
// inspection, then again by the writer. The sampler's sources generate
// bytes from a strategy's random stream; bytes_in_memory holds them; a
// source copying another model's tensor would read its mapped file.
class byte_source {
 public:
  virtual ~byte_source() = default;
  virtual std::uint64_t size() const = 0;
  // Writes bytes [offset, offset + out.size()) into `out`. Callers read the
  // whole source, or windows at multiples of window() (the last shorter).
  // The writer reads the next window on a worker thread while it writes the
  // one before: the calls for one source come one at a time and in order,
  // not always from the same thread. May throw (e.g. strategy_error for a
  // non-finite value).
  virtual void read(std::uint64_t offset, std::span<std::byte> out) const = 0;
  // The bytes to read at a time when streaming: memory for external data
  // stays at one window per tensor written.
  virtual std::uint64_t window() const { return size(); }
  // One line for printing: where the bytes come from.
  virtual std::string describe() const = 0;
};

// A source holding `bytes`.
std::shared_ptr<const byte_source> bytes_in_memory(std::vector<std::byte> bytes);

}  // namespace onnx_reinit
