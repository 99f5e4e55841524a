// Test support for the corpus tests: runs a real model through the whole
// library (load, analyse, plan, rewrite with the standard plugin, save with
// the checker, reload) and compares the output with the input: kept tensors
// byte for byte, rewritten ones in dtype, dims and storage form, everything
// that is not tensor data with MessageDifferencer.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <typeinfo>
#include <vector>

#include <google/protobuf/util/message_differencer.h>
#include <onnx/checker.h>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/rewrite.h"
#include "support/standard_registry.h"

namespace onnx_reinit::test {

namespace corpus_fs = std::filesystem;

// A fresh directory for the outputs, removed at the end.
struct temp_dir {
  corpus_fs::path path;
  temp_dir() {
    const std::string name =
        "onnx_reinit_corpus_" +
        std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    // Saving fsyncs every output; on a busy disk that alone can take tens of
    // seconds for the corpus, so prefer a RAM file system unless TMPDIR says.
    std::error_code ec;
    if (std::getenv("TMPDIR") == nullptr &&
        corpus_fs::create_directory("/dev/shm" / corpus_fs::path(name), ec)) {
      path = "/dev/shm" / corpus_fs::path(name);
      return;
    }
    path = corpus_fs::temp_directory_path() / name;
    corpus_fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    corpus_fs::remove_all(path, ec);
  }
};

inline bool same_bytes(const onnx_reinit::tensor_bytes_view& a,
                       const onnx_reinit::tensor_bytes_view& b) {
  return std::ranges::equal(a.bytes(), b.bytes());
}

// Removes a tensor's data (every value field), leaving its name, dtype,
// dims, doc string, data location and external data entries to be compared.
inline void clear_tensor_data(onnx::TensorProto& t) {
  t.clear_raw_data();
  t.clear_float_data();
  t.clear_int32_data();
  t.clear_int64_data();
  t.clear_uint64_data();
  t.clear_double_data();
  t.clear_string_data();
}

struct model_result {
  enum class kind { ok, refused, failed } outcome = kind::ok;
  std::string stage;    // where it was refused or failed
  std::string message;  // refusal or failure text
  std::size_t rewritten = 0;
  std::size_t kept = 0;
  std::vector<std::string> tensor_lines;        // "role action strategy-or-reason" per tensor
  std::vector<onnx_reinit::tensor_plan> plans;  // the plan, once made
};

// Compares the reloaded output with the untouched input; returns the first
// difference, or nullopt. `plans` are in collect_model_tensors order.
inline std::optional<std::string> compare(const onnx_reinit::loaded_model& input,
                                          const onnx_reinit::loaded_model& written,
                                          const onnx_reinit::loaded_model& output,
                                          const std::vector<onnx_reinit::tensor_plan>& plans) {
  const auto in_tensors = onnx_reinit::collect_model_tensors(input.proto());
  const auto written_tensors = onnx_reinit::collect_model_tensors(written.proto());
  const auto out_tensors = onnx_reinit::collect_model_tensors(output.proto());
  if (in_tensors.size() != out_tensors.size() || in_tensors.size() != plans.size())
    return "tensor count changed: " + std::to_string(in_tensors.size()) + " in, " +
           std::to_string(out_tensors.size()) + " out, " + std::to_string(plans.size()) + " plans";
  std::vector<bool> rewritten(plans.size(), false);
  for (std::size_t i = 0; i < plans.size(); ++i) {
    const onnx::TensorProto& a = *in_tensors[i].proto;
    const onnx::TensorProto& b = *out_tensors[i].proto;
    const std::string name = in_tensors[i].ref.graph_path + ":" + in_tensors[i].ref.name;
    if (!(in_tensors[i].ref == out_tensors[i].ref) || !(plans[i].tensor.ref == in_tensors[i].ref))
      return "tensor " + std::to_string(i) + " is " + name + " in the input but " +
             out_tensors[i].ref.name + " in the output";
    const onnx_reinit::tensor_bytes_view in_bytes = onnx_reinit::tensor_bytes(input, a);
    const onnx_reinit::tensor_bytes_view out_bytes = onnx_reinit::tensor_bytes(output, b);
    if (plans[i].action == onnx_reinit::plan_action::keep) {
      if (!same_bytes(in_bytes, out_bytes)) return "kept tensor " + name + " changed its bytes";
      continue;
    }
    rewritten[i] = true;
    if (a.data_type() != b.data_type()) return "rewritten tensor " + name + " changed dtype";
    if (!std::ranges::equal(a.dims(), b.dims()))
      return "rewritten tensor " + name + " changed dims";
    if (onnx_reinit::storage_of(a) != onnx_reinit::storage_of(b) ||
        a.data_location() != b.data_location())
      return "rewritten tensor " + name + " changed storage form";
    if (in_bytes.size() != out_bytes.size())
      return "rewritten tensor " + name + " changed its byte size";
    // What was saved is what the rewrite put in memory.
    if (!same_bytes(onnx_reinit::tensor_bytes(written, *written_tensors[i].proto), out_bytes))
      return "rewritten tensor " + name + " was saved with other bytes than written";
  }

  // Everything but the data of rewritten tensors: their storage form was
  // checked equal above, so clearing the same fields on both sides hides
  // only the values; kept tensors are compared in full.
  onnx::ModelProto a = input.proto();
  onnx::ModelProto b = output.proto();
  auto a_tensors = onnx_reinit::collect_model_tensors(a);
  auto b_tensors = onnx_reinit::collect_model_tensors(b);
  for (std::size_t i = 0; i < rewritten.size(); ++i) {
    if (!rewritten[i]) continue;
    clear_tensor_data(*a_tensors[i].proto);
    clear_tensor_data(*b_tensors[i].proto);
  }
  google::protobuf::util::MessageDifferencer differ;
  std::string diff;
  differ.ReportDifferencesToString(&diff);
  if (!differ.Compare(a, b)) return "model structure changed:\n" + diff.substr(0, 2000);
  return std::nullopt;
}

inline model_result rewrite_and_check(const corpus_fs::path& path, const corpus_fs::path& out_dir,
                                      const onnx_reinit::analysis_options& analysis_options,
                                      const onnx_reinit::plan_options& options) {
  model_result r;
  std::string stage = "load";
  try {
    onnx_reinit::loaded_model input = onnx_reinit::load_model(path);
    onnx_reinit::loaded_model model = onnx_reinit::load_model(path);
    stage = "analyze";
    const auto analysis = onnx_reinit::analyze_model(model, analysis_options);
    stage = "plan";
    const auto plans = onnx_reinit::make_plan(analysis, options);
    r.plans = plans;
    for (const auto& p : plans) {
      const bool rewrite = p.action == onnx_reinit::plan_action::rewrite;
      ++(rewrite ? r.rewritten : r.kept);
      r.tensor_lines.push_back(std::string(onnx_reinit::to_string(p.tensor.info.role)) + " " +
                               p.tensor.data_type + " " +
                               (rewrite ? "rewrite " + p.call.strategy : "keep: " + p.reason));
    }
    stage = "rewrite";
    onnx_reinit::rewrite_options ro;
    ro.seed = 0;
    ro.threads = 2;
    const onnx_reinit::model_sample sample =
        onnx_reinit::rewrite_model(model, plans, standard_registry(), ro);
    stage = "save";
    const corpus_fs::path out = out_dir / "model.onnx";
    const std::vector<onnx_reinit::tensor_outcome> outcomes =
        onnx_reinit::outcomes_of(sample, onnx_reinit::save_model(model, out));
    for (std::size_t i = 0; i < plans.size(); ++i) {
      if (outcomes.at(i).rewritten != (plans[i].action == onnx_reinit::plan_action::rewrite)) {
        r.outcome = model_result::kind::failed;
        r.stage = "rewrite";
        r.message = "outcome of " + plans[i].tensor.info.name + " disagrees with its plan";
        return r;
      }
    }
    stage = "reload";
    const onnx_reinit::loaded_model output = onnx_reinit::load_model(out);
    stage = "compare";
    if (auto difference = compare(input, model, output, plans)) {
      r.outcome = model_result::kind::failed;
      r.stage = stage;
      r.message = *difference;
    }
  } catch (const onnx_reinit::error& e) {
    r.outcome = model_result::kind::refused;
    r.stage = stage;
    r.message = e.what();
    if (!e.where().empty()) r.message += " (" + e.where() + ")";
    // An empty message is not a clear refusal.
    if (std::string(e.what()).empty()) r.outcome = model_result::kind::failed;
    // The output failing the checker is a bug unless the input fails it too.
    if (stage == "save") {
      try {
        onnx::checker::check_model(path.string());
        r.outcome = model_result::kind::failed;
      } catch (const std::exception&) {
      }
    }
  } catch (const std::exception& e) {
    r.outcome = model_result::kind::failed;
    r.stage = stage;
    r.message = std::string("not an onnx_reinit::error (") + typeid(e).name() + "): " + e.what();
  }
  return r;
}

}  // namespace onnx_reinit::test
