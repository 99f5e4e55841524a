// Inspection and LSUV calibration on ONNX Runtime sessions (C++ API). The
// model is copied, the layer outputs become extra graph outputs and, for
// LSUV, the weights become graph inputs (overridable initializers) fed on
// every run, so one session serves the whole calibration.
#include <fmt/format.h>
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "onnx_reinit/rewrite.h"
#include "runtime_internal.h"

namespace onnx_reinit {

namespace {

using detail::input_data;
using detail::layer_site;
using detail::moments;

// Tensors stored in data files are inlined into the session's copy up to
// this total (their pending rewrites included); beyond it they are read by
// ONNX Runtime from the files beside the model.
constexpr std::uint64_t max_inlined_bytes = std::uint64_t{1} << 30;

const OrtApi& ort_api() {
  // A header newer than the library asks for an API version the library
  // refuses; fail instead of crashing in the C++ wrapper.
  static const OrtApi* api = OrtGetApiBase()->GetApi(ORT_API_VERSION);
  if (api == nullptr)
    throw runtime_error(fmt::format("the ONNX Runtime library ({}) does not provide API version {}",
                                    OrtGetApiBase()->GetVersionString(), ORT_API_VERSION),
                        "libonnxruntime");
  return *api;
}

Ort::Env& ort_env() {
  ort_api();
  static Ort::Env env(ORT_LOGGING_LEVEL_ERROR, "onnx-reinit");
  return env;
}

std::string where_of(const loaded_model& model) {
  return model.path().empty() ? std::string("model") : model.path().string();
}

// The session's copy: external tensors inlined (with pending writes) when
// small enough, extra outputs, weights as graph inputs.
onnx::ModelProto session_model(const loaded_model& model, const std::vector<std::string>& outputs,
                               const std::vector<std::string>& weight_inputs) {
  onnx::ModelProto copy = whole_proto(model);
  auto originals = collect_model_tensors(model.proto());
  auto copies = collect_model_tensors(copy);
  std::uint64_t external = 0;
  for (const auto& t : originals)
    if (t.proto->data_location() == onnx::TensorProto::EXTERNAL)
      for (const auto& e : t.proto->external_data())
        if (e.key() == "length") external += std::strtoull(e.value().c_str(), nullptr, 10);
  if (external <= max_inlined_bytes) {
    for (std::size_t i = 0; i < originals.size() && i < copies.size(); ++i) {
      if (originals[i].proto->data_location() != onnx::TensorProto::EXTERNAL) continue;
      auto bytes = tensor_bytes(model, *originals[i].proto);
      auto& c = *copies[i].proto;
      c.clear_external_data();
      c.set_data_location(onnx::TensorProto::DEFAULT);
      c.set_raw_data(bytes.bytes().data(), bytes.size());
    }
  }
  auto& graph = *copy.mutable_graph();
  std::unordered_set<std::string> present;
  for (const auto& o : graph.output()) present.insert(o.name());
  for (const auto& name : outputs)
    if (present.insert(name).second) graph.add_output()->set_name(name);
  std::unordered_set<std::string> inputs;
  for (const auto& i : graph.input()) inputs.insert(i.name());
  for (const auto& w : weight_inputs) {
    if (inputs.count(w) != 0) continue;
    for (const auto& t : graph.initializer()) {
      if (t.name() != w) continue;
      auto* in = graph.add_input();
      in->set_name(w);
      auto* tt = in->mutable_type()->mutable_tensor_type();
      tt->set_elem_type(t.data_type());
      for (auto d : t.dims()) tt->mutable_shape()->add_dim()->set_dim_value(d);
      break;
    }
  }
  // Overridable initializers need IR version 4 or later.
  if (copy.ir_version() < 4) copy.set_ir_version(4);
  return copy;
}

class session {
 public:
  session(const loaded_model& model, const onnx::ModelProto& copy) {
    Ort::Env& env = ort_env();
    std::string bytes;
    if (!copy.SerializeToString(&bytes))
      throw runtime_error("the model is too large for an ONNX Runtime session in memory",
                          where_of(model));
    Ort::SessionOptions so;
    so.SetIntraOpNumThreads(1);
    so.SetInterOpNumThreads(1);
    so.SetExecutionMode(ORT_SEQUENTIAL);
    so.SetDeterministicCompute(true);
    so.SetLogSeverityLevel(3);
    const std::string dir = model.directory().string();
    if (!dir.empty())
      so.AddConfigEntry("session.model_external_initializers_file_folder_path", dir.c_str());
    try {
      session_ = Ort::Session(env, bytes.data(), bytes.size(), so);
    } catch (const Ort::Exception& e) {
      throw runtime_error(fmt::format("ONNX Runtime cannot load the model: {}", e.what()),
                          where_of(model));
    }
  }

