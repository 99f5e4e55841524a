// The data files of a save: the input's layout kept (each file reproduced
// with the rewritten tensors' ranges replaced) or one consolidated file,
// always under names no existing file has.
#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <fmt/std.h>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_tensors.h"
#include "save_internal.h"

namespace onnx_reinit {

bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  return fs::exists(a, ec) && fs::exists(b, ec) && fs::equivalent(a, b, ec);
}

namespace {

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

}  // namespace

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

}  // namespace onnx_reinit
