// Reading a model (docs/DESIGN.md section 10): parse the protobuf (its
// skeleton, payloads left in the mapped file), map external data read-only
// after checking every location is safe, and check dims, data lengths and
// size limits before anything is allocated from them.
//   load_options options;
//   options.max_tensor_bytes = load_options::no_size_limit;
//   loaded_model model = load_model("model.onnx", options);
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>

#include "onnx_reinit/io/loaded_model.h"

namespace onnx_reinit {

struct load_options {
  // Inline protobufs cannot exceed 2 GiB; larger files are refused with a
  // model_error pointing at external data.
  std::uint64_t max_model_bytes = (std::uint64_t{1} << 31) - 1;
  // Resource bounds for untrusted models (limit_error beyond them): the
  // byte size (dims x element size) of any one tensor, and the total byte
  // size of all float tensors (everything a run may rewrite and hold in
  // memory). no_size_limit disables a bound.
  static constexpr std::uint64_t no_size_limit = ~std::uint64_t{0};
  std::uint64_t max_tensor_bytes = std::uint64_t{16} << 30;  // 16 GiB
  std::uint64_t max_total_bytes = std::uint64_t{64} << 30;   // 64 GiB
  // Parse only the skeleton of a model file: every raw_data payload is found
  // by a scan of the protobuf wire format and left in the mapped file (its
  // proto field holds a one-byte placeholder; read it with tensor_bytes or
  // the decoders), so memory follows the model's structure, not its
  // weights, and saving splices the file (save_options::splice). Models the
  // scan does not handle (see skeleton.h) are parsed whole, as with false.
  // As for external tensors, the model keeps this by tensor address: a
  // tensor must not be removed from a loaded model's proto. whole_proto
  // gives a copy with every payload in place.
  bool skeleton = true;
};

// Parses `path` and validates every external data reference (location safe
// and inside the model directory, regular file, offset+length within it),
// mapping each data file read-only. Throws model_error, external_data_error
// or io_error, all naming the file (and tensor).
loaded_model load_model(const std::filesystem::path& path, const load_options& options = {});

// The same from bytes in memory (fuzzing, models received over a pipe):
// `name` is used in messages; external data locations resolve against
// `directory` (empty: every external reference is refused).
// Every load also checks, before anything is allocated from a tensor's
// dims, that each float tensor's stored data holds exactly dims x element
// size bytes (model_error), and applies the size limits (limit_error).
loaded_model load_model_from_bytes(std::span<const std::byte> bytes, const std::string& name,
                                   const std::filesystem::path& directory = {},
                                   const load_options& options = {});

}  // namespace onnx_reinit
