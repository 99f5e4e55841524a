// The plan is law (docs/DESIGN.md section 1): over every model of the test
// corpora, for the default policy, --only, --skip, a `keep` rule, --from,
// --calibrate lsuv and combinations of them, the command is run and its
// output compared with its input tensor by tensor. A tensor's bytes change
// if and only if the report lists it as rewritten (calibrated included) or
// transferred; a transferred tensor holds the pretrained bytes; a kept
// tensor, and every fixed constant the analysis finds, is byte for byte the
// input's. A failed run must write nothing.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"
#include "support/cli_runner.h"
#include "support/corpus_dir.h"

namespace {

namespace fs = std::filesystem;
namespace ori = onnx_reinit;
using json = nlohmann::json;
using ori::test::run_cli;

// Models above this size are rewritten but not calibrated: LSUV runs the
// model once per scaling of every layer, minutes on ResNet-50.
constexpr std::uintmax_t max_lsuv_bytes = std::uintmax_t{16} << 20;

// Each tensor's bytes, keyed by stream name (graph path and name).
std::map<std::string, std::string> tensor_bytes_of(const fs::path& path) {
  const ori::loaded_model model = ori::load_model(path);
  std::map<std::string, std::string> out;
  for (const ori::const_model_tensor& t :
       ori::collect_model_tensors(std::as_const(model.proto()))) {
    const auto view = ori::tensor_bytes(model, *t.proto);
    const auto bytes = view.bytes();
    out[t.ref.graph_path + "/" + t.ref.name].assign(reinterpret_cast<const char*>(bytes.data()),
                                                    bytes.size());
  }
  return out;
}

std::string key_of(const json& entry) {
  return entry["graph"].get<std::string>() + "/" + entry["name"].get<std::string>();
}

// What one model's runs share: its tensors and fixed constants, a
// pretrained model to transfer from, and names to name in --only/--skip/rules.
struct model_under_test {
  fs::path path;
  std::map<std::string, std::string> input;
  std::vector<std::string> fixed_constants;  // keys
  std::vector<std::string> rewritten;        // names the default policy rewrites (main graph)
  fs::path pretrained;                       // the default policy's output at another seed
  std::map<std::string, std::string> pretrained_bytes;
};

struct tally {
  std::size_t runs = 0, failed_cleanly = 0, calibrated_runs = 0, changed = 0;
};

// Checks one successful run against its report; returns the count of
// tensors whose bytes changed.
std::size_t check_run(const model_under_test& m, const fs::path& out, const fs::path& report,
                      const std::vector<std::string>& args) {
  INFO("model " << m.path << "\nargs: " << fmt::format("{}", fmt::join(args, " ")));
  const auto output = tensor_bytes_of(out);
  const json doc = json::parse(ori::test::read_file(report));
  REQUIRE(doc["tensors"].size() == m.input.size());
  REQUIRE(output.size() == m.input.size());
  std::size_t changed = 0;
  for (const json& t : doc["tensors"]) {
    const std::string key = key_of(t);
    const std::string action = t["action"];
    INFO("tensor " << key << " action " << action << " reason " << t["reason"].dump());
    REQUIRE(m.input.count(key) == 1);
    const bool differs = output.at(key) != m.input.at(key);
    changed += differs ? 1 : 0;
    if (differs) CHECK((action == "rewritten" || action == "transferred"));
    if (action == "kept") CHECK_FALSE(differs);
    if (action == "transferred") {
      REQUIRE(m.pretrained_bytes.count(key) == 1);
      CHECK(output.at(key) == m.pretrained_bytes.at(key));
    }
    // A drawn tensor (positive target std) cannot come out equal to the
    // trained one it replaces.
    if (action == "rewritten" && t["target_std"].is_number() && t["target_std"] > 0.0)
      CHECK(differs);
    if (t.contains("lsuv_iterations") && t["lsuv_iterations"].is_number() &&
        t["lsuv_iterations"] > 0)
      CHECK(action == "rewritten");
    CHECK(action != "planned");
  }
  for (const std::string& key : m.fixed_constants) {
    INFO("fixed constant " << key);
    CHECK(output.at(key) == m.input.at(key));
  }
  return changed;
}

// Runs the command with `args` (+ -o, --report) and checks the outcome:
// either success and check_run, or an error with nothing written.
// `names_from_extra`: the names in `args` were picked from a run with an
// option `args` lacks (--quantized requantize); a rule naming a tensor only
// that option rewrites must then be refused (exit 2, "never rewritten").
void run_and_check(const model_under_test& m, std::vector<std::string> args, tally& t,
                   bool names_from_extra = false) {
  ori::test::temp_dir dir;
  const fs::path out = dir / "out.onnx";
  const fs::path report = dir / "report.json";
  std::vector<std::string> full{m.path.string(), "-o", out.string(), "--report",
                                report.string(), "-q"};
  full.insert(full.end(), args.begin(), args.end());
  const auto r = run_cli(full);
  ++t.runs;
  INFO("model " << m.path << "\nargs: " << fmt::format("{}", fmt::join(args, " "))
                << "\nstderr: " << r.err);
  if (r.status != 0) {
    // Only the runtime stage may refuse a model the plan accepts (inputs it
    // cannot synthesize, a non-finite activation), or the planner a rule
    // naming a tensor it never rewrites; either must write nothing.
    const bool rule_refused =
        names_from_extra && r.status == 2 && ori::test::contains(r.err, "never rewritten");
    if (!rule_refused) {
      CHECK(std::find(args.begin(), args.end(), "--calibrate") != args.end());
      CHECK((r.status == 1 || r.status == 2));
    }
    CHECK_FALSE(fs::exists(out));
    CHECK_FALSE(fs::exists(report));
    ++t.failed_cleanly;
    return;
  }
  if (std::find(args.begin(), args.end(), "--calibrate") != args.end()) ++t.calibrated_runs;
  t.changed += check_run(m, out, report, args);
}

model_under_test prepare(const fs::path& path, const fs::path& scratch,
                         const std::vector<std::string>& extra) {
  model_under_test m;
  m.path = path;
  m.input = tensor_bytes_of(path);
  const ori::loaded_model model = ori::load_model(path);
  for (const ori::tensor_analysis& a : ori::analyze_model(model))
    if (!a.fixed_constant.empty()) m.fixed_constants.push_back(a.ref.graph_path + "/" + a.ref.name);
  m.pretrained = scratch / (path.stem().string() + ".pretrained.onnx");
  const fs::path plan = scratch / "plan.json";
  std::vector<std::string> args{path.string(), "-o",       m.pretrained.string(), "--seed", "1",
                                "-q",          "--report", plan.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = run_cli(args);
  INFO("model " << path << "\n" << r.err);
  REQUIRE(r.status == 0);
  const json doc = json::parse(ori::test::read_file(plan));
  for (const json& t : doc["tensors"])
    if (t["action"] == "rewritten" && t["graph"] == "" && t["role"] == "weight")
      m.rewritten.push_back(t["name"]);
  m.pretrained_bytes = tensor_bytes_of(m.pretrained);
  return m;
}

// A shell glob matching exactly `name` (fnmatch escapes with backslashes).
std::string exact_glob(const std::string& name) {
  std::string glob;
  for (char c : name) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') glob += '\\';
    glob += c;
  }
  return glob;
}

// A rule's match term naming exactly `name` ("name:" allows colons in it);
// nullopt for names the rule syntax cannot hold (its separators).
std::optional<std::string> rule_term(const std::string& name) {
  if (name.find_first_of("=&|,()") != std::string::npos) return std::nullopt;
  return "name:" + exact_glob(name);
}

// The full shapes of inputs with dimensions the runtime cannot guess, for
// the real models (their README usage: OCR crops of height 48, 16 kHz
// audio windows of 512 samples...).
std::vector<std::string> runtime_inputs(const fs::path& model) {
  // libonnx-testdata: the test's own inputs beside the model.
  if (fs::exists(model.parent_path() / "test_data_set_0"))
    return {"--data", (model.parent_path() / "test_data_set_0").string()};
  static const std::map<std::string, std::vector<std::string>> shapes{
      {"ch_PP-OCRv4_det_infer", {"x=1x3x64x64"}},
      {"ch_PP-OCRv4_rec_infer", {"x=1x3x48x64"}},
      {"ch_ppocr_mobile_v2.0_cls_infer", {"x=1x3x48x192"}},
      {"melspectrogram", {"input=4x1280"}},
      {"silero_vad_legacy", {"input=1x512", "h=2x1x64", "c=2x1x64"}},
      {"silero_vad_v5", {"input=1x512", "state=2x1x128"}},
  };
  std::vector<std::string> args;
  auto it = shapes.find(model.stem().string());
  if (it == shapes.end()) return args;
  for (const std::string& s : it->second) {
    args.emplace_back("--input-shape");
    args.push_back(s);
  }
  return args;
}

// The configurations for one model: the default policy, --from, --only,
// --skip, rules, and with the runtime stage --calibrate lsuv alone and
// combined with the others.
std::vector<std::vector<std::string>> configurations(const model_under_test& m) {
  const std::string from = m.pretrained.string();
  std::vector<std::vector<std::string>> configs{{}, {"--from", from}};
  std::vector<std::vector<std::string>> narrowed;  // also run with --calibrate
  if (!m.rewritten.empty()) {
    const std::string first = exact_glob(m.rewritten.front());
    const std::optional<std::string> last = rule_term(m.rewritten.back());
    configs.push_back({"--only", first});
    configs.push_back({"--skip", first});
    narrowed.push_back({"--only", first});
    if (last) {
      configs.push_back({"--rule", *last + "=keep"});
      configs.push_back({"--from", from, "--skip", first, "--rule", *last + "=normal(std=0.5)"});
      narrowed.push_back({"--skip", first, "--rule", *last + "=keep"});
    }
    narrowed.push_back({"--from", from, "--skip", first});
  }
  if (fs::file_size(m.path) <= max_lsuv_bytes) {
    std::vector<std::string> calibrate{"--calibrate", "lsuv"};
    for (const std::string& s : runtime_inputs(m.path)) calibrate.push_back(s);
    configs.push_back(calibrate);
    for (auto args : narrowed) {
      args.insert(args.begin(), calibrate.begin(), calibrate.end());
      configs.push_back(std::move(args));
    }
  }
  return configs;
}

// Every configuration on one model; with `extra` (e.g. --quantized
// requantize) each is run a second time with it.
void check_model(const fs::path& path, const std::vector<std::string>& extra, tally& t) {
  ori::test::temp_dir scratch;
  // The names to select come from a run with `extra`, so that --only,
  // --skip and rules also pick tensors only `extra` rewrites.
  const model_under_test m = prepare(path, scratch.path(), extra);
  for (const auto& args : configurations(m)) {
    run_and_check(m, args, t, !extra.empty());
    if (extra.empty()) continue;
    std::vector<std::string> with = extra;
    with.insert(with.end(), args.begin(), args.end());
    run_and_check(m, with, t);
  }
}

void check_models(const std::vector<fs::path>& models, bool expect_calibration,
                  const std::vector<std::string>& extra = {}) {
  REQUIRE_FALSE(models.empty());
  tally t;
  for (const fs::path& path : models) check_model(path, extra, t);
  WARN(
      fmt::format("{} models, {} runs: {} calibrated, {} refused cleanly (runtime stage, rules), "
                  "{} tensors changed",
                  models.size(), t.runs, t.calibrated_runs, t.failed_cleanly, t.changed));
  CHECK(t.changed > 0);
  if (expect_calibration) CHECK(t.calibrated_runs > 0);
}

// libonnx-testdata's models of whole PyTorch modules and small graphs
// (not the single-operator `node` tests) that hold a float tensor.
std::vector<fs::path> testdata_models() {
  std::vector<fs::path> models;
  for (const char* part : {"pytorch-converted", "pytorch-operator", "simple"})
    for (const auto& e :
         fs::directory_iterator(fs::path("/usr/share/libonnx-testdata/data") / part)) {
      const fs::path model = e.path() / "model.onnx";
      if (!fs::exists(model)) continue;
      const ori::loaded_model loaded = ori::load_model(model);
      const auto tensors = ori::collect_model_tensors(std::as_const(loaded.proto()));
      if (std::any_of(tensors.begin(), tensors.end(), [](const ori::const_model_tensor& t) {
            return t.proto->data_type() == onnx::TensorProto::FLOAT;
          }))
        models.push_back(model);
    }
  std::sort(models.begin(), models.end());
  return models;
}

}  // namespace

