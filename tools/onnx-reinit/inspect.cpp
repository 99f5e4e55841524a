// --inspect and --calibrate lsuv: options, the stage around the rewrite,
// and the output. Everything measured comes from the runtime library.
#include "inspect.h"

#include "inspect_plot.h"
#include "json_number.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace onnx_reinit::cli {

namespace {

using json = nlohmann::ordered_json;

runtime_options make_options(const runtime_arguments& a, std::uint64_t seed) {
  runtime_options o;
  o.batch = a.batch;
  o.seed = seed;
  o.data_dir = a.data;
  for (const std::string& s : a.input_shapes) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      throw usage_error(fmt::format("--input-shape: expected NAME=1x3x224x224, got '{}'", s),
                        "command line");
    o.input_shapes[s.substr(0, eq)] = parse_shape(s.substr(eq + 1), "--input-shape");
  }
  return o;
}

json inspection_document(const inspection& r) {
  json j;
  j["model"] = r.model;
  j["batch"] = r.batch;
  json inputs = json::array();
  for (const auto& in : r.inputs) {
    json i;
    i["name"] = in.name;
    i["dtype"] = in.dtype;
    i["shape"] = in.shape;
    i["source"] = in.source;
    inputs.push_back(std::move(i));
  }
  j["inputs"] = std::move(inputs);
  json layers = json::array();
  for (const auto& l : r.layers) {
    json o;
    o["name"] = l.name;
    o["op"] = l.op;
    o["output"] = l.output;
    o["mean"] = number_or_null(l.mean);
    o["std"] = number_or_null(l.std);
    o["act"] = l.act;
    o["act_std"] = number_or_null(l.act_std);
    o["dead_fraction"] = number_or_null(l.dead_fraction);
    o["saturated_fraction"] = number_or_null(l.saturated_fraction);
    o["max_abs"] = number_or_null(l.max_abs);
    o["nonfinite"] = l.nonfinite;
    o["ratio_to_first"] = number_or_null(l.ratio_to_first);
    o["flags"] = l.flags;
    layers.push_back(std::move(o));
  }
  j["layers"] = std::move(layers);
  json s;
  s["last_first_ratio"] = number_or_null(r.summary.last_first_ratio);
  s["worst_layer"] = r.summary.worst_layer.empty() ? json(nullptr) : json(r.summary.worst_layer);
  s["flags"] = r.summary.flags;
  j["summary"] = std::move(s);
  return j;
}

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

void check_runtime_usage(const runtime_arguments& a, bool rewriting, bool plan) {
  if (a.inspect && plan) throw usage_error("--inspect runs the model; drop --plan", "command line");
  if (!a.calibrate.empty() && (!rewriting || plan))
    throw usage_error("--calibrate works on a rewrite: give -o OUT (or --in-place)",
                      "command line");
  const bool runtime_input_options =
      a.batch != runtime_options{}.batch || !a.input_shapes.empty() || !a.data.empty();
  if (!a.inspect && a.calibrate.empty() && runtime_input_options)
    throw usage_error("--batch, --input-shape and --data go with --inspect or --calibrate",
                      "command line");
  if (!a.plot.empty()) {
    if (!a.inspect) throw usage_error("--plot goes with --inspect", "command line");
    check_plot_destination(a.plot);
    check_writable_file(a.plot);
  }
  if (!(a.lsuv_tol > 0.0))
    throw usage_error("--lsuv-tol: the tolerance must be positive", "command line");
}

std::string inspection_json(const inspection& r) {
  return inspection_document(r).dump(2) + "\n";
}

std::string inspection_text(const inspection& r, bool bars) {
  std::string out = fmt::format("model {}, batch {}\n", r.model, r.batch);
  for (const auto& in : r.inputs) {
    std::string shape;
    for (auto d : in.shape) shape += fmt::format("{}{}", shape.empty() ? "" : "x", d);
    out += fmt::format("  input {} {} {}: {}\n", in.name, in.dtype, shape, in.source);
  }
  std::size_t w = 5;
  for (const auto& l : r.layers) w = std::max(w, l.name.size());
  w = std::min<std::size_t>(w, 40);
  out += fmt::format("{:<{}}  {:<14} {:<11} {:>10} {:>10} {:>10} {:>6} {:>6} {:>8}  {}{}\n",
                     "layer", w, "op", "act", "mean", "std", "act_std", "dead", "sat", "ratio",
                     bars ? "std (log, 1e-3..1e3)      " : "", "flags");
  // Long names (TensorFlow exports) keep their distinctive end.
  auto shown = [w](const std::string& name) {
    return name.size() <= w ? name : fmt::format("~{}", name.substr(name.size() - (w - 1)));
  };
  for (const auto& l : r.layers)
    out += fmt::format("{:<{}}  {:<14} {:<11} {:>10} {:>10} {:>10} {:>6} {:>6} {:>8}  {}{}\n",
                       shown(l.name), w, l.op, l.act, figure(l.mean), figure(l.std),
                       figure(l.act_std), figure(l.dead_fraction, "{:.2f}"),
                       figure(l.saturated_fraction, "{:.2f}"), figure(l.ratio_to_first, "{:.3g}"),
                       bars ? bar(l.std) + "  " : "", fmt::join(l.flags, ","));
  out += fmt::format(
      "summary: {} layers, last/first std ratio {}, worst layer {}, flags: {}\n", r.layers.size(),
      figure(r.summary.last_first_ratio, "{:.3g}"),
      r.summary.worst_layer.empty() ? "-" : r.summary.worst_layer,
      r.summary.flags.empty() ? "none" : fmt::format("{}", fmt::join(r.summary.flags, ",")));
  return out;
}

