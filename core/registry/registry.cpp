// Plugin discovery and loading with Boost.DLL: every failure becomes a
// plugin_load_error and loading carries on; metadata is copied into host
// strings without instantiating any strategy (docs/DESIGN.md section 3).
#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/internal/text.h"
#include "onnx_reinit/registry.h"
#include "registry_internal.h"

namespace onnx_reinit {

namespace fs = std::filesystem;

namespace {

using library_ptr = std::shared_ptr<const boost::dll::shared_library>;

// What the registry needs, besides the copied metadata, to create a
// strategy: the descriptor entry, copied into the host's layout (fields the
// plugin's smaller struct lacks are zero), and the library its functions and
// strings live in.
struct loaded_strategy {
  onnx_reinit_strategy_desc desc{};
  library_ptr library;
};

// Entry i of the plugin's strategy array, whose stride is the plugin's
// struct size, in the host's layout: only the bytes the plugin has are read.
onnx_reinit_strategy_desc strategy_entry(const onnx_reinit_plugin_desc& plugin, std::uint32_t i,
                                         std::uint32_t stride) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(plugin.strategies) +
                      static_cast<std::size_t>(i) * stride;
  onnx_reinit_strategy_desc d{};
  std::memcpy(&d, bytes, std::min<std::size_t>(stride, sizeof d));
  return d;
}

bool valid_name(const char* name) {
  if (name == nullptr || *name == '\0') return false;
  for (const char* c = name; *c != '\0'; ++c)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) return false;
  return true;
}

std::string quoted(const char* s) {
  return s == nullptr ? "(null)" : fmt::format("'{}'", s);
}

using detail::split;

bool in_range(double v, const param_info& p) {
  bool lo = p.min_exclusive ? v > p.min_value : v >= p.min_value;
  bool hi = p.max_exclusive ? v < p.max_value : v <= p.max_value;
  return lo && hi;
}

// Copies one schema entry, or returns why it is not sane.
std::string copy_param(const onnx_reinit_param_schema& s, param_info& p) {
  if (!valid_name(s.name))
    return fmt::format("parameter name {} is not [a-z0-9_]+", quoted(s.name));
  p.name = s.name;
  p.help = s.help != nullptr ? s.help : "";
  if ((s.range_flags & ~(ONNX_REINIT_RANGE_MIN_EXCLUSIVE | ONNX_REINIT_RANGE_MAX_EXCLUSIVE)) != 0)
    return fmt::format("parameter '{}' has unknown range flags {:#x}", p.name, s.range_flags);
  p.min_exclusive = (s.range_flags & ONNX_REINIT_RANGE_MIN_EXCLUSIVE) != 0;
  p.max_exclusive = (s.range_flags & ONNX_REINIT_RANGE_MAX_EXCLUSIVE) != 0;
  p.default_number = s.default_number;
  p.min_value = s.min_value;
  p.max_value = s.max_value;
  switch (s.type) {
    case ONNX_REINIT_PARAM_FLOAT:
    case ONNX_REINIT_PARAM_INT: {
      p.type = s.type == ONNX_REINIT_PARAM_FLOAT ? param_type::number : param_type::integer;
      if (std::isnan(s.min_value) || std::isnan(s.max_value) || s.min_value > s.max_value)
        return fmt::format("parameter '{}' has an empty range [{}, {}]", p.name, s.min_value,
                           s.max_value);
      if (!std::isfinite(s.default_number) || !in_range(s.default_number, p))
        return fmt::format("parameter '{}' default {} is outside its range {}", p.name,
                           s.default_number, p.range_text());
      if (p.type == param_type::integer && std::trunc(s.default_number) != s.default_number)
        return fmt::format("integer parameter '{}' has default {}", p.name, s.default_number);
      return {};
    }
    case ONNX_REINIT_PARAM_BOOL:
      p.type = param_type::boolean;
      p.min_value = 0.0;
      p.max_value = 1.0;
      p.min_exclusive = p.max_exclusive = false;
      if (s.default_number != 0.0 && s.default_number != 1.0)
        return fmt::format("boolean parameter '{}' has default {}", p.name, s.default_number);
      return {};
    case ONNX_REINIT_PARAM_CHOICE: {
      p.type = param_type::choice;
      p.default_number = 0.0;
      if (s.choices == nullptr || *s.choices == '\0')
        return fmt::format("choice parameter '{}' has no choices", p.name);
      p.choices = split(s.choices, '|');
      for (const std::string& c : p.choices)
        if (c.empty() || c.find_first_of(" \t\r\n=,") != std::string::npos)
          return fmt::format("choice parameter '{}' has a bad choice list '{}'", p.name, s.choices);
      if (s.default_choice == nullptr ||
          std::find(p.choices.begin(), p.choices.end(), s.default_choice) == p.choices.end())
        return fmt::format("choice parameter '{}' default {} is not one of {}", p.name,
                           quoted(s.default_choice), s.choices);
      p.default_choice = s.default_choice;
      return {};
    }
    default:
      return fmt::format("parameter '{}' has unknown type {}", p.name, s.type);
  }
}

