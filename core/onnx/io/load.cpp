// Loading a model: the protobuf parsed from a mapped file (its skeleton,
// payloads left in the mapping, when the scan of skeleton.h accepts it),
// then every external location, dim, data length and size limit checked
// before anything is read or allocated.
#include <limits>
#include <utility>

#include <fmt/format.h>
#include <fmt/std.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "io_internal.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_tensors.h"

namespace onnx_reinit {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// load_model

namespace {

std::string size_text(std::uint64_t bytes) {
  if (bytes >= (std::uint64_t{1} << 30))
    return fmt::format("{:.1f} GiB", static_cast<double>(bytes) / (1 << 30));
  if (bytes >= (std::uint64_t{1} << 20))
    return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  return fmt::format("{} bytes", bytes);
}

// Size limits and data lengths, checked once at load so that nothing later
// (reading, sampling, saving) allocates from a size the file does not back.
void validate_loaded(loaded_model& model, const std::string& name, const load_options& options) {
  // Dims of every tensor, whatever its type: no negative dim, and the
  // product of the non-zero dims fits int64, so every partial product taken
  // later (element counts, matrix views, fans) is defined too.
  for_each_tensor(model.proto(), [&](onnx::TensorProto& t) { checked_element_count(t, name); });
  std::uint64_t total = 0;
  for (const const_model_tensor& mt : collect_model_tensors(std::as_const(model).proto())) {
    const onnx::TensorProto& t = *mt.proto;
    if (!float_element_type(t)) continue;
    const std::uint64_t bytes = tensor_byte_size(t);  // model_error on bad dims
    if (bytes > options.max_tensor_bytes)
      throw limit_error(
          fmt::format("tensor '{}' is {}, over the per-tensor limit of "
                      "{} (raise it with --max-tensor-bytes, or --no-size-limit)",
                      t.name(), size_text(bytes), size_text(options.max_tensor_bytes)),
          name);
    total += bytes;  // each term <= 2^63, and we stop before the sum can wrap
    if (total > options.max_total_bytes)
      throw limit_error(fmt::format("the model's float tensors exceed the total limit of {} (at "
                                    "tensor '{}'; raise it with --max-total-bytes, or "
                                    "--no-size-limit)",
                                    size_text(options.max_total_bytes), t.name()),
                        name);
    validate_tensor_data(model, t);
  }
}

void check_model_size(std::span<const std::byte> bytes, const std::string& name,
                      const std::string& where, const load_options& options) {
  if (bytes.size() > options.max_model_bytes)
    throw model_error(fmt::format("model file {} is {} bytes; a protobuf model cannot exceed 2 GiB "
                                  "(store large tensors as external data)",
                                  name, bytes.size()),
                      where);
}

// Parses a whole protobuf from bytes; the name is for messages only.
void parse_model(loaded_model& model, std::span<const std::byte> bytes, const std::string& name,
                 const std::string& where, const load_options& options) {
  check_model_size(bytes, name, where, options);
  google::protobuf::io::ArrayInputStream array(bytes.data(), static_cast<int>(bytes.size()));
  google::protobuf::io::CodedInputStream coded(&array);
  // Protobuf's default 64 MiB cap is for untrusted network messages; a
  // model may use the format's full 2 GiB.
  coded.SetTotalBytesLimit(std::numeric_limits<int>::max());
  if (!model.proto().ParseFromCodedStream(&coded) || !coded.ConsumedEntireMessage())
    throw model_error(
        fmt::format("{} is not a valid ONNX model (corrupt or truncated protobuf)", name), where);
  if (!model.proto().has_graph())
    throw model_error(fmt::format("{} is not a valid ONNX model (no graph)", name), where);
}

}  // namespace

std::string serialized(const onnx::ModelProto& proto) {
  std::string bytes;
  proto.SerializeToString(&bytes);
  return bytes;
}

namespace {

// Parses the skeleton of `file` (skeleton.h) and records where each
// payload is. False, with the model left empty, when the scan declines the
// file or its paths do not name the tensors the parser made (then the
// caller parses the whole file, which also reports any defect).
bool parse_skeleton(loaded_model& model, const std::shared_ptr<const mapped_file>& file,
                    const std::string& name, const load_options& options) {
  std::optional<model_skeleton> skeleton = scan_skeleton(file->bytes());
  if (!skeleton) return false;
  auto& st = model_io_access::state(model);
  auto decline = [&] {
    model.proto().Clear();
    st.detached.clear();
    st.detached_order.clear();
    return false;
  };
  try {
    parse_model(model, std::as_bytes(std::span(skeleton->bytes)), name, name, options);
  } catch (const model_error&) {
    return decline();
  }
  for (const detached_payload& payload : skeleton->payloads) {
    onnx::TensorProto* t = resolve_payload(model.proto(), payload);
    // A payload of a tensor also marked external is left to the whole parse
    // (and the checker): which one holds the data is not ours to decide.
    if (t == nullptr || t->data_location() == onnx::TensorProto::EXTERNAL) return decline();
    external_ref ref{"", model.path(), payload.offset, payload.length, file};
    if (!st.detached.emplace(t, std::move(ref)).second) return decline();
    st.detached_order.push_back(t);
  }
  st.skeleton = serialized(model.proto());
  st.canonical = skeleton->minimal_lengths && st.skeleton == skeleton->bytes;
  return true;
}

}  // namespace

loaded_model load_model(const fs::path& path, const load_options& options) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec).lexically_normal();
  const fs::file_status status = fs::status(absolute, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    throw io_error(fmt::format("cannot read model file {}", path), path.string(), ec);
  if (ec || !fs::exists(status))
    throw io_error(fmt::format("model file {} does not exist", path), path.string());
  if (!fs::is_regular_file(status))
    throw io_error(fmt::format("model file {} is not a regular file", path), path.string());
  std::shared_ptr<const mapped_file> file = mapped_file::open(absolute);

  loaded_model model;
  model_io_access::set_paths(model, absolute, fs::canonical(absolute.parent_path()));
  const std::string name = fmt::format("{}", path);
  check_model_size(file->bytes(), name, path.string(), options);
  if (!options.skeleton || !parse_skeleton(model, file, name, options))
    parse_model(model, file->bytes(), name, path.string(), options);
  model_io_access::state(model).model_file = file;
  // Every location is checked (and mapped) now, before any tensor is read
  // or anything is written.
  index_external_data(model);
  validate_loaded(model, path.string(), options);
  return model;
}

loaded_model load_model_from_bytes(std::span<const std::byte> bytes, const std::string& name,
                                   const fs::path& directory, const load_options& options) {
  loaded_model model;
  parse_model(model, bytes, name, name, options);
  model_io_access::set_paths(model, {}, directory.empty() ? fs::path() : fs::canonical(directory));
  index_external_data(model);
  validate_loaded(model, name, options);
  return model;
}

}  // namespace onnx_reinit