  // Runs with `feeds` (name, type, shape, bytes) and returns the outputs.
  std::vector<Ort::Value> run(const std::vector<const input_data*>& feeds,
                              const std::vector<std::string>& outputs, const std::string& where) {
    Ort::MemoryInfo mi = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    std::vector<const char*> in_names, out_names;
    std::vector<Ort::Value> values;
    for (const input_data* f : feeds) {
      in_names.push_back(f->info.name.c_str());
      values.push_back(Ort::Value::CreateTensor(
          mi, const_cast<std::byte*>(f->bytes.data()), f->bytes.size(), f->info.shape.data(),
          f->info.shape.size(), static_cast<ONNXTensorElementDataType>(f->elem_type)));
    }
    for (const auto& o : outputs) out_names.push_back(o.c_str());
    try {
      return session_.Run(Ort::RunOptions{nullptr}, in_names.data(), values.data(), values.size(),
                          out_names.data(), out_names.size());
    } catch (const Ort::Exception& e) {
      throw runtime_error(fmt::format("ONNX Runtime failed to run the model: {}", e.what()), where);
    }
  }

 private:
  Ort::Session session_{nullptr};
};

// Calls f(double) on every element of a float tensor.
template <class F>
void for_each_value(const Ort::Value& v, const std::string& name, F&& f) {
  auto info = v.GetTensorTypeAndShapeInfo();
  const std::size_t n = info.GetElementCount();
  switch (info.GetElementType()) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: {
      const float* p = v.GetTensorData<float>();
      for (std::size_t i = 0; i < n; ++i) f(static_cast<double>(p[i]));
      return;
    }
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: {
      const double* p = v.GetTensorData<double>();
      for (std::size_t i = 0; i < n; ++i) f(p[i]);
      return;
    }
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: {
      const auto* p = v.GetTensorData<std::uint16_t>();
      for (std::size_t i = 0; i < n; ++i) f(static_cast<double>(half_bits_to_float(p[i])));
      return;
    }
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: {
      const auto* p = v.GetTensorData<std::uint16_t>();
      for (std::size_t i = 0; i < n; ++i) f(static_cast<double>(bfloat16_bits_to_float(p[i])));
      return;
    }
    default:
      throw runtime_error("a layer output that is not a float tensor", name);
  }
}

moments measure(const Ort::Value& v, const std::string& name) {
  moments m;
  for_each_value(v, name, [&](double x) { m.add(x); });
  return m;
}

struct prepared {
  const std::vector<tensor_analysis>& analysis;  // the caller's, used as it is
  std::vector<layer_site> layers;
  std::vector<input_data> batch;
};

// The layers and the batch of `model`, from its analysis (never recomputed
// here, nor copied: the caller analysed the model once).
prepared prepare(const loaded_model& model, const std::vector<tensor_analysis>& analysis,
                 const runtime_options& options) {
  if (analysis.size() != collect_model_tensors(model.proto()).size())
    throw usage_error("the analysis or plan is not of this model (one entry per model tensor)",
                      where_of(model));
  return prepared{analysis, detail::find_layers(model.proto(), analysis),
                  detail::make_batch(model.proto(), options)};
}

// Why the plan hands `ref` to no calibration, or "" when it does: only
// weights the plan rewrites are calibrated (docs/DESIGN.md section 11); kept
// ones (fixed constants, --only/--skip, `keep` rules) and transferred ones
// keep their bytes.
std::string not_handed_over(const std::unordered_map<std::string, const tensor_plan*>& by_stream,
                            const tensor_ref& ref) {
  auto it = by_stream.find(stream_name(ref));
  if (it == by_stream.end()) return "not in the plan: not calibrated";
  const tensor_plan& plan = *it->second;
  switch (plan.action) {
    case plan_action::rewrite:
      return {};
    case plan_action::transfer:
      return fmt::format("transferred from {}: not calibrated", plan.transfer_source);
    case plan_action::keep:
      break;
  }
  return plan.reason.empty() ? std::string("kept by the plan: not calibrated")
                             : fmt::format("kept by the plan ({}): not calibrated", plan.reason);
}

// The weights LSUV leaves as sampled, each with the reason: recurrent
// weights (the cell's gates share one output), weights held by Constant
// nodes, and weights of subgraphs (If/Loop/Scan bodies, whose outputs a
// session cannot expose).
std::vector<lsuv_result> skipped_weights(
    const prepared& p, const std::unordered_map<std::string, const tensor_plan*>& by_stream) {
  std::vector<lsuv_result> out;
  auto skip = [&](const std::string& name, const std::string& note, bool by_plan = false) {
    lsuv_result r;
    r.name = name;
    r.std = NAN;
    r.note = note;
    r.left_by_plan = by_plan;
    out.push_back(std::move(r));
  };
  std::unordered_set<std::string> seen;
  for (const auto& l : p.layers) {
    if (!seen.insert(l.weight).second) continue;
    if (std::string why = not_handed_over(by_stream, l.ref); !why.empty())
      skip(l.weight, why, by_stream.count(stream_name(l.ref)) != 0);
    else if (l.recurrent)
      skip(l.weight, "recurrent weight: not calibrated; left as sampled");
    else if (l.ref.origin != tensor_origin::initializer)
      skip(l.weight, "held by a Constant node, not an initializer: not calibrated");
    else if (l.quantized)
      skip(l.weight, "quantized weight: not calibrated; left as requantized or kept");
  }
  for (const auto& a : p.analysis)
    if (!a.ref.graph_path.empty() && a.is_float &&
        (a.info.role == tensor_role::weight || a.info.role == tensor_role::recurrent_weight))
      skip(a.info.name, fmt::format("in subgraph {}: not calibrated", a.ref.graph_path));
  return out;
}

}  // namespace

