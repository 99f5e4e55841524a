// A model without its payloads. A scan of the protobuf wire format finds
// every TensorProto raw_data field, wherever a tensor can sit (graph
// initializers, Constant-node and other attribute tensors, subgraphs,
// functions, training info: any message type the schema lets hold a tensor,
// but sparse tensors, which stay whole), and writes the skeleton: the model with each such payload
// replaced by a one-byte placeholder (one zero byte: the ONNX checker counts
// an empty raw_data as no data, and a tensor must have one data field; the
// checker does not compare raw_data's length with the dims). Parsing the skeleton costs memory in
// proportion to the model's structure, not its weights; the payloads stay in
// the mapped file, where the tensor decoder reads them and the writer
// splices them (load_options::skeleton).
//
//   std::optional<model_skeleton> s = scan_skeleton(file->bytes());
//   onnx::ModelProto proto;
//   proto.ParseFromString(s->bytes);
//   for (const detached_payload& p : s->payloads)
//     onnx::TensorProto* t = resolve_payload(proto, p);  // the placeholder
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <onnx/onnx_pb.h>

namespace onnx_reinit {

// One raw_data payload left in the input.
struct detached_payload {
  // From the ModelProto down to the tensor: (field number, index of this
  // occurrence among that field's occurrences in the parent message), as
  // the protobuf parser numbers repeated elements.
  std::vector<std::pair<int, int>> path;
  std::uint64_t offset = 0;  // of the payload's first byte in the input
  std::uint64_t length = 0;  // > 0
};

struct model_skeleton {
  std::string bytes;
  std::vector<detached_payload> payloads;  // in file order
  // Every length prefix the skeleton re-encodes (of a payload, or of a
  // message holding one) is minimal in the input. With a skeleton that
  // protobuf serialises back to the same bytes, the input is then exactly
  // protobuf's serialisation of the model, so splicing it reproduces what
  // serialising would write.
  bool minimal_lengths = true;
};

// The skeleton of `input`, or nullopt when there is no payload to detach
// or the input has a form the scan leaves to the parser: groups, an
// invalid wire type, a singular message field or raw_data given twice
// (protobuf merges those), nesting deeper than protobuf's default limit,
// or malformed data (the parser then names the problem).
std::optional<model_skeleton> scan_skeleton(std::span<const std::byte> input);

// The tensor `payload` names in `model` (parsed from the skeleton), or
// null when the path names none.
onnx::TensorProto* resolve_payload(onnx::ModelProto& model, const detached_payload& payload);

// Calls fn(t, c) for every TensorProto t of `original` (walking every field
// that can hold one) and c, the tensor at the same place in `copy`, which
// must be a copy of `original`.
void for_each_tensor_pair(
    const google::protobuf::Message& original, google::protobuf::Message& copy,
    const std::function<void(const onnx::TensorProto&, onnx::TensorProto&)>& fn);

}  // namespace onnx_reinit
