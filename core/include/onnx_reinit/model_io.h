// Reading and writing ONNX models (docs/DESIGN.md section 1, ModelReader and
// ModelWriter): parse the protobuf, map external data read-only after
// checking every location is safe, read tensor values as float/double from
// any storage form (and the values of any numeric tensor as double), write
// new values back in the same form, and save through temp files renamed into
// place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/sdk/tensor_info.h"
#include "onnx_reinit/staged_file.h"

namespace onnx_reinit {

// ---------------------------------------------------------------------------
// 16-bit float conversions (round to nearest, ties to even; NaN stays NaN).

std::uint16_t float_to_half_bits(float value);
std::uint16_t float_to_bfloat16_bits(float value);
float half_bits_to_float(std::uint16_t bits);      // exact
float bfloat16_bits_to_float(std::uint16_t bits);  // exact

// ---------------------------------------------------------------------------
// Tensor metadata, from the proto alone.

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

// The element type of a float tensor, nullopt for any other data type.
std::optional<element_type> float_element_type(const onnx::TensorProto& tensor);
// Bytes per element of a float element type (4, 8, 2, 2).
std::size_t element_size(element_type type);
// Product of dims. Throws model_error (naming the tensor) for a negative dim
// or a product that overflows int64.
std::int64_t tensor_element_count(const onnx::TensorProto& tensor);
tensor_storage storage_of(const onnx::TensorProto& tensor);

// ---------------------------------------------------------------------------
// A loaded model: the proto, where it came from, its mapped external data and
// the new bytes of external tensors waiting to be written at save.

struct load_options {
  // Inline protobufs cannot exceed 2 GiB; larger files are refused with a
  // model_error pointing at external data.
  std::uint64_t max_model_bytes = (std::uint64_t{1} << 31) - 1;
  // Resource bounds for untrusted models (limit_error beyond them): the
  // byte size (dims x element size) of any one tensor, and the total byte
  // size of all float tensors (everything a run may rewrite and hold in
  // memory). no_size_limit disables a bound.
  static constexpr std::uint64_t no_size_limit = ~std::uint64_t{0};
  std::uint64_t max_tensor_bytes = std::uint64_t{16} << 30;  // 16 GiB
  std::uint64_t max_total_bytes = std::uint64_t{64} << 30;   // 64 GiB
  // Parse only the skeleton of a model file: every raw_data payload is found
  // by a scan of the protobuf wire format and left in the mapped file (its
  // proto field holds a one-byte placeholder; read it with tensor_bytes or
  // the decoders), so memory follows the model's structure, not its
  // weights, and saving splices the file (save_options::splice). Models the
  // scan does not handle (see skeleton.h) are parsed whole, as with false.
  // As for external tensors, the model keeps this by tensor address: a
  // tensor must not be removed from a loaded model's proto. whole_proto
  // gives a copy with every payload in place.
  bool skeleton = true;
};

// A model's failure of the ONNX checker. The checker stops at the first
// problem, so the message alone would hide a new one behind an old one;
// `structure` digests everything but the tensor payloads and their
// storage (which a rewrite changes), so equal digests mean the written
// model can fail in no way the input did not.
struct checker_failure {
  std::string message;
  std::uint64_t structure = 0;
  bool operator==(const checker_failure&) const = default;
};

// What the writer wrote for one tensor whose values were set since load
// (write_tensor_bytes, fill_tensor_bytes, write_tensor_source): figures of
// the values as stored, after 16-bit rounding, computed as they were written.
struct written_tensor {
  tensor_ref ref;
  element_type dtype = element_type::float32;
  std::uint64_t count = 0;  // elements
  double mean = 0.0;        // NaN for an empty tensor
  double std = 0.0;         // population std; NaN for an empty tensor
  // false: an integer tensor (a requantized weight, its codes no figures of
  // its values): dtype unused, mean and std NaN.
  bool is_float = true;
};

struct save_result {
  // Set when the written model fails the checker, with this message, the
  // same way as the input did (see save_options::input_check_failure).
  std::optional<std::string> checker_failure;
  // Every tensor whose values were set since load, in model order
  // (collect_model_tensors).
  std::vector<written_tensor> written;
  // The model file was written by splicing the input (save_options::splice).
  bool spliced = false;
};

struct save_options {
  // Allow OUT to be the input model (and its data files to be replaced).
  bool in_place = false;
  // Non-empty: put the data of every external tensor (and, when the input
  // had no external data, of every float initializer of at least
  // `external_min_bytes`) into this one file beside OUT, each tensor
  // aligned to `external_alignment` bytes. Empty: keep the input's layout.
  std::string external_data_name;
  std::uint64_t external_min_bytes = 1024;
  std::uint64_t external_alignment = 4096;
  // Write by splicing: the output is produced from the input's bytes,
  // unchanged ranges copied by the kernel (copy_file_range, a reflink
  // where the file system can), so bytes the run keeps never pass through
  // memory. The result is byte for byte what the plain writer (false:
  // serialise the proto, stream data files through the mapping) writes;
  // splicing applies to the model file when its serialised length is the
  // input's, and to the data files kept in the same layout.
  bool splice = true;
  // Measure each tensor set since load (save_result::written's mean and
  // std) from the bytes as they are written. false: a pass over every
  // rewritten byte saved when nothing reads the figures; `written` still
  // lists the tensors with their counts, with NaN for mean and std.
  bool measure = true;
  // Run onnx::checker::check_model on the written model before it is renamed
  // into place; a failure is a model_error and nothing is written.
  bool check = true;
  // Called once everything is staged and checked, before the commit point:
  // the files it returns (staged_file.h: the report, the plot) are
  // published with the model and its data files as one set, all or none,
  // also across a kill (docs/DESIGN.md section 10). It receives the result as it
  // will be returned (every tensor's data, and its figures, are written by
  // then). If it throws, nothing is written and the exception propagates.
  std::function<std::vector<staged_file>(const save_result&)> before_commit;
  // Called after each window of an external tensor set since load is
  // written, with (done, total) bytes of such tensors; from the saving
  // thread only.
  std::function<void(std::uint64_t, std::uint64_t)> progress;
  // How the input model fails the checker, when it does (check_input_model,
  // before the model is changed). A written model failing with the same
  // message and the same structure fails in no new way and is written
  // anyway (save_result::checker_failure says so); any other failure is
  // still a model_error. nullopt: every failure is an error.
  std::optional<checker_failure> input_check_failure;
};

// A tensor's new little-endian element bytes, produced on demand. Sources
// are deterministic and free of side effects: reading a range twice gives
// the same bytes and changes nothing, so a source can be read for
// inspection, then again by the writer. The sampler's sources generate
// bytes from a strategy's random stream; bytes_in_memory holds them; a
// source copying another model's tensor would read its mapped file.
class byte_source {
 public:
  virtual ~byte_source() = default;
  virtual std::uint64_t size() const = 0;
  // Writes bytes [offset, offset + out.size()) into `out`. Callers read the
  // whole source, or windows at multiples of window() (the last shorter).
  // The writer reads the next window on a worker thread while it writes the
  // one before: the calls for one source come one at a time and in order,
  // not always from the same thread. May throw (e.g. strategy_error for a
  // non-finite value).
  virtual void read(std::uint64_t offset, std::span<std::byte> out) const = 0;
  // The bytes to read at a time when streaming: memory for external data
  // stays at one window per tensor written.
  virtual std::uint64_t window() const { return size(); }
  // One line for printing: where the bytes come from.
  virtual std::string describe() const = 0;
};

// A source holding `bytes`.
std::shared_ptr<const byte_source> bytes_in_memory(std::vector<std::byte> bytes);

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

class loaded_model {
 public:
  loaded_model();
  ~loaded_model();
  loaded_model(loaded_model&&) noexcept;
  loaded_model& operator=(loaded_model&&) noexcept;
  loaded_model(const loaded_model&) = delete;
  loaded_model& operator=(const loaded_model&) = delete;

