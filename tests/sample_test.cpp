// The data flow between the sampler and the writer as values: the sampler's
// model_sample changes nothing and reads the same bytes every time; reading
// a pending tensor records nothing; the writer's save_result holds the
// figures of exactly what is in the written file.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/rewrite.h"
#include "support/onnx_builder.h"
#include "support/standard_registry.h"
#include "support/temp_dir.h"

namespace ori = onnx_reinit;
using ori::test::graph_builder;
using ori::test::standard_registry;
using ori::test::temp_dir;

namespace {

// MatMul weights of three dtypes (the last before a ReLU) and a bias.
onnx::ModelProto three_dtypes() {
  struct layer {
    const char* weight;
    std::int64_t in, out;
    ori::element_type type;
  };
  const layer layers[] = {{"w32", 60, 70, ori::element_type::float32},
                          {"w16", 70, 60, ori::element_type::float16},
                          {"w64", 60, 70, ori::element_type::float64}};
  graph_builder g;
  g.add_input("x", {2, 60});
  std::string h = "x";
  for (const layer& l : layers) {
    g.add_initializer(l.weight, {l.in, l.out}, std::vector<float>(60 * 70, 0.5f), l.type);
    g.add_node("MatMul", {h, l.weight}, {h + "'"});
    h += "'";
  }
  g.add_initializer("bias", {70}, std::vector<float>(70, 0.5f));
  g.add_node("Add", {h, "bias"}, {"d"});
  g.add_node("Relu", {"d"}, {"y"});
  g.add_output("y", {2, 70});
  return g.model();
}

// The model saved with every float tensor in one external data file, loaded
// back: its rewritten tensors are pending sources until saved.
ori::loaded_model external_model(const temp_dir& dir) {
  ori::loaded_model m = ori::loaded_model::from_proto(three_dtypes());
  ori::save_options o;
  o.external_data_name = "in.data";
  o.external_min_bytes = 0;
  ori::save_model(m, dir / "in.onnx", o);
  return ori::load_model(dir / "in.onnx");
}

std::vector<ori::tensor_plan> plans_of(const ori::loaded_model& m) {
  return ori::make_plan(ori::analyze_model(m), {});
}

ori::rewrite_options options() {
  ori::rewrite_options o;
  o.seed = 11;
  o.chunk_elements = 500;  // windows of 2000 elements: several per tensor
  o.threads = 2;           // a window is two chunks per thread, at least four
  return o;
}

std::vector<std::byte> read_all(const ori::byte_source& source) {
  std::vector<std::byte> out(source.size());
  source.read(0, out);
  return out;
}

std::vector<std::byte> bytes_of(const ori::loaded_model& m, const std::string& name) {
  for (const auto& t : ori::collect_model_tensors(m.proto()))
    if (t.ref.name == name) {
      const ori::tensor_bytes_view view = ori::tensor_bytes(m, *t.proto);
      return {view.bytes().begin(), view.bytes().end()};
    }
  FAIL("no tensor " << name);
  return {};
}

std::string serialized(const ori::loaded_model& m) {
  std::string s;
  m.proto().SerializeToString(&s);
  return s;
}

}  // namespace

TEST_CASE("the sampler changes nothing and its sources give the same bytes every time") {
  temp_dir dir("onnx_reinit_sample");
  const ori::loaded_model model = external_model(dir);
  const std::string proto_before = serialized(model);
  const std::vector<std::byte> w32_before = bytes_of(model, "w32");

  const ori::model_sample sample =
      ori::sample_model(model, plans_of(model), standard_registry(), options());
  CHECK(serialized(model) == proto_before);
  CHECK(bytes_of(model, "w32") == w32_before);

  REQUIRE(sample.tensors.size() == 4);
  for (const ori::tensor_sample& t : sample.tensors) {
    INFO(fmt::format("{}", t));
    REQUIRE(t.source);
    const std::vector<std::byte> first = read_all(*t.source);
    CHECK(first.size() == t.source->size());
    CHECK(read_all(*t.source) == first);
    // A window read alone is the same bytes as that range of the whole.
    const std::uint64_t w = t.source->window();
    if (w < t.source->size()) {
      std::vector<std::byte> second(static_cast<std::size_t>(w));
      t.source->read(w, second);
      CHECK(std::equal(second.begin(), second.end(), first.begin() + static_cast<long>(w)));
    }
  }
  const std::string printed = fmt::format("{}", sample);
  INFO(printed);
  CHECK(printed.starts_with("seed 11: [w32: xavier_uniform(gain=1) target mean=0 std=0.124035"));
  CHECK(printed.find("<- 16800 bytes from xavier_uniform seed=11 stream 'w32'") !=
        std::string::npos);
  CHECK(printed.find("bias: zeros") != std::string::npos);
}

