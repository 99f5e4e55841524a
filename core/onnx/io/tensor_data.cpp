// Tensor data access (tensor_data.h): reading values from any storage field
// and writing them back in the same field and dtype.
#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <span>
#include <type_traits>

#include <fmt/format.h>

#include "io_internal.h"
#include "onnx_reinit/errors.h"

namespace onnx_reinit {

// raw_data and external data are little-endian; on a little-endian host they
// are the in-memory representation, which keeps every path a memcpy.
static_assert(std::endian::native == std::endian::little, "model I/O assumes a little-endian host");

namespace {

element_type require_float(const onnx::TensorProto& tensor) {
  std::optional<element_type> type = float_element_type(tensor);
  if (!type)
    throw model_error(fmt::format("tensor '{}' is not a float tensor (data type {})", tensor.name(),
                                  tensor.data_type()),
                      tensor.name());
  return *type;
}

std::size_t typed_field_size(const onnx::TensorProto& t, tensor_storage field) {
  switch (field) {
    case tensor_storage::float_data:
      return static_cast<std::size_t>(t.float_data_size());
    case tensor_storage::int32_data:
      return static_cast<std::size_t>(t.int32_data_size());
    case tensor_storage::int64_data:
      return static_cast<std::size_t>(t.int64_data_size());
    case tensor_storage::uint64_data:
      return static_cast<std::size_t>(t.uint64_data_size());
    case tensor_storage::double_data:
      return static_cast<std::size_t>(t.double_data_size());
    default:
      return 0;
  }
}

const char* field_name(tensor_storage s) {
  switch (s) {
    case tensor_storage::raw_data:
      return "raw_data";
    case tensor_storage::float_data:
      return "float_data";
    case tensor_storage::int32_data:
      return "int32_data";
    case tensor_storage::int64_data:
      return "int64_data";
    case tensor_storage::uint64_data:
      return "uint64_data";
    case tensor_storage::double_data:
      return "double_data";
    case tensor_storage::external:
      return "external data";
  }
  return "?";
}

// Checks that the stored data has exactly the length dims call for.
void check_data_length(const loaded_model* model, const onnx::TensorProto& t) {
  const std::uint64_t bytes = tensor_byte_size(t);
  const tensor_storage storage = storage_of(t);
  if (storage == tensor_storage::external && model == nullptr)
    throw model_error(
        fmt::format("tensor '{}' has external data but no model to read it from", t.name()),
        t.name());
  if (storage == tensor_storage::external) {
    const external_ref& ref = external_of(*model, t);
    if (ref.length != bytes)
      throw model_error(fmt::format("tensor '{}': external data length {} disagrees with dims x "
                                    "element size = {} bytes",
                                    t.name(), ref.length, bytes),
                        t.name());
    return;
  }
  if (storage == tensor_storage::raw_data) {
    const external_ref* in_file = model != nullptr ? data_outside(*model, t) : nullptr;
    const std::uint64_t held = in_file != nullptr ? in_file->length : t.raw_data().size();
    if (held != bytes)
      throw model_error(fmt::format("tensor '{}': raw_data holds {} bytes but dims x element size "
                                    "= {} bytes",
                                    t.name(), held, bytes),
                        t.name());
    return;
  }
  const dtype_info& layout = require_dtype(t);
  const std::uint64_t entries = bytes / layout.size * layout.per_element;
  if (typed_field_size(t, storage) != entries)
    throw model_error(fmt::format("tensor '{}': {} holds {} values but dims call for {}", t.name(),
                                  field_name(storage), typed_field_size(t, storage), entries),
                      t.name());
}

const byte_source* pending_of(const loaded_model& model, const onnx::TensorProto& t) {
  auto& st = model_io_access::state(model);
  std::lock_guard lock(st.mutex);
  auto it = st.pending.find(&t);
  return it == st.pending.end() ? nullptr : it->second.get();
}

// Records that `t`'s values were set: its new data (external tensors) or
// none (inline tensors, whose data is in the proto).
void set_pending(loaded_model& model, const onnx::TensorProto& t,
                 std::shared_ptr<const byte_source> source) {
  auto& st = model_io_access::state(model);
  std::lock_guard lock(st.mutex);
  if (source)
    st.pending[&t] = std::move(source);
  else
    st.pending.erase(&t);
  st.written.insert(&t);
}

class memory_source final : public byte_source {
 public:
  explicit memory_source(std::vector<std::byte> bytes) : bytes_(std::move(bytes)) {}
  std::uint64_t size() const override { return bytes_.size(); }
  void read(std::uint64_t offset, std::span<std::byte> out) const override {
    std::memcpy(out.data(), bytes_.data() + offset, out.size());
  }
  std::string describe() const override { return fmt::format("{} bytes in memory", size()); }

