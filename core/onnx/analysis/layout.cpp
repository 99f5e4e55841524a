// Layout evaluation: static shapes through layout ops and range mapping back
// to source constants.
#include "layout.h"

#include <algorithm>
#include <span>
#include <string_view>
#include <utility>

#include "checked_math.h"

namespace onnx_reinit::detail {
namespace {

// Layout chains between a weight and its consumer are short; a cap keeps a
// pathological 10,000-node chain from recursing deeply.
constexpr int max_depth = 64;
// Bounds the work of one range mapping (pieces times steps).
constexpr std::size_t max_pieces = 1 << 16;

// -1 when the dims are negative or their product overflows: only shapes
// that passed valid_shape reach the callers that index with it.
std::int64_t product(const shape_t& s, std::size_t from, std::size_t to) {
  from = std::min(from, s.size());
  to = std::clamp(to, from, s.size());
  return checked_product(std::span(s).subspan(from, to - from)).value_or(-1);
}

// A shape the evaluator may hand on: no negative dim, and the product of
// its non-zero dims fits int64, so every product() over it is defined.
// Shapes come from untrusted dims and Reshape/Concat values.
bool valid_shape(const shape_t& s) {
  return checked_product(s).has_value();
}

std::optional<int> normalize_axis(std::int64_t axis, std::size_t rank) {
  auto r = static_cast<std::int64_t>(rank);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) return std::nullopt;
  return static_cast<int>(axis);
}

// Output 0 has input 0's shape: identities at inference and Q/DQ (op table).
bool same_shape_op(const onnx::NodeProto& n) {
  const op_traits& t = op_info(n).traits;
  return t.identity || t.quantize;
}

// Rows of a flat range that fall inside one `inner`-long row each.
template <class F>
bool for_each_row_piece(const range_list& ranges, std::int64_t inner, F&& f) {
  if (inner <= 0) return false;
  std::size_t pieces = 0;
  for (auto [b, e] : ranges) {
    for (std::int64_t row = b / inner; row * inner < e; ++row) {
      if (++pieces > max_pieces) return false;
      std::int64_t lb = std::max(b, row * inner) - row * inner;
      std::int64_t le = std::min(e, (row + 1) * inner) - row * inner;
      f(row, lb, le);
    }
  }
  return true;
}

}  // namespace

std::int64_t element_count(const shape_t& shape) {
  return product(shape, 0, shape.size());
}

std::optional<std::vector<std::int64_t>> layout_evaluator::const_ints(const onnx::NodeProto& node,
                                                                      int slot, int scope) {
  if (slot >= node.input_size() || node.input(slot).empty()) return std::nullopt;
  const auto* t = index_.constant(node.input(slot), scope);
  if (t == nullptr) return std::nullopt;
  auto v = index_.values(*t);
  if (!v) return std::nullopt;
  // Values come from the file (possibly a float tensor): converting one
  // outside int64's range is undefined, so such a list reads as unknown.
  std::vector<std::int64_t> ints;
  ints.reserve(v->size());
  for (double x : *v) {
    if (!(x >= -9.2e18 && x <= 9.2e18)) return std::nullopt;
    ints.push_back(static_cast<std::int64_t>(x));
  }
  return ints;
}

std::optional<shape_t> layout_evaluator::shape_of(const std::string& name, int scope) {
  return shape_at(name, scope, 0);
}

std::optional<shape_t> layout_evaluator::shape_at(const std::string& name, int scope, int depth) {
  if (depth > max_depth) return std::nullopt;
  int g = index_.defining_graph(name, scope);
  if (g < 0) return std::nullopt;
  auto key = std::make_pair(g, name);
  if (auto it = memo_.find(key); it != memo_.end()) return it->second;
  memo_[key] = std::nullopt;  // in progress: a cycle reads "unknown"
  auto s = shape_uncached(name, g, depth);
  if (s && !valid_shape(*s)) s = std::nullopt;
  memo_[key] = s;
  return s;
}

std::optional<shape_t> layout_evaluator::shape_uncached(const std::string& name, int scope,
                                                        int depth) {
  if (const auto* t = index_.constant(name, scope)) return tensor_dims(*t);
  int n = index_.producer(name, scope);
  if (n < 0) return std::nullopt;
  const auto& node = index_.node(n);
  for (int o = 0; o < node.output_size(); ++o)
    if (node.output(o) == name) return node_output_shape(n, o, depth);
  return std::nullopt;
}

