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
#include "support/corpus_check.h"
#include "support/standard_registry.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;
using ori::test::model_result;
using ori::test::standard_registry;
using ori::test::temp_dir;

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
    // Under CI the corpus is a required package: its absence is a failure.
    if (const char* ci = std::getenv("CI"); ci != nullptr && *ci != '\0')
      FAIL("libonnx-testdata is not installed (" << corpus_root << ") but CI is set");
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
    const model_result r = ori::test::rewrite_and_check(path, tmp.path, analysis_options, options);
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
  // Something must reach the sampler and the writer, or the run checks nothing.
  CHECK(processed > refused);
  CHECK(rewritten > 0);
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
// the policy, here with the torch fan convention. The dtype term keeps the
// glob off integer tensors: a rule naming a tensor that is never rewritten
// is an error (docs/DESIGN.md section 7).
TEST_CASE("every float tensor of libonnx-testdata can be rewritten by a catch-all rule",
          "[corpus]") {
  ori::plan_options options;
  options.rules.push_back(ori::parse_rule(
      "role:unknown&dtype:float32|float64|float16|bfloat16&?*=uniform(low=-0.5,high=0.5)",
      "--rule 1"));
  run_corpus("libonnx-testdata, every float tensor, torch fans",
             {.convention = ori::fan_convention::torch}, options);
}
