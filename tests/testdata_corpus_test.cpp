// The whole library over the real models of Debian's libonnx-testdata: every
// model is loaded, analysed, planned by the default policy, rewritten with
// the standard plugin and saved (the checker runs inside save), then the
// output is reloaded and compared with the input. Kept tensors must be byte
// for byte the same, rewritten ones keep dtype, dims and storage form, and
// everything that is not tensor data (nodes, inputs, outputs, opset imports,
// metadata, names, doc strings) is unchanged. A model may instead be refused
// with an onnx_reinit::error; anything else is a failure.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
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
#include "onnx_reinit/rules.h"
#include "support/standard_registry.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;
using ori::test::standard_registry;

namespace {

const fs::path corpus_root = "/usr/share/libonnx-testdata/data";
const char* const corpus_parts[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};

// Every model by default (a few seconds, also under ASan);
// ONNX_REINIT_CORPUS_STRIDE=k takes every k-th one for a quicker run.
std::size_t corpus_stride() {
  if (const char* s = std::getenv("ONNX_REINIT_CORPUS_STRIDE")) {
    const long v = std::strtol(s, nullptr, 10);
    if (v >= 1) return static_cast<std::size_t>(v);
  }
  return 1;
}

std::vector<fs::path> corpus_models() {
  std::vector<fs::path> models;
  for (const char* part : corpus_parts) {
    const fs::path dir = corpus_root / part;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(dir))
      if (entry.is_regular_file() && entry.path().filename() == "model.onnx")
        models.push_back(entry.path());
  }
  // Directory iteration order is unspecified; sampling must be stable.
  std::sort(models.begin(), models.end());
  return models;
}

// A fresh directory for the outputs, removed at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    const std::string name =
        "onnx_reinit_corpus_" +
        std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
    // Saving fsyncs every output; on a busy disk that alone can take tens of
    // seconds for the corpus, so prefer a RAM file system unless TMPDIR says.
    std::error_code ec;
    if (std::getenv("TMPDIR") == nullptr && fs::create_directory("/dev/shm" / fs::path(name), ec)) {
      path = "/dev/shm" / fs::path(name);
      return;
    }
    path = fs::temp_directory_path() / name;
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

bool same_bytes(const ori::tensor_bytes_view& a, const ori::tensor_bytes_view& b) {
  return std::ranges::equal(a.bytes(), b.bytes());
}

// Removes a tensor's data (every value field), leaving its name, dtype,
// dims, doc string, data location and external data entries to be compared.
void clear_tensor_data(onnx::TensorProto& t) {
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
  std::vector<std::string> tensor_lines;  // "role action strategy-or-reason" per tensor
};

// Compares the reloaded output with the untouched input; returns the first
// difference, or nullopt. `plans` are in collect_model_tensors order.
std::optional<std::string> compare(const ori::loaded_model& input, const ori::loaded_model& written,
                                   const ori::loaded_model& output,
                                   const std::vector<ori::tensor_plan>& plans) {
  const auto in_tensors = ori::collect_model_tensors(input.proto());
  const auto written_tensors = ori::collect_model_tensors(written.proto());
  const auto out_tensors = ori::collect_model_tensors(output.proto());
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
    const ori::tensor_bytes_view in_bytes = ori::tensor_bytes(input, a);
    const ori::tensor_bytes_view out_bytes = ori::tensor_bytes(output, b);
    if (plans[i].action == ori::plan_action::keep) {
      if (!same_bytes(in_bytes, out_bytes)) return "kept tensor " + name + " changed its bytes";
      continue;
    }
    rewritten[i] = true;
    if (a.data_type() != b.data_type()) return "rewritten tensor " + name + " changed dtype";
    if (!std::ranges::equal(a.dims(), b.dims()))
      return "rewritten tensor " + name + " changed dims";
    if (ori::storage_of(a) != ori::storage_of(b) || a.data_location() != b.data_location())
      return "rewritten tensor " + name + " changed storage form";
    if (in_bytes.size() != out_bytes.size())
      return "rewritten tensor " + name + " changed its byte size";
    // What was saved is what the rewrite put in memory.
    if (!same_bytes(ori::tensor_bytes(written, *written_tensors[i].proto), out_bytes))
      return "rewritten tensor " + name + " was saved with other bytes than written";
  }

  // Everything but the data of rewritten tensors: their storage form was
  // checked equal above, so clearing the same fields on both sides hides
  // only the values; kept tensors are compared in full.
  onnx::ModelProto a = input.proto();
  onnx::ModelProto b = output.proto();
  auto a_tensors = ori::collect_model_tensors(a);
  auto b_tensors = ori::collect_model_tensors(b);
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

