// The plugin registry: finds strategy plugins, loads them with Boost.DLL,
// copies their metadata into host-owned strings, and creates configured
// strategies from name=value parameters validated against each schema
// (docs/DESIGN.md section 3). Load failures are collected, never fatal.
//
// This header includes no Boost: a C++ user links OnnxReinit::registry and
// needs only the standard library and the SDK headers.
#pragma once

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "onnx_reinit/sdk/plugin_abi.h"
#include "onnx_reinit/sdk/tensor_info.h"

namespace onnx_reinit {

// ---- Metadata --------------------------------------------------------------

enum class param_type { number, integer, boolean, choice };

std::string_view to_string(param_type t);

// One parameter of a strategy's schema, copied from the plugin.
struct param_info {
  std::string name;
  param_type type = param_type::number;
  double default_number = 0.0;  // number, integer, boolean (0/1)
  std::string default_choice;   // choice
  double min_value = 0.0;       // number, integer; -inf when unbounded
  double max_value = 0.0;       // number, integer; +inf when unbounded
  bool min_exclusive = false;
  bool max_exclusive = false;
  std::vector<std::string> choices;  // choice
  std::string help;

  // The default as a user would type it: "0.02", "3", "true", "fan_in".
  std::string default_text() const;
  // "(0, inf)", "[1, 100]", "fan_in|fan_out|fan_avg"; "" when unconstrained.
  std::string range_text() const;
};

struct strategy_info {
  std::string name;
  std::string summary;
  std::string formula;
  std::vector<param_info> params;
  bool elementwise = false;  // may be filled in chunks, in parallel
  std::string plugin_id;
  std::string plugin_path;

  const param_info* find_param(std::string_view name) const;
};

struct plugin_info {
  std::string id;
  std::string version;
  std::string path;                     // canonical path of the library
  std::vector<std::string> strategies;  // the ones it provides (not duplicates)
};

enum class plugin_load_error_kind {
  cannot_open,         // missing file, not a library, unresolved symbols
  no_entry_point,      // ONNX_REINIT_PLUGIN_ENTRY_NAME not exported
  abi_mismatch,        // abi_version or struct_size
  bad_descriptor,      // null entry result, bad names, schemas, functions
  duplicate_strategy,  // a strategy name an earlier plugin already provides
};

std::string_view to_string(plugin_load_error_kind k);

struct plugin_load_error {
  std::string path;
  plugin_load_error_kind kind = plugin_load_error_kind::cannot_open;
  std::string message;
};

// ---- Parameters given by the user -------------------------------------------

// Text as from a CLI `k=v`, or typed values from an API caller: a string is
// parsed exactly like CLI text, so {{"std", "0.1"}} and {{"std", 0.1}} agree. An integer is
// accepted for a number, and a double with an integral value for an integer.
using param_value = std::variant<std::string, double, std::int64_t, bool>;
using param_text_list = std::vector<std::pair<std::string, std::string>>;
using param_value_list = std::vector<std::pair<std::string, param_value>>;

// One validated value, every parameter of the schema, in schema order.
struct resolved_param {
  std::string name;
  param_type type = param_type::number;
  double number = 0.0;  // number, integer, boolean (0/1)
  std::string choice;   // choice
  bool is_default = true;

  // "0.02", "3", "true", "fan_in".
  std::string text() const;
};

// "mean=0, std=0.02"; "" when there are none.
std::string to_string(std::span<const resolved_param> params);

// Every parameter of the schema `info`, in schema order, defaults filled in
// and the given values parsed and checked: what registry::resolve does for
// a strategy, and the host does for parameters it declares itself (see
// host_params in rules.h). Throws param_error ("strategy '<info.name>':
// parameter '<name>' ...").
std::vector<resolved_param> resolve_params(const strategy_info& info,
                                           const param_value_list& given);

// ---- Configured strategies --------------------------------------------------

// A strategy created by its plugin from validated parameters. Copies share
// one plugin instance; each keeps the plugin's library loaded, so it may
// outlive the registry. fill is const and safe to call from many threads.
class configured_strategy {
 public:
  configured_strategy() = default;  // empty; fill throws usage_error

  const std::string& name() const;
  bool elementwise() const;
  const std::string& plugin_id() const;
  const std::string& plugin_path() const;
  const std::vector<resolved_param>& params() const;
  // "kaiming_normal(a=0, mode=fan_in, nonlinearity=auto)".
  std::string description() const;
  explicit operator bool() const { return state_ != nullptr; }

  // Fills `out`, whose first element is element `first` of `tensor`. A
  // strategy that is not elementwise must get the whole tensor (first == 0).
  // Throws strategy_error (strategy, tensor and the plugin's message) when
  // the plugin refuses the tensor or fails.
  void fill(const tensor_info& tensor, const onnx_reinit_rng& rng, std::uint64_t first,
            std::span<float> out) const;
  void fill(const tensor_info& tensor, const onnx_reinit_rng& rng, std::uint64_t first,
            std::span<double> out) const;