 private:
  std::vector<std::byte> bytes_;
};

// Element i of a little-endian byte buffer of the given float type.
template <class T>
T decode(element_type type, const std::byte* p) {
  switch (type) {
    case element_type::float32: {
      float v;
      std::memcpy(&v, p, 4);
      return static_cast<T>(v);
    }
    case element_type::float64: {
      double v;
      std::memcpy(&v, p, 8);
      return static_cast<T>(v);
    }
    case element_type::float16:
    case element_type::bfloat16: {
      std::uint16_t bits;
      std::memcpy(&bits, p, 2);
      return static_cast<T>(type == element_type::float16 ? half_bits_to_float(bits)
                                                          : bfloat16_bits_to_float(bits));
    }
  }
  return T{};
}

// 16-bit types are rounded from float: a double is first rounded to float
// (the host fills 16-bit tensors in float, so this path is rare).
std::uint16_t to_16(element_type type, double v) {
  const float f = static_cast<float>(v);
  return type == element_type::float16 ? float_to_half_bits(f) : float_to_bfloat16_bits(f);
}

template <class T>
void encode(element_type type, T v, std::byte* p) {
  switch (type) {
    case element_type::float32: {
      const float f = static_cast<float>(v);
      std::memcpy(p, &f, 4);
      return;
    }
    case element_type::float64: {
      const double d = static_cast<double>(v);
      std::memcpy(p, &d, 8);
      return;
    }
    case element_type::float16:
    case element_type::bfloat16: {
      const std::uint16_t bits = to_16(type, static_cast<double>(v));
      std::memcpy(p, &bits, 2);
      return;
    }
  }
}

// Stores little-endian element bytes into the tensor's in-proto field.
void store_inline(onnx::TensorProto& t, element_type type, std::span<const std::byte> bytes) {
  const std::size_t size = element_size(type);
  const std::size_t n = bytes.size() / size;
  switch (storage_of(t)) {
    case tensor_storage::raw_data:
      t.mutable_raw_data()->assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      return;
    case tensor_storage::float_data:
      for (std::size_t i = 0; i < n; ++i)
        t.set_float_data(static_cast<int>(i), decode<float>(type, bytes.data() + i * size));
      return;
    case tensor_storage::double_data:
      for (std::size_t i = 0; i < n; ++i)
        t.set_double_data(static_cast<int>(i), decode<double>(type, bytes.data() + i * size));
      return;
    case tensor_storage::int32_data:
      // fp16/bf16 bits, zero-extended as the ONNX spec stores them.
      for (std::size_t i = 0; i < n; ++i) {
        std::uint16_t bits;
        std::memcpy(&bits, bytes.data() + i * size, 2);
        t.set_int32_data(static_cast<int>(i), static_cast<std::int32_t>(bits));
      }
      return;
    default:
      throw model_error(fmt::format("tensor '{}': cannot store float values in {}", t.name(),
                                    field_name(storage_of(t))),
                        t.name());
  }
}

// The integer types quantized weights and biases are stored in, which a
// requantization writes (int8, uint8, int32): their element size, 0 for
// any other type.
std::size_t quantized_element_size(const onnx::TensorProto& t) {
  switch (t.data_type()) {
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::INT32:
      return find_dtype(t.data_type())->size;
    default:
      return 0;
  }
}

// Tensors new bytes may be written to: float, or a quantized integer type.
void require_writable(const onnx::TensorProto& t) {
  if (!float_element_type(t) && quantized_element_size(t) == 0) require_float(t);
}

// Stores little-endian element bytes into the tensor's in-proto field,
// integer types included (raw_data, or int32_data holding each value).
void store_new_bytes(onnx::TensorProto& t, std::span<const std::byte> bytes) {
  if (const std::optional<element_type> type = float_element_type(t))
    return store_inline(t, *type, bytes);
  const std::size_t size = quantized_element_size(t);
  if (storage_of(t) == tensor_storage::raw_data) {
    t.mutable_raw_data()->assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return;
  }
  if (storage_of(t) != tensor_storage::int32_data)
    throw model_error(fmt::format("tensor '{}': cannot store integer values in {}", t.name(),
                                  field_name(storage_of(t))),
                      t.name());
  for (std::size_t i = 0; i < bytes.size() / size; ++i) {
    std::int32_t v = 0;
    if (t.data_type() == onnx::TensorProto::INT32)
      std::memcpy(&v, bytes.data() + 4 * i, 4);
    else if (t.data_type() == onnx::TensorProto::INT8)
      v = static_cast<std::int8_t>(bytes[i]);
    else
      v = static_cast<std::uint8_t>(bytes[i]);
    t.set_int32_data(static_cast<int>(i), v);
  }
}

}  // namespace

void validate_tensor_data(const loaded_model& model, const onnx::TensorProto& tensor) {
  check_data_length(&model, tensor);
}

namespace {

// tensor_bytes for a tensor that may have no model (inline data only; an
// external tensor then throws model_error).
tensor_bytes_view bytes_of(const loaded_model* model, const onnx::TensorProto& t) {
  const dtype_info& layout = require_dtype(t);
  if (const byte_source* p = model != nullptr ? pending_of(*model, t) : nullptr) {
    std::vector<std::byte> out(static_cast<std::size_t>(p->size()));
    p->read(0, out);
    return tensor_bytes_view(std::move(out));
  }
  check_data_length(model, t);
  if (const external_ref* ref = model != nullptr ? data_outside(*model, t) : nullptr)
    return tensor_bytes_view(ref->bytes());
  const tensor_storage storage = storage_of(t);
  if (storage == tensor_storage::raw_data)
    return tensor_bytes_view(std::as_bytes(std::span(t.raw_data().data(), t.raw_data().size())));
  // Typed field: convert to little-endian element bytes; a value wider than
  // the element (int32_data for int8, uint64_data for uint32) keeps its low
  // bytes, as the ONNX spec packs them.
  const std::size_t entries = typed_field_size(t, storage);
  const std::size_t entry_size = layout.size / layout.per_element;
  std::vector<std::byte> out(entries * entry_size);
  for (std::size_t i = 0; i < entries; ++i) {
    std::byte* dst = out.data() + i * entry_size;
    const int k = static_cast<int>(i);
    switch (storage) {
      case tensor_storage::float_data: {
        const float v = t.float_data(k);
        std::memcpy(dst, &v, entry_size);
        break;
      }
      case tensor_storage::double_data: {
        const double v = t.double_data(k);
        std::memcpy(dst, &v, entry_size);
        break;
      }
      case tensor_storage::int32_data: {
        const std::int32_t v = t.int32_data(k);
        std::memcpy(dst, &v, entry_size);
        break;
      }
      case tensor_storage::int64_data: {
        const std::int64_t v = t.int64_data(k);
        std::memcpy(dst, &v, entry_size);
        break;
      }
      case tensor_storage::uint64_data: {
        const std::uint64_t v = t.uint64_data(k);
        std::memcpy(dst, &v, entry_size);
        break;
      }
      default:
        break;
    }
  }
  return tensor_bytes_view(std::move(out));
}

// Elements of dims when there are at most `max_elements`; nullopt for more,
// for a negative dim or for a product over int64.
std::optional<std::size_t> bounded_element_count(const onnx::TensorProto& t,
                                                 std::size_t max_elements) {
  const std::optional<std::int64_t> n = checked_product(tensor_dims_span(t));
  if (!n || static_cast<std::uint64_t>(*n) > max_elements) return std::nullopt;
  return static_cast<std::size_t>(*n);
}

template <class I>
double integer_at(const std::byte* p) {
  I v;
  std::memcpy(&v, p, sizeof(I));
  return static_cast<double>(v);
}

// One element of a real numeric data type from little-endian bytes; float
// types go through decode(), the conversion read_tensor_values uses.
double decode_element(int data_type, const std::byte* p) {
  using tp = onnx::TensorProto;
  switch (data_type) {
    case tp::INT8:
      return integer_at<std::int8_t>(p);
    case tp::UINT8:
      return integer_at<std::uint8_t>(p);
    case tp::INT16:
      return integer_at<std::int16_t>(p);
    case tp::UINT16:
      return integer_at<std::uint16_t>(p);
    case tp::INT32:
      return integer_at<std::int32_t>(p);
    case tp::UINT32:
      return integer_at<std::uint32_t>(p);
    case tp::INT64:
      return integer_at<std::int64_t>(p);
    case tp::UINT64:
      return integer_at<std::uint64_t>(p);
    case tp::BOOL:
      return integer_at<std::uint8_t>(p) != 0 ? 1.0 : 0.0;
    default:
      return decode<double>(*find_dtype(data_type)->float_type, p);
  }
}

template <class S>
void decode_as(const std::byte* p, std::span<double> out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    S v;
    std::memcpy(&v, p + i * sizeof(S), sizeof(S));
    out[i] = static_cast<double>(v);
  }
}

// decode_element of out.size() consecutive elements. The common float types
// get a loop of their own (the compiler vectorises it): the analysis decodes
// prefixes of up to 2^18 elements of many weights, and one switch per
// element made that a sixth of a plan's time.
void decode_elements(int data_type, const std::byte* p, std::span<double> out) {
  using tp = onnx::TensorProto;
  if (data_type == tp::FLOAT) return decode_as<float>(p, out);
  if (data_type == tp::DOUBLE) return decode_as<double>(p, out);
  const std::size_t size = find_dtype(data_type)->size;
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = decode_element(data_type, p + i * size);
}

}  // namespace