TEST_CASE("reading a pending tensor generates its bytes and records nothing") {
  temp_dir dir("onnx_reinit_sample");
  ori::loaded_model model = external_model(dir);
  const ori::model_sample sample =
      ori::rewrite_model(model, plans_of(model), standard_registry(), options());
  const std::string printed = fmt::format("{}", sample);
  const std::string outcomes = fmt::format("{}", ori::outcomes_of(sample, {}));
  // Nothing is written yet: no achieved figures.
  CHECK(outcomes.find("planned kaiming_normal") != std::string::npos);
  CHECK(outcomes.find("achieved mean=? std=?") != std::string::npos);

  const std::vector<std::byte> once = bytes_of(model, "w16");
  const std::vector<std::byte> twice = bytes_of(model, "w16");
  CHECK(once == twice);
  CHECK(once == read_all(*sample.tensors[1].source));
  CHECK(fmt::format("{}", sample) == printed);
  CHECK(fmt::format("{}", ori::outcomes_of(sample, {})) == outcomes);

  const ori::save_result saved = ori::save_model(model, dir / "out.onnx");
  CHECK(fmt::format("{}", sample) == printed);
  const ori::loaded_model out = ori::load_model(dir / "out.onnx");
  CHECK(bytes_of(out, "w16") == once);
  CHECK(bytes_of(model, "w16") == once);  // still the same source
}

// The figures the writer returns, against mean and population std
// computed here from the values read back from the written file (two
// passes in long double). Both sum the same ~4200 values, so they agree to
// rounding: 1e-12 relative leaves room for float64 sums of that length
// (about 4200 * 2^-53 ~ 5e-13) while any real difference (a value written
// other than measured, a sample std instead of a population one: a factor
// 4200/4199, 2.4e-4) fails.
void check_figures_match_file(const ori::save_result& saved, const ori::loaded_model& out,
                              std::size_t expected_count) {
  REQUIRE(saved.written.size() == expected_count);
  std::map<std::string, const onnx::TensorProto*> by_name;
  for (const auto& t : ori::collect_model_tensors(out.proto())) by_name[t.ref.name] = t.proto;
  for (const ori::written_tensor& w : saved.written) {
    INFO(fmt::format("{}", w));
    const std::vector<double> v = ori::read_tensor_values<double>(out, *by_name.at(w.ref.name));
    REQUIRE(w.count == v.size());
    long double sum = 0;
    for (double x : v) sum += x;
    const long double mean = sum / v.size();
    long double squares = 0;
    for (double x : v) squares += (x - mean) * (x - mean);
    const double std = static_cast<double>(std::sqrt(squares / v.size()));
    CHECK(std::abs(w.std - std) <= 1e-12 * std + 1e-300);
    CHECK(std::abs(w.mean - static_cast<double>(mean)) <= 1e-12 * (std + std::abs(w.mean)));
  }
}

TEST_CASE("the writer returns the figures of the values in the written file") {
  temp_dir dir("onnx_reinit_sample");
  SECTION("external tensors, streamed in windows, same layout") {
    ori::loaded_model model = external_model(dir);
    const ori::model_sample sample =
        ori::rewrite_model(model, plans_of(model), standard_registry(), options());
    // Progress counts the streamed bytes, one call per window, up to the
    // pending tensors' total (16800 + 8400 + 33600 + 280 bytes).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> calls;
    ori::save_options o;
    o.progress = [&](std::uint64_t done, std::uint64_t total) { calls.emplace_back(done, total); };
    const ori::save_result saved = ori::save_model(model, dir / "out.onnx", o);
    REQUIRE(!calls.empty());
    CHECK(calls.back() == std::pair<std::uint64_t, std::uint64_t>{59080, 59080});
    CHECK(std::is_sorted(calls.begin(), calls.end()));
    // Windows of 4 chunks (2000 elements): each of the three 4200-element
    // weights (float32, float16, float64) in 3, the 70-element bias in 1.
    CHECK(calls.size() == 10);
    const ori::loaded_model out = ori::load_model(dir / "out.onnx");
    REQUIRE(out.has_external_data());
    check_figures_match_file(saved, out, 4);
    const std::string printed = fmt::format("{}", saved);
    INFO(printed);
    CHECK(printed.starts_with("wrote [w32 float32 x4200 mean="));
    // The report rows take the writer's figures.
    const auto rows = ori::outcomes_of(sample, saved);
    REQUIRE(rows.size() == 4);
    CHECK(rows[1].rewritten);
    CHECK(rows[1].achieved_std == saved.written[1].std);
  }
  SECTION("inline tensors, and inline tensors moved to a data file") {
    for (const bool consolidate : {false, true}) {
      ori::loaded_model model = ori::loaded_model::from_proto(three_dtypes());
      ori::rewrite_model(model, plans_of(model), standard_registry(), options());
      ori::save_options o;
      if (consolidate) o.external_data_name = "out.data";
      o.external_min_bytes = 0;
      const ori::save_result saved = ori::save_model(model, dir / "out.onnx", o);
      const ori::loaded_model out = ori::load_model(dir / "out.onnx");
      CHECK(out.has_external_data() == consolidate);
      check_figures_match_file(saved, out, 4);
    }
  }
  SECTION("tensors not set since load are not measured") {
    ori::loaded_model model = ori::loaded_model::from_proto(three_dtypes());
    CHECK(ori::save_model(model, dir / "out.onnx").written.empty());
  }
}
