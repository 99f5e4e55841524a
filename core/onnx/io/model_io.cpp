// Loading and saving models: protobuf parsing from a mapped file, the safety
// checks on external data locations, and saving through a staging directory
// beside the output whose files are checked, then renamed into place. Saving
// splices the input: unchanged ranges are copied by the kernel.
// No <sys/mman.h> here: its MAP_TYPE macro breaks onnx/defs/parser.h,
// which the checker pulls in; mapping lives in mapped_file.cpp.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <fmt/std.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/checker.h>

#include "io_internal.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_tensors.h"
#include "overlap.h"

namespace onnx_reinit {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------
// loaded_model

loaded_model::loaded_model() : state_(std::make_unique<state>()) {}
loaded_model::~loaded_model() = default;
loaded_model::loaded_model(loaded_model&&) noexcept = default;
loaded_model& loaded_model::operator=(loaded_model&&) noexcept = default;

bool loaded_model::has_external_data() const {
  return !state_->externals.empty();
}

loaded_model loaded_model::from_proto(onnx::ModelProto proto, fs::path directory) {
  loaded_model m;
  m.proto_ = std::move(proto);
  if (!directory.empty()) directory = fs::canonical(directory);
  m.directory_ = std::move(directory);
  index_external_data(m);
  return m;
}

// ---------------------------------------------------------------------------
// Walking every tensor

namespace {

void walk_graph(onnx::GraphProto& g, const std::function<void(onnx::TensorProto&)>& fn);

void walk_attribute(onnx::AttributeProto& a, const std::function<void(onnx::TensorProto&)>& fn) {
  if (a.has_t()) fn(*a.mutable_t());
  for (auto& t : *a.mutable_tensors()) fn(t);
  if (a.has_sparse_tensor()) {
    fn(*a.mutable_sparse_tensor()->mutable_values());
    fn(*a.mutable_sparse_tensor()->mutable_indices());
  }
  for (auto& s : *a.mutable_sparse_tensors()) {
    fn(*s.mutable_values());
    fn(*s.mutable_indices());
  }
  if (a.has_g()) walk_graph(*a.mutable_g(), fn);
  for (auto& g : *a.mutable_graphs()) walk_graph(g, fn);
}

void walk_graph(onnx::GraphProto& g, const std::function<void(onnx::TensorProto&)>& fn) {
  for (auto& t : *g.mutable_initializer()) fn(t);
  for (auto& s : *g.mutable_sparse_initializer()) {
    fn(*s.mutable_values());
    fn(*s.mutable_indices());
  }
  for (auto& n : *g.mutable_node())
    for (auto& a : *n.mutable_attribute()) walk_attribute(a, fn);
}

}  // namespace

void for_each_tensor(onnx::ModelProto& model, const std::function<void(onnx::TensorProto&)>& fn) {
  if (model.has_graph()) walk_graph(*model.mutable_graph(), fn);
  for (auto& f : *model.mutable_functions())
    for (auto& n : *f.mutable_node())
      for (auto& a : *n.mutable_attribute()) walk_attribute(a, fn);
}

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

const external_ref* data_outside(const loaded_model& model, const onnx::TensorProto& tensor) {
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) return &external_of(model, tensor);
  const auto& detached = model_io_access::state(model).detached;
  const auto it = detached.find(&tensor);
  return it == detached.end() ? nullptr : &it->second;
}

bool data_outside_proto(const loaded_model& model, const onnx::TensorProto& tensor) {
  return data_outside(model, tensor) != nullptr;
}

namespace {

// The bytes of a payload left in the model file as they now are: new ones
// written since load, or the file's. Whatever the tensor's data type (the
// payload of a tensor whose type has no element size is still carried).
std::string detached_bytes(const loaded_model& model, const onnx::TensorProto& t) {
  auto& st = model_io_access::state(model);
  std::shared_ptr<const byte_source> source;
  {
    std::lock_guard lock(st.mutex);
    const auto it = st.pending.find(&t);
    if (it != st.pending.end()) source = it->second;
  }
  if (source) {
    std::string bytes(static_cast<std::size_t>(source->size()), '\0');
    source->read(0, std::as_writable_bytes(std::span(bytes)));
    return bytes;
  }
  const std::span<const std::byte> in_file = st.detached.at(&t).bytes();
  return {reinterpret_cast<const char*>(in_file.data()), in_file.size()};
}

}  // namespace

onnx::ModelProto whole_proto(const loaded_model& model) {
  onnx::ModelProto copy = model.proto();
  const auto& detached = model_io_access::state(model).detached;
  if (detached.empty()) return copy;
  // A walk of both rather than the payloads' paths: those would miss a
  // tensor moved by an edit of the proto since load.
  for_each_tensor_pair(model.proto(), copy, [&](const onnx::TensorProto& t, onnx::TensorProto& c) {
    if (detached.contains(&t)) *c.mutable_raw_data() = detached_bytes(model, t);
  });
  return copy;
}

void index_external_data(loaded_model& model) {
  for_each_tensor(model.proto(), [&](onnx::TensorProto& t) {
    if (t.data_location() == onnx::TensorProto::EXTERNAL) external_of(model, t);
  });
}

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

