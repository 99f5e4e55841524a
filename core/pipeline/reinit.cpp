// The pipeline: what the onnx-reinit command does between parsing its
// arguments and printing, as library calls (docs/DESIGN.md section 1).
#include "onnx_reinit/reinit.h"

#include <fmt/format.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/presets.h"
#include "onnx_reinit/rules.h"
#include "onnx_reinit/staged_file.h"

namespace onnx_reinit {

namespace {

// Where the option errors point, as the command's usage errors do.
constexpr const char* command_line = "command line";

// --threads bounds every parallel stage (analysis, sampling, orthogonal
// QR), not only the sampler's arena; for the call's duration.
std::optional<tbb::global_control> limit_threads(unsigned threads) {
  std::optional<tbb::global_control> limit;
  if (threads > 0)
    limit.emplace(tbb::global_control::max_allowed_parallelism, std::size_t{threads});
  return limit;
}

std::vector<prefix_map> prefix_maps_of(const reinit_options& o) {
  std::vector<prefix_map> maps;
  for (const std::string& m : o.maps) maps.push_back(parse_prefix_map(m));
  return maps;
}

// The rules in the order they are tried: --rule, --rules, --preset.
plan_options plan_options_of(const reinit_options& o, const registry& strategies) {
  plan_options options;
  options.strategies = &strategies;
  for (std::size_t i = 0; i < o.rules.size(); ++i)
    options.rules.push_back(parse_rule(o.rules[i], fmt::format("--rule {}", i + 1)));
  if (!o.rules_file.empty())
    for (rule& r : load_rules_file(o.rules_file)) options.rules.push_back(std::move(r));
  for (const std::string& spec : o.presets)
    for (rule& r : preset_rules(spec)) options.rules.push_back(std::move(r));
  options.only = o.only;
  options.skip = o.skip;
  options.requantize = o.requantize;
  return options;
}

bool runtime_active(const reinit_options& o) {
  return o.inspect || !o.calibrate.empty();
}

// From the loaded model on: analysis (once), presets, plan, validation,
// transfer.
reinit_plan plan_loaded(loaded_model model, const std::string& name, const reinit_options& options,
                        const plan_options& planning, const registry& strategies,
                        const std::function<void(const std::string&)>& note) {
  reinit_plan p;
  p.options = options;
  p.strategies = &strategies;
  p.model = std::move(model);
  analysis_options analysis;
  analysis.convention = options.convention;
  p.analysis = analyze_model(p.model, analysis);
  for (const std::string& spec : options.presets) check_preset(spec, p.analysis);
  p.plans = make_plan(p.analysis, planning);
  p.quantized_note = quantized_summary(p.plans);
  if (note && !p.quantized_note.empty()) note(p.quantized_note);
  validate_plan(p.plans, strategies);
  std::optional<transfer_summary> transfer;
  if (!options.from.empty()) {
    const std::vector<prefix_map> maps = prefix_maps_of(options);
    p.pretrained.emplace(load_model(options.from, options.load));
    transfer = plan_transfer(*p.pretrained, maps, planning, p.plans);
  }
  signal_options signal;
  signal.policy = options.policy;
  signal.output_rms = options.output_rms;
  p.signal = apply_signal_policy(p.model, p.plans, strategies, signal);
  p.header = report_header{name, options.seed, options.convention, std::move(transfer), p.signal};
  return p;
}

// The runtime stage of one execute_reinit: inspections around the rewrite
// and the calibration, from the plan's analysis.
struct runtime_run {
  const reinit_plan& plan;
  runtime_options options;
  reinit_result& result;

