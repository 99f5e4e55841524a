// Peak memory of the command on a model with external data: the
// tensors are sampled while they are written, so the process's peak RSS
// must stay far below the model's size. Not timed; measured with wait4.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "onnx_reinit/model_io.h"
#include "support/cli_runner.h"
#include "support/onnx_builder.h"

namespace ori = onnx_reinit;
using ori::test::graph_builder;
using ori::test::run_cli;
using ori::test::temp_dir;

namespace {

constexpr std::int64_t rows = 4096, cols = 5120;  // 80 MiB per float32 tensor
constexpr int layers = 4;                         // 320 MiB of weights in all

// A chain of MatMul + Relu layers whose weights live in one external data
// file, written a megabyte at a time so this process stays small too (wait4
// reports the child's own peak, but a large parent would be shared at fork).
void write_model(const temp_dir& dir) {
  const std::uint64_t tensor_bytes = rows * cols * sizeof(float);
  std::vector<float> block(1 << 18);
  for (std::size_t i = 0; i < block.size(); ++i) block[i] = 0.001f * static_cast<float>(i % 977);
  {
    std::ofstream data(dir / "weights.bin", std::ios::binary);
    for (std::uint64_t written = 0; written < layers * tensor_bytes;
         written += block.size() * sizeof(float))
      data.write(reinterpret_cast<const char*>(block.data()),
                 static_cast<std::streamsize>(block.size() * sizeof(float)));
    REQUIRE(data.good());
  }
  graph_builder g;
  g.add_input("x", {1, rows});
  std::string input = "x";
  for (int l = 0; l < layers; ++l) {
    const bool even = l % 2 == 0;
    const std::string w = fmt::format("w{}", l), h = fmt::format("h{}", l);
    onnx::TensorProto t;
    t.set_name(w);
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.add_dims(even ? rows : cols);
    t.add_dims(even ? cols : rows);
    ori::test::set_external(t, "weights.bin", l * tensor_bytes, tensor_bytes);
    g.add_initializer(std::move(t));
    g.add_node("MatMul", {input, w}, {h});
    g.add_node("Relu", {h}, {h + "_relu"});
    input = h + "_relu";
  }
  g.add_output(input, {1, cols});
  ori::test::save_proto(g.model(), dir / "model.onnx");
}

}  // namespace

TEST_CASE("peak RSS on a 320 MiB external-data model stays far below its size") {
  temp_dir dir;
  write_model(dir);
  // Bound: a quarter of the model. Streaming needs the executable, the
  // libraries and a few windows of chunks (tens of MiB); holding even one
  // tensor whole would already cost 80 MiB on top, all four 320 MiB.
  const long bound_kb = (layers * rows * cols * 4 / 1024) / 4;
  // Both runs come before this process reads anything large: a child's
  // ru_maxrss starts from its parent's peak at posix_spawn (vfork shares the
  // parent's memory until exec).
  const std::vector<std::vector<std::string>> runs = {
      {(dir / "model.onnx").string(), "-o", (dir / "same_layout.onnx").string(), "-q"},
      {(dir / "model.onnx").string(), "-o", (dir / "consolidated.onnx").string(), "-q",
       "--external-data", "consolidated.bin"}};
  for (const auto& args : runs) {
    const ori::test::run_result r = run_cli(args);
    INFO(args.back() << ": " << r.err);
    REQUIRE(r.status == 0);
    INFO("peak RSS " << r.peak_rss_kb << " KiB, bound " << bound_kb << " KiB");
    CHECK(r.peak_rss_kb > 0);
    CHECK(r.peak_rss_kb < bound_kb);
  }
  // The outputs really hold new values: kaiming_normal before a ReLU.
  for (const char* name : {"same_layout.onnx", "consolidated.onnx"}) {
    INFO(name);
    ori::loaded_model out = ori::load_model(dir / name);
    const auto values = ori::read_tensor_values<float>(out, out.proto().graph().initializer(1));
    double squares = 0;
    for (float v : values) squares += static_cast<double>(v) * v;
    CHECK(std::sqrt(squares / static_cast<double>(values.size())) ==
          Approx(std::sqrt(2.0 / cols)).epsilon(0.01));
  }
}
