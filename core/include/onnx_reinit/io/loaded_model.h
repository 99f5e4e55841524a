// A loaded model: the proto, where it came from, its mapped external data
// and the new bytes of tensors waiting to be written at save. Made by
// load_model (load.h) or from a proto in memory:
//   loaded_model m = loaded_model::from_proto(std::move(proto));
//   for (const model_tensor& t : collect_model_tensors(m.proto())) ...
#pragma once

#include <filesystem>
#include <memory>

#include <onnx/onnx_pb.h>

namespace onnx_reinit {

class loaded_model {
 public:
  loaded_model();
  ~loaded_model();
  loaded_model(loaded_model&&) noexcept;
  loaded_model& operator=(loaded_model&&) noexcept;
  loaded_model(const loaded_model&) = delete;
  loaded_model& operator=(const loaded_model&) = delete;

  onnx::ModelProto& proto() { return proto_; }
  const onnx::ModelProto& proto() const { return proto_; }
  // Absolute path of the model file; empty for a model built in memory.
  const std::filesystem::path& path() const { return path_; }
  // Canonical directory external data locations are resolved against.
  const std::filesystem::path& directory() const { return directory_; }
  bool has_external_data() const;

  // Wraps an in-memory model (tests, tools); external data would resolve
  // against `directory`.
  static loaded_model from_proto(onnx::ModelProto proto, std::filesystem::path directory = {});

 private:
  friend struct model_io_access;
  onnx::ModelProto proto_;
  std::filesystem::path path_;
  std::filesystem::path directory_;
  struct state;
  std::unique_ptr<state> state_;
};

// True when the tensor's data is not held in the proto: external data, or a
// raw_data payload left in the model file (load_options::skeleton). New
// values for such a tensor are best given as a source (write_tensor_source),
// streamed into place at save.
bool data_outside_proto(const loaded_model& model, const onnx::TensorProto& tensor);

// A copy of the model's proto with every payload left in the model file
// set back in (new values included), for a consumer that needs the whole
// model in memory (ONNX Runtime). External data stays external.
onnx::ModelProto whole_proto(const loaded_model& model);

}  // namespace onnx_reinit