// Copies one strategy entry, or returns why it is not sane.
std::string copy_strategy(const onnx_reinit_strategy_desc& d, strategy_info& info) {
  if (!valid_name(d.name)) return fmt::format("strategy name {} is not [a-z0-9_]+", quoted(d.name));
  info.name = d.name;
  auto fail = [&](std::string_view why) {
    return fmt::format("strategy '{}': {}", info.name, why);
  };
  if (d.create == nullptr || d.destroy == nullptr || d.fill == nullptr)
    return fail("null create, destroy or fill function");
  if (d.param_count > 0 && d.params == nullptr) return fail("null parameter schema");
  if ((d.flags & ~ONNX_REINIT_STRATEGY_ELEMENTWISE) != 0)
    return fail(fmt::format("unknown flags {:#x}", d.flags));
  info.summary = d.summary != nullptr ? d.summary : "";
  info.formula = d.formula != nullptr ? d.formula : "";
  info.elementwise = (d.flags & ONNX_REINIT_STRATEGY_ELEMENTWISE) != 0;
  for (std::uint32_t i = 0; i < d.param_count; ++i) {
    param_info p;
    if (std::string why = copy_param(d.params[i], p); !why.empty()) return fail(why);
    if (info.find_param(p.name) != nullptr)
      return fail(fmt::format("parameter '{}' appears twice", p.name));
    info.params.push_back(std::move(p));
  }
  return {};
}

std::string dl_message(const std::error_code& fallback) {
  const char* text = dlerror();
  return text != nullptr ? std::string(text) : fallback.message();
}

}  // namespace

struct registry::impl {
  std::vector<plugin_info> plugins;
  std::vector<strategy_info> strategies;
  std::vector<loaded_strategy> loaded;  // parallel to `strategies`
  std::vector<plugin_load_error> errors;
  std::map<std::string, bool, std::less<>> seen;  // canonical path -> loaded

  void report(const fs::path& path, plugin_load_error_kind kind, std::string message) {
    errors.push_back({path.string(), kind, std::move(message)});
  }

  std::ptrdiff_t index_of(std::string_view name) const {
    for (std::size_t i = 0; i < strategies.size(); ++i)
      if (strategies[i].name == name) return static_cast<std::ptrdiff_t>(i);
    return -1;
  }

  bool load(const fs::path& given);

 private:
  // Each reports its failure and returns null / false.
  std::shared_ptr<boost::dll::shared_library> open_library(const fs::path& path);
  // The plugin's descriptor, copied into the host's layout.
  std::optional<onnx_reinit_plugin_desc> descriptor(const fs::path& path,
                                                    const boost::dll::shared_library& library);
  bool read_strategies(const fs::path& path, const onnx_reinit_plugin_desc& desc,
                       std::vector<strategy_info>& infos,
                       std::vector<onnx_reinit_strategy_desc>& entries);
  // Registers every strategy whose name is new; reports the others.
  void add_plugin(const fs::path& path, const onnx_reinit_plugin_desc& desc, library_ptr library,
                  std::vector<strategy_info>& infos,
                  const std::vector<onnx_reinit_strategy_desc>& entries);
};