std::shared_ptr<const byte_source> bytes_in_memory(std::vector<std::byte> bytes) {
  return std::make_shared<memory_source>(std::move(bytes));
}

tensor_bytes_view tensor_bytes(const loaded_model& model, const onnx::TensorProto& t) {
  return bytes_of(&model, t);
}

std::optional<std::vector<double>> decode_tensor_prefix(const onnx::TensorProto& tensor,
                                                        const loaded_model* model,
                                                        std::size_t max_elements) {
  const int type = tensor.data_type();
  // Strings, complex numbers and types without a fixed element size have no
  // single real value per element.
  const dtype_info* layout = find_dtype(type);
  if (!layout || layout->per_element != 1) return std::nullopt;
  // The whole count, overflow-checked, to validate the stored length.
  const std::optional<std::size_t> count =
      bounded_element_count(tensor, std::numeric_limits<std::size_t>::max() / layout->size);
  if (!count) return std::nullopt;
  try {
    // Checks the stored length against dims before anything is copied.
    const tensor_bytes_view view = bytes_of(model, tensor);
    const std::span<const std::byte> bytes = view.bytes();
    if (bytes.size() != *count * layout->size) return std::nullopt;
    std::vector<double> out(std::min(*count, max_elements));
    decode_elements(type, bytes.data(), out);
    // Read from a mapped file: a pending source's bytes are owned copies.
    if (const external_ref* ref = model != nullptr && pending_of(*model, tensor) == nullptr
                                      ? data_outside(*model, tensor)
                                      : nullptr)
      ref->map->release(ref->offset, out.size() * layout->size);
    return out;
  } catch (const error&) {
    // Malformed or unreadable: the caller treats the value as unknown.
    return std::nullopt;
  }
}

