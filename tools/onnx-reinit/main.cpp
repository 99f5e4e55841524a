// onnx-reinit: rewrite the weight initializers of an ONNX model with fresh,
// principled values. Parses arguments, calls the library, prints; all
// analysis and planning live in core/.
#include <fmt/format.h>
#include <tbb/global_control.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "cli_numbers.h"
#include "inspect.h"
#include "onnx_reinit/analysis.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/presets.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/report.h"
#include "onnx_reinit/rewrite.h"
#include "onnx_reinit/rules.h"
#include "onnx_reinit/staged_file.h"
#include "onnx_reinit/version.h"
#include "progress.h"
#include "recipes.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;

namespace {

// The checker's messages span lines ("==> Context: ...") and end in a
// full stop; a diagnostic is one line that goes on after them.
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  while (!text.empty() && (text.back() == ' ' || text.back() == '.')) text.pop_back();
  return text;
}

struct arguments {
  std::string model;
  std::string output;
  bool plan = false;
  bool json = false;
  bool list = false;
  std::string describe;
  bool print_policy = false;
  std::string seed = "0";
  std::string threads = "0";
  std::vector<std::string> rules;
  std::string rules_file;
  std::vector<std::string> only;
  std::vector<std::string> skip;
  std::string fan_convention = "semantic";
  std::string quantized = "keep";
  std::string report;
  std::vector<std::string> plugins;
  std::vector<std::string> plugin_dirs;
  std::string external_data;
  bool in_place = false;
  std::string max_tensor_bytes = "16gb";
  std::string max_total_bytes = "64gb";
  bool no_size_limit = false;
  bool quiet = false;
  bool verbose = false;
  ori::cli::runtime_arguments runtime;
  ori::cli::recipe_arguments recipes;
};

void add_options(CLI::App& app, arguments& a) {
  app.add_option("MODEL", a.model, "the ONNX model to read");
  app.add_option("-o,--output", a.output, "write the rewritten model to OUT");
  app.add_flag("--plan", a.plan, "show the per-tensor plan and write nothing");
  app.add_flag("--json", a.json, "with --plan or --list: print JSON");
  app.add_flag("--list", a.list, "list strategies from all plugins, with parameters");
  app.add_option("--describe", a.describe, "show one strategy's formula and parameters");
  app.add_flag("--print-policy", a.print_policy, "print the default policy as rules");
  app.add_option("--seed", a.seed, "random seed; the same seed gives the same bytes (default 0)");
  app.add_option("--threads", a.threads,
                 "threads for every stage (default: all cores); never changes the output");
  app.add_option("--rule", a.rules,
                 "MATCH=STRATEGY(k=v,...); repeatable, tried in order before the policy");
  app.add_option("--rules", a.rules_file, "rules from a YAML file, tried after --rule");
  app.add_option("--only", a.only, "rewrite only tensors whose name matches GLOB; repeatable");
  app.add_option("--skip", a.skip, "keep tensors whose name matches GLOB; repeatable");
  app.add_option("--fan-convention", a.fan_convention, "semantic (default) or torch")
      ->check(CLI::IsMember({"semantic", "torch"}));
  app.add_option("--quantized", a.quantized,
                 "quantized (QDQ) weights and biases: keep (default) or requantize (draw in "
                 "float with their layer's plan, quantize back with new scales)")
      ->check(CLI::IsMember({"keep", "requantize"}));
  app.add_option("--report", a.report, "write the JSON report to FILE");
  app.add_option("--plugin", a.plugins, "load a strategy plugin FILE; repeatable");
  app.add_option("--plugin-dir", a.plugin_dirs, "load every plugin in DIR; repeatable");
  app.add_option("--external-data", a.external_data,
                 "write tensor data to one external file NAME beside OUT");
  app.add_flag("--in-place", a.in_place, "overwrite MODEL (otherwise writing onto it is refused)");
  app.add_option("--max-tensor-bytes", a.max_tensor_bytes,
                 "refuse a model with a float tensor larger than N bytes (default 16gb; "
                 "suffixes kb, mb, gb, tb are powers of 1024)");
  app.add_option("--max-total-bytes", a.max_total_bytes,
                 "refuse a model whose float tensors total more than N bytes (default 64gb)");
  app.add_flag("--no-size-limit", a.no_size_limit,
               "lift both size limits (for trusted models larger than the defaults)");
  app.add_flag("-q,--quiet", a.quiet, "no progress or summary on stderr");
  app.add_flag("-v,--verbose", a.verbose, "per-tensor detail");
  ori::cli::add_runtime_options(app, a.runtime);
  ori::cli::add_recipe_options(app, a.recipes);
  app.set_version_flag("--version", std::string("onnx-reinit ") + ori::tool_version);
}