  // The mean and std the strategy aims at for `tensor` (for reports);
  // nullopt when the plugin cannot say; strategy_error, naming strategy,
  // plugin and tensor, when the plugin fails (e.g. its code threw).
  struct moments {
    double mean = 0.0;
    double std = 0.0;
  };
  std::optional<moments> target_moments(const tensor_info& tensor) const;

  struct state;  // defined by the registry

 private:
  friend class registry;
  explicit configured_strategy(std::shared_ptr<const state> s) : state_(std::move(s)) {}
  std::shared_ptr<const state> state_;
};

template <class Range>
concept text_pair_range =
    !std::same_as<std::remove_cvref_t<Range>, param_value_list> && requires(const Range& r) {
  {std::string(r.begin()->first)};
  {std::string(r.begin()->second)};
};

template <class Range>
requires text_pair_range<Range> param_value_list to_value_list(const Range& params) {
  param_value_list list;
  for (const auto& [k, v] : params) list.emplace_back(std::string(k), param_value(std::string(v)));
  return list;
}

// ---- The registry ------------------------------------------------------------

// Where to look, in docs/DESIGN.md's order: explicit files and directories, then
// ONNX_REINIT_PLUGIN_PATH, then the default directory. First found wins.
struct discovery_options {
  std::vector<std::filesystem::path> plugin_files;  // --plugin FILE
  std::vector<std::filesystem::path> plugin_dirs;   // --plugin-dir DIR
  bool use_environment = true;                      // ONNX_REINIT_PLUGIN_PATH
  bool use_default_dir = true;
};

// Candidate default directories next to the executable, in order:
// <exe dir>/../lib/onnx-reinit/plugins, then the configured install libdir
// variant (../lib64/..., ../lib/<multiarch>/...). The build tree has the
// same layout. Only the first that exists is used; empty when the
// executable's location is unknown.
std::vector<std::filesystem::path> default_plugin_dirs();

// The directories named by ONNX_REINIT_PLUGIN_PATH (empty entries skipped).
std::vector<std::filesystem::path> environment_plugin_dirs();

// Loading is not thread-safe; once loaded, the const members (find, resolve,
// create) may be called from many threads.
class registry {
 public:
  registry();  // empty: nothing loaded
  ~registry();
  registry(registry&&) noexcept;
  registry& operator=(registry&&) noexcept;
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  // Loads everything `options` names, in discovery order.
  static registry discover(const discovery_options& options = {});

  // Each load collects failures in load_errors() and never throws for a bad
  // plugin. Loading a library already loaded (same canonical path) is a
  // no-op. A directory loads its regular files ending in ".so", by name.
  // Returns whether a plugin (new or not) is loaded from `file`.
  bool load_file(const std::filesystem::path& file);
  // `required`: report a missing directory as cannot_open (explicit
  // --plugin-dir); otherwise a missing directory is skipped silently.
  void load_directory(const std::filesystem::path& dir, bool required = true);
  void load_environment();  // ONNX_REINIT_PLUGIN_PATH
  void load_default();      // the first existing default_plugin_dirs() entry

  const std::vector<plugin_info>& plugins() const;
  // Load order: plugin by plugin, each in its descriptor's order.
  const std::vector<strategy_info>& strategies() const;
  const std::vector<plugin_load_error>& load_errors() const;
  // nullptr when no loaded plugin provides `name`.
  const strategy_info* find(std::string_view name) const;

  // Validates `params` against the schema of `name` (defaults filled in)
  // without creating anything. Throws unknown_strategy_error (with the
  // nearest name) or param_error (strategy, parameter, nearest name, type
  // or range).
  std::vector<resolved_param> resolve(std::string_view name,
                                      const param_value_list& params = {}) const;

  // resolve(), then the plugin's create. A plugin refusing the values gives
  // param_error; any other failure strategy_error. Both name the strategy
  // and carry the plugin's message.
  configured_strategy create(std::string_view name, const param_value_list& params = {}) const;

  // The same for any other range of (name, text) pairs: a param_text_list,
  // a std::map<std::string, std::string>, ...
  template <class Range>
  requires text_pair_range<Range> std::vector<resolved_param> resolve(std::string_view name,
                                                                      const Range& params)
  const { return resolve(name, to_value_list(params)); }
  template <class Range>
  requires text_pair_range<Range> configured_strategy create(std::string_view name,
                                                             const Range& params)
  const { return create(name, to_value_list(params)); }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// The name in `candidates` nearest to `name` by edit distance (ties: the
// first); nullopt when there are no candidates.
std::optional<std::string> nearest_name(std::string_view name,
                                        std::span<const std::string> candidates);

}  // namespace onnx_reinit