bool runtime_available() {
  return true;
}

std::string runtime_version() {
  return OrtGetApiBase()->GetVersionString();
}

inspection inspect_model(const loaded_model& model, const runtime_options& options,
                         const inspect_thresholds& thresholds) {
  return inspect_model(model, analyze_model(model), options, thresholds);
}

inspection inspect_model(const loaded_model& model, const std::vector<tensor_analysis>& analysis,
                         const runtime_options& options, const inspect_thresholds& thresholds) {
  prepared p = prepare(model, analysis, options);
  std::vector<std::string> outputs;
  std::unordered_map<std::string, std::size_t> slot;
  auto want = [&](const std::string& name) {
    if (!name.empty() && slot.emplace(name, outputs.size()).second) outputs.push_back(name);
  };
  for (const auto& l : p.layers) {
    want(l.output);
    if (l.act != activation_kind::linear) want(l.act_output.empty() ? l.act_input : l.act_output);
  }
  inspection r;
  r.model = where_of(model);
  for (const auto& in : p.batch) r.inputs.push_back(in.info);
  r.batch = !r.inputs.empty() && !r.inputs.front().shape.empty() ? r.inputs.front().shape[0] : 0;
  if (!outputs.empty()) {
    session s(model, session_model(model, outputs, {}));
    std::vector<const input_data*> feeds;
    for (const auto& in : p.batch) feeds.push_back(&in);
    auto values = s.run(feeds, outputs, where_of(model));
    for (const auto& l : p.layers) {
      layer_stats st;
      st.name = l.weight;
      st.op = l.op;
      st.output = l.output;
      st.act = std::string(to_string(l.act));
      moments layer = measure(values[slot.at(l.output)], l.output);
      moments act;
      // Linear, a recurrent cell's activation, or one fused into the layer
      // (FusedConv): the layer output is what follows the activation.
      if (l.act == activation_kind::linear || (l.act_output.empty() && l.act_input.empty())) {
        act = layer;
      } else if (!l.act_output.empty()) {
        act = measure(values[slot.at(l.act_output)], l.act_output);
      } else {
        for_each_value(values[slot.at(l.act_input)], l.act_input,
                       [&](double x) { act.add(detail::apply_activation(l.act, l.act_param, x)); });
      }
      detail::fill_layer_stats(st, layer, act, l.act);
      r.layers.push_back(std::move(st));
    }
  }
  detail::finish_inspection(r, thresholds);
  return r;
}

std::vector<lsuv_result> calibrate_lsuv(loaded_model& model, const std::vector<tensor_plan>& plans,
                                        const runtime_options& options, const lsuv_options& lsuv) {
  std::vector<tensor_analysis> analysis;
  analysis.reserve(plans.size());
  for (const tensor_plan& plan : plans) analysis.push_back(plan.tensor);
  return calibrate_lsuv(model, analysis, plans, options, lsuv);
}

