// What the library shows a C++ user: fmt formatters for the value of every
// stage (analysis, plan, outcome), the strategy listings the CLI prints
// (--list, --describe), reports staged beside their destination and
// committed with the model, and io_error keeping its cause.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>

#include <nlohmann/json.hpp>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/report.h"
#include "onnx_reinit/rewrite.h"
#include "onnx_reinit/staged_file.h"
#include "support/onnx_builder.h"
#include "support/standard_registry.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;
using ori::test::graph_builder;
using ori::test::standard_registry;
using ori::test::temp_dir;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Conv [8, 4, 3, 3] before a Relu, a bias, and an int64 shape tensor.
onnx::ModelProto small_model() {
  graph_builder g;
  g.add_input("x", {1, 4, 6, 6});
  g.add_initializer("conv.w", {8, 4, 3, 3}, std::vector<float>(8 * 4 * 9, 0.5f));
  g.add_initializer("conv.b", {8}, std::vector<float>(8, 0.5f));
  g.add_initializer(ori::test::make_int64_tensor("shape", {2}, {1, 288}));
  g.add_node("Conv", {"x", "conv.w", "conv.b"}, {"c"},
             {ori::test::make_attribute("kernel_shape", std::vector<std::int64_t>{3, 3})});
  g.add_node("Relu", {"c"}, {"r"});
  g.add_node("Reshape", {"r", "shape"}, {"y"});
  g.add_output("y", {1, 288});
  return g.model();
}

