// Quantized weights and biases: the DequantizeLinear in front of a layer's
// weight or bias, read once here (docs/DESIGN.md section 6).
#include "quantized.h"

#include <fmt/format.h>

#include <algorithm>

#include "checked_math.h"

namespace onnx_reinit::detail {
namespace {

using tp = onnx::TensorProto;

std::int64_t element_count_of(const onnx::TensorProto& t) {
  return checked_product(tensor_dims(t)).value_or(-1);
}

// The lowest and highest value of an integer quantized type.
std::pair<double, double> type_range(int data_type) {
  switch (data_type) {
    case tp::INT8:
      return {-128.0, 127.0};
    case tp::UINT8:
      return {0.0, 255.0};
    case tp::INT32:
      return {-2147483648.0, 2147483647.0};
    default:
      return {0.0, 0.0};
  }
}

// The scale of the DequantizeLinear producing `value`, when it is one and
// its scale is a float32 constant: {node, scale name}.
std::optional<std::pair<int, std::string>> dequantized_scale(const model_index& index,
                                                             const std::string& value, int g) {
  const int p = index.producer(value, g);
  if (p < 0 || !is_op(index.node(p), "DequantizeLinear") || index.node(p).input_size() < 2)
    return std::nullopt;
  const std::string& scale = index.node(p).input(1);
  const onnx::TensorProto* t = index.constant(scale, index.node_graph(p));
  if (t == nullptr || t->data_type() != tp::FLOAT) return std::nullopt;
  return std::pair{p, scale};
}

// Zero points: present and readable, one per scale element, all 0 for a
// symmetric tensor; an asymmetric one strictly inside its type's range
// (a zero point at an end holds values of one sign only).
std::string check_zero_points(const model_index& index, int g, const onnx::TensorProto& tensor,
                              quantized_tensor& q) {
  std::vector<double> zero(static_cast<std::size_t>(q.channels), 0.0);
  if (!q.zero_point.empty()) {
    const onnx::TensorProto* z = index.constant(q.zero_point, g);
    if (z == nullptr) return fmt::format("its zero point '{}' is not a constant", q.zero_point);
    if (z->data_type() != tensor.data_type() || element_count_of(*z) != q.channels)
      return fmt::format("its zero point '{}' does not match the tensor's type and scale",
                         q.zero_point);
    auto v = index.values(*z);
    if (!v) return fmt::format("its zero point '{}' cannot be read", q.zero_point);
    zero = *v;
  }
  q.symmetric = std::all_of(zero.begin(), zero.end(), [](double z) { return z == 0.0; });
  if (q.symmetric && tensor.data_type() != tp::UINT8) return {};
  if (tensor.data_type() == tp::INT32) return "an int32 bias with a non-zero zero point";
  const auto [lo, hi] = type_range(tensor.data_type());
  q.symmetric = false;
  for (double z : zero)
    if (z <= lo || z >= hi)
      return fmt::format(
          "zero point {} is at the end of the range [{}, {}]: values of one sign "
          "only",
          z, lo, hi);
  return {};
}

// A bias's scale is input scale x weight scale: the scale of the
// DequantizeLinear in front of the layer's data input (one value) and of
// its quantized weight (one value, or one per bias element).
std::string find_bias_scales(const model_index& index, int layer, int g, quantized_tensor& q) {
  const onnx::NodeProto& node = index.node(layer);
  if (node.input_size() < 2) return "the layer has no weight input";
  auto input = dequantized_scale(index, node.input(0), g);
  if (!input || element_count_of(*index.constant(input->second, g)) != 1)
    return "the layer's data input is not dequantized with one float32 scale";
  auto weight = dequantized_scale(index, node.input(1), g);
  if (!weight) return "the layer's weight is not dequantized with a float32 scale";
  const std::string& weight_name = index.node(weight->first).input(0);
  const std::int64_t weight_channels = element_count_of(*index.constant(weight->second, g));
  if (index.constant(weight_name, g) == nullptr)
    return "the layer's weight is not a quantized constant";
  if (weight_channels != 1 && weight_channels != q.channels)
    return fmt::format("its scale has {} elements, the weight's {}", q.channels, weight_channels);
  q.input_scale = input->second;
  q.weight = weight_name;
  q.weight_scale = weight->second;
  return {};
}

std::string check(const model_index& index, int dequantize, int layer, tensor_role role,
                  const onnx::TensorProto& tensor, int graph, quantized_tensor& q) {
  const int type = tensor.data_type();
  if (role == tensor_role::weight && type != tp::INT8 && type != tp::UINT8)
    return "only int8 and uint8 weights are requantized";
  if (role == tensor_role::bias && type != tp::INT32) return "only int32 biases are requantized";
  if (graph != 0) return "inside a subgraph";
  const int g = index.node_graph(dequantize);
  const onnx::TensorProto* scale = index.constant(q.scale, g);
  if (scale == nullptr || scale->data_type() != tp::FLOAT)
    return fmt::format("its scale '{}' is not a float32 constant", q.scale);
  if (index.uses(q.scale, g).size() != 1)
    return fmt::format("its scale '{}' is shared with other nodes", q.scale);
  q.channels = element_count_of(*scale);
  const std::vector<std::int64_t> dims = tensor_dims(tensor);
  if (q.channels < 1) return fmt::format("its scale '{}' is empty", q.scale);
  if (q.channels > 1 && (scale->dims_size() != 1 || q.axis >= std::ssize(dims) ||
                         dims[static_cast<std::size_t>(q.axis)] != q.channels))
    return fmt::format("its scale '{}' does not hold one value per slice along axis {}", q.scale,
                       q.axis);
  if (std::string why = check_zero_points(index, g, tensor, q); !why.empty()) return why;
  if (role == tensor_role::bias) return find_bias_scales(index, layer, g, q);
  return {};
}

}  // namespace

std::optional<quantized_tensor> describe_quantized(const model_index& index, int dequantize,
                                                   int layer, tensor_role role,
                                                   const onnx::TensorProto& tensor, int graph) {
  if (dequantize < 0 || layer < 0 || (role != tensor_role::weight && role != tensor_role::bias))
    return std::nullopt;
  const onnx::NodeProto& node = index.node(dequantize);
  quantized_tensor q;
  q.scale = node.input_size() > 1 ? node.input(1) : std::string{};
  q.zero_point = node.input_size() > 2 ? node.input(2) : std::string{};
  std::int64_t axis = int_attribute(node, "axis").value_or(1);
  if (axis < 0) axis += tensor.dims_size();
  q.axis = std::max<std::int64_t>(axis, 0);
  q.unsupported = check(index, dequantize, layer, role, tensor, graph, q);
  return q;
}

bool quantize_clamps_negatives(const model_index& index, const onnx::NodeProto& node, int scope) {
  if (!is_op(node, "QuantizeLinear")) return false;
  if (node.input_size() < 3 || node.input(2).empty()) return true;  // uint8, zero point 0
  const onnx::TensorProto* z = index.constant(node.input(2), scope);
  if (z == nullptr) return false;
  auto v = index.values(*z);
  const double lowest = type_range(z->data_type()).first;
  return v && !v->empty() && (z->data_type() == tp::UINT8 || z->data_type() == tp::INT8) &&
         std::all_of(v->begin(), v->end(), [&](double x) { return x == lowest; });
}

}  // namespace onnx_reinit::detail
