// onnx-reinit: rewrite the weight initializers of an ONNX model with fresh,
// principled values. Parses arguments, calls the library's pipeline
// (reinit.h), prints and draws the progress bar; all the work lives in
// core/.
#include <fmt/format.h>
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
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/presets.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/reinit.h"
#include "onnx_reinit/report.h"
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
  std::string policy = "signal";
  double output_rms = ori::signal_options{}.output_rms;
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
  app.add_option("--policy", a.policy,
                 "signal (default): scales solved over the whole graph so every layer reads "
                 "second moment 1; textbook: each tensor's own formula (the bytes of 0.1)")
      ->check(CLI::IsMember({"signal", "textbook"}));
  app.add_option("--output-rms", a.output_rms,
                 "with --policy signal: the RMS of output layers' logits (default 0.1)")
      ->check(CLI::PositiveNumber);
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

// The pipeline's options from the arguments (--input-shape parsed here).
ori::reinit_options reinit_options_of(const arguments& a, const numbers& n) {
  ori::reinit_options o;
  o.seed = n.seed;
  o.threads = n.threads;
  o.convention =
      a.fan_convention == "torch" ? ori::fan_convention::torch : ori::fan_convention::semantic;
  o.rules = a.rules;
  o.rules_file = a.rules_file;
  o.presets = a.recipes.presets;
  o.only = a.only;
  o.skip = a.skip;
  o.requantize = a.quantized == "requantize";
  o.policy = ori::parse_init_policy(a.policy);
  o.output_rms = a.output_rms;
  o.from = a.recipes.from;
  o.maps = a.recipes.maps;
  o.load.max_tensor_bytes = a.no_size_limit ? ori::load_options::no_size_limit : n.max_tensor_bytes;
  o.load.max_total_bytes = a.no_size_limit ? ori::load_options::no_size_limit : n.max_total_bytes;
  ori::cli::set_runtime_options(a.runtime, o);
  return o;
}

bool listing_only(const arguments& a) {
  return a.list || !a.describe.empty() || a.print_policy || a.recipes.list_presets;
}

// --inspect alone: inspect MODEL as it is, write nothing else.
bool inspect_only(const arguments& a) {
  return a.runtime.inspect && !a.plan && a.output.empty() && !a.in_place;
}

// The usage errors, then the pipeline's options (none for a listing).
ori::reinit_options check_usage(const arguments& a, const numbers& n) {
  if (listing_only(a) && !a.report.empty())
    throw ori::usage_error("--report goes with a rewrite or --plan", command_line);
  if (listing_only(a)) return {};
  if (a.model.empty()) throw ori::usage_error("no MODEL given (see --help)", command_line);
  ori::reinit_options o = reinit_options_of(a, n);
  ori::check_reinit_options(o, !a.output.empty() || a.in_place, a.plan);
  if (inspect_only(a)) return o;
  if (a.plan && (!a.output.empty() || a.in_place))
    throw ori::usage_error("--plan writes nothing; drop -o/--in-place", command_line);
  if (a.plan) return o;
  if (a.output.empty() && !a.in_place)
    throw ori::usage_error("say where to write: -o OUT, or --in-place to overwrite MODEL",
                           command_line);
  if (!a.output.empty() && a.in_place)
    throw ori::usage_error("-o and --in-place exclude each other", command_line);
  if (a.json && !a.runtime.inspect)
    throw ori::usage_error("--json goes with --plan, --list or --inspect; use --report FILE",
                           command_line);
  return o;
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
  ori::plugin_options options;
  for (const std::string& p : a.plugins) options.files.emplace_back(p);
  for (const std::string& d : a.plugin_dirs) options.dirs.emplace_back(d);
  if (!a.quiet)
    options.warn = [](const ori::plugin_load_error& e) {
      fmt::print(stderr, "onnx-reinit: warning: plugin not loaded ({}): {} ({})\n",
                 to_string(e.kind), e.message, e.path);
    };
  return ori::load_strategies(options);
}