bool registry::impl::load(const fs::path& given) {
  std::error_code ec;
  fs::path path = fs::canonical(given, ec);
  if (ec) {
    report(given, plugin_load_error_kind::cannot_open,
           fmt::format("cannot open: {}", ec.message()));
    return false;
  }
  if (auto it = seen.find(path.string()); it != seen.end()) return it->second;
  seen[path.string()] = false;
  if (!fs::is_regular_file(path, ec)) {
    report(path, plugin_load_error_kind::cannot_open, "not a regular file");
    return false;
  }
  auto library = open_library(path);
  if (!library) return false;
  const std::optional<onnx_reinit_plugin_desc> desc = descriptor(path, *library);
  if (!desc) return false;
  // Validate everything before registering anything, so a bad plugin
  // contributes nothing.
  std::vector<strategy_info> infos;
  std::vector<onnx_reinit_strategy_desc> entries;
  if (!read_strategies(path, *desc, infos, entries)) return false;
  add_plugin(path, *desc, std::move(library), infos, entries);
  seen[path.string()] = true;
  return true;
}

std::shared_ptr<boost::dll::shared_library> registry::impl::open_library(const fs::path& path) {
  auto library = std::make_shared<boost::dll::shared_library>();
  std::error_code ec;
  library->load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, ec);
  if (ec || !library->is_loaded()) {
    report(path, plugin_load_error_kind::cannot_open, dl_message(ec));
    return nullptr;
  }
  if (!library->has(ONNX_REINIT_PLUGIN_ENTRY_NAME)) {
    report(path, plugin_load_error_kind::no_entry_point,
           fmt::format("no exported symbol '{}'; is it an onnx-reinit plugin?",
                       ONNX_REINIT_PLUGIN_ENTRY_NAME));
    return nullptr;
  }
  return library;
}

std::optional<onnx_reinit_plugin_desc> registry::impl::descriptor(
    const fs::path& path, const boost::dll::shared_library& library) {
  auto& entry = library.get<const onnx_reinit_plugin_desc*()>(ONNX_REINIT_PLUGIN_ENTRY_NAME);
  const onnx_reinit_plugin_desc* desc = entry();
  if (desc == nullptr) {
    report(path, plugin_load_error_kind::bad_descriptor, "the entry point returned null");
    return std::nullopt;
  }
  if (desc->abi_version != ONNX_REINIT_ABI_VERSION) {
    report(path, plugin_load_error_kind::abi_mismatch,
           fmt::format("plugin ABI version {}, this host supports {}", desc->abi_version,
                       ONNX_REINIT_ABI_VERSION));
    return std::nullopt;
  }
  if (desc->struct_size < ONNX_REINIT_PLUGIN_DESC_MIN_SIZE) {
    report(path, plugin_load_error_kind::abi_mismatch,
           fmt::format("plugin descriptor is {} bytes, expected at least {}", desc->struct_size,
                       ONNX_REINIT_PLUGIN_DESC_MIN_SIZE));
    return std::nullopt;
  }
  // In the host's layout, reading only the bytes the plugin has: fields
  // appended after its SDK are zero (absent).
  onnx_reinit_plugin_desc copy{};
  std::memcpy(&copy, desc, std::min<std::size_t>(desc->struct_size, sizeof copy));
  return copy;
}

bool registry::impl::read_strategies(const fs::path& path, const onnx_reinit_plugin_desc& desc,
                                     std::vector<strategy_info>& infos,
                                     std::vector<onnx_reinit_strategy_desc>& entries) {
  auto bad = [&](std::string message) {
    report(path, plugin_load_error_kind::bad_descriptor, std::move(message));
    return false;
  };
  if (desc.plugin_id == nullptr || *desc.plugin_id == '\0') return bad("null or empty plugin id");
  if (desc.plugin_version == nullptr) return bad("null plugin version");
  if (desc.strategies == nullptr || desc.strategy_count == 0) return bad("no strategies");
  // Every entry starts with its size; the first one's is the array stride
  // (a newer SDK's larger entries load, an older ABI's smaller ones cannot).
  const std::uint32_t stride = desc.strategies[0].struct_size;
  infos.resize(desc.strategy_count);
  entries.resize(desc.strategy_count);
  for (std::uint32_t i = 0; i < desc.strategy_count; ++i) {
    std::uint32_t size = i == 0 ? stride : strategy_entry(desc, i, stride).struct_size;
    if (size < ONNX_REINIT_STRATEGY_DESC_MIN_SIZE)
      return bad(
          fmt::format("strategy #{}: descriptor entry is {} bytes, expected at least {} "
                      "(built for another ABI?)",
                      i, size, ONNX_REINIT_STRATEGY_DESC_MIN_SIZE));
    if (size != stride)
      return bad(
          fmt::format("strategy #{}: descriptor entry is {} bytes but entry #0 is {}; "
                      "an array's entries have one size",
                      i, size, stride));
    entries[i] = strategy_entry(desc, i, stride);
    infos[i].plugin_id = desc.plugin_id;
    infos[i].plugin_path = path.string();
    if (std::string why = copy_strategy(entries[i], infos[i]); !why.empty())
      return bad(fmt::format("strategy #{}: {}", i, why));
  }
  return true;
}

