// The runtime stage (docs/DESIGN.md section 1): runs a model with ONNX Runtime on
// a batch to inspect the statistics of every weighted layer's output, and to
// calibrate the weights from data (LSUV). No ONNX Runtime type appears here;
// a build without the runtime (-DONNX_REINIT_RUNTIME=OFF) still has this API,
// and inspect_model/calibrate_lsuv then throw runtime_unavailable_error.
//
// Determinism: every session runs with one intra-op and one inter-op thread,
// sequential execution and ONNX Runtime's deterministic compute, so the
// figures (and the bytes LSUV writes) are the same whatever --threads says.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/format.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"

namespace onnx_reinit {

// The tool or library was built without ONNX Runtime.
class runtime_unavailable_error : public error {
  using error::error;
};
// ONNX Runtime refused the model or failed while running it, or an
// activation became non-finite during calibration.
class runtime_error : public error {
  using error::error;
};

// True when built with ONNX Runtime; then runtime_version() is its version.
bool runtime_available();
std::string runtime_version();

// One input of the batch given in memory (the Python module's NumPy
// arrays): its elements as little-endian bytes in C order, of the graph
// input's type, named as runtime_input::dtype names it ("float", "int64").
struct input_array {
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> bytes;
};

struct runtime_options {
  // Size of dim 0 of every graph input whose first dim is not fixed.
  std::int64_t batch = 32;
  // Full shapes by input name ("x" -> {1, 3, 224, 224}); win over `batch`.
  std::map<std::string, std::vector<std::int64_t>> input_shapes;
  // Directory of the batch: for each graph input that is not an
  // initializer, NAME.npy (NumPy, named after the input) or else the ONNX
  // test-data file input_<i>.pb (TensorProto; i counts those inputs in
  // graph order). Empty: the batch is synthesized.
  std::filesystem::path data_dir;
  // The batch in memory, one array per graph input that is not an
  // initializer; excludes data_dir (usage_error with both).
  std::map<std::string, input_array> data;
  // Seed of the synthesized batch (Philox streams keyed by "input:<name>").
  std::uint64_t seed = 0;
};

// One graph input as fed to the model.
struct runtime_input {
  std::string name;
  std::string dtype;  // "float", "int64", "bool", ...
  std::vector<std::int64_t> shape;
  // How it was made: "normal(0, 1)", "uniform integers in [0, 1000) (Gather
  // vocabulary)", "random booleans", "zeros", "file input_0.pb".
  std::string source;
};

// Thresholds of the flags; see layer_stats::flags.
struct inspect_thresholds {
  double vanishing_ratio = 0.25;  // std below this times the first layer's
  double exploding_ratio = 4.0;   // std above this times the first layer's
  double dead_fraction = 0.9;     // more exact zeros after relu/relu6 (a healthy ReLU has ~0.5)
  double saturated_fraction = 0.1;
};

// Statistics of one weighted layer (Conv, ConvTranspose, Gemm, MatMul with a
// constant weight, LSTM/GRU/RNN) of the main graph, measured on the batch.
// NaN stands for "not applicable" (JSON null).
struct layer_stats {
  std::string name;    // the weight tensor (W for recurrent layers)
  std::string op;      // "Conv", "Gemm", ...
  std::string output;  // the tensor measured: the layer node's output 0
  double mean = 0.0;   // over the finite elements
  double std = 0.0;    // population std over the finite elements
  // The activation that follows (the analysis' walk), "linear" when none;
  // act_std is the std after it (of its node's output, or computed from its
  // input for a decomposed one; the layer's std when linear).
  std::string act = "linear";
  double act_std = 0.0;
  // Fraction of exact zeros after relu/relu6 (NaN for other activations).
  double dead_fraction = 0.0;
  // Fraction of saturated units after tanh (|y| > 0.99), sigmoid and
  // hardsigmoid (y < 0.01 or y > 0.99); NaN for other activations.
  double saturated_fraction = 0.0;
  double max_abs = 0.0;
  std::int64_t nonfinite = 0;   // NaN/Inf elements of the layer output
  double ratio_to_first = 0.0;  // std / the first layer's std
  // The moment pass's prediction of the output's RMS (tensor_plan::predicted)
  // for the rewritten model; NaN where no plan is at hand.
  double predicted_rms = std::numeric_limits<double>::quiet_NaN();
  double rms() const { return std::sqrt(mean * mean + std * std); }
  // "vanishing" (ratio_to_first < vanishing_ratio), "exploding" (>
  // exploding_ratio), "dead" (dead_fraction > dead_fraction threshold),
  // "saturated", "nonfinite" (any non-finite element), "constant" (std 0).
  std::vector<std::string> flags;
};

struct inspection {
  std::string model;
  std::int64_t batch = 0;  // dim 0 of the first input
  std::vector<runtime_input> inputs;
  std::vector<layer_stats> layers;  // topological (node) order
  struct summary_t {
    double last_first_ratio = 0.0;  // last layer's std / first layer's
    // The layer whose std is farthest from the first's on a log scale, or
    // the first with a non-finite output; "" without layers.
    std::string worst_layer;
    // Union of the layers' flags, plus "vanishing"/"exploding" when
    // last_first_ratio crosses the same thresholds.
    std::vector<std::string> flags;
  } summary;
};

// Runs `model` (as loaded, pending writes included) once on the batch and
// measures every weighted layer of its main graph. Throws usage_error for
// an input whose shape is unknown (naming it and --input-shape) or bad data
// files, runtime_error with ONNX Runtime's message when it cannot load or
// run the model, runtime_unavailable_error without ONNX Runtime.
inspection inspect_model(const loaded_model& model, const runtime_options& options,
                         const inspect_thresholds& thresholds = {});

// The same with the model's analysis (analyze_model, or the plans' tensors)
// given, so a caller that inspects several times analyses once. An analysis
// of another model (not one entry per model tensor) is a usage_error.
inspection inspect_model(const loaded_model& model, const std::vector<tensor_analysis>& analysis,
                         const runtime_options& options, const inspect_thresholds& thresholds = {});

struct lsuv_options {
  double tolerance = 0.05;  // stop when |std - 1| <= tolerance
  int max_iterations = 10;  // scalings per layer
};

struct lsuv_result {
  std::string name;    // the weight tensor
  std::string output;  // the layer output measured
  double scale = 1.0;  // product of the scalings applied
  int iterations = 0;  // scalings applied
  double std = 0.0;    // the layer output's std after the last scaling
  // Why the layer was left alone ("constant output; left alone", or why it
  // is not calibrated at all), or "" when calibrated.
  std::string note;
  // The plan keeps or transfers this weight, so LSUV never touches it (the
  // note says which); the command counts these in one line.
  bool left_by_plan = false;
};

// Layer-sequential unit-variance calibration (Mishkin & Matas, "All you need
// is a good init", ICLR 2016): for each Conv/ConvTranspose/Gemm/MatMul
// weight of the main graph in topological order that `plans` rewrites, run
// the batch, scale the weight so the layer's output std is 1, and repeat
// until within tolerance or max_iterations. The plan is law: a weight the
// plan keeps (a fixed constant, --only/--skip, a `keep` rule) or transfers
// is never changed. `plans` is make_plan's (and plan_transfer's) for this
// model, one per model tensor (usage_error otherwise); its analysis is used,
// not recomputed. Biases are left as they are. A layer with a constant
// output is reported and left alone. Weights the plan does not rewrite,
// recurrent weights, weights held by Constant nodes and weights inside
// subgraphs are not calibrated: they are reported after the calibrated ones,
// with scale 1, no iterations, std NaN and the reason in `note`. One
// ONNX Runtime session serves the whole calibration: the weights are graph
// inputs fed on every run. The new weights are written into `model` only
// when every layer succeeded; a non-finite activation throws runtime_error
// naming the layer.
std::vector<lsuv_result> calibrate_lsuv(loaded_model& model, const std::vector<tensor_plan>& plans,
                                        const runtime_options& options,
                                        const lsuv_options& lsuv = {});
// The same with the analysis the plans were made from (make_plan's input),
// used as it is instead of copied out of the plans.
std::vector<lsuv_result> calibrate_lsuv(loaded_model& model,
                                        const std::vector<tensor_analysis>& analysis,
                                        const std::vector<tensor_plan>& plans,
                                        const runtime_options& options, const lsuv_options& lsuv);

// The --inspect --json document of one inspection: model, batch, inputs[],
// layers[] (every layer_stats field; NaN as null), summary.
std::string inspection_json(const inspection& r);
// {"original": ..., "rewritten": ...}: what `--inspect -o --json` prints.
std::string inspection_json(const inspection& original, const inspection& rewritten);

// The report `report_json` with each tensor's lsuv_scale, lsuv_iterations,
// lsuv_std (null for a tensor LSUV did not see) and lsuv_note (when set):
// the report of a run with --calibrate lsuv.
std::string report_with_lsuv(const std::string& report_json, const std::vector<lsuv_result>& lsuv);

// Exposed for tests and other front ends ----------------------------------

// Bytes per element of a fixed-size ONNX data type named as
// runtime_input::dtype and tensor_analysis::data_type name it ("float",
// "int32", "float16"); 0 for any other name (strings, complex, unknown).
std::size_t dtype_size(std::string_view dtype);

// "1x3x224x224" -> {1, 3, 224, 224}; throws usage_error naming `what`.
std::vector<std::int64_t> parse_shape(const std::string& text, const std::string& what);

}  // namespace onnx_reinit

