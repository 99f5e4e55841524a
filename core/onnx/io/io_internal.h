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
#include <unordered_set>
#include <vector>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/model_io.h"
#include "skeleton.h"

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
  // A new read descriptor of the mapped file, for kernel-side copies
  // (copy_file_range); -1 when the path no longer names the same unchanged
  // file (same device, inode, size and modification time), so callers fall
  // back to the mapping.
  int reopen() const;
  // Drops the pages holding [offset, offset + length) from this process's
  // resident memory; they stay in the page cache and are read again on the
  // next access. For ranges read once (the analysis's prefixes of large
  // tensors), so reading them does not grow the resident set with the
  // model's size.
  void release(std::uint64_t offset, std::uint64_t length) const;

 private:
  mapped_file() = default;
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  std::filesystem::path path_;
  std::uint64_t device_ = 0;
  std::uint64_t inode_ = 0;
  std::int64_t mtime_ns_ = 0;
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

// The maps are guarded by `mutex` so different tensors may be read and
// written from several threads; map nodes are stable, so references handed
// out stay valid while other keys are inserted.
struct loaded_model::state {
  std::mutex mutex;
  std::map<std::filesystem::path, std::shared_ptr<const mapped_file>> files;
  std::unordered_map<const onnx::TensorProto*, external_ref> externals;
  // New data of external tensors, written at save.
  std::unordered_map<const onnx::TensorProto*, std::shared_ptr<const byte_source>> pending;
  // Tensors whose values were set since load (inline or external).
  std::unordered_set<const onnx::TensorProto*> written;
  // The model file as loaded, for writing by splicing; null for a model
  // built or parsed in memory.
  std::shared_ptr<const mapped_file> model_file;
  // raw_data payloads left in the model file (load_options::skeleton), by
  // tensor and in file order; their proto fields hold a placeholder. Read-only after
  // load, so lookups need no lock.
  std::unordered_map<const onnx::TensorProto*, external_ref> detached;
  std::vector<onnx::TensorProto*> detached_order;
  // With detached payloads: the proto as loaded, serialised (a save finding
  // the same bytes knows only payloads changed), and whether the input is
  // protobuf's own serialisation of the model, so that splicing payloads
  // into it writes what serialising would.
  std::string skeleton;
  bool canonical = false;
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

// Where a tensor's data lives outside the proto: its external data, or its
// raw_data payload left in the model file at load; null when the data is in
// the proto. Throws external_data_error like external_of.
const external_ref* data_outside(const loaded_model& model, const onnx::TensorProto& tensor);

// The bytes of a payload left in the model file as they now are: new ones
// written since load, or the file's. Whatever the tensor's data type (the
// payload of a tensor whose type has no element size is still carried).
std::string detached_bytes(const loaded_model& model, const onnx::TensorProto& t);

// The proto serialised, as protobuf writes it (a skeleton load compares it
// with the input to know whether splicing the payloads rewrites it whole).
std::string serialized(const onnx::ModelProto& proto);

// Validates and resolves every external tensor of the model.
void index_external_data(loaded_model& model);

// Calls fn(TensorProto&) for every tensor anywhere in the model: graph
// initializers, sparse initializers, node attributes, subgraphs, functions.
void for_each_tensor(onnx::ModelProto& model, const std::function<void(onnx::TensorProto&)>& fn);

// The table entry of `tensor`'s data type; model_error for a type without
// a fixed element size.
const dtype_info& require_dtype(const onnx::TensorProto& tensor);

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

// Mean and population std of a float tensor's values as stored, fed its
// bytes in pieces of any size. Sums run over fixed blocks of elements in
// fixed lanes, around each block's first value (no cancellation), and blocks
// merge in order (Chan et al.): the figures depend only on the bytes, never
// on how they were split, so a tensor streamed window by window and one
// written whole agree to the bit. Whole blocks in one piece are measured in
// parallel and merged in the same order, so the figures do not depend on
// the thread count either.
class value_stats {
 public:
  explicit value_stats(element_type type) : type_(type) {}
  void add(std::span<const std::byte> bytes);  // whole elements
  std::uint64_t count() const { return total_count_ + in_block_; }
  double mean() const;
  double std() const;

 private:
  static constexpr std::uint64_t block = std::uint64_t{1} << 16;
  void add_values(const std::byte* p, std::size_t n);
  void add_blocks(const std::byte* p, std::size_t blocks);
  template <class Decode>
  void add_run(const std::byte* p, std::size_t n, std::size_t size, Decode decode);
  void merge(double count, double mean, double m2);
  struct block_figures {
    double count, mean, m2;
  };
  block_figures open_block() const;

  element_type type_;
  double shift_ = 0.0;
  static constexpr std::size_t lanes = 8;
  double sum_[lanes] = {};
  double squares_[lanes] = {};
  std::uint64_t in_block_ = 0;
  std::uint64_t total_count_ = 0;
  double total_mean_ = 0.0;
  double total_m2_ = 0.0;
};

// fsync of a directory, so a rename in it is durable; best effort (some
// file systems refuse to open a directory for it).
void fsync_directory(const std::filesystem::path& dir);

// One file of a published set: `staged` is renamed to `final`. A `fresh`
// final name is one no file had when it was chosen (data files: the model
// now at OUT may reference any existing name); it never replaces a file.
struct publish_rename {
  std::filesystem::path staged;
  std::filesystem::path final;
  bool fresh = false;
};

// The staging directory of one save to OUT, ".<OUT>.onnx-reinit-XXXXXX"
// beside it (same file system, so renames out of it are atomic), held
// under an exclusive flock while this object lives: recovery leaves a live
// writer's directory alone. Creating one first recovers the publications
// of earlier saves to OUT that were killed (recover_publications). Without
// a publish() the directory and the temp files it owns are removed.
class staging_area {
 public:
  explicit staging_area(const std::filesystem::path& out);
  ~staging_area();
  staging_area(const staging_area&) = delete;
  staging_area& operator=(const staging_area&) = delete;
  const std::filesystem::path& path() const { return path_; }
  // A staged file outside the directory (a report beside its destination)
  // to remove if the save fails before its commit point.
  void own(const std::filesystem::path& temp);
  // docs/DESIGN.md section 10: journals `renames` (in order) and the `obsolete`
  // files to remove after them, commits the journal by a rename (the
  // commit point), then renames every file into place and removes the
  // obsolete ones and the directory. Killed before the commit point,
  // nothing of the set is visible; after it, recover_publications
  // finishes the job.
  void publish(const std::vector<publish_rename>& renames,
               const std::vector<std::filesystem::path>& obsolete);

 private:
  std::filesystem::path out_;
  std::filesystem::path path_;
  std::vector<std::filesystem::path> owned_;
  int lock_ = -1;
  bool published_ = false;
};

// Test seam: called with the step number at each step of publishing (0
// before the journal, 1 journal written, 2 committed, 3.. after each
// rename, then once the obsolete files are removed); the crash tests kill
// the process there. Null in production.
extern void (*publish_step_hook)(int step);

}  // namespace onnx_reinit