// The regular files in `dir`.
std::size_t file_count(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("every stage's value prints with fmt, alone and in a vector") {
  ori::loaded_model model = ori::loaded_model::from_proto(small_model());
  const auto analysis = ori::analyze_model(model);
  REQUIRE(analysis.size() == 3);
  const auto plans = ori::make_plan(analysis, {});
  ori::rewrite_options options;
  options.seed = 3;
  const ori::model_sample sample = ori::rewrite_model(model, plans, standard_registry(), options);
  temp_dir dir;
  ori::save_options unchecked;
  unchecked.check = false;  // a fragment: the figures are what matters here
  const ori::save_result saved = ori::save_model(model, dir.path / "out.onnx", unchecked);
  const auto outcomes = ori::outcomes_of(sample, saved);

  const std::string info = fmt::format("{}", analysis[0].info);
  INFO(info);
  CHECK(contains(info, "conv.w float32 [8, 4, 3, 3] weight"));
  CHECK(contains(info, "fan_in=36 fan_out=72"));
  CHECK(contains(info, "act=relu"));
  CHECK(contains(info, "gain=1.41421"));

  const std::string a = fmt::format("{}", analysis[0]);
  const std::string shape = fmt::format("{}", analysis[2]);
  INFO(a << "\n" << shape);
  CHECK(contains(a, "fan_in=36"));
  CHECK(contains(a, "consumer=Conv:1"));
  CHECK(contains(shape, "shape int64 [2]"));
  CHECK(contains(shape, "keep: "));

  const std::string p = fmt::format("{}", plans[0]);
  const std::string kept = fmt::format("{}", plans[2]);
  INFO(p << "\n" << kept);
  CHECK(contains(p, "conv.w: rewrite kaiming_normal"));
  CHECK(contains(p, "[policy: role:weight"));
  CHECK(contains(kept, "shape: keep ("));

  const std::string o = fmt::format("{}", outcomes[0]);
  INFO(o);
  CHECK(contains(o, "rewritten kaiming_normal(a=0, mode=fan_in"));
  // target std = sqrt(2 / 36) for fan_in 36 before a relu.
  CHECK(contains(o, "std=0.235702"));
  CHECK(contains(o, "achieved mean="));
  CHECK(!contains(o, "achieved mean=?"));
  CHECK(fmt::format("{}", outcomes[2]) == "kept");
  // A preview has no achieved figures yet.
  const auto preview = ori::preview_outcomes(plans, standard_registry());
  CHECK(contains(fmt::format("{}", preview[0]), "planned kaiming_normal"));
  CHECK(contains(fmt::format("{}", preview[0]), "achieved mean=? std=?"));

  const std::string all_plans = fmt::format("{}", plans);
  INFO(all_plans);
  CHECK(all_plans.front() == '[');
  CHECK(contains(all_plans, "conv.w: rewrite"));
  CHECK(contains(all_plans, "conv.b: rewrite zeros"));
  CHECK(contains(all_plans, "shape: keep"));
  CHECK(contains(fmt::format("{}", analysis), "consumer=Conv:2"));
  CHECK(contains(fmt::format("{}", outcomes), "rewritten zeros"));
}

TEST_CASE("the strategy listings and the unknown-strategy hint come from the library") {
  const ori::registry& r = standard_registry();
  const std::string text = ori::format_strategy_list(r);
  CHECK(contains(text, "plugin standard "));
  CHECK(contains(text, "\nkaiming_normal [standard]  "));
  CHECK(contains(text, "\n    mode "));
  const auto j = nlohmann::json::parse(ori::format_strategy_list(r, true));
  CHECK(j.at("strategies").size() == r.strategies().size());
  CHECK(j.at("plugins").at(0).at("id") == "standard");

  const std::string d = ori::describe_strategy(r, "xavier_uniform");
  CHECK(d.rfind("xavier_uniform: ", 0) == 0);
  CHECK(contains(d, "formula: U(-b, b)"));
  try {
    (void)ori::describe_strategy(r, "xavier_unifrom");
    FAIL("no error for an unknown strategy");
  } catch (const ori::unknown_strategy_error& e) {
    CHECK(contains(e.what(), "unknown strategy 'xavier_unifrom'; did you mean 'xavier_uniform'?"));
  }
  try {
    (void)ori::describe_strategy(ori::registry(), "zeros");
    FAIL("no error with an empty registry");
  } catch (const ori::unknown_strategy_error& e) {
    CHECK(contains(e.what(), "no strategies are loaded"));
  }
}

TEST_CASE("io_error keeps its std::error_code and says why") {
  const ori::io_error e("cannot write file '/x/y'", "/x/y",
                        std::make_error_code(std::errc::no_space_on_device));
  CHECK(std::string(e.what()) == "cannot write file '/x/y': No space left on device");
  CHECK(e.code() == std::errc::no_space_on_device);
  CHECK(e.where() == "/x/y");
  CHECK(std::string(ori::io_error("not a regular file", "f").what()) == "not a regular file");
  CHECK(!ori::io_error("x", "f").code());

  // From the file system: a missing directory, a directory as destination.
  try {
    ori::write_file_atomically("/nonexistent-onnx-reinit-dir/r.json", "{}");
    FAIL("no error");
  } catch (const ori::io_error& err) {
    CHECK(err.code() == std::errc::no_such_file_or_directory);
    CHECK(std::string(err.what()) ==
          "cannot write file '/nonexistent-onnx-reinit-dir/r.json': No such file or directory");
  }
  temp_dir dir;
  CHECK_THROWS_WITH(ori::check_writable_file(dir.path), Catch::Contains("Is a directory"));
  // A missing model says so (ENOENT is the expected case, not a fault).
  CHECK_THROWS_WITH(ori::load_model(dir.path / "missing.onnx"), Catch::Contains("does not exist"));
}

TEST_CASE("a staged file appears on commit only, and never half-written") {
  temp_dir dir;
  const fs::path target = dir.path / "report.json";
  {
    ori::staged_file staged(target, "new");
    CHECK(!fs::exists(target));
    CHECK(fs::exists(staged.temp_path()));
    CHECK(staged.temp_path().parent_path() == dir.path);
    CHECK(slurp(staged.temp_path()) == "new");
  }  // no commit: discarded
  CHECK(file_count(dir.path) == 0);
  {
    std::ofstream(target) << "old";
    ori::staged_file staged(target, "new");
    CHECK(slurp(target) == "old");
    staged.commit();
    CHECK(staged.temp_path().empty());
  }
  CHECK(slurp(target) == "new");
  CHECK(file_count(dir.path) == 1);
  ori::write_file_atomically(target, "third");
  CHECK(slurp(target) == "third");
  CHECK(file_count(dir.path) == 1);
}

TEST_CASE("save_model's before_commit hook: published with the model, or neither is written") {
  temp_dir dir;
  const fs::path out = dir.path / "out.onnx";
  const fs::path report = dir.path / "report.json";
  ori::loaded_model model = ori::loaded_model::from_proto(small_model());

  // A hook that fails (a report that cannot be staged) writes nothing.
  ori::save_options failing;
  failing.before_commit = [&](const ori::save_result&) -> std::vector<ori::staged_file> {
    ori::staged_file staged(report, "x");
    throw ori::io_error("cannot write file 'report.json'", report.string(),
                        std::make_error_code(std::errc::no_space_on_device));
  };
  CHECK_THROWS_AS(ori::save_model(model, out, failing), ori::io_error);
  CHECK(!fs::exists(out));
  CHECK(fs::is_empty(dir.path));

  // The hook runs once, before the model is in place; what it returns is
  // published with the model.
  bool model_there = true;
  int calls = 0;
  ori::save_options options;
  options.before_commit = [&](const ori::save_result&) {
    model_there = fs::exists(out);
    ++calls;
    std::vector<ori::staged_file> files;
    files.emplace_back(report, "{\"ok\": true}");
    return files;
  };
  ori::save_model(model, out, options);
  CHECK(!model_there);
  CHECK(calls == 1);
  CHECK(fs::exists(out));
  CHECK(slurp(report) == "{\"ok\": true}");
  CHECK(file_count(dir.path) == 2);
}