model_result process(const fs::path& path, const fs::path& out_dir,
                     const ori::analysis_options& analysis_options,
                     const ori::plan_options& options) {
  model_result r;
  std::string stage = "load";
  try {
    ori::loaded_model input = ori::load_model(path);
    ori::loaded_model model = ori::load_model(path);
    stage = "analyze";
    const auto analysis = ori::analyze_model(model, analysis_options);
    stage = "plan";
    const auto plans = ori::make_plan(analysis, options);
    for (const auto& p : plans) {
      const bool rewrite = p.action == ori::plan_action::rewrite;
      ++(rewrite ? r.rewritten : r.kept);
      r.tensor_lines.push_back(std::string(ori::to_string(p.tensor.info.role)) + " " +
                               p.tensor.data_type + " " +
                               (rewrite ? "rewrite " + p.call.strategy : "keep: " + p.reason));
    }
    stage = "rewrite";
    ori::rewrite_options ro;
    ro.seed = 0;
    ro.threads = 2;
    const ori::rewrite_outcomes outcomes =
        ori::rewrite_model(model, plans, standard_registry(), ro);
    stage = "save";
    const fs::path out = out_dir / "model.onnx";
    ori::save_model(model, out);
    // Outcomes are final once saved (external tensors are sampled in save).
    for (std::size_t i = 0; i < plans.size(); ++i) {
      if (outcomes->at(i).rewritten != (plans[i].action == ori::plan_action::rewrite)) {
        r.outcome = model_result::kind::failed;
        r.stage = "rewrite";
        r.message = "outcome of " + plans[i].tensor.info.name + " disagrees with its plan";
        return r;
      }
    }
    stage = "reload";
    const ori::loaded_model output = ori::load_model(out);
    stage = "compare";
    if (auto difference = compare(input, model, output, plans)) {
      r.outcome = model_result::kind::failed;
      r.stage = stage;
      r.message = *difference;
    }
  } catch (const ori::error& e) {
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

// Groups refusals whose messages differ only in names: the text up to the
// first quote or parenthesis.
std::string reason_key(const model_result& r) {
  const std::string& m = r.message;
  const std::size_t cut = m.find_first_of("'\"({");
  return r.stage + ": " + m.substr(0, std::min<std::size_t>(cut, 120));
}

// Runs the whole corpus with `options` and prints a summary.
void run_corpus(const std::string& title, const ori::analysis_options& analysis_options,
                const ori::plan_options& options) {
  const auto all = corpus_models();
  if (all.empty()) {
    WARN("libonnx-testdata is not installed (" << corpus_root << "); corpus test skipped");
    return;
  }
  REQUIRE_FALSE(standard_registry().strategies().empty());
  const std::size_t stride = corpus_stride();
  const auto start = std::chrono::steady_clock::now();
  temp_dir tmp;

  std::size_t processed = 0, refused = 0, rewritten = 0, kept = 0;
  std::map<std::string, std::vector<std::string>> refusals;
  std::map<std::string, std::size_t> decisions;  // "role dtype action", counted
  const bool verbose = std::getenv("ONNX_REINIT_CORPUS_VERBOSE") != nullptr;
  for (std::size_t i = 0; i < all.size(); i += stride) {
    const fs::path& path = all[i];
    const std::string rel = fs::relative(path, corpus_root).parent_path().string();
    const model_result r = process(path, tmp.path, analysis_options, options);
    INFO(rel << " [" << r.stage << "] " << r.message);
    CHECK(r.outcome != model_result::kind::failed);
    ++processed;
    if (r.outcome == model_result::kind::refused) {
      ++refused;
      refusals[reason_key(r)].push_back(rel);
      continue;
    }
    rewritten += r.rewritten;
    kept += r.kept;
    for (const std::string& line : r.tensor_lines) {
      ++decisions[line.substr(0, line.find_first_of("'\"("))];
      if (verbose) std::cout << rel << ": " << line << "\n";
    }
  }

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << title << ": " << processed << " of " << all.size() << " models processed (every "
            << stride << "), " << processed - refused << " saved and checked, " << refused
            << " refused; tensors: " << rewritten << " rewritten, " << kept << " kept; " << seconds
            << " s\n";
  for (const auto& [reason, models] : refusals) {
    std::cout << "  refused " << models.size() << "x: " << reason << "\n    e.g.";
    for (std::size_t i = 0; i < std::min<std::size_t>(models.size(), 3); ++i)
      std::cout << " " << models[i];
    std::cout << "\n";
  }
  std::cout << "  decisions (role dtype action):\n";
  for (const auto& [decision, count] : decisions)
    std::cout << "    " << count << "x " << decision << "\n";
  // The corpus is ordinary exporter output: refusing more than a handful of
  // models means the library is too strict.
  REQUIRE(refused * 50 <= processed);
}

}  // namespace

TEST_CASE("every libonnx-testdata model is rewritten by the default policy or refused cleanly",
          "[corpus]") {
  run_corpus("libonnx-testdata, default policy", {}, {});
}

// The default policy keeps every tensor of unknown role, which in this corpus
// is most of them; a rule naming all of them sends every float tensor
// (scalars, empty tensors, Constant nodes, subgraph tensors, every storage
// form) through the sampler and the writer. Recognised layers still go to
// the policy, here with the torch fan convention.
TEST_CASE("every float tensor of libonnx-testdata can be rewritten by a catch-all rule",
          "[corpus]") {
  ori::plan_options options;
  options.rules.push_back(
      ori::parse_rule("role:unknown&?*=uniform(low=-0.5,high=0.5)", "--rule 1"));
  run_corpus("libonnx-testdata, every float tensor, torch fans",
             {.convention = ori::fan_convention::torch}, options);
}