namespace {

std::optional<shape_t> transposed_shape(const shape_t& in,
                                        const std::optional<std::vector<std::int64_t>>& perm) {
  if (perm && perm->size() != in.size()) return std::nullopt;
  shape_t out(in.size());
  std::vector<bool> used(in.size(), false);
  for (std::size_t i = 0; i < out.size(); ++i) {
    std::int64_t p = perm ? (*perm)[i] : static_cast<std::int64_t>(out.size() - 1 - i);
    // Only a true permutation is a layout op; anything else is unknown.
    if (p < 0 || p >= static_cast<std::int64_t>(in.size()) || used[static_cast<std::size_t>(p)])
      return std::nullopt;
    used[static_cast<std::size_t>(p)] = true;
    out[i] = in[static_cast<std::size_t>(p)];
  }
  return out;
}

std::optional<shape_t> reshaped_shape(const shape_t& in, shape_t out, bool allow_zero) {
  int infer = -1;
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0 && !allow_zero) {
      if (i >= in.size()) return std::nullopt;
      out[i] = in[i];
    } else if (out[i] == -1) {
      if (infer >= 0) return std::nullopt;
      infer = static_cast<int>(i);
    } else if (out[i] < 0) {
      return std::nullopt;
    }
  }
  if (infer >= 0) {
    shape_t known = out;
    known[static_cast<std::size_t>(infer)] = 1;
    const std::optional<std::int64_t> rest = checked_product(known);
    if (!rest || *rest == 0 || element_count(in) % *rest != 0) return std::nullopt;
    out[static_cast<std::size_t>(infer)] = element_count(in) / *rest;
  }
  if (!valid_shape(out) || element_count(out) != element_count(in)) return std::nullopt;
  return out;
}

std::optional<shape_t> flattened_shape(const shape_t& in, std::int64_t axis) {
  if (axis < 0) axis += static_cast<std::int64_t>(in.size());
  if (axis < 0 || axis > static_cast<std::int64_t>(in.size())) return std::nullopt;
  auto a = static_cast<std::size_t>(axis);
  return shape_t{product(in, 0, a), product(in, a, in.size())};
}

shape_t squeezed_shape(const shape_t& in, const std::optional<std::vector<std::int64_t>>& axes) {
  shape_t out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    bool drop = false;
    if (!axes || axes->empty()) drop = in[i] == 1;
    for (auto a : axes.value_or(std::vector<std::int64_t>{}))
      if (normalize_axis(a, in.size()) == static_cast<int>(i)) drop = true;
    if (!drop) out.push_back(in[i]);
  }
  return out;
}

std::optional<shape_t> unsqueezed_shape(const shape_t& in,
                                        const std::optional<std::vector<std::int64_t>>& axes) {
  if (!axes) return std::nullopt;
  std::size_t rank = in.size() + axes->size();
  std::vector<bool> inserted(rank, false);
  for (auto a : *axes) {
    auto na = normalize_axis(a, rank);
    if (!na) return std::nullopt;
    inserted[static_cast<std::size_t>(*na)] = true;
  }
  shape_t out;
  std::size_t k = 0;
  for (std::size_t i = 0; i < rank; ++i)
    out.push_back(inserted[i] ? 1 : (k < in.size() ? in[k++] : 1));
  return out;
}

}  // namespace

std::optional<shape_t> layout_evaluator::concat_shape(const onnx::NodeProto& node, shape_t out,
                                                      int scope, int depth) {
  auto axis = normalize_axis(int_attribute(node, "axis").value_or(0), out.size());
  if (!axis) return std::nullopt;
  const auto a = static_cast<std::size_t>(*axis);
  for (int i = 1; i < node.input_size(); ++i) {
    auto s = shape_at(node.input(i), scope, depth + 1);
    if (!s || s->size() != out.size()) return std::nullopt;
    for (std::size_t d = 0; d < out.size(); ++d)
      if (d != a && (*s)[d] != out[d]) return std::nullopt;
    auto sum = checked_add(out[a], (*s)[a]);
    if (!sum) return std::nullopt;
    out[a] = *sum;
  }
  return out;
}