std::string serialized(const onnx::ModelProto& proto) {
  std::string bytes;
  proto.SerializeToString(&bytes);
  return bytes;
}

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

// ---------------------------------------------------------------------------
// save_model

namespace {

// Copies ranges of a mapped input file by the kernel (copy_file_range,
// which reflinks where the file system can), so unchanged bytes never pass
// through this process's memory; through the mapping when the kernel or
// file system cannot, or the file changed since it was mapped.
class range_source {
 public:
  explicit range_source(const mapped_file& file) : file_(file), fd_(file.reopen()) {}
  ~range_source() {
    if (fd_ >= 0) ::close(fd_);
  }
  range_source(const range_source&) = delete;
  range_source& operator=(const range_source&) = delete;

  const mapped_file& file() const { return file_; }
  // Kernel-copies what it can of [offset, offset + length) to `out_fd` at
  // its position; returns the bytes copied (the caller writes the rest from
  // the mapping). Throws io_error only for a failure a fallback cannot fix.
  std::uint64_t copy(int out_fd, std::uint64_t offset, std::uint64_t length,
                     const fs::path& published, const fs::path& out_path) {
    std::uint64_t done = 0;
    while (fd_ >= 0 && done < length) {
      auto from = static_cast<off_t>(offset + done);
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(length - done, std::uint64_t{1} << 30));
      const ssize_t w = ::copy_file_range(fd_, &from, out_fd, nullptr, n, 0);
      if (w > 0) {
        done += static_cast<std::uint64_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == ENOSPC || errno == EDQUOT || errno == EIO))
        throw io_error(fmt::format("cannot write {}", published), out_path.string(),
                       io_error::last_errno());
      // EXDEV, ENOSYS, EINVAL, EOPNOTSUPP, ... or an early end: the mapping
      // does the rest from here on.
      ::close(fd_);
      fd_ = -1;
    }
    return done;
  }

 private:
  const mapped_file& file_;
  int fd_ = -1;
};

// A file written in the staging directory: all-or-nothing writes, fsync.
// Errors name the file it will be published as (what the user asked for),
// with the staged file as the error's `where`.
class output_file {
 public:
  output_file(const fs::path& path, fs::path published)
      : path_(path), published_(std::move(published)) {
    fs::create_directories(path.parent_path());
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0)
      throw io_error(fmt::format("cannot create {}", published_), path.string(),
                     io_error::last_errno());
  }
  ~output_file() {
    if (fd_ >= 0) ::close(fd_);
  }
  output_file(const output_file&) = delete;
  output_file& operator=(const output_file&) = delete;

  void write(std::span<const std::byte> data) {
    while (!data.empty()) {
      // Bounded calls: Linux caps one write at ~2 GiB anyway.
      const std::size_t n = std::min<std::size_t>(data.size(), std::size_t{1} << 26);
      const ssize_t w = ::write(fd_, data.data(), n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw io_error(fmt::format("cannot write {}", published_), path_.string(),
                       io_error::last_errno());
      }
      data = data.subspan(static_cast<std::size_t>(w));
      written_ += static_cast<std::uint64_t>(w);
    }
    start_writeback();
  }
  void zeros(std::uint64_t n) {
    static const std::byte block[4096] = {};
    while (n > 0) {
      const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, sizeof block));
      write(std::span<const std::byte>(block, k));
      n -= k;
    }
  }
  // Bytes [offset, offset + length) of `source`'s file, copied by the
  // kernel when it can.
  void copy(range_source& source, std::uint64_t offset, std::uint64_t length) {
    const std::uint64_t done = source.copy(fd_, offset, length, published_, path_);
    written_ += done;
    write(source.file().bytes().subspan(static_cast<std::size_t>(offset + done),
                                        static_cast<std::size_t>(length - done)));
  }
  std::uint64_t written() const { return written_; }
  int fd() const { return fd_; }
  // fsync then close: the data is on disk before the rename publishes it.
  void finish() {
    if (::fsync(fd_) != 0 || ::close(fd_) != 0) {
      const std::error_code cause = io_error::last_errno();
      fd_ = -1;
      throw io_error(fmt::format("cannot flush {}", published_), path_.string(), cause);
    }
    fd_ = -1;
  }

 private:
  // Starts the disk writing each few MiB as soon as they are written, so
  // the disk works while the rest is sampled and finish()'s fsync waits only
  // for the tail (cp + sync writes everything first, then waits for all of
  // it). Only a hint: fsync still decides, and reports any error.
  void start_writeback() {
#ifdef SYNC_FILE_RANGE_WRITE
    constexpr std::uint64_t step = std::uint64_t{8} << 20;
    if (written_ - writeback_started_ < step) return;
    ::sync_file_range(fd_, static_cast<off_t>(writeback_started_),
                      static_cast<off_t>(written_ - writeback_started_), SYNC_FILE_RANGE_WRITE);
    writeback_started_ = written_;
#endif
  }

  fs::path path_;
  fs::path published_;
  int fd_ = -1;
  std::uint64_t written_ = 0;
  std::uint64_t writeback_started_ = 0;
};