  void before(const loaded_model& model) {
    if (plan.options.inspect) result.original = inspect_model(model, plan.analysis, options);
  }
  void after(loaded_model& model, const reinit_output& output) {
    const reinit_options& o = plan.options;
    if (o.calibrate == "lsuv") {
      if (!o.plot.empty()) result.uncalibrated = inspect_model(model, plan.analysis, options);
      lsuv_options lsuv;
      lsuv.tolerance = o.lsuv_tolerance;
      result.lsuv = calibrate_lsuv(model, plan.analysis, plan.plans, options, lsuv);
      if (output.calibrated) output.calibrated(result.lsuv);
    }
    if (o.inspect) {
      result.rewritten = inspect_model(model, plan.analysis, options);
      attach_predictions(*result.rewritten, plan.plans);
    }
  }
  // The moment pass's predicted RMS beside each measured layer of the
  // rewritten model (docs/DESIGN.md section 14).
  static void attach_predictions(inspection& r, const std::vector<tensor_plan>& plans) {
    std::unordered_map<std::string, double> predicted;
    for (const tensor_plan& p : plans)
      if (p.predicted && p.tensor.ref.graph_path.empty() && p.predicted->output_rms > 0)
        predicted[p.tensor.info.name] = p.predicted->output_rms;
    for (layer_stats& l : r.layers)
      if (auto it = predicted.find(l.name); it != predicted.end()) l.predicted_rms = it->second;
  }
  // The --plot figure, rendered before the save so it is published with
  // the model; nullopt without --plot.
  std::optional<std::string> plot() const {
    if (plan.options.plot.empty()) return std::nullopt;
    std::vector<plot_series> series{{"original", &*result.original}};
    if (result.uncalibrated) series.push_back({"rewritten", &*result.uncalibrated});
    series.push_back({result.uncalibrated ? "calibrated (lsuv)" : "rewritten", &*result.rewritten});
    return plan.options.renderer.render(series, plan.options.plot);
  }
};

}  // namespace

registry load_strategies(const plugin_options& options) {
  discovery_options discovery;
  discovery.plugin_files = options.files;
  discovery.plugin_dirs = options.dirs;
  registry r = registry::discover(discovery);
  // A plugin the caller named must load; failures elsewhere are warnings.
  for (const plugin_load_error& e : r.load_errors()) {
    const bool named = std::any_of(
        options.files.begin(), options.files.end(), [&](const std::filesystem::path& p) {
          return std::filesystem::weakly_canonical(p) == std::filesystem::weakly_canonical(e.path);
        });
    if (named && e.kind != plugin_load_error_kind::duplicate_strategy)
      throw error(fmt::format("cannot load plugin ({}): {}", to_string(e.kind), e.message), e.path);
    if (options.warn) options.warn(e);
  }
  return r;
}

std::pair<std::string, std::vector<std::int64_t>> parse_input_shape(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw usage_error(fmt::format("--input-shape: expected NAME=1x3x224x224, got '{}'", text),
                      command_line);
  return {text.substr(0, eq), parse_shape(text.substr(eq + 1), "--input-shape")};
}

void check_reinit_options(const reinit_options& o, bool rewriting, bool plan_only) {
  if (o.inspect && plan_only)
    throw usage_error("--inspect runs the model; drop --plan", command_line);
  if (!o.calibrate.empty() && (!rewriting || plan_only))
    throw usage_error("--calibrate works on a rewrite: give -o OUT (or --in-place)", command_line);
  if (!o.calibrate.empty() && o.calibrate != "lsuv")
    throw usage_error(
        fmt::format("--calibrate: unknown method '{}'; the one method is 'lsuv'", o.calibrate),
        command_line);
  const bool runtime_input_options = o.batch != runtime_options{}.batch ||
                                     !o.input_shapes.empty() || !o.data_dir.empty() ||
                                     !o.data.empty();
  if (!runtime_active(o) && runtime_input_options)
    throw usage_error("--batch, --input-shape and --data go with --inspect or --calibrate",
                      command_line);
  if (!o.data_dir.empty() && !o.data.empty())
    throw usage_error("give the batch as a --data directory or in memory, not both", command_line);
  if (!o.plot.empty()) {
    if (!o.inspect) throw usage_error("--plot goes with --inspect", command_line);
    if (!o.renderer.render)
      throw usage_error("--plot needs a renderer (reinit_options::renderer)", command_line);
    if (o.renderer.check) o.renderer.check(o.plot);
    check_writable_file(o.plot);
  }
  if (!(o.lsuv_tolerance > 0.0))
    throw usage_error("--lsuv-tol: the tolerance must be positive", command_line);
}

void check_transfer_options(const reinit_options& o, const std::filesystem::path& output) {
  if (!o.maps.empty() && o.from.empty())
    throw usage_error("--map goes with --from PRETRAINED", command_line);
  check_prefix_maps(prefix_maps_of(o));
  std::error_code ec;
  if (!o.from.empty() && !output.empty() && std::filesystem::equivalent(o.from, output, ec))
    throw usage_error(
        fmt::format("refusing to overwrite the pretrained model '{}'", o.from.string()),
        command_line);
}

runtime_options runtime_options_of(const reinit_options& o) {
  runtime_options r;
  r.batch = o.batch;
  r.seed = o.seed;
  r.input_shapes = o.input_shapes;
  r.data_dir = o.data_dir;
  r.data = o.data;
  return r;
}

std::uint64_t streamed_position(std::uint64_t total, std::uint64_t streamed, std::uint64_t done) {
  const std::uint64_t before = total - std::min(streamed, total);
  return before + std::min(done, total - before);
}

std::vector<tensor_outcome> reinit_plan::preview() const {
  return preview_outcomes(plans, *strategies);
}

std::string reinit_plan::report_json() const {
  return onnx_reinit::report_json(header, plans, preview());
}

std::uint64_t reinit_plan::rewritten_bytes() const {
  std::uint64_t bytes = 0;
  for (const tensor_plan& p : plans)
    if (p.action == plan_action::rewrite || p.action == plan_action::transfer)
      bytes += static_cast<std::uint64_t>(p.tensor.info.element_count()) *
               dtype_size(p.tensor.data_type);
  return bytes;
}

reinit_plan plan_reinit(const std::filesystem::path& model, const reinit_options& options,
                        const registry& strategies,
                        const std::function<void(const std::string&)>& note) {
  auto threads = limit_threads(options.threads);
  check_transfer_options(options, {});
  const plan_options planning = plan_options_of(options, strategies);
  return plan_loaded(load_model(model, options.load), model.string(), options, planning, strategies,
                     note);
}

reinit_plan plan_reinit(loaded_model model, const std::string& name, const reinit_options& options,
                        const registry& strategies,
                        const std::function<void(const std::string&)>& note) {
  auto threads = limit_threads(options.threads);
  check_transfer_options(options, {});
  const plan_options planning = plan_options_of(options, strategies);
  return plan_loaded(std::move(model), name, options, planning, strategies, note);
}

std::size_t reinit_result::rewritten_count() const {
  return static_cast<std::size_t>(std::count_if(
      outcomes.begin(), outcomes.end(), [](const tensor_outcome& o) { return o.rewritten; }));
}

std::size_t reinit_result::transferred_count() const {
  return static_cast<std::size_t>(std::count_if(
      outcomes.begin(), outcomes.end(), [](const tensor_outcome& o) { return o.transferred; }));
}

std::size_t reinit_result::calibrated() const {
  return static_cast<std::size_t>(std::count_if(
      lsuv.begin(), lsuv.end(), [](const lsuv_result& r) { return r.iterations > 0; }));
}

std::string reinit_result::inspection_json() const {
  if (!original || !rewritten) return {};
  return onnx_reinit::inspection_json(*original, *rewritten);
}

reinit_result execute_reinit(reinit_plan& plan, const reinit_output& output) {
  if (plan.executed)
    throw usage_error("this plan was executed already (its model is rewritten): plan again",
                      plan.header.model);
  if (plan.strategies == nullptr) throw usage_error("a plan without strategies", plan.header.model);
  if (output.memory && (!output.path.empty() || output.in_place || !output.external_data.empty()))
    throw usage_error("an output in memory has no path, in-place or external data name",
                      plan.header.model);
  plan.executed = true;
  auto threads = limit_threads(plan.options.threads);
  check_reinit_options(plan.options, true);
  check_transfer_options(plan.options, output.path);
  loaded_model& model = plan.model;
  save_options save;
  save.in_place = output.in_place;
  save.external_data_name = output.external_data;
  save.measure = output.measure;
  // Checked before the rewrite, as read: an input that already fails the
  // checker may be written if the output fails it in no new way.
  save.input_check_failure = check_input_model(model);
  rewrite_options rewrite;
  rewrite.seed = plan.options.seed;
  rewrite.threads = plan.options.threads;
  const std::uint64_t total = plan.rewritten_bytes();
  if (output.progress) {
    // One count for the whole rewrite: inline tensors as the sample is
    // applied, then the external ones as the writer streams them.
    rewrite.progress = [&output, total](std::uint64_t done, std::uint64_t) {
      output.progress(done, total);
    };
    save.progress = [&output, total](std::uint64_t done, std::uint64_t streamed) {
      output.progress(streamed_position(total, streamed, done), total);
    };
  }
  reinit_result result;
  result.path = output.path;
  runtime_run runtime{
      plan, runtime_active(plan.options) ? runtime_options_of(plan.options) : runtime_options{},
      result};
  runtime.before(model);
  result.sample = rewrite_model(model, plan.plans, *plan.strategies, rewrite);
  if (plan.pretrained) copy_transferred(model, *plan.pretrained, plan.plans);
  runtime.after(model, output);
  std::optional<std::string> plot = runtime.plot();

  // Before the commit: the plan is law (exactly the tensors it hands to a
  // stage were written, or nothing is), then the report is built from the
  // figures the writer returns; it and the plot are published with the
  // model as one set.
  save.before_commit = [&](const save_result& written) {
    check_written_follows_plan(result.sample, written);
    result.report_json = report_json(plan.header, plan.plans, outcomes_of(result.sample, written));
    if (!plan.options.calibrate.empty())
      result.report_json = report_with_lsuv(result.report_json, result.lsuv);
    std::vector<staged_file> files;
    if (!output.report.empty()) files.emplace_back(output.report, result.report_json);
    if (plot) files.emplace_back(plan.options.plot, *plot);
    return files;
  };
  result.saved = output.memory ? save_model_to_memory(model, output.memory, save, plan.header.model)
                               : save_model(model, output.path, save);
  result.outcomes = outcomes_of(result.sample, result.saved);
  return result;
}

void sample_tensor(const tensor_plan& plan, const registry& strategies, std::uint64_t seed,
                   std::span<std::byte> out) {
  // A model of this one tensor (no data: the sampler reads none), so the
  // sample is the rewrite's own, adjustments and rounding included.
  const tensor_info& info = plan.tensor.info;
  onnx::ModelProto proto;
  onnx::TensorProto& t = *proto.mutable_graph()->add_initializer();
  t.set_name(info.name);
  for (const std::int64_t d : info.shape) t.add_dims(d);
  t.set_data_type(dtype_of(info.dtype).onnx_type);
  const loaded_model model = loaded_model::from_proto(std::move(proto));
  tensor_plan one = plan;
  one.tensor.ref = collect_model_tensors(model.proto()).at(0).ref;
  one.action = plan_action::rewrite;
  rewrite_options options;
  options.seed = seed;
  const model_sample sample = sample_model(model, {one}, strategies, options);
  const byte_source& source = *sample.tensors.at(0).source;
  if (source.size() != out.size())
    throw usage_error(fmt::format("{} bytes given for a tensor of {}", out.size(), source.size()),
                      info.name);
  source.read(0, out);
}

inspection inspect_reinit(const loaded_model& model, const reinit_options& options) {
  auto threads = limit_threads(options.threads);
  check_reinit_options(options, false);
  const inspection r = inspect_model(model, runtime_options_of(options));
  if (!options.plot.empty())
    staged_file(options.plot, options.renderer.render({{"model", &r}}, options.plot)).commit();
  return r;
}

inspection inspect_reinit(const std::filesystem::path& model, const reinit_options& options) {
  auto threads = limit_threads(options.threads);
  return inspect_reinit(load_model(model, options.load), options);
}

}  // namespace onnx_reinit