std::optional<shape_t> layout_evaluator::node_output_shape(int n, int output, int depth) {
  const auto& node = index_.node(n);
  int scope = index_.node_graph(n);
  if (node.input_size() == 0) return std::nullopt;
  auto in = shape_at(node.input(0), scope, depth + 1);
  if (!in) return std::nullopt;
  const std::string& op = node.op_type();
  if (!is_default_domain(node)) return std::nullopt;
  if (same_shape_op(node)) return output == 0 ? in : std::nullopt;
  if (op == "Transpose") return transposed_shape(*in, ints_attribute(node, "perm"));
  if (op == "Reshape") {
    auto target =
        node.input_size() > 1 ? const_ints(node, 1, scope) : ints_attribute(node, "shape");
    if (!target) return std::nullopt;
    return reshaped_shape(*in, *target, int_attribute(node, "allowzero").value_or(0) != 0);
  }
  if (op == "Flatten") return flattened_shape(*in, int_attribute(node, "axis").value_or(1));
  if (op == "Squeeze" || op == "Unsqueeze") {
    auto axes = node.input_size() > 1 ? const_ints(node, 1, scope) : ints_attribute(node, "axes");
    return op == "Squeeze" ? squeezed_shape(*in, axes) : unsqueezed_shape(*in, axes);
  }
  if (op == "Concat") return concat_shape(node, *in, scope, depth);
  if (op == "Slice" || op == "Split") {
    auto offset = slice_offset(n, output, depth);
    if (!offset) return std::nullopt;
    return memo_.at({-1 - n, std::to_string(output)});
  }
  return std::nullopt;
}

// Computes a Slice/Split output's shape (stored in memo_ under a node key)
// and, when only one axis is cut with step 1, that axis and the start
// offset; start is -1 when several axes are cut.
std::optional<std::pair<int, std::int64_t>> layout_evaluator::slice_offset(int n, int output,
                                                                           int depth) {
  const auto& node = index_.node(n);
  int scope = index_.node_graph(n);
  auto in = shape_at(node.input(0), scope, depth + 1);
  if (!in) return std::nullopt;
  shape_t out = *in;
  int cut_axis = 0;
  std::int64_t cut_start = 0;
  int cuts = 0;
  if (node.op_type() == "Split") {
    auto axis = normalize_axis(int_attribute(node, "axis").value_or(0), in->size());
    if (!axis) return std::nullopt;
    auto sizes = node.input_size() > 1 ? const_ints(node, 1, scope) : ints_attribute(node, "split");
    std::int64_t dim = (*in)[static_cast<std::size_t>(*axis)];
    if (!sizes || sizes->empty()) {
      auto parts = static_cast<std::int64_t>(node.output_size());
      if (parts == 0 || dim % parts != 0) return std::nullopt;
      sizes = std::vector<std::int64_t>(static_cast<std::size_t>(parts), dim / parts);
    }
    if (output >= static_cast<int>(sizes->size())) return std::nullopt;
    // Sizes from the file: each non-negative, summing exactly to the dim.
    std::int64_t total = 0;
    for (std::size_t i = 0; i < sizes->size(); ++i) {
      auto sum = (*sizes)[i] >= 0 ? checked_add(total, (*sizes)[i]) : std::nullopt;
      if (!sum) return std::nullopt;
      if (static_cast<int>(i) == output) cut_start = total;
      total = *sum;
    }
    if (total != dim) return std::nullopt;
    out[static_cast<std::size_t>(*axis)] = (*sizes)[static_cast<std::size_t>(output)];
    cut_axis = *axis;
    cuts = 1;
  } else {
    bool old = node.input_size() < 3;  // opset < 10: attributes
    auto starts = old ? ints_attribute(node, "starts") : const_ints(node, 1, scope);
    auto ends = old ? ints_attribute(node, "ends") : const_ints(node, 2, scope);
    auto axes = old ? ints_attribute(node, "axes") : const_ints(node, 3, scope);
    auto steps = old ? std::nullopt : const_ints(node, 4, scope);
    if (!starts || !ends || starts->size() != ends->size()) return std::nullopt;
    for (std::size_t i = 0; i < starts->size(); ++i) {
      auto axis = normalize_axis(
          axes && i < axes->size() ? (*axes)[i] : static_cast<std::int64_t>(i), in->size());
      std::int64_t step = steps && i < steps->size() ? (*steps)[i] : 1;
      if (!axis || step != 1) return std::nullopt;  // reversed/strided slices: not layout
      std::int64_t dim = (*in)[static_cast<std::size_t>(*axis)];
      auto clamp = [dim](std::int64_t v) {
        if (v < 0) v += dim;
        return std::clamp<std::int64_t>(v, 0, dim);
      };
      std::int64_t b = clamp((*starts)[i]), e = clamp((*ends)[i]);
      out[static_cast<std::size_t>(*axis)] = std::max<std::int64_t>(0, e - b);
      if (b != 0 || e != dim) {
        ++cuts;
        cut_axis = *axis;
        cut_start = b;
      }
    }
  }
  memo_[{-1 - n, std::to_string(output)}] = out;
  return std::make_pair(cut_axis, cuts <= 1 ? cut_start : -1);
}

