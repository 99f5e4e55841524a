// --inspect, --calibrate lsuv and --plot: options and the output.
// Everything measured, and the documents, come from the library.
#include "inspect.h"

#include "inspect_plot.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace onnx_reinit::cli {

namespace {

std::string figure(double v, const char* spec = "{:.4g}") {
  return std::isfinite(v) ? fmt::format(fmt::runtime(spec), v) : std::string("-");
}

// The std on a log scale, 1e-3 .. 1e3 over 24 cells; '|' marks std 1.
std::string bar(double std) {
  constexpr int width = 24;
  std::string cells(width, ' ');
  cells[width / 2] = '|';
  if (!(std > 0) || !std::isfinite(std)) return cells;
  int n = static_cast<int>(std::lround((std::log10(std) + 3.0) / 6.0 * width));
  n = std::clamp(n, 0, width);
  for (int i = 0; i < n; ++i) cells[static_cast<std::size_t>(i)] = '#';
  return cells;
}

}  // namespace

void add_runtime_options(CLI::App& app, runtime_arguments& a) {
  app.add_flag("--inspect", a.inspect,
               "run the model with ONNX Runtime on a batch and show per-layer statistics (with "
               "-o: of the original and the rewritten model)");
  app.add_option("--calibrate", a.calibrate,
                 "with -o: calibrate the rewritten weights from data; only 'lsuv'")
      ->check(CLI::IsMember({"lsuv"}));
  app.add_option("--lsuv-tol", a.lsuv_tol, "LSUV stops when |std - 1| <= TOL (default 0.05)");
  app.add_option("--batch", a.batch, "batch size for inputs whose first dim is not fixed (32)");
  app.add_option("--input-shape", a.input_shapes,
                 "NAME=1x3x224x224: the full shape of an input; repeatable");
  app.add_option("--data", a.data,
                 "directory of the batch to run instead of a synthesized one: NAME.npy per graph "
                 "input, or ONNX test data (input_0.pb, ...)");
  app.add_option("--plot", a.plot,
                 "with --inspect: draw the per-layer std (original, rewritten, calibrated) on a "
                 "log scale into FILE.svg or FILE.png");
}

void set_runtime_options(const runtime_arguments& a, reinit_options& options) {
  options.inspect = a.inspect;
  options.calibrate = a.calibrate;
  options.lsuv_tolerance = a.lsuv_tol;
  options.batch = a.batch;
  for (const std::string& text : a.input_shapes) {
    auto [name, shape] = parse_input_shape(text);
    options.input_shapes[name] = std::move(shape);  // the last one given wins
  }
  options.data_dir = a.data;
  options.plot = a.plot;
  options.renderer.check = check_plot_destination;
  options.renderer.render = render_std_plot;
}

std::string inspection_text(const inspection& r, bool bars) {
  std::string out = fmt::format("model {}, batch {}\n", r.model, r.batch);
  for (const auto& in : r.inputs)
    out += fmt::format("  input {} {} {}: {}\n", in.name, in.dtype, fmt::join(in.shape, "x"),
                       in.source);
  std::size_t w = 5;
  for (const auto& l : r.layers) w = std::max(w, l.name.size());
  w = std::min<std::size_t>(w, 40);
  // The rewritten model's table has the moment pass's predicted RMS beside
  // the measured one.
  const bool predicted = std::any_of(r.layers.begin(), r.layers.end(), [](const layer_stats& l) {
    return std::isfinite(l.predicted_rms);
  });
  out += fmt::format("{:<{}}  {:<14} {:<11} {:>10} {:>10} {:>10} {:>6} {:>6} {:>8}  {}{}{}\n",
                     "layer", w, "op", "act", "mean", "std", "act_std", "dead", "sat", "ratio",
                     predicted ? fmt::format("{:>9} {:>9}  ", "rms", "predicted") : "",
                     bars ? "std (log, 1e-3..1e3)      " : "", "flags");
  // Long names (TensorFlow exports) keep their distinctive end.
  auto shown = [w](const std::string& name) {
    return name.size() <= w ? name : fmt::format("~{}", name.substr(name.size() - (w - 1)));
  };
  for (const auto& l : r.layers)
    out += fmt::format("{:<{}}  {:<14} {:<11} {:>10} {:>10} {:>10} {:>6} {:>6} {:>8}  {}{}{}\n",
                       shown(l.name), w, l.op, l.act, figure(l.mean), figure(l.std),
                       figure(l.act_std), figure(l.dead_fraction, "{:.2f}"),
                       figure(l.saturated_fraction, "{:.2f}"), figure(l.ratio_to_first, "{:.3g}"),
                       predicted ? fmt::format("{:>9} {:>9}  ", figure(l.rms(), "{:.4g}"),
                                               figure(l.predicted_rms, "{:.4g}"))
                                 : "",
                       bars ? bar(l.std) + "  " : "", fmt::join(l.flags, ","));
  out += fmt::format(
      "summary: {} layers, last/first std ratio {}, worst layer {}, flags: {}\n", r.layers.size(),
      figure(r.summary.last_first_ratio, "{:.3g}"),
      r.summary.worst_layer.empty() ? "-" : r.summary.worst_layer,
      r.summary.flags.empty() ? "none" : fmt::format("{}", fmt::join(r.summary.flags, ",")));
  return out;
}

void print_lsuv_notes(const std::vector<lsuv_result>& results) {
  std::size_t left_by_plan = 0;
  for (const auto& r : results) {
    if (r.left_by_plan) {
      ++left_by_plan;
      continue;
    }
    if (!r.note.empty()) fmt::print(stderr, "onnx-reinit: lsuv: {}: {}\n", r.name, r.note);
  }
  if (left_by_plan > 0)
    fmt::print(stderr,
               "onnx-reinit: lsuv: {} weight{} the plan keeps or transfers left as they are\n",
               left_by_plan, left_by_plan == 1 ? "" : "s");
}

void print_inspections(const reinit_result& result, bool json, bool calibrated) {
  if (!result.original || !result.rewritten) return;
  if (json) {
    fmt::print("{}", result.inspection_json());
    return;
  }
  const bool bars = isatty(STDOUT_FILENO) != 0;
  fmt::print("original:\n{}\nrewritten{}:\n{}", inspection_text(*result.original, bars),
             calibrated ? " and calibrated (lsuv)" : "", inspection_text(*result.rewritten, bars));
}

}  // namespace onnx_reinit::cli
