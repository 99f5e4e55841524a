// The standard strategies, gathered from their source files into the one
// array the plugin exports.
#include <cstddef>

#include "families.h"
#include "standard_strategies.h"

namespace onnx_reinit::standard {
namespace {

struct strategy_table {
  strategy_array entries{};

  strategy_table() {
    // Never writes past the array; a wrong strategy_count shows up as a
    // null entry, which the host rejects and the tests catch.
    std::size_t n = 0;
    for (auto family : {basic_strategies(), scaling_strategies(), matrix_strategies()})
      for (const onnx_reinit_strategy_desc& d : family)
        if (n < strategy_count) entries[n++] = d;
  }
};

}  // namespace

const strategy_array& standard_strategies() {
  static const strategy_table table;
  return table.entries;
}

}  // namespace onnx_reinit::standard
