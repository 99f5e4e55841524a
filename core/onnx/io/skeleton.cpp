// The wire-format scan behind skeleton loading (skeleton.h). The message
// types to descend into come from the generated descriptors, so a field the
// schema adds that can hold a tensor is scanned without a change here.
#include "skeleton.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <string_view>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

namespace onnx_reinit {

namespace {

namespace pb = google::protobuf;

// Protobuf's default recursion limit: deeper inputs are the parser's to refuse.
constexpr int max_depth = 100;

// A detached payload's raw_data in the skeleton: length 1, one zero byte
// (see skeleton.h).
constexpr char placeholder[] = {1, 0};

enum wire_type : std::uint64_t {
  wire_varint = 0,
  wire_fixed64 = 1,
  wire_length = 2,
  wire_fixed32 = 5,
};

std::size_t varint_size(std::uint64_t v) {
  std::size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Message types that can hold a TensorProto, directly or through nested
// messages: the ones the scan descends into.
const std::set<const pb::Descriptor*>& tensor_holders() {
  static const std::set<const pb::Descriptor*> holders = [] {
    std::set<const pb::Descriptor*> all;
    std::vector<const pb::Descriptor*> todo{onnx::ModelProto::descriptor()};
    while (!todo.empty()) {
      const pb::Descriptor* d = todo.back();
      todo.pop_back();
      if (!all.insert(d).second) continue;
      for (int i = 0; i < d->field_count(); ++i)
        if (d->field(i)->type() == pb::FieldDescriptor::TYPE_MESSAGE)
          todo.push_back(d->field(i)->message_type());
    }
    std::set<const pb::Descriptor*> found{onnx::TensorProto::descriptor()};
    // Sparse tensors stay whole: the ONNX checker reads their indices, and
    // they are small and never rewritten.
    const pb::Descriptor* sparse = onnx::SparseTensorProto::descriptor();
    for (bool grew = true; grew;) {  // to a fixed point: the schema has cycles
      grew = false;
      for (const pb::Descriptor* d : all) {
        if (found.contains(d) || d == sparse) continue;
        for (int i = 0; i < d->field_count(); ++i) {
          const pb::FieldDescriptor* f = d->field(i);
          if (f->type() == pb::FieldDescriptor::TYPE_MESSAGE && found.contains(f->message_type())) {
            grew = found.insert(d).second;
            break;
          }
        }
      }
    }
    return found;
  }();
  return holders;
}

class scanner {
 public:
  explicit scanner(std::span<const std::byte> input) : in_(input) {}

  // Appends the skeleton of the message of `type` in [begin, end) to `out`.
  bool message(const pb::Descriptor* type, std::size_t begin, std::size_t end, std::string& out,
               int depth) {
    if (depth > max_depth) return false;
    std::map<int, int> seen;  // occurrences of the fields descended into or detached
    std::size_t pos = begin;
    while (pos < end) {
      const std::size_t tag_start = pos;
      std::uint64_t tag = 0;
      if (!varint(pos, end, tag) || (tag >> 3) == 0 || (tag >> 3) > 536870911) return false;
      const int number = static_cast<int>(tag >> 3);
      if ((tag & 7) == wire_length) {
        if (!length_field(type, number, tag_start, pos, end, seen, out, depth)) return false;
        continue;
      }
      if (!skip_scalar(tag & 7, pos, end)) return false;
      append(out, tag_start, pos);
    }
    return pos == end;
  }

  model_skeleton take() { return std::move(result_); }

 private:
  bool length_field(const pb::Descriptor* type, int number, std::size_t tag_start, std::size_t& pos,
                    std::size_t end, std::map<int, int>& seen, std::string& out, int depth) {
    const std::size_t length_start = pos;
    std::uint64_t length = 0;
    if (!varint(pos, end, length) || length > end - pos) return false;
    const std::size_t body = pos;
    pos += static_cast<std::size_t>(length);
    const bool minimal = body - length_start == varint_size(length);
    if (type == onnx::TensorProto::descriptor() &&
        number == onnx::TensorProto::kRawDataFieldNumber) {
      if (seen[number]++ > 0) return false;  // the parser keeps the last one
      if (length == 0) return append(out, tag_start, pos);
      result_.payloads.push_back({path_, body, length});
      result_.minimal_lengths &= minimal;
      append(out, tag_start, length_start);
      out.append(placeholder, sizeof placeholder);
      return true;
    }
    const pb::FieldDescriptor* field = type->FindFieldByNumber(number);
    if (field == nullptr || field->type() != pb::FieldDescriptor::TYPE_MESSAGE ||
        !tensor_holders().contains(field->message_type()))
      return append(out, tag_start, pos);
    const int index = seen[number]++;
    if (!field->is_repeated() && index > 0) return false;  // the parser merges them
    const std::size_t detached = result_.payloads.size();
    path_.emplace_back(number, index);
    std::string inner;
    const bool ok = message(field->message_type(), body, pos, inner, depth + 1);
    path_.pop_back();
    if (!ok) return false;
    if (result_.payloads.size() == detached) return append(out, tag_start, pos);
    result_.minimal_lengths &= minimal;
    append(out, tag_start, length_start);
    put_varint(out, inner.size());
    out += inner;
    return true;
  }

  bool varint(std::size_t& pos, std::size_t end, std::uint64_t& value) const {
    value = 0;
    for (int shift = 0; shift < 64 && pos < end; shift += 7) {
      const auto byte = static_cast<std::uint8_t>(in_[pos++]);
      value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }

  bool skip_scalar(std::uint64_t wire, std::size_t& pos, std::size_t end) const {
    std::uint64_t ignored = 0;
    switch (wire) {
      case wire_varint:
        return varint(pos, end, ignored);
      case wire_fixed64:
      case wire_fixed32: {
        const std::size_t size = wire == wire_fixed64 ? 8 : 4;
        if (end - pos < size) return false;
        pos += size;
        return true;
      }
      default:  // groups and invalid wire types
        return false;
    }
  }

  bool append(std::string& out, std::size_t from, std::size_t to) const {
    out.append(reinterpret_cast<const char*>(in_.data() + from), to - from);
    return true;
  }

  std::span<const std::byte> in_;
  std::vector<std::pair<int, int>> path_;
  model_skeleton result_;
};

}  // namespace

std::optional<model_skeleton> scan_skeleton(std::span<const std::byte> input) {
  scanner scan(input);
  std::string bytes;
  if (!scan.message(onnx::ModelProto::descriptor(), 0, input.size(), bytes, 0)) return std::nullopt;
  model_skeleton skeleton = scan.take();
  if (skeleton.payloads.empty()) return std::nullopt;
  skeleton.bytes = std::move(bytes);
  return skeleton;
}

onnx::TensorProto* resolve_payload(onnx::ModelProto& model, const detached_payload& payload) {
  pb::Message* message = &model;
  for (const auto& [number, index] : payload.path) {
    const pb::FieldDescriptor* field = message->GetDescriptor()->FindFieldByNumber(number);
    if (field == nullptr || field->type() != pb::FieldDescriptor::TYPE_MESSAGE) return nullptr;
    const pb::Reflection* reflection = message->GetReflection();
    if (field->is_repeated()) {
      if (index >= reflection->FieldSize(*message, field)) return nullptr;
      message = reflection->MutableRepeatedMessage(message, field, index);
    } else {
      if (!reflection->HasField(*message, field)) return nullptr;
      message = reflection->MutableMessage(message, field);
    }
  }
  auto* tensor = dynamic_cast<onnx::TensorProto*>(message);
  if (tensor == nullptr || tensor->raw_data() != std::string_view(placeholder + 1, 1))
    return nullptr;
  return tensor;
}

void for_each_tensor_pair(
    const google::protobuf::Message& original, google::protobuf::Message& copy,
    const std::function<void(const onnx::TensorProto&, onnx::TensorProto&)>& fn) {
  if (const auto* tensor = dynamic_cast<const onnx::TensorProto*>(&original)) {
    fn(*tensor, dynamic_cast<onnx::TensorProto&>(copy));
    return;
  }
  const pb::Descriptor* type = original.GetDescriptor();
  const pb::Reflection* from = original.GetReflection();
  const pb::Reflection* to = copy.GetReflection();
  for (int i = 0; i < type->field_count(); ++i) {
    const pb::FieldDescriptor* field = type->field(i);
    if (field->type() != pb::FieldDescriptor::TYPE_MESSAGE ||
        !tensor_holders().contains(field->message_type()))
      continue;
    if (!field->is_repeated()) {
      if (from->HasField(original, field))
        for_each_tensor_pair(from->GetMessage(original, field), *to->MutableMessage(&copy, field),
                             fn);
      continue;
    }
    for (int k = 0; k < from->FieldSize(original, field); ++k)
      for_each_tensor_pair(from->GetRepeatedMessage(original, field, k),
                           *to->MutableRepeatedMessage(&copy, field, k), fn);
  }
}

}  // namespace onnx_reinit
