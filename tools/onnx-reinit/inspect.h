// The command line's runtime stage: the --inspect, --calibrate lsuv and
// --plot options, and how their results are shown. The stage itself (and
// the JSON documents) run in the library (reinit.h, runtime.h).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "onnx_reinit/reinit.h"
#include "onnx_reinit/runtime.h"

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

// Sets the runtime fields of `options` from `a` (parsing --input-shape),
// with the PLplot renderer for --plot.
void set_runtime_options(const runtime_arguments& a, reinit_options& options);

// One inspection as a table; `bars` adds a log-scale bar of each std.
std::string inspection_text(const inspection& r, bool bars);

// Why LSUV left weights alone, on stderr: one line per weight, except the
// weights the plan keeps or transfers (possibly most of the model with
// --only), which are counted in one line; the report lists each.
void print_lsuv_notes(const std::vector<lsuv_result>& results);

// The inspections of a rewrite (original and rewritten), after the write:
// the JSON document, or two tables.
void print_inspections(const reinit_result& result, bool json, bool calibrated);

}  // namespace onnx_reinit::cli