// Temporary edits to the model's proto for serialising (new locations,
// inline data moved out); undone in reverse order so save leaves the loaded
// model as it was. Swaps keep it free of copies of tensor data.
class proto_patch {
 public:
  ~proto_patch() { undo(); }
  void add(std::function<void()> undo) { undo_.push_back(std::move(undo)); }
  void undo() {
    while (!undo_.empty()) {
      undo_.back()();
      undo_.pop_back();
    }
  }

 private:
  std::vector<std::function<void()>> undo_;
};

void set_external_entries(proto_patch& patch, onnx::TensorProto& t,
                          std::vector<std::pair<std::string, std::string>> entries) {
  auto saved = std::make_shared<google::protobuf::RepeatedPtrField<onnx::StringStringEntryProto>>();
  saved->Swap(t.mutable_external_data());
  for (auto& [k, v] : entries) {
    auto* e = t.add_external_data();
    e->set_key(k);
    e->set_value(v);
  }
  patch.add([&t, saved] { t.mutable_external_data()->Swap(saved.get()); });
}

// Moves a tensor's in-proto data out (kept by the patch) and marks it
// external.
void make_external(proto_patch& patch, onnx::TensorProto& t) {
  struct saved_data {
    bool had_raw;
    std::string raw;
    google::protobuf::RepeatedField<float> f;
    google::protobuf::RepeatedField<std::int32_t> i32;
    google::protobuf::RepeatedField<std::int64_t> i64;
    google::protobuf::RepeatedField<std::uint64_t> u64;
    google::protobuf::RepeatedField<double> d;
    bool had_location;
    onnx::TensorProto::DataLocation location;
  };
  auto s = std::make_shared<saved_data>();
  s->had_raw = t.has_raw_data();
  s->raw.swap(*t.mutable_raw_data());
  t.clear_raw_data();
  s->f.Swap(t.mutable_float_data());
  s->i32.Swap(t.mutable_int32_data());
  s->i64.Swap(t.mutable_int64_data());
  s->u64.Swap(t.mutable_uint64_data());
  s->d.Swap(t.mutable_double_data());
  s->had_location = t.has_data_location();
  s->location = t.data_location();
  t.set_data_location(onnx::TensorProto::EXTERNAL);
  patch.add([&t, s] {
    if (s->had_raw) t.mutable_raw_data()->swap(s->raw);
    t.mutable_float_data()->Swap(&s->f);
    t.mutable_int32_data()->Swap(&s->i32);
    t.mutable_int64_data()->Swap(&s->i64);
    t.mutable_uint64_data()->Swap(&s->u64);
    t.mutable_double_data()->Swap(&s->d);
    if (s->had_location)
      t.set_data_location(s->location);
    else
      t.clear_data_location();
  });
}

// What one save writes and measures: the tensors whose values were set
// since load (their figures are taken from the bytes as they are written)
// and the progress through those streamed from their sources.
class write_context {
  // (Defined first: the members below use its deduced type.)
  auto& state() const { return model_io_access::state(model_); }

 public:
  write_context(const loaded_model& model, const save_options& options)
      : model_(model), progress_(options.progress), measure_(options.measure) {
    for (const auto& [tensor, source] : state().pending) total_ += source->size();
  }

  // Writes one tensor's current data (pending, mapped or inline) to `out`.
  void write(const onnx::TensorProto& t, output_file& out) {
    value_stats* stats = measure_ ? stats_for(t) : nullptr;
    if (stats != nullptr) measured_.insert(&t);
    auto it = state().pending.find(&t);
    if (it == state().pending.end()) {
      const tensor_bytes_view view = tensor_bytes(model_, t);
      out.write(view.bytes());
      if (stats != nullptr) stats->add(view.bytes());
      return;
    }
    stream(*it->second, out, stats);
  }

  // Figures of every tensor set since load, in model order; those not
  // written through write() (inline data, serialised with the proto) are
  // measured from the proto.
  std::vector<written_tensor> figures(const onnx::ModelProto& proto) {
    std::vector<written_tensor> out;
    for (const const_model_tensor& mt : collect_model_tensors(proto)) {
      value_stats* stats = stats_for(*mt.proto);
      if (stats == nullptr && state().written.contains(mt.proto)) {
        constexpr double unmeasured = std::numeric_limits<double>::quiet_NaN();
        out.push_back({mt.ref, element_type::float32,
                       static_cast<std::uint64_t>(tensor_element_count(*mt.proto)), unmeasured,
                       unmeasured, false});
      }
      if (stats == nullptr) continue;
      if (!measure_) {
        constexpr double unmeasured = std::numeric_limits<double>::quiet_NaN();
        out.push_back({mt.ref, *float_element_type(*mt.proto),
                       static_cast<std::uint64_t>(tensor_element_count(*mt.proto)), unmeasured,
                       unmeasured});
        continue;
      }
      if (!measured_.contains(mt.proto)) stats->add(tensor_bytes(model_, *mt.proto).bytes());
      measured_.insert(mt.proto);
      out.push_back(
          {mt.ref, *float_element_type(*mt.proto), stats->count(), stats->mean(), stats->std()});
    }
    return out;
  }