std::optional<std::vector<double>> decode_tensor_values(const onnx::TensorProto& tensor,
                                                        const loaded_model* model,
                                                        std::size_t max_elements) {
  // Refused on the dims alone, before any data is touched.
  if (!bounded_element_count(tensor, max_elements)) return std::nullopt;
  return decode_tensor_prefix(tensor, model, max_elements);
}

template <class T>
void read_tensor_values(const loaded_model& model, const onnx::TensorProto& t, std::uint64_t first,
                        std::span<T> out) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  const element_type type = require_float(t);
  const std::uint64_t count = static_cast<std::uint64_t>(tensor_element_count(t));
  if (first > count || out.size() > count - first)
    throw usage_error(fmt::format("tensor '{}': reading elements [{}, {}) of {}", t.name(), first,
                                  first + out.size(), count),
                      t.name());
  const tensor_storage storage = storage_of(t);
  const bool typed = pending_of(model, t) == nullptr && storage != tensor_storage::raw_data &&
                     storage != tensor_storage::external;
  if (!typed) {
    const tensor_bytes_view view = tensor_bytes(model, t);
    const std::size_t size = element_size(type);
    const std::byte* base = view.bytes().data() + first * size;
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = decode<T>(type, base + i * size);
    return;
  }
  check_data_length(&model, t);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int k = static_cast<int>(first + i);
    switch (storage) {
      case tensor_storage::float_data:
        out[i] = static_cast<T>(t.float_data(k));
        break;
      case tensor_storage::double_data:
        out[i] = static_cast<T>(t.double_data(k));
        break;
      case tensor_storage::int32_data: {
        const auto bits = static_cast<std::uint16_t>(t.int32_data(k) & 0xffff);
        out[i] = static_cast<T>(type == element_type::float16 ? half_bits_to_float(bits)
                                                              : bfloat16_bits_to_float(bits));
        break;
      }
      default:
        throw model_error(
            fmt::format("tensor '{}': float values stored in {}", t.name(), field_name(storage)),
            t.name());
    }
  }
}