// "rewrote 7 of 18 tensors (5 calibrated), transferred 3 in 0.12 s -> out.onnx",
// counted from what the writer wrote.
void print_summary(const ori::reinit_result& result, std::chrono::steady_clock::time_point start) {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  fmt::print(stderr, "onnx-reinit: rewrote {} of {} tensors{}{} in {:.2f} s -> {}\n",
             result.rewritten_count(), result.outcomes.size(),
             result.calibrated() > 0 ? fmt::format(" ({} calibrated)", result.calibrated()) : "",
             result.transferred_count() > 0
                 ? fmt::format(", transferred {}", result.transferred_count())
                 : "",
             seconds, result.path.string());
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
void print_plan(const arguments& a, const ori::reinit_plan& plan) {
  const auto outcomes = plan.preview();
  const std::string report = ori::report_json(plan.header, plan.plans, outcomes);
  if (!a.report.empty()) ori::write_file_atomically(a.report, report);
  fmt::print("{}", a.json ? report : ori::plan_table(plan.plans, outcomes, a.verbose));
  if (!a.json && plan.header.transfer) fmt::print("{}", ori::transfer_text(*plan.header.transfer));
}

// What the command prints after a successful write.
void print_written(const arguments& a, const ori::reinit_plan& plan,
                   const ori::reinit_result& result) {
  if (result.saved.checker_failure)
    fmt::print(stderr,
               "onnx-reinit: warning: the input model fails the ONNX checker: {}; writing the "
               "output anyway since it fails the same way\n",
               one_line(*result.saved.checker_failure));
  ori::cli::print_inspections(result, a.json, !a.runtime.calibrate.empty());
  if (a.verbose) fmt::print("{}", ori::plan_table(plan.plans, result.outcomes, true));
  if (!a.quiet && plan.header.transfer)
    fmt::print(stderr, "onnx-reinit: {}", ori::transfer_text(*plan.header.transfer));
}

// The rewrite, with the progress bar and the LSUV notes on stderr.
void rewrite_and_save(const arguments& a, ori::reinit_plan& plan,
                      std::chrono::steady_clock::time_point start) {
  ori::reinit_output output;
  output.path = a.in_place ? a.model : a.output;
  output.in_place = a.in_place;
  output.external_data = a.external_data;
  output.report = a.report;
  // The written values' figures are shown in the summary, the verbose table
  // and the report; with none of them the writer skips measuring.
  output.measure = !a.quiet || a.verbose || !a.report.empty();
  ori::cli::progress_bar progress(!a.quiet, STDERR_FILENO, plan.rewritten_bytes());
  output.progress = progress.callback();
  output.calibrated = ori::cli::print_lsuv_notes;
  const ori::reinit_result result = ori::execute_reinit(plan, output);
  progress.finish();
  print_written(a, plan, result);
  if (!a.quiet) print_summary(result, start);
}

int run(const arguments& a) {
  const numbers n = parse_numbers(a);
  const ori::reinit_options options = check_usage(a, n);
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
  ori::check_transfer_options(options, a.in_place ? a.model : a.output);
  const auto start = std::chrono::steady_clock::now();
  if (inspect_only(a)) {
    const ori::inspection r = ori::inspect_reinit(ori::load_model(a.model, options.load), options);
    fmt::print("{}", a.json ? ori::inspection_json(r)
                            : ori::cli::inspection_text(r, isatty(STDOUT_FILENO) != 0));
    return 0;
  }
  auto note = [&a](const std::string& text) {
    if (!a.quiet) fmt::print(stderr, "onnx-reinit: {}\n", text);
  };
  ori::reinit_plan plan = ori::plan_reinit(a.model, options, strategies, note);
  if (a.plan)
    print_plan(a, plan);
  else
    rewrite_and_save(a, plan, start);
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