 private:
  value_stats* stats_for(const onnx::TensorProto& t) {
    if (!state().written.contains(&t)) return nullptr;
    const std::optional<element_type> type = float_element_type(t);
    if (!type) return nullptr;
    return &stats_.try_emplace(&t, *type).first->second;
  }

  // A window at a time, so memory stays at two windows whatever the size:
  // the next window is read (sampled, in parallel) and measured on a worker
  // while this one is written, so the sampling and the kernel's copy into
  // the page cache overlap, and the figures are taken while the bytes are
  // still in the cache of the core that made them. Reads and measurements
  // stay in window order, one at a time.
  void stream(const byte_source& source, output_file& out, value_stats* stats) {
    const std::uint64_t size = source.size();
    if (size == 0) return;
    const std::uint64_t window = std::clamp<std::uint64_t>(source.window(), 1, size);
    const auto span_at = [&](std::byte* buffer, std::uint64_t offset) {
      return std::span<std::byte>(buffer,
                                  static_cast<std::size_t>(std::min(window, size - offset)));
    };
    std::unique_ptr<std::byte[]> buffers[2];
    buffers[0] = std::make_unique_for_overwrite<std::byte[]>(static_cast<std::size_t>(window));
    if (size > window)
      buffers[1] = std::make_unique_for_overwrite<std::byte[]>(static_cast<std::size_t>(window));
    const auto read_and_measure = [&](std::byte* buffer, std::uint64_t offset) {
      const std::span<std::byte> bytes = span_at(buffer, offset);
      source.read(offset, bytes);
      if (stats != nullptr) stats->add(bytes);
    };
    read_and_measure(buffers[0].get(), 0);
    for (std::uint64_t offset = 0, k = 0; offset < size; offset += window, k ^= 1) {
      const std::span<std::byte> bytes = span_at(buffers[k].get(), offset);
      const std::uint64_t next = offset + window;
      if (next < size)
        overlap([&] { read_and_measure(buffers[k ^ 1].get(), next); }, [&] { out.write(bytes); });
      else
        out.write(bytes);
      done_ += bytes.size();
      if (progress_) progress_(done_, total_);
    }
  }

  const loaded_model& model_;
  std::function<void(std::uint64_t, std::uint64_t)> progress_;
  std::uint64_t done_ = 0;
  std::uint64_t total_ = 0;
  bool measure_ = true;
  std::map<const onnx::TensorProto*, value_stats> stats_;
  std::set<const onnx::TensorProto*> measured_;
};

bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::exists(a, ec) && fs::exists(b, ec) && fs::equivalent(a, b, ec);
}

// Data files are never renamed over an existing file: the model currently
// at OUT may reference it, and a kill between the data rename and the model
// rename would pair the old model with new data. A taken name is diverted
// to "<name>.r<N>" (an earlier diversion's suffix is dropped first, so
// repeated in-place runs alternate between two names); the file it would
// have replaced is removed only after the new model is in place.
struct data_names {
  std::set<fs::path> chosen;       // relative names used by this save
  std::vector<fs::path> replaced;  // absolute paths to remove after the model
};

std::string fresh_data_name(const fs::path& out_dir, const std::string& wanted, data_names& names) {
  std::error_code ec;
  auto free = [&](const std::string& n) {
    return !names.chosen.contains(n) && !fs::exists(fs::symlink_status(out_dir / n, ec));
  };
  std::string name = wanted;
  if (!free(wanted)) {
    std::string base = wanted;
    const std::size_t dot = base.rfind(".r");
    if (dot != std::string::npos && dot + 2 < base.size() &&
        std::all_of(base.begin() + static_cast<std::ptrdiff_t>(dot) + 2, base.end(),
                    [](char c) { return c >= '0' && c <= '9'; }))
      base.resize(dot);
    for (int k = 0;; ++k) {
      name = k == 0 ? base : fmt::format("{}.r{}", base, k);
      if (free(name)) break;
    }
    if (fs::exists(fs::symlink_status(out_dir / wanted, ec)))
      names.replaced.push_back(out_dir / wanted);
  }
  names.chosen.insert(name);
  return name;
}

// One input data file: the tensors stored in it and the name it gets.
struct data_file {
  fs::path source;       // canonical
  std::string location;  // first spelling seen
  fs::path out_name;
  std::vector<onnx::TensorProto*> tensors;
};

// The external tensors grouped by data file, files in first-use order.
std::vector<data_file> data_files_of(loaded_model& model) {
  std::vector<data_file> files;
  std::map<fs::path, std::size_t> index;  // by canonical source file
  for_each_tensor(model.proto(), [&](onnx::TensorProto& t) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) return;
    const external_ref& ref = external_of(model, t);
    auto [it, inserted] = index.try_emplace(ref.file, files.size());
    if (inserted)
      files.push_back({ref.file, fs::path(ref.location).lexically_normal().string(), {}, {}});
    files[it->second].tensors.push_back(&t);
  });
  return files;
}

