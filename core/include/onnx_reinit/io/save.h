// Writing a model (docs/DESIGN.md section 10): everything of one save is
// staged beside the output, checked, then published as one set with the
// caller's staged files (report, plot), all or none, also across a kill.
// The output is what serialising the model writes; unchanged bytes are
// spliced from the input by the kernel.
//   save_options options;
//   options.external_data_name = "weights.data";
//   const save_result result = save_model(model, "out.onnx", options);
//   for (const written_tensor& t : result.written) fmt::print("{} {}\n", t.ref.name, t.std);
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "onnx_reinit/io/loaded_model.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/sdk/tensor_info.h"
#include "onnx_reinit/staged_file.h"

namespace onnx_reinit {

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

}  // namespace onnx_reinit
