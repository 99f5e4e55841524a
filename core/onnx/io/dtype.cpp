// A tensor's metadata from its proto (dtype.h): element type and size,
// element count and byte size (overflow checked), storage field; all read
// from the one data type table.
#include <limits>

#include <fmt/format.h>

#include "io_internal.h"
#include "onnx_reinit/errors.h"

namespace onnx_reinit {

const dtype_info& require_dtype(const onnx::TensorProto& tensor) {
  const dtype_info* dtype = find_dtype(tensor.data_type());
  if (dtype == nullptr)
    throw model_error(fmt::format("tensor '{}' has data type {}, which has no fixed element size",
                                  tensor.name(), tensor.data_type()),
                      tensor.name());
  return *dtype;
}

std::optional<element_type> float_element_type(const onnx::TensorProto& tensor) {
  const dtype_info* dtype = find_dtype(tensor.data_type());
  return dtype != nullptr ? dtype->float_type : std::nullopt;
}

std::size_t element_size(element_type type) {
  return dtype_of(type).size;
}

std::span<const std::int64_t> tensor_dims_span(const onnx::TensorProto& tensor) {
  return {tensor.dims().data(), static_cast<std::size_t>(tensor.dims_size())};
}

std::int64_t checked_element_count(const onnx::TensorProto& tensor, const std::string& where) {
  for (std::int64_t d : tensor.dims())
    if (d < 0)
      throw model_error(fmt::format("tensor '{}' has a negative dimension ({})", tensor.name(), d),
                        where);
  const std::optional<std::int64_t> n = checked_product(tensor_dims_span(tensor));
  if (!n)
    throw model_error(
        fmt::format("tensor '{}': the product of its dims overflows int64", tensor.name()), where);
  return *n;
}

std::int64_t tensor_element_count(const onnx::TensorProto& tensor) {
  return checked_element_count(tensor, tensor.name());
}

std::uint64_t tensor_byte_size(const onnx::TensorProto& tensor) {
  const dtype_info& dtype = require_dtype(tensor);
  const std::uint64_t n = static_cast<std::uint64_t>(tensor_element_count(tensor));
  if (n > std::numeric_limits<std::uint64_t>::max() / 2 / dtype.size)
    throw model_error(fmt::format("tensor '{}': dims x element size overflows", tensor.name()),
                      tensor.name());
  return n * dtype.size;
}

tensor_storage storage_of(const onnx::TensorProto& tensor) {
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) return tensor_storage::external;
  if (tensor.has_raw_data()) return tensor_storage::raw_data;
  const dtype_info* dtype = find_dtype(tensor.data_type());
  return dtype != nullptr ? dtype->field : tensor_storage::raw_data;
}

}  // namespace onnx_reinit
