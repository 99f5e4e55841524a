// External data: each reference's location checked (relative, inside the
// model's directory, a regular file, its range within it) and its file
// mapped read-only, once, before any tensor is read.
#include <charconv>
#include <mutex>
#include <optional>

#include <fmt/format.h>
#include <fmt/std.h>

#include "io_internal.h"
#include "onnx_reinit/errors.h"

namespace onnx_reinit {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// External data

namespace {

std::uint64_t parse_size(const onnx::TensorProto& t, const std::string& key,
                         const std::string& value, const fs::path& model_path) {
  std::uint64_t v = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, v);
  if (value.empty() || ec != std::errc() || ptr != end)
    throw external_data_error(fmt::format("tensor '{}': external data {} '{}' is not a "
                                          "non-negative integer",
                                          t.name(), key, value),
                              model_path.string());
  return v;
}

// Resolves a location to a canonical regular file inside `dir`, refusing
// anything that could read outside it or block.
fs::path resolve_location(const fs::path& dir, const std::string& location,
                          const onnx::TensorProto& t, const fs::path& model_path) {
  auto fail = [&](const std::string& why) {
    return external_data_error(
        fmt::format("tensor '{}': external data location '{}' {}", t.name(), location, why),
        model_path.string());
  };
  if (location.empty()) throw fail("is empty");
  const fs::path rel(location);
  if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory())
    throw fail("is absolute; it must be relative to the model's directory");
  for (const fs::path& part : rel)
    if (part == "..") throw fail("contains '..'; it must stay inside the model's directory");
  if (dir.empty()) throw fail("cannot be resolved: the model has no directory");
  const fs::path joined = dir / rel;
  std::error_code ec;
  const fs::file_status link_status = fs::symlink_status(joined, ec);
  if (ec || !fs::exists(link_status)) throw fail("does not exist");
  const fs::path target = fs::canonical(joined, ec);
  if (ec) throw fail("does not exist (dangling symbolic link)");
  const fs::path inside = target.lexically_relative(dir);
  if (inside.empty() || *inside.begin() == ".." || inside == ".")
    throw fail(fmt::format("resolves to {}, outside the model's directory", target));
  const fs::file_status status = fs::status(target, ec);
  if (ec || !fs::is_regular_file(status)) throw fail("is not a regular file");
  return target;
}

external_ref resolve_external(const loaded_model& model, const onnx::TensorProto& t) {
  auto& st = model_io_access::state(model);
  external_ref ref;
  bool has_location = false;
  std::optional<std::uint64_t> length;
  for (const auto& entry : t.external_data()) {
    if (entry.key() == "location") {
      ref.location = entry.value();
      has_location = true;
    } else if (entry.key() == "offset") {
      ref.offset = parse_size(t, entry.key(), entry.value(), model.path());
    } else if (entry.key() == "length") {
      length = parse_size(t, entry.key(), entry.value(), model.path());
    }
  }
  if (!has_location)
    throw external_data_error(
        fmt::format("tensor '{}' is stored externally but has no location", t.name()),
        model.path().string());
  ref.file = resolve_location(model.directory(), ref.location, t, model.path());
  auto it = st.files.find(ref.file);
  if (it == st.files.end()) {
    try {
      it = st.files.emplace(ref.file, mapped_file::open(ref.file)).first;
    } catch (const io_error& e) {
      throw external_data_error(fmt::format("tensor '{}': external data location '{}': {}",
                                            t.name(), ref.location, e.what()),
                                model.path().string());
    }
  }
  ref.map = it->second;
  const std::uint64_t file_size = ref.map->bytes().size();
  // ONNX: a missing length means "to the end of the file".
  if (ref.offset > file_size || (length && *length > file_size - ref.offset))
    throw external_data_error(
        fmt::format("tensor '{}': external data offset {} + length {} is past the end of '{}' "
                    "({} bytes)",
                    t.name(), ref.offset, length ? fmt::to_string(*length) : "(to end)",
                    ref.location, file_size),
        model.path().string());
  ref.length = length ? *length : file_size - ref.offset;
  return ref;
}

}  // namespace

const external_ref& external_of(const loaded_model& model, const onnx::TensorProto& tensor) {
  auto& st = model_io_access::state(model);
  std::lock_guard lock(st.mutex);  // also covers the file cache used by resolve_external
  auto it = st.externals.find(&tensor);
  if (it == st.externals.end())
    it = st.externals.emplace(&tensor, resolve_external(model, tensor)).first;
  return it->second;
}

void index_external_data(loaded_model& model) {
  for_each_tensor(model.proto(), [&](onnx::TensorProto& t) {
    if (t.data_location() == onnx::TensorProto::EXTERNAL) external_of(model, t);
  });
}

}  // namespace onnx_reinit