void registry::impl::add_plugin(const fs::path& path, const onnx_reinit_plugin_desc& desc,
                                library_ptr library, std::vector<strategy_info>& infos,
                                const std::vector<onnx_reinit_strategy_desc>& entries) {
  plugin_info plugin{desc.plugin_id, desc.plugin_version, path.string(), {}};
  for (std::size_t i = 0; i < infos.size(); ++i) {
    if (std::ptrdiff_t earlier = index_of(infos[i].name); earlier >= 0) {
      const strategy_info& first = strategies[static_cast<std::size_t>(earlier)];
      report(path, plugin_load_error_kind::duplicate_strategy,
             fmt::format("strategy '{}' is already provided by plugin '{}' ({}); this one is "
                         "ignored",
                         infos[i].name, first.plugin_id, first.plugin_path));
      continue;
    }
    plugin.strategies.push_back(infos[i].name);
    strategies.push_back(std::move(infos[i]));
    loaded.push_back({entries[i], library});
  }
  // A plugin whose strategies are all duplicates provides nothing; its
  // library unloads when the last reference goes.
  if (!plugin.strategies.empty()) plugins.push_back(std::move(plugin));
}

std::string_view to_string(plugin_load_error_kind k) {
  switch (k) {
    case plugin_load_error_kind::cannot_open:
      return "cannot_open";
    case plugin_load_error_kind::no_entry_point:
      return "no_entry_point";
    case plugin_load_error_kind::abi_mismatch:
      return "abi_mismatch";
    case plugin_load_error_kind::bad_descriptor:
      return "bad_descriptor";
    case plugin_load_error_kind::duplicate_strategy:
      return "duplicate_strategy";
  }
  return "invalid";
}

std::vector<fs::path> default_plugin_dirs() {
  std::vector<fs::path> dirs;
  auto add = [&](fs::path p) {
    p = p.lexically_normal();
    if (std::find(dirs.begin(), dirs.end(), p) == dirs.end()) dirs.push_back(std::move(p));
  };
  std::error_code ec;
  const fs::path exe = boost::dll::program_location(ec);
  if (!ec) {
    const fs::path exe_dir = exe.parent_path();
    add(exe_dir / ".." / "lib" / "onnx-reinit" / "plugins");
    // The configured layout when the libdir is not plain "lib" (lib64,
    // lib/x86_64-linux-gnu). The build tree mirrors it, so this one rule
    // serves build-tree and installed executables alike, and no absolute
    // path is compiled in.
    add(exe_dir / ONNX_REINIT_PLUGIN_DIR_FROM_BINDIR);
  }
  return dirs;
}

std::vector<fs::path> environment_plugin_dirs() {
  std::vector<fs::path> dirs;
  const char* value = std::getenv("ONNX_REINIT_PLUGIN_PATH");
  if (value == nullptr) return dirs;
  for (const std::string& part : split(value, ':'))
    if (!part.empty()) dirs.emplace_back(part);
  return dirs;
}

registry::registry() : impl_(std::make_unique<impl>()) {}
registry::~registry() = default;
registry::registry(registry&&) noexcept = default;
registry& registry::operator=(registry&&) noexcept = default;

registry registry::discover(const discovery_options& options) {
  registry r;
  for (const fs::path& f : options.plugin_files) r.load_file(f);
  for (const fs::path& d : options.plugin_dirs) r.load_directory(d, true);
  if (options.use_environment) r.load_environment();
  if (options.use_default_dir) r.load_default();
  return r;
}

bool registry::load_file(const fs::path& file) {
  return impl_->load(file);
}