// "<out>.data", "<out>.1.data", ...: the next name that is none of the
// input's data files.
std::string next_derived_name(const fs::path& out, const std::vector<data_file>& files,
                              std::size_t& index) {
  for (;;) {
    const std::string name = index == 0 ? out.filename().string() + ".data"
                                        : fmt::format("{}.{}.data", out.filename(), index);
    ++index;
    const fs::path target = out.parent_path() / name;
    if (std::none_of(files.begin(), files.end(),
                     [&](const data_file& f) { return same_file(f.source, target); }))
      return name;
  }
}

// Names the output data files. Keeping the input's names would overwrite
// the input's data files when OUT sits beside them; then (unless in place)
// new names are derived from the output file name.
void name_data_files(std::vector<data_file>& files, const fs::path& out, bool in_place,
                     data_names& names) {
  const bool collides = std::any_of(files.begin(), files.end(), [&](const data_file& f) {
    return same_file(out.parent_path() / f.location, f.source);
  });
  std::size_t index = 0;
  for (data_file& df : files) {
    const std::string wanted =
        collides && !in_place ? next_derived_name(out, files, index) : df.location;
    df.out_name = fresh_data_name(out.parent_path(), wanted, names);
  }
}

// Points the file's tensors at its new name, when it has one.
void relocate(const data_file& df, proto_patch& patch) {
  if (df.out_name == fs::path(df.location)) return;
  for (onnx::TensorProto* t : df.tensors) {
    std::vector<std::pair<std::string, std::string>> entries;
    for (const auto& e : t->external_data())
      entries.emplace_back(e.key(), e.key() == "location" ? df.out_name.string() : e.value());
    set_external_entries(patch, *t, std::move(entries));
  }
}

// `source` with the ranges of those of `tensors` set since load replaced by
// their new bytes, in file order; every other byte is copied through (by
// the kernel when `splice`). The tensors' data must live in `source`
// (data_outside: external data, or payloads left in the model file);
// `location` names the file in messages.
void copy_with_rewrites(const loaded_model& model, const mapped_file& source,
                        std::span<onnx::TensorProto* const> tensors, const std::string& location,
                        output_file& file, write_context& writer, bool splice) {
  const auto& st = model_io_access::state(model);
  std::vector<std::pair<const external_ref*, const onnx::TensorProto*>> rewritten;
  for (const onnx::TensorProto* t : tensors)
    if (st.pending.contains(t)) rewritten.emplace_back(data_outside(model, *t), t);
  std::sort(rewritten.begin(), rewritten.end(),
            [](const auto& a, const auto& b) { return a.first->offset < b.first->offset; });
  std::optional<range_source> kernel;
  if (splice) kernel.emplace(source);
  auto keep = [&](std::uint64_t from, std::uint64_t to) {
    if (kernel)
      file.copy(*kernel, from, to - from);
    else
      file.write(source.bytes().subspan(from, to - from));
  };
  std::uint64_t pos = 0;
  for (const auto& [ref, t] : rewritten) {
    if (ref->offset < pos)
      throw model_error(fmt::format("tensor '{}': its external data overlaps another rewritten "
                                    "tensor's in '{}'",
                                    t->name(), location),
                        t->name());
    keep(pos, ref->offset);
    writer.write(*t, file);
    pos = ref->offset + ref->length;
  }
  keep(pos, source.bytes().size());
}

// The same layout as the input: each input data file is reproduced with the
// rewritten tensors' ranges replaced (offsets and unreferenced bytes kept).
// Returns the staged relative names.
std::vector<fs::path> stage_same_layout(loaded_model& model, const fs::path& out,
                                        const fs::path& stage, const save_options& options,
                                        proto_patch& patch, data_names& names,
                                        write_context& writer) {
  std::vector<data_file> files = data_files_of(model);
  name_data_files(files, out, options.in_place, names);
  std::vector<fs::path> staged;
  for (const data_file& df : files) {
    relocate(df, patch);
    output_file file(stage / df.out_name, out.parent_path() / df.out_name);
    copy_with_rewrites(model, *model_io_access::state(model).files.at(df.source), df.tensors,
                       df.location, file, writer, options.splice);
    file.finish();
    staged.push_back(df.out_name);
  }
  return staged;
}

// One data file holding every external tensor (and large float initializers
// of a model that had none), each aligned.
fs::path stage_consolidated(loaded_model& model, const fs::path& out_dir, const fs::path& stage,
                            const save_options& opt, proto_patch& patch, data_names& names,
                            write_context& writer) {
  const std::string data_name = fresh_data_name(out_dir, opt.external_data_name, names);
  std::vector<onnx::TensorProto*> tensors;
  const bool had_external = model.has_external_data();
  std::set<const onnx::TensorProto*> chosen;
  for_each_tensor(model.proto(), [&](onnx::TensorProto& t) {
    if (t.data_location() == onnx::TensorProto::EXTERNAL && chosen.insert(&t).second)
      tensors.push_back(&t);
  });
  if (!had_external) {
    for (const model_tensor& mt : collect_model_tensors(model.proto())) {
      if (mt.ref.origin != tensor_origin::initializer || !float_element_type(*mt.proto)) continue;
      if (tensor_byte_size(*mt.proto) < opt.external_min_bytes) continue;
      if (chosen.insert(mt.proto).second) tensors.push_back(mt.proto);
    }
  }
  const std::uint64_t align = std::max<std::uint64_t>(opt.external_alignment, 1);
  output_file file(stage / data_name, out_dir / data_name);
  for (onnx::TensorProto* t : tensors) {
    const std::uint64_t offset = (file.written() + align - 1) / align * align;
    file.zeros(offset - file.written());
    writer.write(*t, file);
    const std::uint64_t length = file.written() - offset;
    // The data leaves the proto only after it is safely in the file.
    if (t->data_location() != onnx::TensorProto::EXTERNAL) make_external(patch, *t);
    set_external_entries(patch, *t,
                         {{"location", data_name},
                          {"offset", std::to_string(offset)},
                          {"length", std::to_string(length)}});
  }
  file.finish();
  return data_name;
}

}  // namespace

void fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

namespace {

void strip_payload(onnx::TensorProto& t) {
  t.clear_raw_data();
  t.clear_float_data();
  t.clear_int32_data();
  t.clear_int64_data();
  t.clear_double_data();
  t.clear_uint64_data();
  t.clear_string_data();
  t.clear_external_data();
  t.clear_data_location();
}

// Digest of the model without tensor payloads and their storage. Runs only
// for a model failing the checker, so the copy it takes is rare.
std::uint64_t structure_digest(const onnx::ModelProto& proto) {
  onnx::ModelProto copy = proto;
  for_each_tensor(copy, strip_payload);
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    copy.SerializeToCodedStream(&coded);
  }
  return std::hash<std::string>{}(bytes);
}

// How `proto` fails the checker, or nullopt when it passes. With data
// files the checker must read the file: it resolves their locations
// against the file's directory.
std::optional<checker_failure> check_failure(const onnx::ModelProto& proto, const fs::path& file) {
  try {
    if (file.empty())
      onnx::checker::check_model(proto);
    else
      onnx::checker::check_model(file.string());
  } catch (const std::exception& e) {
    return checker_failure{e.what(), structure_digest(proto)};
  }
  return std::nullopt;
}

// Refuses an external data name that is not a plain name, or that would
// overwrite the output model, the input model or (unless in place) an
// input data file.
void check_external_data_name(const loaded_model& model, const fs::path& out,
                              const save_options& options) {
  const fs::path name(options.external_data_name);
  if (name.has_parent_path() || name == "." || name == ".." || name.filename() != name)
    throw usage_error(fmt::format("external data name '{}' must be a plain file name",
                                  options.external_data_name),
                      options.external_data_name);
  const fs::path target = out.parent_path() / name;
  if (same_file(target, out) || name == out.filename())
    throw usage_error(fmt::format("external data name '{}' is the output model itself",
                                  options.external_data_name),
                      options.external_data_name);
  if (options.in_place) return;
  for (const auto& [file, _] : model_io_access::state(model).files)
    if (same_file(target, file))
      throw usage_error(fmt::format("external data file {} would overwrite an input data "
                                    "file (use in-place, or another name)",
                                    target),
                        target.string());
  if (!model.path().empty() && same_file(target, model.path()))
    throw usage_error(fmt::format("external data file {} would overwrite the input model", target),
                      target.string());
}

// The absolute output path, after checking it may be written.
fs::path checked_output(const loaded_model& model, const fs::path& out_arg,
                        const save_options& options) {
  std::error_code ec;
  const fs::path out = fs::absolute(out_arg, ec).lexically_normal();
  if (out.filename().empty())
    throw usage_error(fmt::format("output path {} names no file", out_arg), out_arg.string());
  if (!fs::is_directory(out.parent_path(), ec))
    throw io_error(fmt::format("output directory {} does not exist", out.parent_path()),
                   out.string());
  const bool onto_input = !model.path().empty() && same_file(out, model.path());
  if (onto_input && !options.in_place)
    throw usage_error(
        fmt::format("refusing to overwrite the input model {} (use in-place)", model.path()),
        out.string());
  if (!options.external_data_name.empty()) check_external_data_name(model, out, options);
  return out;
}

// Length of the common prefix of a and b (of equal size), found a page at
// a time with memcmp.
std::size_t common_prefix(const std::byte* a, const std::byte* b, std::size_t n) {
  constexpr std::size_t page = 4096;
  std::size_t i = 0;
  while (i + page <= n && std::memcmp(a + i, b + i, page) == 0) i += page;
  while (i < n && a[i] == b[i]) ++i;
  return i;
}

// Length of the common suffix of a and b (of equal size).
std::size_t common_suffix(const std::byte* a, const std::byte* b, std::size_t n) {
  constexpr std::size_t page = 4096;
  std::size_t i = 0;
  while (i + page <= n && std::memcmp(a + n - i - page, b + n - i - page, page) == 0) i += page;
  while (i < n && a[n - i - 1] == b[n - i - 1]) ++i;
  return i;
}

