// Tensor data access: a tensor's bytes and values whatever its storage form
// (raw_data, typed fields, external data, payloads left in the model file,
// new bytes pending until save), and writing new values back in the same
// dtype, dims and storage field.
//   std::vector<float> w = read_tensor_values<float>(model, tensor);
//   for (float& v : w) v *= 0.5f;
//   write_tensor_values<float>(model, tensor, w);
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/io/byte_source.h"
#include "onnx_reinit/io/loaded_model.h"

namespace onnx_reinit {

// A read view of one tensor's data as little-endian element bytes: a view
// into the proto or a mapped file when possible, otherwise an owned copy (so
// keep the view alive while using bytes()). Views into the model are valid
// until the tensor is written or the model is destroyed.
class tensor_bytes_view {
 public:
  tensor_bytes_view() = default;
  explicit tensor_bytes_view(std::span<const std::byte> view) : view_(view) {}
  explicit tensor_bytes_view(std::vector<std::byte> owned) : owned_(std::move(owned)), own_(true) {}
  std::span<const std::byte> bytes() const {
    return own_ ? std::span<const std::byte>(owned_) : view_;
  }
  std::size_t size() const { return bytes().size(); }

 private:
  std::span<const std::byte> view_;
  std::vector<std::byte> owned_;
  bool own_ = false;
};

// Tensor data. `tensor` must belong to `model` (external data and pending
// writes are looked up through it). Reads see earlier writes; reading a
// pending source generates its bytes and changes nothing. Different
// tensors may be read and written from several threads at once; save_model
// must not run concurrently with them.

// The tensor's data as little-endian element bytes, whatever the storage
// (typed fields are converted), for any fixed-size data type; for byte
// identity checks. Validates the length against dims (model_error).
tensor_bytes_view tensor_bytes(const loaded_model& model, const onnx::TensorProto& tensor);

// Values of any real numeric tensor (float32/float64/float16/bfloat16,
// int8..int64, uint8..uint64, bool) as doubles, whatever the storage: raw_data,
// the typed fields (float_data, double_data, int32_data also holding 8/16-bit
// and 16-bit float bits, int64_data, uint64_data), or external data read
// through `model` (pending writes included). This is the one decoder the
// analysis reads constants through, so the storage form never changes a plan.
// `tensor` need not belong to `model` unless it is external. nullopt, never
// an exception, when the tensor has more than `max_elements` elements (checked
// on the dims, before anything is allocated), a negative or overflowing dim,
// a string/complex/unknown type, data that disagrees with its dims, or
// external data without a model or that cannot be read.
std::optional<std::vector<double>> decode_tensor_values(const onnx::TensorProto& tensor,
                                                        const loaded_model* model,
                                                        std::size_t max_elements);
// The same for the first min(element count, max_elements) values in
// row-major order, for checks that can judge a large tensor by its first
// rows. The stored length is still checked against the whole dims.
std::optional<std::vector<double>> decode_tensor_prefix(const onnx::TensorProto& tensor,
                                                        const loaded_model* model,
                                                        std::size_t max_elements);

// Values of a float tensor (float32/float16/bfloat16/float64) converted to
// T (float or double); `first` is the element index of out[0].
template <class T>
void read_tensor_values(const loaded_model& model, const onnx::TensorProto& tensor,
                        std::uint64_t first, std::span<T> out);
template <class T>
std::vector<T> read_tensor_values(const loaded_model& model, const onnx::TensorProto& tensor);

// The values of a float tensor, whatever its size, passed to `visit` in
// blocks of at most 65536, in order; the pages of a mapped file are let go
// after each block (the moment pass reads kept weights of any size).
void scan_tensor_values(const loaded_model& model, const onnx::TensorProto& tensor,
                        const std::function<void(std::span<const double>)>& visit);

// Sets all values of a float tensor, keeping dtype, dims and storage field;
// rounds to nearest-even for 16-bit types. values.size() must equal the
// element count. External tensors keep the new bytes pending until save.
template <class T>
void write_tensor_values(loaded_model& model, onnx::TensorProto& tensor, std::span<const T> values);
// The same with the new little-endian element bytes.
void write_tensor_bytes(loaded_model& model, onnx::TensorProto& tensor,
                        std::span<const std::byte> bytes);
// Lets `fill` write an inline tensor's new little-endian bytes straight
// into its storage when that is raw_data in the proto (no buffer, no copy);
// other fields and payloads left in the model file get a buffer stored like
// write_tensor_bytes. External tensors: use write_tensor_source. If `fill` throws, the tensor's
// values are undefined.
void fill_tensor_bytes(loaded_model& model, onnx::TensorProto& tensor,
                       const std::function<void(std::span<std::byte>)>& fill);
// The same from a source: read window by window at save for tensors whose
// data is outside the proto (data_outside_proto; so a large tensor need
// never be whole in memory), at once for the others. Throws usage_error unless the source's size is
// the tensor's byte size.
void write_tensor_source(loaded_model& model, onnx::TensorProto& tensor,
                         std::shared_ptr<const byte_source> source);

extern template void read_tensor_values<float>(const loaded_model&, const onnx::TensorProto&,
                                               std::uint64_t, std::span<float>);
extern template void read_tensor_values<double>(const loaded_model&, const onnx::TensorProto&,
                                                std::uint64_t, std::span<double>);
extern template std::vector<float> read_tensor_values<float>(const loaded_model&,
                                                             const onnx::TensorProto&);
extern template std::vector<double> read_tensor_values<double>(const loaded_model&,
                                                               const onnx::TensorProto&);
extern template void write_tensor_values<float>(loaded_model&, onnx::TensorProto&,
                                                std::span<const float>);
extern template void write_tensor_values<double>(loaded_model&, onnx::TensorProto&,
                                                 std::span<const double>);

}  // namespace onnx_reinit