// Where every usage error points (README: "... (command line)"); rule
// syntax errors point at "--rule N" instead.
constexpr const char* command_line = "command line";

// The numeric options, checked strictly (cli_numbers.h).
struct numbers {
  std::uint64_t seed = 0;
  unsigned threads = 0;
  std::uint64_t max_tensor_bytes = 0;
  std::uint64_t max_total_bytes = 0;
};

numbers parse_numbers(const arguments& a) {
  numbers n;
  n.seed = ori::cli::parse_unsigned("--seed", a.seed, std::numeric_limits<std::uint64_t>::max());
  n.threads = static_cast<unsigned>(
      ori::cli::parse_unsigned("--threads", a.threads, std::numeric_limits<unsigned>::max()));
  n.max_tensor_bytes = ori::cli::parse_byte_size("--max-tensor-bytes", a.max_tensor_bytes);
  n.max_total_bytes = ori::cli::parse_byte_size("--max-total-bytes", a.max_total_bytes);
  return n;
}

void check_usage(const arguments& a) {
  const bool listing = a.list || !a.describe.empty() || a.print_policy || a.recipes.list_presets;
  if (listing && !a.report.empty())
    throw ori::usage_error("--report goes with a rewrite or --plan", command_line);
  if (listing) return;
  if (a.model.empty()) throw ori::usage_error("no MODEL given (see --help)", command_line);
  ori::cli::check_runtime_usage(a.runtime, !a.output.empty() || a.in_place, a.plan);
  if (a.runtime.inspect && !a.plan && a.output.empty() && !a.in_place) return;
  if (a.plan && (!a.output.empty() || a.in_place))
    throw ori::usage_error("--plan writes nothing; drop -o/--in-place", command_line);
  if (a.plan) return;
  if (a.output.empty() && !a.in_place)
    throw ori::usage_error("say where to write: -o OUT, or --in-place to overwrite MODEL",
                           command_line);
  if (!a.output.empty() && a.in_place)
    throw ori::usage_error("-o and --in-place exclude each other", command_line);
  if (a.json && !a.runtime.inspect)
    throw ori::usage_error("--json goes with --plan, --list or --inspect; use --report FILE",
                           command_line);
}

bool same_path(const fs::path& x, const fs::path& y) {
  std::error_code ec;
  if (fs::equivalent(x, y, ec)) return true;
  const fs::path cx = fs::weakly_canonical(x, ec);
  if (ec) return false;
  const fs::path cy = fs::weakly_canonical(y, ec);
  return !ec && cx == cy;
}

// Before anything is read or written (save_model would refuse too, but only
// after the whole model had been sampled): the output is not the input
// unless --in-place; the report must not land on the model, the output or
// its data file, and its directory must take it.
void check_destinations(const arguments& a) {
  std::error_code ec;
  if (!a.in_place && !a.output.empty() && fs::equivalent(a.output, a.model, ec))
    throw ori::usage_error(fmt::format("refusing to overwrite the input model '{}'; use "
                                       "--in-place to allow it",
                                       a.output),
                           command_line);
  if (a.report.empty()) return;
  if (same_path(a.report, a.model))
    throw ori::usage_error(fmt::format("--report '{}' is the input model", a.report), command_line);
  const std::string out = a.in_place ? a.model : a.output;
  if (!out.empty() && same_path(a.report, out))
    throw ori::usage_error(fmt::format("--report '{}' is the output model", a.report),
                           command_line);
  if (!out.empty() && !a.external_data.empty() &&
      same_path(a.report, fs::path(out).parent_path() / a.external_data))
    throw ori::usage_error(fmt::format("--report '{}' is the external data file", a.report),
                           command_line);
  ori::check_writable_file(a.report);
}