void scan_tensor_values(const loaded_model& model, const onnx::TensorProto& tensor,
                        const std::function<void(std::span<const double>)>& visit) {
  const element_type type = require_float(tensor);
  if (pending_of(model, tensor) == nullptr) check_data_length(&model, tensor);
  const auto count = static_cast<std::uint64_t>(tensor_element_count(tensor));
  const external_ref* ref =
      pending_of(model, tensor) == nullptr ? data_outside(model, tensor) : nullptr;
  std::vector<double> block(static_cast<std::size_t>(std::min<std::uint64_t>(count, 1 << 16)));
  for (std::uint64_t first = 0; first < count; first += block.size()) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), count - first));
    const std::span<double> values(block.data(), n);
    read_tensor_values<double>(model, tensor, first, values);
    // Read once: the mapped pages go, so the resident set does not grow
    // with the tensor.
    if (ref != nullptr)
      ref->map->release(ref->offset + first * element_size(type), n * element_size(type));
    visit(values);
  }
}

template <class T>
std::vector<T> read_tensor_values(const loaded_model& model, const onnx::TensorProto& tensor) {
  require_float(tensor);
  // The element count comes from untrusted dims: check it against the data
  // actually stored before allocating from it.
  if (pending_of(model, tensor) == nullptr) check_data_length(&model, tensor);
  std::vector<T> out(static_cast<std::size_t>(tensor_element_count(tensor)));
  read_tensor_values<T>(model, tensor, 0, std::span<T>(out));
  return out;
}

