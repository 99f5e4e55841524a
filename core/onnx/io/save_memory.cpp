// Saving a model into memory (save_memory.h): the model file's bytes built
// in the caller's buffer. A model loaded by its skeleton whose structure is
// unchanged is the input file with the rewritten payloads sampled straight
// into their place; any other is serialised from the proto. Either way the
// bytes are what save_model writes (docs/DESIGN.md section 10).
#include "onnx_reinit/io/save_memory.h"

#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "onnx_reinit/errors.h"
#include "save_internal.h"

namespace onnx_reinit {

namespace {

using stats_map = std::map<const onnx::TensorProto*, value_stats>;

// Measures `bytes` as `t`'s written values when `t` is a float tensor set
// since load and the options ask for figures.
void measure(const loaded_model& model, const onnx::TensorProto& t,
             std::span<const std::byte> bytes, bool wanted, stats_map& stats) {
  if (!wanted || !model_io_access::state(model).written.contains(&t)) return;
  if (const std::optional<element_type> type = float_element_type(t))
    stats.try_emplace(&t, *type).first->second.add(bytes);
}

// The figures of every tensor set since load, in model order, as
// save_model's writer reports them; tensors not measured while written
// (inline in the proto) are measured from the proto.
std::vector<written_tensor> figures(const loaded_model& model, bool wanted, stats_map& stats) {
  constexpr double unmeasured = std::numeric_limits<double>::quiet_NaN();
  const auto& st = model_io_access::state(model);
  std::vector<written_tensor> out;
  for (const const_model_tensor& mt : collect_model_tensors(model.proto())) {
    if (!st.written.contains(mt.proto)) continue;
    const auto count = static_cast<std::uint64_t>(tensor_element_count(*mt.proto));
    const std::optional<element_type> type = float_element_type(*mt.proto);
    if (!type) {
      out.push_back({mt.ref, element_type::float32, count, unmeasured, unmeasured, false});
    } else if (!wanted) {
      out.push_back({mt.ref, *type, count, unmeasured, unmeasured});
    } else {
      auto it = stats.find(mt.proto);
      if (it == stats.end()) {
        it = stats.try_emplace(mt.proto, *type).first;
        it->second.add(tensor_bytes(model, *mt.proto).bytes());
      }
      out.push_back({mt.ref, *type, it->second.count(), it->second.mean(), it->second.std()});
    }
  }
  return out;
}

// The input file with each rewritten payload produced in its place; false,
// having asked for no buffer, when that would not be the serialisation: no
// payloads left in the file, the structure changed since load, or a new
// payload of another length (or payloads out of file order: never from the
// scan, but then the plain serialisation is still right).
bool splice_in_memory(const loaded_model& model, const memory_sink& sink, bool wanted,
                      stats_map& stats) {
  const auto& st = model_io_access::state(model);
  if (st.detached.empty() || !st.model_file || !st.canonical ||
      serialized(model.proto()) != st.skeleton)
    return false;
  // Payloads in file order, inside the file (as the scan finds them).
  std::uint64_t end = 0;
  for (const onnx::TensorProto* t : st.detached_order) {
    const external_ref& ref = st.detached.at(t);
    if (ref.offset < end || ref.offset + ref.length > st.model_file->bytes().size()) return false;
    end = ref.offset + ref.length;
  }
  for (const auto& [t, source] : st.pending)
    if (const auto d = st.detached.find(t);
        d != st.detached.end() && source->size() != d->second.length)
      return false;
  const std::span<const std::byte> input = st.model_file->bytes();
  const std::span<std::byte> out = sink(input.size());
  std::uint64_t pos = 0;
  for (const onnx::TensorProto* t : st.detached_order) {
    const external_ref& ref = st.detached.at(t);
    std::memcpy(out.data() + pos, input.data() + pos, ref.offset - pos);
    const std::span<std::byte> payload = out.subspan(ref.offset, ref.length);
    if (const auto p = st.pending.find(t); p != st.pending.end())
      p->second->read(0, payload);
    else
      std::memcpy(payload.data(), input.data() + ref.offset, ref.length);
    measure(model, *t, payload, wanted, stats);
    pos = ref.offset + ref.length;
  }
  std::memcpy(out.data() + pos, input.data() + pos, input.size() - pos);
  return true;
}

// Serialises the whole proto into the buffer, the payloads left in the
// file set back into it meanwhile (measured as they are).
void serialize_in_memory(loaded_model& model, const memory_sink& sink, const std::string& name,
                         bool wanted, stats_map& stats) {
  proto_patch inlined;
  inline_detached(model, inlined);
  for (const onnx::TensorProto* t : model_io_access::state(model).detached_order)
    measure(model, *t, std::as_bytes(std::span(t->raw_data())), wanted, stats);
  const onnx::ModelProto& proto = model.proto();
  const std::size_t size = checked_serialized_size(proto, name);
  const std::span<std::byte> out = sink(size);
  if (!proto.SerializeToArray(out.data(), static_cast<int>(size)))
    throw model_error("the model cannot be serialized", name);
}

}  // namespace

save_result save_model_to_memory(loaded_model& model, const memory_sink& sink,
                                 const save_options& options, const std::string& name) {
  if (model.has_external_data() || !options.external_data_name.empty())
    throw usage_error(
        "a model with external data is written to files, beside a model path: give an output "
        "path",
        name);
  stats_map stats;
  if (!splice_in_memory(model, sink, options.measure, stats))
    serialize_in_memory(model, sink, name, options.measure, stats);
  save_result result;
  result.written = figures(model, options.measure, stats);
  if (options.check) check_saved_model(model, name, options, result);
  std::vector<staged_file> companions;
  if (options.before_commit) companions = options.before_commit(result);
  for (staged_file& f : companions) f.commit();
  return result;
}

}  // namespace onnx_reinit