std::optional<std::vector<source_ranges>> layout_evaluator::map_back(const std::string& name,
                                                                     int scope,
                                                                     const range_list& ranges) {
  struct item {
    std::string name;
    int scope;
    range_list ranges;
  };
  std::vector<source_ranges> found;
  std::vector<item> work{{name, scope, ranges}};
  std::size_t steps = 0;
  while (!work.empty()) {
    if (++steps > max_pieces) return std::nullopt;
    item it = std::move(work.back());
    work.pop_back();
    if (it.ranges.empty()) continue;
    if (const auto* t = index_.constant(it.name, it.scope)) {
      found.push_back({t, it.ranges});
      continue;
    }
    int n = index_.producer(it.name, it.scope);
    if (n < 0) return std::nullopt;
    const auto& node = index_.node(n);
    int g = index_.node_graph(n);
    const layout_kind kind = layout_op_kind(node);
    if (node.input_size() == 0) return std::nullopt;
    // Row-major reshapes keep flat element order.
    if (kind == layout_kind::flat_order) {
      work.push_back({node.input(0), g, it.ranges});
      continue;
    }
    if (kind == layout_kind::select) {
      int output = 0;
      while (output < node.output_size() && node.output(output) != it.name) ++output;
      auto in = shape_of(node.input(0), g);
      auto cut = slice_offset(n, output, 0);
      if (!in || !cut || cut->second < 0) return std::nullopt;
      const shape_t out = memo_.at({-1 - n, std::to_string(output)}).value_or(shape_t{});
      auto a = static_cast<std::size_t>(cut->first);
      std::int64_t out_inner = product(out, a, out.size()), in_inner = product(*in, a, in->size());
      std::int64_t after = product(*in, a + 1, in->size());
      range_list mapped;
      if (!for_each_row_piece(it.ranges, out_inner,
                              [&](std::int64_t row, std::int64_t lb, std::int64_t le) {
                                std::int64_t base = row * in_inner + cut->second * after;
                                mapped.emplace_back(base + lb, base + le);
                              }))
        return std::nullopt;
      work.push_back({node.input(0), g, std::move(mapped)});
      continue;
    }
    if (kind == layout_kind::concat) {
      auto out = shape_of(it.name, it.scope);
      if (!out) return std::nullopt;
      auto axis = normalize_axis(int_attribute(node, "axis").value_or(0), out->size());
      if (!axis) return std::nullopt;
      auto a = static_cast<std::size_t>(*axis);
      std::int64_t out_inner = product(*out, a, out->size()), offset = 0;
      for (int k = 0; k < node.input_size(); ++k) {
        auto s = shape_of(node.input(k), g);
        if (!s) return std::nullopt;
        std::int64_t c = product(*s, a, s->size());
        range_list mapped;
        if (!for_each_row_piece(
                it.ranges, out_inner, [&](std::int64_t row, std::int64_t lb, std::int64_t le) {
                  std::int64_t b = std::max(lb, offset), e = std::min(le, offset + c);
                  if (b < e) mapped.emplace_back(row * c + b - offset, row * c + e - offset);
                }))
          return std::nullopt;
        work.push_back({node.input(k), g, std::move(mapped)});
        offset += c;
      }
      continue;
    }
    return std::nullopt;
  }
  return found;
}

}  // namespace onnx_reinit::detail