void write_tensor_bytes(loaded_model& model, onnx::TensorProto& t,
                        std::span<const std::byte> bytes) {
  require_writable(t);
  const std::uint64_t expected = tensor_byte_size(t);
  if (bytes.size() != expected)
    throw usage_error(
        fmt::format("tensor '{}': {} new bytes given, {} needed", t.name(), bytes.size(), expected),
        t.name());
  // The stored form must be consistent before it is overwritten in place.
  check_data_length(&model, t);
  if (data_outside(model, t) != nullptr) {
    set_pending(model, t, bytes_in_memory(std::vector<std::byte>(bytes.begin(), bytes.end())));
    return;
  }
  set_pending(model, t, nullptr);
  store_new_bytes(t, bytes);
}

void fill_tensor_bytes(loaded_model& model, onnx::TensorProto& t,
                       const std::function<void(std::span<std::byte>)>& fill) {
  require_writable(t);
  const std::uint64_t expected = tensor_byte_size(t);
  check_data_length(&model, t);
  if (storage_of(t) == tensor_storage::external)
    throw usage_error(fmt::format("tensor '{}' is external: use write_tensor_source", t.name()),
                      t.name());
  if (data_outside(model, t) != nullptr) {  // a payload left in the model file
    std::vector<std::byte> bytes(static_cast<std::size_t>(expected));
    fill(bytes);
    set_pending(model, t, bytes_in_memory(std::move(bytes)));
    return;
  }
  if (storage_of(t) == tensor_storage::raw_data) {
    set_pending(model, t, nullptr);
    std::string& raw = *t.mutable_raw_data();
    raw.resize(static_cast<std::size_t>(expected));
    fill(std::span<std::byte>(reinterpret_cast<std::byte*>(raw.data()), raw.size()));
    return;
  }
  auto buffer = std::make_unique_for_overwrite<std::byte[]>(static_cast<std::size_t>(expected));
  const std::span<std::byte> bytes(buffer.get(), static_cast<std::size_t>(expected));
  fill(bytes);
  set_pending(model, t, nullptr);
  store_new_bytes(t, bytes);
}

void write_tensor_source(loaded_model& model, onnx::TensorProto& t,
                         std::shared_ptr<const byte_source> source) {
  require_writable(t);
  const std::uint64_t expected = tensor_byte_size(t);
  if (source == nullptr || source->size() != expected)
    throw usage_error(fmt::format("tensor '{}': a source of {} bytes given, {} needed", t.name(),
                                  source == nullptr ? 0 : source->size(), expected),
                      t.name());
  check_data_length(&model, t);
  if (data_outside(model, t) != nullptr) {
    set_pending(model, t, std::move(source));
    return;
  }
  std::vector<std::byte> bytes(static_cast<std::size_t>(expected));
  source->read(0, bytes);
  write_tensor_bytes(model, t, bytes);
}

template <class T>
void write_tensor_values(loaded_model& model, onnx::TensorProto& t, std::span<const T> values) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  const element_type type = require_float(t);
  const std::uint64_t count = static_cast<std::uint64_t>(tensor_element_count(t));
  if (values.size() != count)
    throw usage_error(
        fmt::format("tensor '{}': {} new values given, {} needed", t.name(), values.size(), count),
        t.name());
  const std::size_t size = element_size(type);
  std::vector<std::byte> bytes(values.size() * size);
  for (std::size_t i = 0; i < values.size(); ++i) encode(type, values[i], bytes.data() + i * size);
  write_tensor_bytes(model, t, bytes);
}

template void read_tensor_values<float>(const loaded_model&, const onnx::TensorProto&,
                                        std::uint64_t, std::span<float>);
template void read_tensor_values<double>(const loaded_model&, const onnx::TensorProto&,
                                         std::uint64_t, std::span<double>);
template std::vector<float> read_tensor_values<float>(const loaded_model&,
                                                      const onnx::TensorProto&);
template std::vector<double> read_tensor_values<double>(const loaded_model&,
                                                        const onnx::TensorProto&);
template void write_tensor_values<float>(loaded_model&, onnx::TensorProto&, std::span<const float>);
template void write_tensor_values<double>(loaded_model&, onnx::TensorProto&,
                                          std::span<const double>);

}  // namespace onnx_reinit