ori::registry load_registry(const arguments& a) {
  ori::discovery_options options;
  for (const std::string& p : a.plugins) options.plugin_files.emplace_back(p);
  for (const std::string& d : a.plugin_dirs) options.plugin_dirs.emplace_back(d);
  ori::registry r = ori::registry::discover(options);
  // A plugin the user named must load; failures elsewhere are warnings.
  for (const ori::plugin_load_error& e : r.load_errors()) {
    bool explicit_file = false;
    for (const std::string& p : a.plugins)
      explicit_file = explicit_file || fs::weakly_canonical(p) == fs::weakly_canonical(e.path);
    if (explicit_file && e.kind != ori::plugin_load_error_kind::duplicate_strategy)
      throw ori::error(fmt::format("cannot load plugin ({}): {}", to_string(e.kind), e.message),
                       e.path);
    if (!a.quiet)
      fmt::print(stderr, "onnx-reinit: warning: plugin not loaded ({}): {} ({})\n",
                 to_string(e.kind), e.message, e.path);
  }
  return r;
}

ori::plan_options plan_options_of(const arguments& a, const ori::registry& strategies) {
  ori::plan_options options;
  options.strategies = &strategies;
  for (std::size_t i = 0; i < a.rules.size(); ++i)
    options.rules.push_back(ori::parse_rule(a.rules[i], fmt::format("--rule {}", i + 1)));
  if (!a.rules_file.empty())
    for (ori::rule& r : ori::load_rules_file(a.rules_file)) options.rules.push_back(std::move(r));
  for (ori::rule& r : ori::cli::preset_rules(a.recipes)) options.rules.push_back(std::move(r));
  options.only = a.only;
  options.skip = a.skip;
  options.requantize = a.quantized == "requantize";
  return options;
}

// What the rewrite writes, for the progress bar: sampled and transferred
// tensors (the writer streams both).
std::uint64_t rewritten_bytes(const std::vector<ori::tensor_plan>& plans) {
  std::uint64_t bytes = 0;
  for (const ori::tensor_plan& p : plans)
    if (p.action == ori::plan_action::rewrite || p.action == ori::plan_action::transfer)
      bytes += static_cast<std::uint64_t>(p.tensor.info.element_count()) *
               (p.tensor.is_float               ? ori::element_size(p.tensor.info.dtype)
                : p.tensor.data_type == "int32" ? 4    // a requantized bias
                                                : 1);  // a requantized int8/uint8 weight
  return bytes;
}

ori::load_options load_options_of(const arguments& a, const numbers& n) {
  ori::load_options options;
  options.max_tensor_bytes =
      a.no_size_limit ? ori::load_options::no_size_limit : n.max_tensor_bytes;
  options.max_total_bytes = a.no_size_limit ? ori::load_options::no_size_limit : n.max_total_bytes;
  return options;
}