int inspect_only(const loaded_model& model, const runtime_arguments& a, std::uint64_t seed,
                 bool json) {
  const inspection r = inspect_model(model, make_options(a, seed));
  std::optional<staged_file> plot;
  if (!a.plot.empty()) plot.emplace(a.plot, render_std_plot({{"model", &r}}, a.plot));
  if (plot) plot->commit();
  fmt::print("{}", json ? inspection_json(r) : inspection_text(r, isatty(STDOUT_FILENO) != 0));
  return 0;
}

namespace {

// Why LSUV left weights alone: one line per weight, except the weights the
// plan keeps or transfers (possibly most of the model with --only), which
// are counted in one line; the report lists each.
void print_lsuv_notes(const std::vector<lsuv_result>& results) {
  std::size_t not_handed = 0;
  for (const auto& r : results) {
    if (r.note.empty()) continue;
    if (r.note.starts_with("kept by the plan") || r.note.starts_with("transferred from")) {
      ++not_handed;
      continue;
    }
    fmt::print(stderr, "onnx-reinit: lsuv: {}: {}\n", r.name, r.note);
  }
  if (not_handed > 0)
    fmt::print(stderr,
               "onnx-reinit: lsuv: {} weight{} the plan keeps or transfers left as they are\n",
               not_handed, not_handed == 1 ? "" : "s");
}

}  // namespace

runtime_stage::runtime_stage(const runtime_arguments& a, std::uint64_t seed)
    : args_(a), options_(active() ? make_options(a, seed) : runtime_options{}) {}

void runtime_stage::before_rewrite(const loaded_model& model,
                                   const std::vector<tensor_plan>& plans) {
  if (!active()) return;
  // The plans hold the model's analysis: every inspection and the
  // calibration use it instead of analysing the model again.
  analysis_.clear();
  for (const tensor_plan& p : plans) analysis_.push_back(p.tensor);
  if (args_.inspect) original_ = inspect_model(model, analysis_, options_);
}

void runtime_stage::after_rewrite(loaded_model& model, const std::vector<tensor_plan>& plans) {
  if (args_.calibrate == "lsuv") {
    if (!args_.plot.empty()) uncalibrated_ = inspect_model(model, analysis_, options_);
    lsuv_options lsuv;
    lsuv.tolerance = args_.lsuv_tol;
    lsuv_ = calibrate_lsuv(model, plans, options_, lsuv);
    print_lsuv_notes(lsuv_);
  }
  if (args_.inspect) rewritten_ = inspect_model(model, analysis_, options_);
  if (!args_.plot.empty()) {
    std::vector<plot_series> series{{"original", &*original_}};
    if (uncalibrated_) series.push_back({"rewritten", &*uncalibrated_});
    series.push_back({uncalibrated_ ? "calibrated (lsuv)" : "rewritten", &*rewritten_});
    plot_ = render_std_plot(series, args_.plot);
  }
}

std::size_t runtime_stage::calibrated() const {
  return static_cast<std::size_t>(std::count_if(
      lsuv_.begin(), lsuv_.end(), [](const lsuv_result& r) { return r.iterations > 0; }));
}

std::optional<staged_file> runtime_stage::take_plot() {
  if (!plot_) return std::nullopt;
  std::optional<staged_file> staged(std::in_place, args_.plot, *plot_);
  plot_.reset();
  return staged;
}

std::string runtime_stage::report(const std::string& report_json) const {
  if (args_.calibrate.empty()) return report_json;
  json root = json::parse(report_json);
  for (auto& t : root["tensors"]) {
    const auto name = t["name"].get<std::string>();
    auto it = std::find_if(lsuv_.begin(), lsuv_.end(),
                           [&](const lsuv_result& r) { return r.name == name; });
    const bool found = it != lsuv_.end();
    t["lsuv_scale"] = found ? json(it->scale) : json(nullptr);
    t["lsuv_iterations"] = found ? json(it->iterations) : json(nullptr);
    t["lsuv_std"] = found ? number_or_null(it->std) : json(nullptr);
    if (found && !it->note.empty()) t["lsuv_note"] = it->note;
  }
  return root.dump(2) + "\n";
}

void runtime_stage::print(bool as_json) {
  if (!original_ || !rewritten_) return;
  if (as_json) {
    json j;
    j["original"] = inspection_document(*original_);
    j["rewritten"] = inspection_document(*rewritten_);
    fmt::print("{}", j.dump(2) + "\n");
    return;
  }
  const bool bars = isatty(STDOUT_FILENO) != 0;
  fmt::print("original:\n{}\nrewritten{}:\n{}", inspection_text(*original_, bars),
             args_.calibrate.empty() ? "" : " and calibrated (lsuv)",
             inspection_text(*rewritten_, bars));
}

}  // namespace onnx_reinit::cli