  onnx::ModelProto& proto() { return proto_; }
  const onnx::ModelProto& proto() const { return proto_; }
  // Absolute path of the model file; empty for a model built in memory.
  const std::filesystem::path& path() const { return path_; }
  // Canonical directory external data locations are resolved against.
  const std::filesystem::path& directory() const { return directory_; }
  bool has_external_data() const;

  // Wraps an in-memory model (tests, tools); external data would resolve
  // against `directory`.
  static loaded_model from_proto(onnx::ModelProto proto, std::filesystem::path directory = {});

 private:
  friend struct model_io_access;
  onnx::ModelProto proto_;
  std::filesystem::path path_;
  std::filesystem::path directory_;
  struct state;
  std::unique_ptr<state> state_;
};

// Parses `path` and validates every external data reference (location safe
// and inside the model directory, regular file, offset+length within it),
// mapping each data file read-only. Throws model_error, external_data_error
// or io_error, all naming the file (and tensor).
loaded_model load_model(const std::filesystem::path& path, const load_options& options = {});

// The same from bytes in memory (fuzzing, models received over a pipe):
// `name` is used in messages; external data locations resolve against
// `directory` (empty: every external reference is refused).
// Every load also checks, before anything is allocated from a tensor's
// dims, that each float tensor's stored data holds exactly dims x element
// size bytes (model_error), and applies the size limits (limit_error).
loaded_model load_model_from_bytes(std::span<const std::byte> bytes, const std::string& name,
                                   const std::filesystem::path& directory = {},
                                   const load_options& options = {});

// True when the tensor's data is not held in the proto: external data, or a
// raw_data payload left in the model file (load_options::skeleton). New
// values for such a tensor are best given as a source (write_tensor_source),
// streamed into place at save.
bool data_outside_proto(const loaded_model& model, const onnx::TensorProto& tensor);

// A copy of the model's proto with every payload left in the model file
// set back in (new values included), for a consumer that needs the whole
// model in memory (ONNX Runtime). External data stays external.
onnx::ModelProto whole_proto(const loaded_model& model);

// Runs the ONNX checker on `model` as save_model checks its output (the
// proto in memory, or the file when tensors live in data files): nullopt
// when it passes. Call it before changing the model, for
// save_options::input_check_failure.
std::optional<checker_failure> check_input_model(const loaded_model& model);

// Writes `model` to `out`. See save_options. Throws usage_error when `out` is
// the input without `in_place`; model_error when the checker rejects the
// result in a way the input was not rejected; io_error for file system
// failures. On any failure no file at the destination is created or changed
// and no temp file is left behind.
save_result save_model(loaded_model& model, const std::filesystem::path& out,
                       const save_options& options = {});

// ---------------------------------------------------------------------------
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
