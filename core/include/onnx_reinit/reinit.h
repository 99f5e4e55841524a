// The whole run of the onnx-reinit command as two library calls
// (docs/DESIGN.md section 1): plan_reinit loads, analyses (once), plans,
// validates and plans the transfer; execute_reinit rewrites, transfers,
// calibrates, inspects and saves the model with its report and plot as one
// set. The command, the Python module and a C++ program call the same two
// functions with the same options and get the same bytes and the same
// report. Errors are thrown (errors.h), never printed; on any error nothing
// is written. Every value prints with fmt.
//
//   onnx_reinit::reinit_options options;
//   options.seed = 1;
//   options.presets = {"gpt2"};
//   onnx_reinit::registry strategies = onnx_reinit::load_strategies({});
//   onnx_reinit::reinit_plan plan = onnx_reinit::plan_reinit("model.onnx", options, strategies);
//   fmt::print("{}\n", plan);  // "model.onnx: 18 tensors: 12 rewrite, 0 transfer, 6 keep; seed 1"
//   onnx_reinit::reinit_result result = onnx_reinit::execute_reinit(plan, {.path = "out.onnx"});
//   fmt::print("{}\n{}", result, result.report_json);
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/format.h"
#include "onnx_reinit/io/save_memory.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/report.h"
#include "onnx_reinit/rewrite.h"
#include "onnx_reinit/runtime.h"
#include "onnx_reinit/transfer.h"

namespace onnx_reinit {

// One line of a --plot figure: an inspection and its legend label
// ("original", "rewritten", "calibrated (lsuv)").
struct plot_series {
  std::string label;
  const inspection* data = nullptr;
};

// Draws --plot: the figure's bytes for `file` (its extension says the
// format). The library has no drawing code; the command passes its PLplot
// renderer. `check` refuses (usage_error) a destination it cannot draw.
struct plot_renderer {
  std::function<void(const std::filesystem::path& file)> check;
  std::function<std::string(const std::vector<plot_series>& series,
                            const std::filesystem::path& file)>
      render;
};

// The command's options, one field per flag (README "Usage"). Texts are
// parsed where the command parses them, with the same messages.
struct reinit_options {
  std::uint64_t seed = 0;  // --seed
  unsigned threads = 0;    // --threads; 0: all cores. Never changes the output.
  fan_convention convention = fan_convention::semantic;  // --fan-convention
  std::vector<std::string> rules;    // --rule MATCH=STRATEGY(k=v), in order ("--rule N" in errors)
  std::filesystem::path rules_file;  // --rules FILE, tried after `rules`
  std::vector<std::string> presets;  // --preset NAME or NAME(k=v), after the rules
  std::vector<std::string> only;     // --only GLOB
  std::vector<std::string> skip;     // --skip GLOB
  bool requantize = false;           // --quantized requantize (false: keep)
  init_policy policy = init_policy::signal;         // --policy signal|textbook
  double output_rms = signal_options{}.output_rms;  // --output-rms
  std::filesystem::path from;                       // --from PRETRAINED
  std::vector<std::string> maps;                    // --map OLD_PREFIX=NEW_PREFIX
  load_options load;  // --max-tensor-bytes, --max-total-bytes, for the model and --from

