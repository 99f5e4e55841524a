// The streamed path (external-data tensors sampled while save_model writes
// them, a window at a time) must give exactly the bytes and figures of the
// in-memory path (inline tensors filled whole), for every dtype and for
// strategies filled whole (orthogonal) as well as in chunks.
#include <catch2/catch.hpp>

#include <unistd.h>
#include <filesystem>
#include <fstream>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/registry.h"
#include "onnx_reinit/rewrite.h"
#include "support/onnx_builder.h"
#include "support/standard_registry.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;
using ori::test::graph_builder;
using ori::test::standard_registry;

namespace {

// Three MatMul weights of different dtypes (large enough for many windows at
// the chunk size used below) and an LSTM whose recurrent weight is filled
// whole by `orthogonal`, with its forget-gate bias set after sampling.
onnx::ModelProto mixed_model() {
  graph_builder g;
  g.add_input("x", {2, 300});
  const std::vector<float> big(300 * 500, 0.5f);
  g.add_initializer("w32", {300, 500}, big, ori::element_type::float32);
  g.add_initializer("w16", {500, 300}, big, ori::element_type::float16);
  g.add_initializer("w64", {300, 500}, big, ori::element_type::float64);
  g.add_node("MatMul", {"x", "w32"}, {"a"});
  g.add_node("MatMul", {"a", "w16"}, {"b"});
  g.add_node("MatMul", {"b", "w64"}, {"c"});
  g.add_node("Relu", {"c"}, {"y"});
  g.add_output("y", {2, 500});
  g.add_input("seq", {3, 1, 16});
  g.add_initializer("W", {1, 128, 16}, std::vector<float>(128 * 16, 0.5f));
  g.add_initializer("R", {1, 128, 32}, std::vector<float>(128 * 32, 0.5f));
  g.add_initializer("B", {1, 256}, std::vector<float>(256, 0.5f));
  g.add_node("LSTM", {"seq", "W", "R", "B"}, {"h"},
             {ori::test::make_attribute("hidden_size", std::int64_t{32})});
  g.add_output("h", {3, 1, 1, 32});
  return g.model();
}

struct result {
  ori::loaded_model model;
  std::vector<ori::tensor_outcome> outcomes;
};

// Rewrites `path` (seed 5, small chunks so tensors span many windows) into
// `out` and loads the result back.
result rewrite_file(const fs::path& path, const fs::path& out) {
  ori::loaded_model model = ori::load_model(path);
  auto plans = ori::make_plan(ori::analyze_model(model), {});
  ori::rewrite_options options;
  options.seed = 5;
  options.chunk_elements = 777;
  const ori::model_sample sample = ori::rewrite_model(model, plans, standard_registry(), options);
  const ori::save_result saved = ori::save_model(model, out);
  return {ori::load_model(out), ori::outcomes_of(sample, saved)};
}

std::vector<std::byte> bytes_of(const ori::loaded_model& m, const std::string& name) {
  for (const auto& t : ori::collect_model_tensors(m.proto()))
    if (t.ref.name == name) {
      auto view = ori::tensor_bytes(m, *t.proto);
      return {view.bytes().begin(), view.bytes().end()};
    }
  FAIL("no tensor " << name);
  return {};
}

}  // namespace

TEST_CASE("streamed external tensors equal in-memory inline tensors, byte for byte") {
  const fs::path dir =
      fs::temp_directory_path() / ("onnx_reinit_streaming_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "inline");
  fs::create_directories(dir / "external");
  {
    ori::loaded_model m = ori::loaded_model::from_proto(mixed_model());
    ori::save_model(m, dir / "inline" / "in.onnx");
  }
  {
    ori::loaded_model m = ori::loaded_model::from_proto(mixed_model());
    ori::save_options o;
    o.external_data_name = "in.data";
    o.external_min_bytes = 0;
    ori::save_model(m, dir / "external" / "in.onnx", o);
  }
  result in_memory = rewrite_file(dir / "inline" / "in.onnx", dir / "inline" / "out.onnx");
  result streamed = rewrite_file(dir / "external" / "in.onnx", dir / "external" / "out.onnx");
  REQUIRE(streamed.model.has_external_data());
  REQUIRE_FALSE(in_memory.model.has_external_data());

  for (const char* name : {"w32", "w16", "w64", "W", "R", "B"}) {
    INFO(name);
    CHECK(bytes_of(streamed.model, name) == bytes_of(in_memory.model, name));
  }
  REQUIRE(streamed.outcomes.size() == in_memory.outcomes.size());
  for (std::size_t i = 0; i < streamed.outcomes.size(); ++i) {
    INFO("tensor " << i);
    CHECK(streamed.outcomes[i].rewritten == in_memory.outcomes[i].rewritten);
    if (!streamed.outcomes[i].rewritten) continue;
    // The same chunks merge in the same order: the figures agree exactly.
    CHECK(streamed.outcomes[i].achieved_mean == in_memory.outcomes[i].achieved_mean);
    CHECK(streamed.outcomes[i].achieved_std == in_memory.outcomes[i].achieved_std);
    CHECK(streamed.outcomes[i].achieved_std > 0.0);
  }
  fs::remove_all(dir);
}