// "fc1.weight Gemm relu std=1.02 act_std=0.58 ratio=1.1 [exploding]"
template <>
struct fmt::formatter<onnx_reinit::layer_stats> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::layer_stats& l, Context& ctx) const {
    using onnx_reinit::format_detail::figure;
    auto out = fmt::format_to(ctx.out(), "{} {} {} std={} act_std={} ratio={}", l.name, l.op, l.act,
                              figure(l.std), figure(l.act_std), figure(l.ratio_to_first));
    if (!l.flags.empty()) out = fmt::format_to(out, " [{}]", fmt::join(l.flags, ","));
    return out;
  }
};

// "model.onnx batch 32: [fc0.weight Gemm relu std=..., ...]; last/first 1.1,
// worst fc3.weight, flags none"
template <>
struct fmt::formatter<onnx_reinit::inspection> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::inspection& r, Context& ctx) const {
    using onnx_reinit::format_detail::figure;
    return fmt::format_to(
        ctx.out(), "{} batch {}: [{}]; last/first {}, worst {}, flags {}", r.model, r.batch,
        fmt::join(r.layers, ", "), figure(r.summary.last_first_ratio),
        r.summary.worst_layer.empty() ? "-" : r.summary.worst_layer,
        r.summary.flags.empty() ? std::string("none")
                                : fmt::format("{}", fmt::join(r.summary.flags, ",")));
  }
};

// "fc1.weight: scaled 0.52 in 2 steps, std 1.01" or "fc0.weight: kept by the
// plan (...): not calibrated"
template <>
struct fmt::formatter<onnx_reinit::lsuv_result> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::lsuv_result& r, Context& ctx) const {
    using onnx_reinit::format_detail::figure;
    if (!r.note.empty()) return fmt::format_to(ctx.out(), "{}: {}", r.name, r.note);
    return fmt::format_to(ctx.out(), "{}: scaled {} in {} step{}, std {}", r.name, figure(r.scale),
                          r.iterations, r.iterations == 1 ? "" : "s", figure(r.std));
  }
};