// "rewrote 7 of 18 tensors (5 calibrated), transferred 3 in 0.12 s -> out.onnx",
// counted from what the writer wrote.
void print_summary(const std::vector<ori::tensor_outcome>& outcomes, std::size_t calibrated,
                   std::chrono::steady_clock::time_point start, const std::string& out) {
  std::size_t rewritten = 0;
  std::size_t transferred = 0;
  for (const auto& o : outcomes) {
    rewritten += o.rewritten ? 1 : 0;
    transferred += o.transferred ? 1 : 0;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(stderr, "onnx-reinit: rewrote {} of {} tensors{}{} in {:.2f} s -> {}\n", rewritten,
             outcomes.size(), calibrated > 0 ? fmt::format(" ({} calibrated)", calibrated) : "",
             transferred > 0 ? fmt::format(", transferred {}", transferred) : "", seconds, out);
}

// --list-presets, --print-policy, --list and --describe: what they print,
// or nullopt when `a` asks for none of them.
std::optional<std::string> listing(const arguments& a, const ori::registry* strategies) {
  if (a.recipes.list_presets) return ori::presets_text();
  if (a.print_policy)
    return fmt::format("{}{}", ori::cli::presets_policy_text(a.recipes), ori::policy_text());
  if (strategies == nullptr) return std::nullopt;
  if (a.list) return ori::format_strategy_list(*strategies, a.json);
  if (!a.describe.empty()) return ori::describe_strategy(*strategies, a.describe);
  return std::nullopt;
}

// --plan: the plan with the figures the strategies aim at, printed and,
// with --report, written as the report.
void print_plan(const arguments& a, const std::vector<ori::tensor_plan>& plans,
                const ori::registry& strategies, const ori::report_header& header) {
  const auto outcomes = ori::preview_outcomes(plans, strategies);
  if (!a.report.empty())
    ori::write_file_atomically(a.report, ori::report_json(header, plans, outcomes));
  fmt::print("{}", a.json ? ori::report_json(header, plans, outcomes)
                          : ori::plan_table(plans, outcomes, a.verbose));
  if (!a.json && header.transfer) fmt::print("{}", ori::transfer_text(*header.transfer));
}

// One bar in bytes for the whole rewrite: inline tensors as the sample is
// applied, then the external ones as the writer streams them.
void connect_progress(ori::cli::progress_bar& progress, std::uint64_t total_bytes,
                      ori::rewrite_options& rewrite_options, ori::save_options& save_options) {
  auto bar = progress.callback();
  if (!bar) return;
  rewrite_options.progress = [bar, total_bytes](std::uint64_t done, std::uint64_t) {
    bar(done, total_bytes);
  };
  save_options.progress = [bar, total_bytes](std::uint64_t done, std::uint64_t streamed) {
    bar(ori::cli::streamed_position(total_bytes, streamed, done), total_bytes);
  };
}

ori::save_options save_options_of(const arguments& a, const ori::loaded_model& model) {
  ori::save_options save_options;
  save_options.in_place = a.in_place;
  save_options.external_data_name = a.external_data;
  // The written values' figures are shown in the summary, the verbose table
  // and the report; with none of them the writer skips measuring.
  save_options.measure = !a.quiet || a.verbose || !a.report.empty();
  // Checked before the rewrite, as read: an input that already fails the
  // checker may be written if the output fails it in no new way.
  save_options.input_check_failure = ori::check_input_model(model);
  return save_options;
}

// What the command prints after a successful write.
void print_written(const arguments& a, const ori::save_result& saved,
                   ori::cli::runtime_stage& runtime, const std::vector<ori::tensor_plan>& plans,
                   const std::vector<ori::tensor_outcome>& outcomes,
                   const ori::report_header& header) {
  if (saved.checker_failure)
    fmt::print(stderr,
               "onnx-reinit: warning: the input model fails the ONNX checker: {}; writing the "
               "output anyway since it fails the same way\n",
               one_line(*saved.checker_failure));
  runtime.print(a.json);
  if (a.verbose) fmt::print("{}", ori::plan_table(plans, outcomes, true));
  if (!a.quiet && header.transfer)
    fmt::print(stderr, "onnx-reinit: {}", ori::transfer_text(*header.transfer));
}

// The rewrite: sample, transfer, runtime stages, then the model and its
// report written together.
void rewrite_and_save(const arguments& a, const numbers& n, ori::loaded_model& model,
                      const std::vector<ori::tensor_plan>& plans, const ori::registry& strategies,
                      const ori::cli::transfer_stage& transfer, const ori::report_header& header,
                      std::chrono::steady_clock::time_point start) {
  ori::save_options save_options = save_options_of(a, model);
  ori::rewrite_options rewrite_options;
  rewrite_options.seed = n.seed;
  rewrite_options.threads = n.threads;
  const std::uint64_t total_bytes = rewritten_bytes(plans);
  ori::cli::progress_bar progress(!a.quiet, STDERR_FILENO, total_bytes);
  connect_progress(progress, total_bytes, rewrite_options, save_options);
  ori::cli::runtime_stage runtime(a.runtime, n.seed);
  runtime.before_rewrite(model, plans);
  const ori::model_sample sample = ori::rewrite_model(model, plans, strategies, rewrite_options);
  transfer.copy(model, plans);
  runtime.after_rewrite(model, plans);

  // Before the commit: the plan is law (exactly the tensors it hands to a
  // stage were written, or nothing is), then the report is staged from the
  // figures the writer returns; it and the plot are published with the
  // model as one set.
  save_options.before_commit = [&](const ori::save_result& written) {
    ori::check_written_follows_plan(sample, written);
    std::vector<ori::staged_file> files;
    if (!a.report.empty())
      files.emplace_back(a.report, runtime.report(ori::report_json(
                                       header, plans, ori::outcomes_of(sample, written))));
    if (auto plot = runtime.take_plot()) files.push_back(std::move(*plot));
    return files;
  };
  const std::string out = a.in_place ? a.model : a.output;
  const ori::save_result saved = ori::save_model(model, out, save_options);
  progress.finish();
  const std::vector<ori::tensor_outcome> outcomes = ori::outcomes_of(sample, saved);
  print_written(a, saved, runtime, plans, outcomes, header);
  if (!a.quiet) print_summary(outcomes, runtime.calibrated(), start, out);
}

int run(const arguments& a) {
  const numbers n = parse_numbers(a);
  check_usage(a);
  // --threads bounds every parallel stage (analysis, sampling, orthogonal
  // QR), not only the sampler's arena.
  std::optional<tbb::global_control> thread_limit;
  if (n.threads > 0)
    thread_limit.emplace(tbb::global_control::max_allowed_parallelism, std::size_t{n.threads});
  if (auto text = listing(a, nullptr)) {
    fmt::print("{}", *text);
    return 0;
  }
  ori::registry strategies = load_registry(a);
  if (auto text = listing(a, &strategies)) {
    fmt::print("{}", *text);
    return 0;
  }

  check_destinations(a);
  ori::cli::transfer_stage::check_usage(a.recipes, a.in_place ? a.model : a.output);

  const auto start = std::chrono::steady_clock::now();
  const ori::plan_options plan_options = plan_options_of(a, strategies);
  ori::analysis_options analysis_options;
  analysis_options.convention =
      a.fan_convention == "torch" ? ori::fan_convention::torch : ori::fan_convention::semantic;

  ori::loaded_model model = ori::load_model(a.model, load_options_of(a, n));
  if (a.runtime.inspect && !a.plan && a.output.empty() && !a.in_place)
    return ori::cli::inspect_only(model, a.runtime, n.seed, a.json);
  const std::vector<ori::tensor_analysis> analysis = ori::analyze_model(model, analysis_options);
  ori::cli::check_presets(a.recipes, analysis);
  std::vector<ori::tensor_plan> plans = ori::make_plan(analysis, plan_options);
  if (const std::string note = ori::quantized_summary(plans); !note.empty() && !a.quiet)
    fmt::print(stderr, "onnx-reinit: {}\n", note);
  ori::validate_plan(plans, strategies);
  ori::cli::transfer_stage transfer(a.recipes, load_options_of(a, n));
  transfer.plan(plans, plan_options);
  const ori::report_header header{a.model, n.seed, analysis_options.convention, transfer.summary()};
  if (a.plan)
    print_plan(a, plans, strategies, header);
  else
    rewrite_and_save(a, n, model, plans, strategies, transfer, header, start);
  return 0;
}

void print_error(const ori::error& e) {
  if (e.where().empty())
    fmt::print(stderr, "onnx-reinit: error: {}\n", e.what());
  else
    fmt::print(stderr, "onnx-reinit: error: {} ({})\n", e.what(), e.where());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"onnx-reinit: fresh, principled initial weights for ONNX models", "onnx-reinit"};
  arguments args;
  add_options(app, args);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "onnx-reinit: error: {} (command line)\n", e.what());
    return 2;
  }
  try {
    return run(args);
  } catch (const ori::usage_error& e) {
    // Library usage errors name a path or tensor in their text already.
    fmt::print(stderr, "onnx-reinit: error: {} ({})\n", e.what(), command_line);
    return 2;
  } catch (const ori::rule_error& e) {
    print_error(e);
    return 2;
  } catch (const ori::error& e) {
    print_error(e);
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "onnx-reinit: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "onnx-reinit: error: {}\n", e.what());
    return 1;
  }
}