  // The runtime stage (runtime.h).
  bool inspect = false;                                           // --inspect
  std::string calibrate;                                          // --calibrate: "" or "lsuv"
  double lsuv_tolerance = lsuv_options{}.tolerance;               // --lsuv-tol
  std::int64_t batch = runtime_options{}.batch;                   // --batch
  std::map<std::string, std::vector<std::int64_t>> input_shapes;  // --input-shape NAME=1x3x8x8
  std::filesystem::path data_dir;                                 // --data DIR
  // The batch in memory (the Python module's NumPy arrays), by graph input
  // name; excludes data_dir.
  std::map<std::string, input_array> data;
  std::filesystem::path plot;  // --plot FILE.svg|.png (with inspect)
  plot_renderer renderer;      // draws `plot` (required with it)
};

// --plugin and --plugin-dir. A plugin named by file must load (else
// error); other load failures go to `warn` (the command prints them).
struct plugin_options {
  std::vector<std::filesystem::path> files;
  std::vector<std::filesystem::path> dirs;
  std::function<void(const plugin_load_error&)> warn;
};
registry load_strategies(const plugin_options& options);

// "--input-shape NAME=1x3x224x224" as (name, shape); usage_error naming
// the flag otherwise.
std::pair<std::string, std::vector<std::int64_t>> parse_input_shape(const std::string& text);

// Usage errors of the options alone, with the command's messages, before
// anything is read: --calibrate needs `rewriting` (an output), --plot goes
// with --inspect (and its renderer's check), --lsuv-tol positive, --batch/
// --input-shape/--data only with --inspect or --calibrate, --map needs
// --from, conflicting maps, --from being `output`. `plan_only`: --plan.
void check_reinit_options(const reinit_options& options, bool rewriting, bool plan_only = false);
void check_transfer_options(const reinit_options& options, const std::filesystem::path& output);

// The planning step's value: the model as loaded, its analysis (computed
// once; every later stage uses it), the plans, the report header (with the
// transfer summary) and the pretrained model the transfer copies from. Move
// only; execute_reinit rewrites its model, so a plan is executed once.
struct reinit_plan {
  reinit_options options;
  const registry* strategies = nullptr;
  loaded_model model;
  std::vector<tensor_analysis> analysis;
  std::vector<tensor_plan> plans;
  report_header header;
  // quantized_summary(plans): "" or a note the command prints on stderr.
  std::string quantized_note;
  // The moment pass's assumptions and warnings (tensor_plan::predicted holds
  // its per-layer figures).
  signal_summary signal;
  std::optional<loaded_model> pretrained;
  // Set by execute_reinit; a second execution is a usage_error.
  bool executed = false;

  // --plan: the figures the strategies aim at, without sampling.
  std::vector<tensor_outcome> preview() const;
  // --plan --json, and the --plan --report document.
  std::string report_json() const;
  // The bytes the rewrite writes (rewritten and transferred tensors), the
  // total of execute_reinit's progress.
  std::uint64_t rewritten_bytes() const;
};

// Parses the rules (rule_error), loads `model` (or takes the loaded one,
// `name` in the report), analyses it, checks the presets, plans, validates
// the plan against `strategies` (which must outlive the plan) and plans
// the transfer. `note`, when set, receives the quantized summary as soon
// as it is known (before validation can fail).
reinit_plan plan_reinit(const std::filesystem::path& model, const reinit_options& options,
                        const registry& strategies,
                        const std::function<void(const std::string&)>& note = {});
reinit_plan plan_reinit(loaded_model model, const std::string& name, const reinit_options& options,
                        const registry& strategies,
                        const std::function<void(const std::string&)>& note = {});

// Where and how execute_reinit writes.
struct reinit_output {
  std::filesystem::path path;    // -o OUT (the model's own path with in_place)
  bool in_place = false;         // --in-place
  std::string external_data;     // --external-data NAME
  std::filesystem::path report;  // --report FILE, published with the model; "" none
  // Set instead of `path`: the model is written into the buffer this hands
  // out once its size is known (io/save_memory.h), the same bytes -o
  // writes, and no model file. A model with external data is refused
  // (usage_error): its data files need a path beside the model.
  memory_sink memory;
  // Measure the written values (the report's and summary's figures); false
  // skips a pass over the bytes when nothing reads them.
  bool measure = true;
  // (done, total) bytes over the whole rewrite, total = rewritten_bytes():
  // inline tensors as they are sampled, then external ones as they stream.
  std::function<void(std::uint64_t, std::uint64_t)> progress;
  // After calibration, before anything is written (the command prints why
  // weights were left alone).
  std::function<void(const std::vector<lsuv_result>&)> calibrated;
};

// What execute_reinit did.
struct reinit_result {
  std::filesystem::path path;
  model_sample sample;
  save_result saved;
  std::vector<tensor_outcome> outcomes;
  // With inspect: the model before the rewrite, after it, and (with
  // --plot and --calibrate) after the rewrite before calibration.
  std::optional<inspection> original, rewritten, uncalibrated;
  std::vector<lsuv_result> lsuv;
  // The report document (lsuv_* fields with --calibrate), as --report writes it.
  std::string report_json;