// Writing by splicing: the serialisation goes through a buffer compared
// with the input model at the same offsets; runs equal to the input are
// copied from it by the kernel and only the rest (the rewritten payloads)
// is written. The file is the serialisation byte for byte whatever the
// comparison finds, so it equals what the plain writer would write.
class splice_stream : public google::protobuf::io::ZeroCopyOutputStream {
 public:
  splice_stream(range_source& input, output_file& out)
      : input_(input), out_(out), buffer_(std::make_unique_for_overwrite<std::byte[]>(capacity)) {}

  bool Next(void** data, int* size) override {
    consume();
    *data = buffer_.get();
    *size = static_cast<int>(capacity);
    used_ = capacity;
    return true;
  }
  void BackUp(int count) override { used_ -= static_cast<std::size_t>(count); }
  std::int64_t ByteCount() const override { return static_cast<std::int64_t>(pos_ + used_); }
  // Writes what is still buffered or pending.
  void finish() {
    consume();
    copy_equal(pos_);
  }

 private:
  static constexpr std::size_t capacity = std::size_t{1} << 20;

  void consume() {
    const std::size_t n = std::exchange(used_, 0);
    const std::span<const std::byte> in = input_.file().bytes();
    const std::size_t overlap =
        pos_ < in.size() ? std::min<std::size_t>(n, in.size() - pos_) : std::size_t{0};
    const std::byte* chunk = buffer_.get();
    const std::size_t head = common_prefix(chunk, in.data() + pos_, overlap);
    if (head == n) {  // equal throughout: the pending run grows
      pos_ += n;
      return;
    }
    const std::size_t tail =
        overlap == n ? common_suffix(chunk + head, in.data() + pos_ + head, n - head) : 0;
    copy_equal(pos_ + head);
    out_.write(std::span<const std::byte>(chunk + head, n - head - tail));
    equal_from_ = pos_ + n - tail;
    pos_ += n;
  }
  // Copies the pending run of bytes equal to the input, up to `to`.
  void copy_equal(std::uint64_t to) {
    if (to > equal_from_) out_.copy(input_, equal_from_, to - equal_from_);
    equal_from_ = to;
  }

  range_source& input_;
  output_file& out_;
  std::unique_ptr<std::byte[]> buffer_;
  std::size_t used_ = 0;
  std::uint64_t pos_ = 0;         // bytes consumed
  std::uint64_t equal_from_ = 0;  // start of the pending equal run
};

// Serialises `proto` to `file` by splicing the input model (see
// splice_stream). Returns false, having written nothing, when it cannot
// pay: no input file, or a serialisation of another length (a payload or
// its storage changed size, the model was edited).
bool splice_model(const loaded_model& model, const onnx::ModelProto& proto, std::size_t size,
                  output_file& file, const fs::path& out) {
  const auto& input = model_io_access::state(model).model_file;
  if (!input || input->bytes().size() != size) return false;
  range_source source(*input);
  splice_stream stream(source, file);
  if (!proto.SerializeToZeroCopyStream(&stream))
    throw io_error(fmt::format("cannot write {}", out), out.string(),
                   std::make_error_code(std::errc::io_error));
  stream.finish();
  return true;
}

// True when the proto is as loaded but for the payloads left in the model
// file (whose fields keep their placeholder whatever is written to them).
bool unchanged_since_load(const loaded_model& model) {
  const auto& st = model_io_access::state(model);
  return st.canonical && serialized(model.proto()) == st.skeleton;
}

// The input model with the ranges of the payloads rewritten since load
// replaced by their new bytes, streamed from their sources; every other
// byte is copied by the kernel.
void splice_payloads(const loaded_model& model, output_file& file, write_context& writer) {
  const auto& st = model_io_access::state(model);
  copy_with_rewrites(model, *st.model_file, st.detached_order, model.path().filename().string(),
                     file, writer, true);
}

// Sets the payloads left in the model file back into the proto (their new
// bytes, or the file's) until `patch` is undone, for a writer that
// serialises the whole proto.
void inline_detached(const loaded_model& model, proto_patch& patch) {
  for (onnx::TensorProto* t : model_io_access::state(model).detached_order) {
    // Moved to a data file by this save (stage_consolidated): nothing to set.
    if (t->data_location() == onnx::TensorProto::EXTERNAL) continue;
    auto placeholder = std::make_shared<std::string>(detached_bytes(model, *t));
    placeholder->swap(*t->mutable_raw_data());
    patch.add([t, placeholder] { placeholder->swap(*t->mutable_raw_data()); });
  }
}

