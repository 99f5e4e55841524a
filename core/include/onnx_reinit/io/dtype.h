// Data types: the one table of the ONNX data types with a fixed element
// size (bytes per element, the typed field that holds them when raw_data
// does not, their name), and a tensor's metadata read from its proto alone.
// The decoder and writer (tensor_data.h), the sampler, the runtime's batch
// and its .npy reader all read this table; a new data type is one entry.
//   const dtype_info* d = find_dtype(onnx::TensorProto::FLOAT16);
//   // d->size == 2, d->field == tensor_storage::int32_data, d->name == "float16"
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit {

// Which field holds a tensor's data.
enum class tensor_storage {
  raw_data,
  float_data,
  int32_data,
  int64_data,
  uint64_data,
  double_data,
  external,
};

// One ONNX data type with a fixed element size.
struct dtype_info {
  int onnx_type = 0;            // onnx::TensorProto::DataType
  std::string_view name;        // ONNX's name in lower case: "float", "int64", "float16", ...
  std::size_t size = 0;         // bytes per element
  tensor_storage field = {};    // typed field used when raw_data is not
  std::size_t per_element = 1;  // field entries per element (2 for complex)
  // The element type of the float types, which strategies fill.
  std::optional<element_type> float_type;
};

// Every data type the model I/O reads and writes; the others (string,
// undefined, the 4- and 8-bit floats and integers, ...) have no entry.
inline constexpr dtype_info dtype_table[] = {
    {onnx::TensorProto::FLOAT, "float", 4, tensor_storage::float_data, 1, element_type::float32},
    {onnx::TensorProto::UINT8, "uint8", 1, tensor_storage::int32_data, 1, std::nullopt},
    {onnx::TensorProto::INT8, "int8", 1, tensor_storage::int32_data, 1, std::nullopt},
    {onnx::TensorProto::UINT16, "uint16", 2, tensor_storage::int32_data, 1, std::nullopt},
    {onnx::TensorProto::INT16, "int16", 2, tensor_storage::int32_data, 1, std::nullopt},
    {onnx::TensorProto::INT32, "int32", 4, tensor_storage::int32_data, 1, std::nullopt},
    {onnx::TensorProto::INT64, "int64", 8, tensor_storage::int64_data, 1, std::nullopt},
    {onnx::TensorProto::BOOL, "bool", 1, tensor_storage::int32_data, 1, std::nullopt},
    {onnx::TensorProto::FLOAT16, "float16", 2, tensor_storage::int32_data, 1,
     element_type::float16},
    {onnx::TensorProto::DOUBLE, "double", 8, tensor_storage::double_data, 1, element_type::float64},
    {onnx::TensorProto::UINT32, "uint32", 4, tensor_storage::uint64_data, 1, std::nullopt},
    {onnx::TensorProto::UINT64, "uint64", 8, tensor_storage::uint64_data, 1, std::nullopt},
    {onnx::TensorProto::COMPLEX64, "complex64", 8, tensor_storage::float_data, 2, std::nullopt},
    {onnx::TensorProto::COMPLEX128, "complex128", 16, tensor_storage::double_data, 2, std::nullopt},
    {onnx::TensorProto::BFLOAT16, "bfloat16", 2, tensor_storage::int32_data, 1,
     element_type::bfloat16},
};

namespace dtype_detail {

// dtype_table's index by ONNX data type (-1: none), so that a lookup costs
// the same as a switch in the decoders' per-element loops.
inline constexpr int max_onnx_type = [] {
  int largest = 0;
  for (const dtype_info& d : dtype_table) largest = std::max(largest, d.onnx_type);
  return largest;
}();
inline constexpr auto table_index = [] {
  std::array<int, max_onnx_type + 1> index{};
  index.fill(-1);
  for (std::size_t i = 0; i < std::size(dtype_table); ++i)
    index[static_cast<std::size_t>(dtype_table[i].onnx_type)] = static_cast<int>(i);
  return index;
}();

}  // namespace dtype_detail

// The entry of an ONNX data type; null for a type without one.
constexpr const dtype_info* find_dtype(int onnx_type) noexcept {
  if (onnx_type < 0 || onnx_type > dtype_detail::max_onnx_type) return nullptr;
  const int i = dtype_detail::table_index[static_cast<std::size_t>(onnx_type)];
  return i < 0 ? nullptr : &dtype_table[i];
}

// The entry named `name` as ONNX names types, in either case ("float16",
// "FLOAT16"); null for a name without one.
constexpr const dtype_info* find_dtype(std::string_view name) noexcept {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  for (const dtype_info& d : dtype_table) {
    if (d.name.size() != name.size()) continue;
    bool same = true;
    for (std::size_t i = 0; same && i < name.size(); ++i) same = lower(name[i]) == d.name[i];
    if (same) return &d;
  }
  return nullptr;
}

static_assert(find_dtype(onnx::TensorProto::FLOAT16)->size == 2);
static_assert(find_dtype(onnx::TensorProto::STRING) == nullptr);
static_assert(find_dtype("BFLOAT16")->size == 2 && find_dtype("string") == nullptr);

// The entry of a float element type (never null).
constexpr const dtype_info& dtype_of(element_type type) noexcept {
  for (const dtype_info& d : dtype_table)
    if (d.float_type == type) return d;
  return dtype_table[0];
}

// ---------------------------------------------------------------------------
// Tensor metadata, from the proto alone.

// The element type of a float tensor, nullopt for any other data type.
std::optional<element_type> float_element_type(const onnx::TensorProto& tensor);
// Bytes per element of a float element type (4, 8, 2, 2).
std::size_t element_size(element_type type);
// Product of dims. Throws model_error (naming the tensor) for a negative dim
// or a product that overflows int64.
std::int64_t tensor_element_count(const onnx::TensorProto& tensor);
tensor_storage storage_of(const onnx::TensorProto& tensor);

}  // namespace onnx_reinit
