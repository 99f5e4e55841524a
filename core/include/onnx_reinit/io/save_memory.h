// Writing a model into memory (docs/DESIGN.md section 10): the bytes
// save_model would write to the model file, into a buffer the caller hands
// out once the size is known, for callers that want the model itself and
// no file (the Python module's reinit returning an onnx.ModelProto).
//   std::vector<std::byte> bytes;
//   save_model_to_memory(model, [&](std::size_t n) {
//     bytes.resize(n);
//     return std::span<std::byte>(bytes);
//   });
#pragma once

#include <cstddef>
#include <functional>
#include <span>

#include "onnx_reinit/io/loaded_model.h"
#include "onnx_reinit/io/save.h"

namespace onnx_reinit {

// Called once with the serialized model's size; returns a writable buffer
// of exactly that many bytes, which the writer fills (no other copy of the
// model is made). Its contents are unspecified if the save then throws.
using memory_sink = std::function<std::span<std::byte>(std::size_t size)>;

// Writes `model` into the buffer `sink` gives: byte for byte what
// save_model(model, OUT, options) writes to OUT, with the same checks
// (the ONNX checker, options.input_check_failure), figures and
// before_commit call. The staged files before_commit returns (report,
// plot) are each committed after the model is complete; there is no model
// file to publish them with. A model with external data (or
// options.external_data_name) needs files: usage_error, naming `name`.
// options.in_place and options.splice do not apply.
save_result save_model_to_memory(loaded_model& model, const memory_sink& sink,
                                 const save_options& options = {},
                                 const std::string& name = "<memory>");

}  // namespace onnx_reinit
