// The command line's runtime stage: --inspect (per-layer statistics of a
// batch run through ONNX Runtime) and --calibrate lsuv, as options, a
// stage around the rewrite, and their text and JSON output.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "onnx_reinit/model_io.h"
#include "onnx_reinit/runtime.h"
#include "onnx_reinit/staged_file.h"

namespace onnx_reinit::cli {

struct runtime_arguments {
  bool inspect = false;
  std::string calibrate;  // "" or "lsuv"
  double lsuv_tol = lsuv_options{}.tolerance;
  std::int64_t batch = runtime_options{}.batch;
  std::vector<std::string> input_shapes;  // NAME=1x3x224x224
  std::string data;
  std::string plot;  // FILE.svg or FILE.png
};

void add_runtime_options(CLI::App& app, runtime_arguments& a);

// Usage errors of the runtime options. `rewriting`: -o or --in-place given.
void check_runtime_usage(const runtime_arguments& a, bool rewriting, bool plan);

// --inspect without -o: inspect MODEL as it is and print.
int inspect_only(const loaded_model& model, const runtime_arguments& a, std::uint64_t seed,
                 bool json);

// --inspect and --calibrate around a rewrite: before_rewrite inspects the
// original, after_rewrite calibrates then inspects the result (all before
// anything is written), report() adds the LSUV figures to the JSON report,
// take_plot() hands the staged plot (rendered with the inspections) to the
// save, which publishes it with the model, and print() shows the
// inspections after the model's write.
class runtime_stage {
 public:
  runtime_stage(const runtime_arguments& a, std::uint64_t seed);
  bool active() const { return args_.inspect || !args_.calibrate.empty(); }
  void before_rewrite(const loaded_model& model, const std::vector<tensor_plan>& plans);
  // Calibrates only what `plans` rewrites (the plan is law).
  void after_rewrite(loaded_model& model, const std::vector<tensor_plan>& plans);
  std::string report(const std::string& report_json) const;
  // Weights the calibration scaled (0 without --calibrate).
  std::size_t calibrated() const;
  // The --plot file staged, if any, for save_options::before_commit: staged
  // only then, so a run killed before its save leaves no temp file.
  std::optional<staged_file> take_plot();
  void print(bool json);

 private:
  const runtime_arguments& args_;
  runtime_options options_;
  std::optional<inspection> original_, rewritten_;
  // Before calibration, for the plot only.
  std::optional<inspection> uncalibrated_;
  std::optional<std::string> plot_;  // rendered, not yet staged
  std::vector<lsuv_result> lsuv_;
  std::vector<tensor_analysis> analysis_;  // the plans' analysis of the model
};

// One inspection as JSON (the --inspect --json contract) and as a table.
std::string inspection_json(const inspection& r);
std::string inspection_text(const inspection& r, bool bars);

}  // namespace onnx_reinit::cli