TEST_CASE("the plan is law on libonnx-testdata's models", "[plan_is_law][testdata]") {
  check_models(testdata_models(), true);
}

TEST_CASE("the plan is law on the real-model corpus", "[plan_is_law][corpus]") {
  check_models(ori::test::onnx_files(ori::test::corpus_dir()), true);
}

TEST_CASE("the plan is law on the checked-in PyTorch exports", "[plan_is_law][exports]") {
  check_models(ori::test::onnx_files(fs::path(ONNX_REINIT_SOURCE_DIR) / "tests/exports/torch"),
               true);
}

TEST_CASE("the plan is law on the example model", "[plan_is_law][examples]") {
  check_models({fs::path(ONNX_REINIT_SOURCE_DIR) / "examples/models/tiny_net.onnx"}, true);
}

TEST_CASE("the plan is law on the reference exports", "[plan_is_law][reference]") {
  check_models(ori::test::onnx_files(ONNX_REINIT_REFERENCE_MODELS), true);
}

TEST_CASE("the plan is law on the graph-pattern models", "[plan_is_law][patterns]") {
  check_models(ori::test::onnx_files(ONNX_REINIT_PATTERN_MODELS), true);
}

TEST_CASE("the plan is law on the quantized (QDQ) models", "[plan_is_law][qdq]") {
  check_models(ori::test::onnx_files(ONNX_REINIT_QDQ_MODELS), true, {"--quantized", "requantize"});
}
