// Peak memory of the command on a model with external data and on an
// inline one: the tensors are sampled while they are written and kept bytes
// are copied by the kernel, so the process's peak RSS must stay far below
// the model's size. Not timed; measured with wait4.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "onnx_reinit/model_io.h"
#include "support/cli_runner.h"
#include "support/onnx_builder.h"
#include "support/wire_forms.h"

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

// The same layers with every weight inline in raw_data, in protobuf's own
// field order, written through a small buffer: the wire format by hand
// around the tensors' bytes, so this process never holds the model.
void write_inline_model(const temp_dir& dir) {
  const std::uint64_t tensor_bytes = rows * cols * sizeof(float);
  graph_builder g;
  g.add_input("x", {1, rows});
  std::string input = "x";
  std::vector<std::string> tensors;  // each without its data
  for (int l = 0; l < layers; ++l) {
    const bool even = l % 2 == 0;
    const std::string w = fmt::format("w{}", l), h = fmt::format("h{}", l);
    onnx::TensorProto t;
    t.add_dims(even ? rows : cols);
    t.add_dims(even ? cols : rows);
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.set_name(w);
    tensors.push_back(t.SerializeAsString());
    g.add_node("MatMul", {input, w}, {h});
    g.add_node("Relu", {h}, {h + "_relu"});
    input = h + "_relu";
  }
  g.add_output(input, {1, cols});
  onnx::ModelProto before = g.model();  // fields 1-6, then graph (7), then opset_import (8)
  onnx::ModelProto after;
  *after.mutable_opset_import() = before.opset_import();
  before.clear_opset_import();
  const onnx::GraphProto graph = before.graph();
  before.clear_graph();
  onnx::GraphProto head, tail = graph;  // initializer (5) between name (2) and input (11)
  *head.mutable_node() = graph.node();
  head.set_name(graph.name());
  tail.clear_node();
  tail.clear_name();
  // raw_data = 9. (fmt, not "literal" + string: GCC 12 -O3 misreads that.)
  const std::string data_header = fmt::format("\x4a{}", ori::test::varint(tensor_bytes));
  std::string initializers;  // every initializer but its data
  std::uint64_t graph_size = head.ByteSizeLong() + tail.ByteSizeLong();
  for (const std::string& t : tensors) {
    const std::uint64_t size = t.size() + data_header.size() + tensor_bytes;
    graph_size += 1 + ori::test::varint(size).size() + size;
  }
  std::ofstream out(dir / "inline.onnx", std::ios::binary);
  out << before.SerializeAsString() << "\x3a" << ori::test::varint(graph_size)  // graph = 7
      << head.SerializeAsString();
  std::vector<float> block(1 << 18);
  for (std::size_t i = 0; i < block.size(); ++i) block[i] = 0.001f * static_cast<float>(i % 977);
  for (const std::string& t : tensors) {
    out << "\x2a"
        << ori::test::varint(t.size() + data_header.size() + tensor_bytes)  // initializer = 5
        << t << data_header;
    for (std::uint64_t written = 0; written < tensor_bytes; written += block.size() * sizeof(float))
      out.write(reinterpret_cast<const char*>(block.data()),
                static_cast<std::streamsize>(block.size() * sizeof(float)));
  }
  out << tail.SerializeAsString() << after.SerializeAsString();
  REQUIRE(out.good());
}

// RMS of the second weight of a rewritten model: kaiming_normal before a
// ReLU has sqrt(2 / fan_in). Its first 2^20 values (relative error of the
// estimate about 1/sqrt(2^21) = 0.0007) and no more: this process's peak
// RSS is where the next child's measured peak starts.
void require_rewritten(const std::filesystem::path& model) {
  INFO(model.filename().string());
  ori::loaded_model out = ori::load_model(model);
  std::vector<float> values(std::size_t{1} << 20);
  ori::read_tensor_values<float>(out, out.proto().graph().initializer(1), 0,
                                 std::span<float>(values));
  double squares = 0;
  for (float v : values) squares += static_cast<double>(v) * v;
  CHECK(std::sqrt(squares / static_cast<double>(values.size())) ==
        Approx(std::sqrt(2.0 / cols)).epsilon(0.01));
}

}  // namespace

TEST_CASE("peak RSS on a 320 MiB inline model stays under 64 MiB") {
  temp_dir dir;
  write_inline_model(dir);
  // The payloads stay in the mapped file (skeleton load) and the output is
  // the input spliced: kept bytes are copied by the kernel, new ones
  // streamed a window at a time. Before that a load alone held the model
  // twice (the mapping read whole, the parsed copy).
  const long bound_kb = 64 * 1024;
  // The textbook policy for the two whose values are checked below; the
  // signal policy's --only run reads the kept weights' moments, in blocks.
  const std::vector<std::vector<std::string>> runs = {
      {(dir / "inline.onnx").string(), "-o", (dir / "all.onnx").string(), "-q", "--policy",
       "textbook"},
      {(dir / "inline.onnx").string(), "-o", (dir / "one.onnx").string(), "-q", "--only", "w1",
       "--policy", "textbook"},
      {(dir / "inline.onnx").string(), "-o", (dir / "signal.onnx").string(), "-q", "--only", "w1"}};
  for (const auto& args : runs) {
    const ori::test::run_result r = run_cli(args);
    INFO(args[2] << ": " << r.err);
    REQUIRE(r.status == 0);
    INFO("peak RSS " << r.peak_rss_kb << " KiB, bound " << bound_kb << " KiB");
    CHECK(r.peak_rss_kb > 0);
    CHECK(r.peak_rss_kb < bound_kb);
  }
  require_rewritten(dir / "all.onnx");
  require_rewritten(dir / "one.onnx");
}

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
  // The outputs really hold new values.
  for (const char* name : {"same_layout.onnx", "consolidated.onnx"}) require_rewritten(dir / name);
}
