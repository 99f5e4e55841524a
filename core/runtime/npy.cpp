// NumPy .npy files (format versions 1.0, 2.0 and 3.0) as a batch input:
// the header's dict literal gives the dtype, the memory order and the shape;
// the data is re-encoded as little-endian C-order bytes for ONNX Runtime.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>

#include "onnx_reinit/io/dtype.h"
#include "onnx_reinit/sdk/tensor_info.h"
#include "runtime_internal.h"

namespace onnx_reinit::detail {

namespace {

using tp = onnx::TensorProto;

// The descr's kind and size ("f4", "i8", "b1", ...) as an ONNX type (whose
// element size, from the data type table, is the code's); null for the
// kinds ONNX inputs cannot hold (complex, strings, objects, ...).
const dtype_info* npy_dtype_of(const std::string& code) {
  static const std::pair<const char*, int> known[] = {
      {"f2", tp::FLOAT16}, {"f4", tp::FLOAT},  {"f8", tp::DOUBLE}, {"i1", tp::INT8},
      {"i2", tp::INT16},   {"i4", tp::INT32},  {"i8", tp::INT64},  {"u1", tp::UINT8},
      {"u2", tp::UINT16},  {"u4", tp::UINT32}, {"u8", tp::UINT64}, {"b1", tp::BOOL}};
  for (const auto& [name, type] : known)
    if (code == name) return find_dtype(type);
  return nullptr;
}

// The value of `key` in the header's dict literal, as written (a quoted
// string, True/False or a tuple); throws when absent.
std::string header_value(const std::string& header, const std::string& key,
                         const std::filesystem::path& file) {
  const std::string quoted[] = {"'" + key + "'", "\"" + key + "\""};
  std::size_t at = std::string::npos;
  for (const auto& q : quoted)
    if (at == std::string::npos && (at = header.find(q)) != std::string::npos) at += q.size();
  if (at == std::string::npos) throw usage_error(fmt::format("npy header without '{}'", key), file);
  at = header.find(':', at);
  if (at == std::string::npos) throw usage_error("malformed npy header", file);
  ++at;
  while (at < header.size() && std::isspace(static_cast<unsigned char>(header[at])) != 0) ++at;
  if (at >= header.size()) throw usage_error("malformed npy header", file);
  const char open = header[at];
  std::size_t end = std::string::npos;
  if (open == '\'' || open == '"') {
    end = header.find(open, at + 1);
    if (end != std::string::npos) return header.substr(at + 1, end - at - 1);
  } else if (open == '(') {
    end = header.find(')', at);
    if (end != std::string::npos) return header.substr(at, end - at + 1);
  } else {
    end = header.find_first_of(",}", at);
    if (end != std::string::npos) {
      std::string v = header.substr(at, end - at);
      while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back())) != 0) v.pop_back();
      return v;
    }
  }
  throw usage_error(fmt::format("malformed npy header at '{}'", key), file);
}

