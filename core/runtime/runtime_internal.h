// Pieces of the runtime stage that need no ONNX Runtime: the input batch
// (synthesized or read from test-data files), element encoding, the layers
// to measure, and the statistics and flags of one layer's output.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/runtime.h"

namespace onnx_reinit::detail {

struct input_data {
  runtime_input info;
  int elem_type = 0;  // ONNX TensorProto data type (== ONNXTensorElementDataType)
  std::vector<std::byte> bytes;
};

// The batch for every graph input of the main graph that is not an
// initializer, in graph order.
std::vector<input_data> make_batch(const onnx::ModelProto& model, const runtime_options& options);

// A NumPy .npy array: its elements as little-endian bytes in C order.
struct npy_array {
  std::string dtype;  // the header's descr, as "<f4"
  int elem_type = 0;  // the ONNX type of the descr
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;
};
// Reads an .npy file (versions 1 to 3, any byte order, C or Fortran order);
// throws usage_error naming the file for a bad header, a dtype ONNX inputs
// cannot hold (complex, strings, objects), or data of the wrong length.
npy_array read_npy(const std::filesystem::path& file);

// Values as the little-endian bytes of `elem_type`; throws usage_error for
// types that cannot be fed (strings, complex).
std::vector<std::byte> encode_values(const std::vector<double>& values, int elem_type,
                                     const std::string& where);
std::string elem_type_name(int elem_type);
// Bytes per element of the types that can be fed; 0 for the others.
std::size_t element_size_of(int elem_type);

// One weighted layer to measure: its first weight (analysis order, weights
// before recurrent weights), the layer output and the activation.
struct layer_site {
  std::string weight;
  tensor_ref ref;
  std::string op;
  std::string output;
  activation_kind act = activation_kind::linear;
  double act_param = 0.0;
  std::string act_input;   // "" when linear
  std::string act_output;  // "" when linear or decomposed
  bool recurrent = false;
  bool quantized = false;  // an integer weight behind a DequantizeLinear: measured, not calibrated
  int node = 0;            // index in the main graph's node list
};
std::vector<layer_site> find_layers(const onnx::ModelProto& model,
                                    const std::vector<tensor_analysis>& analysis);

// The activation applied to one value, for decomposed activations (no node
// output to measure). `param` as in tensor_info::activation_param.
double apply_activation(activation_kind kind, double param, double x);

// Running moments of one output over its finite elements (Welford), with
// the counts the dead and saturated fractions need.
struct moments {
  std::int64_t count = 0;
  std::int64_t nonfinite = 0;
  double mean = 0.0;
  double m2 = 0.0;
  double max_abs = 0.0;
  std::int64_t zeros = 0;
  std::int64_t beyond_tanh = 0;     // |x| > 0.99
  std::int64_t beyond_sigmoid = 0;  // x < 0.01 or x > 0.99
  void add(double x) {
    if (!std::isfinite(x)) {
      ++nonfinite;
      return;
    }
    ++count;
    const double d = x - mean;
    mean += d / static_cast<double>(count);
    m2 += d * (x - mean);
    max_abs = std::max(max_abs, std::abs(x));
    zeros += x == 0.0 ? 1 : 0;
    beyond_tanh += std::abs(x) > 0.99 ? 1 : 0;
    beyond_sigmoid += (x < 0.01 || x > 0.99) ? 1 : 0;
  }
  double std() const { return count > 0 ? std::sqrt(m2 / static_cast<double>(count)) : NAN; }
};

// Fills mean/std/max_abs/nonfinite of `s` from the layer output, act_std,
// dead_fraction and saturated_fraction from the activation's values.
void fill_layer_stats(layer_stats& s, const moments& layer, const moments& act,
                      activation_kind kind);
// ratio_to_first, flags and the summary.
void finish_inspection(inspection& result, const inspect_thresholds& thresholds);

}  // namespace onnx_reinit::detail
