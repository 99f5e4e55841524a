// A loaded model's members, the walk over every tensor of a model, and
// where a tensor's data lives: in the proto, in a data file, or in the
// model file (payloads left there by a skeleton load).
#include <memory>
#include <mutex>
#include <utility>

#include "io_internal.h"

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

const external_ref* data_outside(const loaded_model& model, const onnx::TensorProto& tensor) {
  if (tensor.data_location() == onnx::TensorProto::EXTERNAL) return &external_of(model, tensor);
  const auto& detached = model_io_access::state(model).detached;
  const auto it = detached.find(&tensor);
  return it == detached.end() ? nullptr : &it->second;
}

bool data_outside_proto(const loaded_model& model, const onnx::TensorProto& tensor) {
  return data_outside(model, tensor) != nullptr;
}

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

}  // namespace onnx_reinit
