// Internals shared by the model I/O sources: read-only file mappings, the
// resolved external data of a loaded model and its pending writes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/model_io.h"

namespace onnx_reinit {

// A whole file mapped read-only; the mapping outlives the descriptor.
class mapped_file {
 public:
  // Refuses anything but a regular file (opened non-blocking, so a FIFO
  // cannot hang us). Throws io_error.
  static std::shared_ptr<const mapped_file> open(const std::filesystem::path& path);
  ~mapped_file();
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  mapped_file() = default;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// Where an external tensor's bytes live, checked at load.
struct external_ref {
  std::string location;        // as written in the model
  std::filesystem::path file;  // canonical, inside the model directory
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::shared_ptr<const mapped_file> map;
  std::span<const std::byte> bytes() const {
    return map->bytes().subspan(static_cast<std::size_t>(offset), static_cast<std::size_t>(length));
  }
};

// New data for an external tensor, written at save: bytes or a producer.
struct pending_data {
  std::vector<std::byte> bytes;
  tensor_data_producer producer;
  std::uint64_t size = 0;
};

// The maps are guarded by `mutex` so different tensors may be read and
// written from several threads; map nodes are stable, so references handed
// out stay valid while other keys are inserted.
struct loaded_model::state {
  std::mutex mutex;
  std::map<std::filesystem::path, std::shared_ptr<const mapped_file>> files;
  std::unordered_map<const onnx::TensorProto*, external_ref> externals;
  std::unordered_map<const onnx::TensorProto*, pending_data> pending;
};

struct model_io_access {
  static loaded_model::state& state(const loaded_model& m) { return *m.state_; }
  static void set_paths(loaded_model& m, std::filesystem::path path, std::filesystem::path dir) {
    m.path_ = std::move(path);
    m.directory_ = std::move(dir);
  }
};

// The checked external reference of `tensor` (resolved and cached on first
// use when the tensor was added after load). Throws external_data_error.
const external_ref& external_of(const loaded_model& model, const onnx::TensorProto& tensor);

// Validates and resolves every external tensor of the model.
void index_external_data(loaded_model& model);

// Calls fn(TensorProto&) for every tensor anywhere in the model: graph
// initializers, sparse initializers, node attributes, subgraphs, functions.
void for_each_tensor(onnx::ModelProto& model, const std::function<void(onnx::TensorProto&)>& fn);

// The dims of `tensor` as a span, for checked_product.
std::span<const std::int64_t> tensor_dims_span(const onnx::TensorProto& tensor);
// tensor_element_count with the error's location given: model_error for a
// negative dim or a product over int64.
std::int64_t checked_element_count(const onnx::TensorProto& tensor, const std::string& where);

// Bytes per element and byte size (dims x element size, overflow checked).
std::uint64_t tensor_byte_size(const onnx::TensorProto& tensor);

// Throws model_error unless the stored data (raw_data, typed field or
// external range) holds exactly dims x element size bytes.
void validate_tensor_data(const loaded_model& model, const onnx::TensorProto& tensor);

// fsync of a directory, so a rename in it is durable; best effort (some
// file systems refuse to open a directory for it).
void fsync_directory(const std::filesystem::path& dir);

}  // namespace onnx_reinit
