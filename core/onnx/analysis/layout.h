// Shapes of values built from constants by layout ops, and the mapping of
// element ranges of such a value back to the constants it was made from
// (e.g. LSTM forget-gate bias rows through PyTorch's Slice/Concat gate
// reordering). Everything here is bounded: depth caps and visited sets.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "graph_index.h"
#include "ops.h"

namespace onnx_reinit::detail {

using shape_t = std::vector<std::int64_t>;
using range_list = std::vector<std::pair<std::int64_t, std::int64_t>>;  // [begin, end)

// The layout ops (layout_kind, layout_op_kind, is_layout_op) are entries
// of the op table, ops.h: the one list of them, which every walk of the
// analysis consults (docs/DESIGN.md section 6).

struct source_ranges {
  const onnx::TensorProto* proto = nullptr;
  range_list ranges;
};

class layout_evaluator {
 public:
  explicit layout_evaluator(const model_index& index) : index_(index) {}

  // The static shape of `name` as seen from graph `scope`, when it follows
  // from constants through layout ops; nullopt otherwise.
  std::optional<shape_t> shape_of(const std::string& name, int scope);
  // The constants (and their flat element ranges) that elements `ranges` of
  // `name` come from; nullopt if the path holds an op we cannot map.
  std::optional<std::vector<source_ranges>> map_back(const std::string& name, int scope,
                                                     const range_list& ranges);

 private:
  std::optional<shape_t> shape_uncached(const std::string& name, int scope, int depth);
  std::optional<shape_t> shape_at(const std::string& name, int scope, int depth);
  std::optional<shape_t> node_output_shape(int node, int output, int depth);
  std::optional<shape_t> concat_shape(const onnx::NodeProto& node, shape_t first, int scope,
                                      int depth);
  std::optional<std::vector<std::int64_t>> const_ints(const onnx::NodeProto& node, int slot,
                                                      int scope);
  // Per-axis start offsets of a Slice/Split output inside its input.
  std::optional<std::pair<int, std::int64_t>> slice_offset(int node, int output, int depth);

  const model_index& index_;
  std::map<std::pair<int, std::string>, std::optional<shape_t>> memo_;
};

// -1 when a dim is negative or the product overflows int64.
std::int64_t element_count(const shape_t& shape);

}  // namespace onnx_reinit::detail
