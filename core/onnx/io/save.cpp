// Saving a model: the output path checked, the model and its data files
// staged beside it, the staged model run through the ONNX checker, then
// the set published (publish.cpp) with the caller's staged files.
// No <sys/mman.h> here: its MAP_TYPE macro breaks onnx/defs/parser.h,
// which the checker pulls in; mapping lives in mapped_file.cpp.
#include <algorithm>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <fmt/std.h>
#include <onnx/checker.h>

#include "onnx_reinit/errors.h"
#include "save_internal.h"

namespace onnx_reinit {

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

void check_saved_model(const loaded_model& model, const std::string& name,
                       const save_options& options, save_result& result) {
  check_staged(model, fs::path(), false, fs::path(name), options, result);
}

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