std::vector<lsuv_result> calibrate_lsuv(loaded_model& model,
                                        const std::vector<tensor_analysis>& analysis,
                                        const std::vector<tensor_plan>& plans,
                                        const runtime_options& options, const lsuv_options& lsuv) {
  if (!(lsuv.tolerance > 0.0) || lsuv.max_iterations < 1)
    throw usage_error("the LSUV tolerance and iteration count must be positive", "--lsuv-tol");
  if (analysis.size() != plans.size())
    throw usage_error("the analysis and the plans are of different models", where_of(model));
  prepared p = prepare(model, analysis, options);
  std::unordered_map<std::string, const tensor_plan*> by_stream;
  for (const tensor_plan& plan : plans) by_stream.emplace(stream_name(plan.tensor.ref), &plan);
  // The weights to calibrate: initializers of the main graph at
  // Conv/ConvTranspose/Gemm/MatMul layers, each once.
  struct weight {
    const layer_site* site;
    onnx::TensorProto* proto;
    std::vector<double> values;
    input_data feed;
  };
  std::unordered_map<std::string, onnx::TensorProto*> inits;
  for (auto& t : *model.proto().mutable_graph()->mutable_initializer()) inits[t.name()] = &t;
  std::vector<weight> weights;
  std::vector<lsuv_result> results;
  std::vector<lsuv_result> skipped = skipped_weights(p, by_stream);
  std::unordered_set<std::string> taken;
  for (const auto& l : p.layers) {
    if (l.recurrent || l.quantized || l.ref.origin != tensor_origin::initializer) continue;
    if (!not_handed_over(by_stream, l.ref).empty()) continue;
    auto it = inits.find(l.weight);
    if (it == inits.end() || !taken.insert(l.weight).second) continue;
    weight w{&l, it->second, read_tensor_values<double>(model, *it->second), {}};
    w.feed.info.name = l.weight;
    w.feed.elem_type = it->second->data_type();
    w.feed.info.shape.assign(it->second->dims().begin(), it->second->dims().end());
    w.feed.bytes = detail::encode_values(w.values, w.feed.elem_type, l.weight);
    weights.push_back(std::move(w));
  }
  if (weights.empty()) return skipped;

  std::vector<std::string> outputs, names;
  std::unordered_map<std::string, std::size_t> slot;
  for (const auto& w : weights) {
    names.push_back(w.site->weight);
    if (slot.emplace(w.site->output, outputs.size()).second) outputs.push_back(w.site->output);
  }
  session s(model, session_model(model, outputs, names));
  std::vector<const input_data*> feeds;
  for (const auto& in : p.batch) feeds.push_back(&in);
  for (const auto& w : weights) feeds.push_back(&w.feed);
  // A run measures every layer; a layer's first measurement reuses the
  // previous layer's last run, since no weight changed in between.
  auto values = s.run(feeds, outputs, where_of(model));
  for (auto& w : weights) {
    lsuv_result r;
    r.name = w.site->weight;
    r.output = w.site->output;
    while (true) {
      moments m = measure(values[slot.at(r.output)], r.output);
      if (m.nonfinite > 0)
        throw runtime_error(
            fmt::format("non-finite activation in the output '{}' of layer {} during LSUV",
                        r.output, w.site->op),
            r.name);
      r.std = m.std();
      if (m.count == 0 || r.std == 0.0 || r.std <= 1e-6 * std::abs(m.mean) ||
          r.std < std::numeric_limits<float>::min()) {
        r.note = "constant output; left alone";
        break;
      }
      if (std::abs(r.std - 1.0) <= lsuv.tolerance || r.iterations >= lsuv.max_iterations) break;
      const double f = 1.0 / r.std;
      for (double& x : w.values) x *= f;
      r.scale *= f;
      ++r.iterations;
      w.feed.bytes = detail::encode_values(w.values, w.feed.elem_type, r.name);
      values = s.run(feeds, outputs, where_of(model));
    }
    results.push_back(std::move(r));
  }
  for (std::size_t i = 0; i < weights.size(); ++i)
    if (results[i].iterations > 0)
      write_tensor_values<double>(model, *weights[i].proto,
                                  std::span<const double>(weights[i].values));
  results.insert(results.end(), skipped.begin(), skipped.end());
  return results;
}

}  // namespace onnx_reinit
