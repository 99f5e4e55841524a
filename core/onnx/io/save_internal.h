// Internals of saving shared by its sources: the staged output file and the
// kernel-side copies into it (save.cpp stages, checks and publishes;
// data_files.cpp writes the data files; splice.cpp writes the model file).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/std.h>

#include "io_internal.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_tensors.h"
#include "overlap.h"

namespace onnx_reinit {

namespace fs = std::filesystem;

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
  // kernel when it can. A writeback step at a time, each started on the
  // disk before the next is copied: one copy_file_range of a long kept run
  // (--only) left it all dirty until the final fsync, which then waited for
  // all of it, as cp + sync does.
  void copy(range_source& source, std::uint64_t offset, std::uint64_t length) {
    while (length > 0) {
      const std::uint64_t n = std::min(length, writeback_step);
      const std::uint64_t done = source.copy(fd_, offset, n, published_, path_);
      written_ += done;
      write(source.file().bytes().subspan(static_cast<std::size_t>(offset + done),
                                          static_cast<std::size_t>(n - done)));
      offset += n;
      length -= n;
    }
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
    if (written_ - writeback_started_ < writeback_step) return;
    ::sync_file_range(fd_, static_cast<off_t>(writeback_started_),
                      static_cast<off_t>(written_ - writeback_started_), SYNC_FILE_RANGE_WRITE);
    writeback_started_ = written_;
#endif
  }

  static constexpr std::uint64_t writeback_step = std::uint64_t{8} << 20;

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
    window_buffers own;  // a window too large to keep between tensors
    window_buffers& buffers = window <= kept_window_limit ? kept_ : own;
    buffers.reserve(static_cast<std::size_t>(window), size > window ? 2 : 1);
    const auto read_and_measure = [&](std::byte* buffer, std::uint64_t offset) {
      const std::span<std::byte> bytes = span_at(buffer, offset);
      source.read(offset, bytes);
      if (stats != nullptr) stats->add(bytes);
    };
    read_and_measure(buffers.get(0), 0);
    for (std::uint64_t offset = 0, k = 0; offset < size; offset += window, k ^= 1) {
      const std::span<std::byte> bytes = span_at(buffers.get(k), offset);
      const std::uint64_t next = offset + window;
      if (next < size)
        overlap([&] { read_and_measure(buffers.get(k ^ 1), next); }, [&] { out.write(bytes); });
      else
        out.write(bytes);
      done_ += bytes.size();
      if (progress_) progress_(done_, total_);
    }
  }

  // The two window buffers of stream(). Kept from one tensor to the next
  // (docs/DESIGN.md section 10): a fresh buffer per tensor costs a page
  // fault and a page zeroed by the kernel per 4 KiB written, as much system
  // time as the write itself on a model of many tensors of a few MiB.
  struct window_buffers {
    std::unique_ptr<std::byte[]> slots[2];
    std::size_t capacity[2] = {0, 0};
    void reserve(std::size_t bytes, int count) {
      for (int k = 0; k < count; ++k) {
        if (capacity[k] >= bytes) continue;
        slots[k].reset();  // freed first: never both sizes at once
        slots[k] = std::make_unique_for_overwrite<std::byte[]>(bytes);
        capacity[k] = bytes;
      }
    }
    std::byte* get(std::uint64_t k) const { return slots[k].get(); }
  };
  // Windows above this are whole tensors of a non-element-wise strategy:
  // their buffers are freed with the tensor, so peak memory stays as it was.
  static constexpr std::uint64_t kept_window_limit = std::uint64_t{32} << 20;

  const loaded_model& model_;
  window_buffers kept_;
  std::function<void(std::uint64_t, std::uint64_t)> progress_;
  std::uint64_t done_ = 0;
  std::uint64_t total_ = 0;
  bool measure_ = true;
  std::map<const onnx::TensorProto*, value_stats> stats_;
  std::set<const onnx::TensorProto*> measured_;
};

// True when both paths exist and name the same file.
bool same_file(const fs::path& a, const fs::path& b);

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

// `source` with the ranges of those of `tensors` set since load replaced by
// their new bytes, in file order; every other byte is copied through (by
// the kernel when `splice`). The tensors' data must live in `source`
// (data_outside: external data, or payloads left in the model file);
// `location` names the file in messages.
void copy_with_rewrites(const loaded_model& model, const mapped_file& source,
                        std::span<onnx::TensorProto* const> tensors, const std::string& location,
                        output_file& file, write_context& writer, bool splice);

// The same layout as the input: each input data file is reproduced with the
// rewritten tensors' ranges replaced (offsets and unreferenced bytes kept).
// Returns the staged relative names.
std::vector<fs::path> stage_same_layout(loaded_model& model, const fs::path& out,
                                        const fs::path& stage, const save_options& options,
                                        proto_patch& patch, data_names& names,
                                        write_context& writer);

// One data file holding every external tensor (and large float initializers
// of a model that had none), each aligned.
fs::path stage_consolidated(loaded_model& model, const fs::path& out_dir, const fs::path& stage,
                            const save_options& opt, proto_patch& patch, data_names& names,
                            write_context& writer);

// Returns true when the file was written by splicing: the payloads left in
// the model file spliced into it when nothing else changed, else the
// serialised proto spliced by comparison (splice_model).
bool serialize_model(const loaded_model& model, const fs::path& path, const fs::path& out,
                     bool splice, write_context& writer);

// Sets the payloads left in the model file back into the proto (the pending
// bytes, or the file's) until `patch` is undone, for a writer that
// serialises the whole proto (splice.cpp; save_memory.cpp).
void inline_detached(const loaded_model& model, proto_patch& patch);

// The proto's serialized size; model_error naming `where` past protobuf's
// 2 GiB limit.
std::size_t checked_serialized_size(const onnx::ModelProto& proto, const std::string& where);

// The checker step of save_model for a model written to memory
// (save_memory.cpp): the proto checked as save_model checks a model without
// data files, failures reported against `name`.
void check_saved_model(const loaded_model& model, const std::string& name,
                       const save_options& options, save_result& result);

}  // namespace onnx_reinit