  // Tensors written by the sampler, tensors copied from --from, and
  // weights LSUV scaled.
  std::size_t rewritten_count() const;
  std::size_t transferred_count() const;
  std::size_t calibrated() const;
  // {"original": ..., "rewritten": ...}, what `--inspect -o --json` prints;
  // "" without inspect.
  std::string inspection_json() const;
};

// Rewrites `plan.model` by the plan, copies the transferred tensors,
// inspects and calibrates as the options say, and saves it to
// `output.path` with the report and plot as one set (or into
// `output.memory`), after checking that
// exactly the tensors the plan hands to a stage were written. Throws on
// any failure, with nothing written.
reinit_result execute_reinit(reinit_plan& plan, const reinit_output& output);

// --inspect without -o: the model as it is (analysed once), the plot
// written when asked.
inspection inspect_reinit(const loaded_model& model, const reinit_options& options);
// The same, loading `model` (options.load).
inspection inspect_reinit(const std::filesystem::path& model, const reinit_options& options);

// One tensor's bytes exactly as a rewrite writes them (docs/DESIGN.md
// section 4): `plan` (a rewrite) gives the tensor (name, shape, dtype and
// what the analysis knows), its strategy call and host adjustments (the
// forget-gate bias); the sampler fills `out` (element count x the dtype's
// size) from the tensor's stream under `seed`, applies the adjustments,
// rounds to the dtype (16-bit floats as raw bits) and checks every value is
// finite (strategy_error). For the Python module's sample(). A tensor
// inside a subgraph is keyed by its name alone here.
void sample_tensor(const tensor_plan& plan, const registry& strategies, std::uint64_t seed,
                   std::span<std::byte> out);

// Exposed for the command and tests ----------------------------------------

// The runtime options of `options` (batch, shapes, data, seed).
runtime_options runtime_options_of(const reinit_options& options);

// Where a bar over `total` bytes stands while save_model streams external
// tensors, which it reports as (done, streamed): the streamed bytes come
// last in the total, so the position is total - streamed + done, clamped
// into [0, total].
std::uint64_t streamed_position(std::uint64_t total, std::uint64_t streamed, std::uint64_t done);

}  // namespace onnx_reinit

// "model.onnx: 18 tensors: 12 rewrite, 3 transfer, 3 keep; seed 1; from
// backbone.onnx: 3 transferred, 0 mismatched, 0 kept, 2 unused"
template <>
struct fmt::formatter<onnx_reinit::reinit_plan> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::reinit_plan& p, Context& ctx) const {
    std::size_t rewrite = 0, transfer = 0, keep = 0;
    for (const auto& t : p.plans) {
      rewrite += t.action == onnx_reinit::plan_action::rewrite ? 1 : 0;
      transfer += t.action == onnx_reinit::plan_action::transfer ? 1 : 0;
      keep += t.action == onnx_reinit::plan_action::keep ? 1 : 0;
    }
    auto out =
        fmt::format_to(ctx.out(), "{}: {} tensors: {} rewrite, {} transfer, {} keep; seed {}",
                       p.header.model, p.plans.size(), rewrite, transfer, keep, p.header.seed);
    if (p.header.transfer) out = fmt::format_to(out, "; {}", *p.header.transfer);
    return out;
  }
};

// "out.onnx: rewrote 12 of 18 tensors (5 calibrated), transferred 3"
template <>
struct fmt::formatter<onnx_reinit::reinit_result> : onnx_reinit::format_detail::plain_formatter {
  template <class Context>
  auto format(const onnx_reinit::reinit_result& r, Context& ctx) const {
    auto out = fmt::format_to(ctx.out(), "{}: rewrote {} of {} tensors", r.path.string(),
                              r.rewritten_count(), r.outcomes.size());
    if (r.calibrated() > 0) out = fmt::format_to(out, " ({} calibrated)", r.calibrated());
    if (r.transferred_count() > 0)
      out = fmt::format_to(out, ", transferred {}", r.transferred_count());
    return out;
  }
};
