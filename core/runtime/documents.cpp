// The runtime stage's JSON: the --inspect document and the report's lsuv_*
// fields (docs/DESIGN.md section 11), built here so every front end
// prints the same documents.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "json_number.h"
#include "onnx_reinit/runtime.h"

namespace onnx_reinit {

namespace {

using json = nlohmann::ordered_json;

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
    o["rms"] = number_or_null(l.rms());
    o["predicted_rms"] = number_or_null(l.predicted_rms);
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

}  // namespace

std::string inspection_json(const inspection& r) {
  return inspection_document(r).dump(2) + "\n";
}

std::string inspection_json(const inspection& original, const inspection& rewritten) {
  json j;
  j["original"] = inspection_document(original);
  j["rewritten"] = inspection_document(rewritten);
  return j.dump(2) + "\n";
}

std::string report_with_lsuv(const std::string& report_json, const std::vector<lsuv_result>& lsuv) {
  json root = json::parse(report_json);
  for (auto& t : root["tensors"]) {
    const auto name = t["name"].get<std::string>();
    auto it = std::find_if(lsuv.begin(), lsuv.end(),
                           [&](const lsuv_result& r) { return r.name == name; });
    const bool found = it != lsuv.end();
    t["lsuv_scale"] = found ? json(it->scale) : json(nullptr);
    t["lsuv_iterations"] = found ? json(it->iterations) : json(nullptr);
    t["lsuv_std"] = found ? number_or_null(it->std) : json(nullptr);
    if (found && !it->note.empty()) t["lsuv_note"] = it->note;
  }
  return root.dump(2) + "\n";
}

}  // namespace onnx_reinit
