// Text and JSON describing the loaded strategies (the CLI's --list and
// --describe): built here from the registry's metadata so a C++ user gets the
// same text the command prints.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/report.h"

namespace onnx_reinit {
namespace {

using json = nlohmann::ordered_json;

std::string param_line(const param_info& p) {
  std::string range = p.range_text();
  return fmt::format("    {:<14} {:<8} default {:<10}{}  {}\n", p.name, to_string(p.type),
                     p.default_text(), range.empty() ? "" : " in " + range, p.help);
}

json param_json(const param_info& p) {
  json j;
  j["name"] = p.name;
  j["type"] = std::string(to_string(p.type));
  j["default"] = p.default_text();
  if (!p.range_text().empty()) j["range"] = p.range_text();
  if (!p.choices.empty()) j["choices"] = p.choices;
  j["help"] = p.help;
  return j;
}

const plugin_info* plugin_of(const registry& r, const strategy_info& s) {
  for (const plugin_info& p : r.plugins())
    if (p.path == s.plugin_path) return &p;
  return nullptr;
}

std::string list_text(const registry& strategies) {
  std::string out;
  for (const plugin_info& p : strategies.plugins())
    out += fmt::format("plugin {} {} ({})\n", p.id, p.version, p.path);
  for (const strategy_info& s : strategies.strategies()) {
    out += fmt::format("\n{} [{}]  {}\n", s.name, s.plugin_id, s.summary);
    for (const param_info& p : s.params) out += param_line(p);
  }
  for (const plugin_load_error& e : strategies.load_errors())
    out += fmt::format("\nnot loaded: {} ({}): {}\n", e.path, to_string(e.kind), e.message);
  return out;
}

std::string list_json(const registry& strategies) {
  json root;
  root["plugins"] = json::array();
  for (const plugin_info& p : strategies.plugins())
    root["plugins"].push_back(
        {{"id", p.id}, {"version", p.version}, {"path", p.path}, {"strategies", p.strategies}});
  root["strategies"] = json::array();
  for (const strategy_info& s : strategies.strategies()) {
    json j;
    j["name"] = s.name;
    j["summary"] = s.summary;
    j["formula"] = s.formula;
    j["elementwise"] = s.elementwise;
    j["plugin"] = s.plugin_id;
    j["plugin_path"] = s.plugin_path;
    j["params"] = json::array();
    for (const param_info& p : s.params) j["params"].push_back(param_json(p));
    root["strategies"].push_back(std::move(j));
  }
  root["load_errors"] = json::array();
  for (const plugin_load_error& e : strategies.load_errors())
    root["load_errors"].push_back(
        {{"path", e.path}, {"kind", std::string(to_string(e.kind))}, {"message", e.message}});
  return root.dump(2) + "\n";
}

}  // namespace

std::string format_strategy_list(const registry& strategies, bool as_json) {
  return as_json ? list_json(strategies) : list_text(strategies);
}

std::string describe_strategy(const registry& strategies, std::string_view name) {
  const strategy_info* s = strategies.find(name);
  if (s == nullptr) {
    // The registry's own error: the nearest name, or why nothing is loaded.
    (void)strategies.resolve(name);
    throw unknown_strategy_error(fmt::format("unknown strategy '{}'", name), std::string(name));
  }
  const plugin_info* plugin = plugin_of(strategies, *s);
  std::string out =
      fmt::format("{}: {}\n  formula: {}\n  plugin:  {} {} ({})\n  {}\n", s->name, s->summary,
                  s->formula, s->plugin_id, plugin ? plugin->version : "", s->plugin_path,
                  s->elementwise ? "element-wise: filled in parallel chunks"
                                 : "whole-tensor: filled in one call");
  out += s->params.empty() ? "  no parameters\n" : "  parameters:\n";
  for (const param_info& p : s->params) out += param_line(p);
  return out;
}

}  // namespace onnx_reinit