// "(2, 3)", "(5,)", "()" -> dims.
std::vector<std::int64_t> shape_of(const std::string& tuple, const std::filesystem::path& file) {
  std::vector<std::int64_t> dims;
  std::string inner = tuple.substr(1, tuple.size() - 2);
  std::size_t pos = 0;
  while (pos < inner.size()) {
    std::size_t end = inner.find(',', pos);
    std::string part = inner.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    part.erase(std::remove_if(part.begin(), part.end(),
                              [](unsigned char c) { return std::isspace(c) != 0; }),
               part.end());
    if (!part.empty()) {
      std::size_t used = 0;
      std::int64_t v = -1;
      try {
        v = std::stoll(part, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != part.size() || v < 0)
        throw usage_error(fmt::format("bad shape {} in the npy header", tuple), file);
      dims.push_back(v);
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return dims;
}

// Fortran (column-major) element order to C (row-major) order.
std::vector<std::byte> to_c_order(const std::vector<std::byte>& data,
                                  const std::vector<std::int64_t>& shape, std::size_t size) {
  std::vector<std::byte> out(data.size());
  const std::size_t n = data.size() / size;
  std::vector<std::int64_t> index(shape.size(), 0);
  for (std::size_t c = 0; c < n; ++c) {  // c: C-order position; index: its coordinates
    std::size_t f = 0, stride = 1;
    for (std::size_t d = 0; d < shape.size(); ++d) {
      f += static_cast<std::size_t>(index[d]) * stride;
      stride *= static_cast<std::size_t>(shape[d]);
    }
    std::memcpy(out.data() + c * size, data.data() + f * size, size);
    for (std::size_t d = shape.size(); d-- > 0;) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

}  // namespace

npy_array read_npy(const std::filesystem::path& file) {
  std::ifstream f(file, std::ios::binary);
  if (!f) throw usage_error("cannot open the npy file", file);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  static const char magic[] = "\x93NUMPY";
  if (bytes.size() < 10 || bytes.compare(0, 6, magic, 6) != 0)
    throw usage_error("not a NumPy .npy file (no \\x93NUMPY magic)", file);
  const int major = static_cast<unsigned char>(bytes[6]);
  if (major < 1 || major > 3)
    throw usage_error(fmt::format("npy format version {} is not supported (1 to 3 are)", major),
                      file);
  const std::size_t len_size = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + len_size) throw usage_error("truncated npy header", file);
  std::size_t header_len = 0;
  for (std::size_t i = 0; i < len_size; ++i)
    header_len |= static_cast<std::size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
  const std::size_t data_at = 8 + len_size + header_len;
  if (bytes.size() < data_at) throw usage_error("truncated npy header", file);
  const std::string header = bytes.substr(8 + len_size, header_len);

  const std::string descr = header_value(header, "descr", file);
  const std::string fortran = header_value(header, "fortran_order", file);
  const std::string shape_text = header_value(header, "shape", file);
  if (fortran != "True" && fortran != "False")
    throw usage_error(fmt::format("bad fortran_order '{}' in the npy header", fortran), file);
  if (shape_text.empty() || shape_text.front() != '(')
    throw usage_error(fmt::format("bad shape '{}' in the npy header", shape_text), file);

  npy_array a;
  a.shape = shape_of(shape_text, file);
  const char order = descr.empty() ? '?' : descr.front();
  const dtype_info* const found = npy_dtype_of(descr.size() > 1 ? descr.substr(1) : "");
  if ((order != '<' && order != '>' && order != '|' && order != '=') || found == nullptr)
    throw usage_error(fmt::format("npy dtype '{}' is not supported: use one of float16/32/64, "
                                  "int8/16/32/64, uint8/16/32/64 or bool",
                                  descr),
                      file);
  const dtype_info& dtype = *found;
  a.elem_type = dtype.onnx_type;
  a.dtype = descr;

  // The header is untrusted: its dims' product, and that times the element
  // size, must not wrap before the data's length is compared with them.
  const std::optional<std::int64_t> count = checked_product(a.shape);
  if (!count ||
      static_cast<std::uint64_t>(*count) > std::numeric_limits<std::size_t>::max() / dtype.size)
    throw usage_error(fmt::format("npy shape {} of '{}' is too large: its byte size overflows",
                                  shape_text, descr),
                      file);
  const std::size_t n = static_cast<std::size_t>(*count);
  if (bytes.size() - data_at != n * dtype.size)
    throw usage_error(fmt::format("npy data holds {} bytes, the header's shape {} of '{}' needs {}",
                                  bytes.size() - data_at, shape_text, descr, n * dtype.size),
                      file);
  a.bytes.resize(n * dtype.size);
  std::memcpy(a.bytes.data(), bytes.data() + data_at, a.bytes.size());
  if (order == '>' && dtype.size > 1)  // big-endian: swap each element to little-endian
    for (std::size_t i = 0; i < n; ++i)
      std::reverse(a.bytes.begin() + static_cast<std::ptrdiff_t>(i * dtype.size),
                   a.bytes.begin() + static_cast<std::ptrdiff_t>((i + 1) * dtype.size));
  if (fortran == "True" && a.shape.size() > 1) a.bytes = to_c_order(a.bytes, a.shape, dtype.size);
  return a;
}

}  // namespace onnx_reinit::detail