// Returns true when the file was written by splicing: the payloads left in
// the model file spliced into it when nothing else changed, else the
// serialised proto spliced by comparison (splice_model).
bool serialize_model(const loaded_model& model, const fs::path& path, const fs::path& out,
                     bool splice, write_context& writer) {
  proto_patch inlined;
  if (!model_io_access::state(model).detached.empty()) {
    if (splice && unchanged_since_load(model)) {
      output_file file(path, out);
      splice_payloads(model, file, writer);
      file.finish();
      return true;
    }
    inline_detached(model, inlined);
  }
  const onnx::ModelProto& proto = model.proto();
  const std::size_t size = proto.ByteSizeLong();
  if (size > static_cast<std::size_t>(std::numeric_limits<int>::max()))
    throw model_error(fmt::format("the output model would be {} bytes, over protobuf's 2 GiB "
                                  "limit; write tensors as external data",
                                  size),
                      out.string());
  output_file file(path, out);
  if (splice && splice_model(model, proto, size, file, out)) {
    file.finish();
    return true;
  }
  {
    google::protobuf::io::FileOutputStream stream(file.fd());
    if (!proto.SerializeToZeroCopyStream(&stream) || !stream.Flush())
      throw io_error(fmt::format("cannot write {}", out), out.string(),
                     std::error_code(stream.GetErrno() != 0 ? stream.GetErrno() : EIO,
                                     std::generic_category()));
  }
  file.finish();
  return false;
}

// Writes the data files and the model into `stage`, and measures every
// tensor set since load. Returns the staged data files' relative names.
std::vector<fs::path> stage_model(loaded_model& model, const fs::path& out, const fs::path& stage,
                                  const save_options& options, data_names& names,
                                  save_result& result) {
  write_context writer(model, options);
  std::vector<fs::path> data_files;
  proto_patch patch;
  if (!options.external_data_name.empty())
    data_files.push_back(
        stage_consolidated(model, out.parent_path(), stage, options, patch, names, writer));
  else if (model.has_external_data())
    data_files = stage_same_layout(model, out, stage, options, patch, names, writer);
  result.spliced = serialize_model(model, stage / out.filename(), out, options.splice, writer);
  patch.undo();
  result.written = writer.figures(std::as_const(model).proto());
  return data_files;
}

// Runs the checker on the staged model; a failure the input does not share
// is a model_error.
void check_staged(const loaded_model& model, const fs::path& staged, bool has_data_files,
                  const fs::path& out, const save_options& options, save_result& result) {
  // Without data files the proto just serialized is what the file holds;
  // checking it in memory spares parsing the whole file again.
  const auto failure = check_failure(model.proto(), has_data_files ? staged : fs::path());
  if (!failure) return;
  const auto& input = options.input_check_failure;
  if (failure == input) {
    result.checker_failure = failure->message;  // the input fails exactly so: nothing new
    return;
  }
  throw model_error(
      !input ? fmt::format("the written model fails the ONNX checker: {}", failure->message)
      : input->message != failure->message
          ? fmt::format("the written model fails the ONNX checker: {} (the input fails it "
                        "otherwise: {})",
                        failure->message, input->message)
          : fmt::format("the written model fails the ONNX checker: {} (as the input does, "
                        "but its structure changed)",
                        failure->message),
      out.string());
}

// The set to publish (docs/DESIGN.md section 10): the data files (under names
// no existing file has), then the caller's staged files (report, plot),
// the model last, so a reader of OUT never sees the new model before its
// data; then the data files the new model no longer uses are removed
// (never an input's, unless in place).
void publish(const loaded_model& model, staging_area& stage, const fs::path& out,
             const std::vector<fs::path>& data_files, const data_names& names, bool in_place,
             std::vector<staged_file> companions) {
  const fs::path out_dir = out.parent_path();
  std::vector<publish_rename> renames;
  for (const fs::path& rel : data_files)
    renames.push_back({stage.path() / rel, out_dir / rel, true});
  for (staged_file& f : companions) {
    const fs::path destination = f.destination();
    const fs::path temp = f.release();
    stage.own(temp);
    renames.push_back({temp, destination, false});
  }
  renames.push_back({stage.path() / out.filename(), out, false});
  const auto& inputs = model_io_access::state(model).files;
  std::vector<fs::path> obsolete;
  for (const fs::path& old : names.replaced) {
    const bool input_file = std::any_of(inputs.begin(), inputs.end(),
                                        [&](const auto& f) { return same_file(f.first, old); });
    if (!input_file || in_place) obsolete.push_back(old);
  }
  stage.publish(renames, obsolete);
}

save_result save_model_impl(loaded_model& model, const fs::path& out_arg,
                            const save_options& options) {
  const fs::path out = checked_output(model, out_arg, options);
  // Everything is staged beside OUT, checked there, then published.
  staging_area stage(out);
  data_names names;
  save_result result;
  const std::vector<fs::path> data_files =
      stage_model(model, out, stage.path(), options, names, result);
  if (options.check)
    check_staged(model, stage.path() / out.filename(), !data_files.empty(), out, options, result);
  std::vector<staged_file> companions;
  if (options.before_commit) companions = options.before_commit(result);
  publish(model, stage, out, data_files, names, options.in_place, std::move(companions));
  return result;
}

}  // namespace

std::optional<checker_failure> check_input_model(const loaded_model& model) {
  return check_failure(model.proto(), model.has_external_data() && !model.path().empty()
                                          ? model.path()
                                          : fs::path());
}

save_result save_model(loaded_model& model, const fs::path& out, const save_options& options) {
  try {
    return save_model_impl(model, out, options);
  } catch (const fs::filesystem_error& e) {
    throw io_error(fmt::format("cannot write {}", out), out.string(), e.code());
  }
}

}  // namespace onnx_reinit