void registry::load_directory(const fs::path& dir, bool required) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    if (required) impl_->report(dir, plugin_load_error_kind::cannot_open, "not a directory");
    return;
  }
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code file_ec;
    if (it->path().extension() == ".so" && it->is_regular_file(file_ec))
      files.push_back(it->path());
  }
  if (ec) {
    impl_->report(dir, plugin_load_error_kind::cannot_open,
                  fmt::format("cannot list directory: {}", ec.message()));
  }
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  for (const fs::path& f : files) impl_->load(f);
}

void registry::load_environment() {
  for (const fs::path& d : environment_plugin_dirs()) load_directory(d, false);
}

void registry::load_default() {
  for (const fs::path& d : default_plugin_dirs()) {
    std::error_code ec;
    if (fs::is_directory(d, ec)) {
      load_directory(d, false);
      return;
    }
  }
}

const std::vector<plugin_info>& registry::plugins() const {
  return impl_->plugins;
}
const std::vector<strategy_info>& registry::strategies() const {
  return impl_->strategies;
}
const std::vector<plugin_load_error>& registry::load_errors() const {
  return impl_->errors;
}

const strategy_info* registry::find(std::string_view name) const {
  std::ptrdiff_t i = impl_->index_of(name);
  return i < 0 ? nullptr : &impl_->strategies[static_cast<std::size_t>(i)];
}

namespace {

[[noreturn]] void throw_unknown_strategy(std::string_view name,
                                         const std::vector<strategy_info>& strategies) {
  std::vector<std::string> names;
  for (const strategy_info& s : strategies) names.push_back(s.name);
  if (names.empty())
    throw unknown_strategy_error(
        fmt::format("unknown strategy '{}': no strategies are loaded (check the plugin load "
                    "errors and ONNX_REINIT_PLUGIN_PATH)",
                    name),
        std::string(name));
  throw unknown_strategy_error(
      fmt::format("unknown strategy '{}'; did you mean '{}'?", name, *nearest_name(name, names)),
      std::string(name));
}

}  // namespace

std::vector<resolved_param> registry::resolve(std::string_view name,
                                              const param_value_list& params) const {
  const strategy_info* info = find(name);
  if (info == nullptr) throw_unknown_strategy(name, impl_->strategies);
  return resolve_params(*info, params);
}

configured_strategy registry::create(std::string_view name, const param_value_list& params) const {
  std::ptrdiff_t index = impl_->index_of(name);
  if (index < 0) throw_unknown_strategy(name, impl_->strategies);
  const strategy_info& info = impl_->strategies[static_cast<std::size_t>(index)];
  const loaded_strategy& entry = impl_->loaded[static_cast<std::size_t>(index)];

  auto s = std::make_shared<configured_strategy::state>();
  s->library = entry.library;
  s->name = info.name;
  s->plugin_id = info.plugin_id;
  s->plugin_path = info.plugin_path;
  s->elementwise = info.elementwise;
  s->params = resolve_params(info, params);
  for (const resolved_param& p : s->params)
    s->c_values.push_back(
        {p.name.c_str(), p.number, p.type == param_type::choice ? p.choice.c_str() : nullptr});
  s->destroy = entry.desc.destroy;
  s->fill = entry.desc.fill;
  s->target_moments = entry.desc.target_moments;

  char message[1024] = "";
  void* instance = nullptr;
  int status = entry.desc.create(s->c_values.data(), static_cast<std::uint32_t>(s->c_values.size()),
                                 &instance, message, sizeof message);
  message[sizeof message - 1] = '\0';
  std::string where = info.name;
  if (status != ONNX_REINIT_OK) {
    if (instance != nullptr) s->destroy(instance);  // not ours to keep
    std::string text = fmt::format("strategy '{}' ({}) rejected {}: {}", info.name, info.plugin_id,
                                   to_string(s->params), *message != '\0' ? message : "no message");
    if (status == ONNX_REINIT_INVALID_ARGUMENT) throw param_error(text, where);
    throw strategy_error(fmt::format("strategy '{}' ({}) could not be created: {}", info.name,
                                     info.plugin_id, *message != '\0' ? message : "no message"),
                         where);
  }
  if (instance == nullptr)
    throw strategy_error(
        fmt::format("strategy '{}' ({}) returned no instance", info.name, info.plugin_id), where);
  s->instance = instance;
  return configured_strategy(std::move(s));
}

}  // namespace onnx_reinit
