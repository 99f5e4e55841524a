// Model I/O: 16-bit conversions, tensor collection, every dtype x storage
// round trip, external data (same layout and consolidated), refusal of
// unsafe or inconsistent models, and safe saving.
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <onnx/checker.h>
#include <catch2/catch.hpp>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"
#include "support/onnx_builder.h"

namespace fs = std::filesystem;
using namespace onnx_reinit;
using namespace onnx_reinit::test;

namespace {

// A fresh directory per test case, removed at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() /
           ("onnx_reinit_io_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void write_model(const fs::path& p, const onnx::ModelProto& m) {
  write_file(p, m.SerializeAsString());
}

std::set<std::string> dir_listing(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    names.insert(fs::relative(e.path(), dir).string());
  return names;
}

std::string float_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}

onnx::TensorProto* find_initializer(onnx::ModelProto& m, const std::string& name) {
  for (auto& t : *m.mutable_graph()->mutable_initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

// A small valid model: Y = MatMul(X, W) + B, with metadata and doc strings.
graph_builder matmul_graph(const std::vector<float>& w, const std::vector<float>& b,
                           element_type type = element_type::float32,
                           storage_form form = storage_form::raw) {
  graph_builder g;
  g.add_input("X", {-1, 4}, type);
  g.add_initializer("W", {4, static_cast<std::int64_t>(w.size() / 4)}, w, type, form)
      .set_doc_string("the weight");
  g.add_initializer("B", {static_cast<std::int64_t>(b.size())}, b, type, form);
  g.add_node("MatMul", {"X", "W"}, {"XW"}, {}, "mm");
  g.add_node("Add", {"XW", "B"}, {"Y"}, {}, "add");
  g.add_output("Y", {-1, static_cast<std::int64_t>(b.size())}, type);
  return g;
}

onnx::ModelProto with_metadata(onnx::ModelProto m) {
  m.set_doc_string("model doc");
  auto* p = m.add_metadata_props();
  p->set_key("author");
  p->set_value("tests");
  return m;
}

// Everything but initializer data must survive a save unchanged.
void require_structure_preserved(const onnx::ModelProto& in, const onnx::ModelProto& out) {
  REQUIRE(in.graph().node_size() == out.graph().node_size());
  for (int i = 0; i < in.graph().node_size(); ++i)
    CHECK(in.graph().node(i).SerializeAsString() == out.graph().node(i).SerializeAsString());
  REQUIRE(in.graph().input_size() == out.graph().input_size());
  for (int i = 0; i < in.graph().input_size(); ++i)
    CHECK(in.graph().input(i).SerializeAsString() == out.graph().input(i).SerializeAsString());
  for (int i = 0; i < in.graph().output_size(); ++i)
    CHECK(in.graph().output(i).SerializeAsString() == out.graph().output(i).SerializeAsString());
  REQUIRE(in.opset_import_size() == out.opset_import_size());
  for (int i = 0; i < in.opset_import_size(); ++i)
    CHECK(in.opset_import(i).SerializeAsString() == out.opset_import(i).SerializeAsString());
  REQUIRE(in.metadata_props_size() == out.metadata_props_size());
  for (int i = 0; i < in.metadata_props_size(); ++i)
    CHECK(in.metadata_props(i).SerializeAsString() == out.metadata_props(i).SerializeAsString());
  CHECK(in.doc_string() == out.doc_string());
  CHECK(in.ir_version() == out.ir_version());
  REQUIRE(in.graph().initializer_size() == out.graph().initializer_size());
  for (int i = 0; i < in.graph().initializer_size(); ++i) {
    const auto& a = in.graph().initializer(i);
    const auto& b = out.graph().initializer(i);
    CHECK(a.name() == b.name());
    CHECK(a.doc_string() == b.doc_string());
    CHECK(a.data_type() == b.data_type());
    CHECK(std::vector<std::int64_t>(a.dims().begin(), a.dims().end()) ==
          std::vector<std::int64_t>(b.dims().begin(), b.dims().end()));
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// 16-bit conversions

TEST_CASE("float16 rounding to nearest even") {
  CHECK(float_to_half_bits(1.0f) == 0x3C00);
  CHECK(float_to_half_bits(-2.0f) == 0xC000);
  CHECK(float_to_half_bits(0.0f) == 0x0000);
  CHECK(float_to_half_bits(-0.0f) == 0x8000);
  // Ties between neighbours go to the even mantissa.
  CHECK(float_to_half_bits(1.0f + 0x1p-11f) == 0x3C00);
  CHECK(float_to_half_bits(1.0f + 3 * 0x1p-11f) == 0x3C02);
  CHECK(float_to_half_bits(std::nextafter(1.0f + 0x1p-11f, 2.0f)) == 0x3C01);
  // Largest finite, and the overflow threshold 65520 (a tie that goes to inf).
  CHECK(float_to_half_bits(65504.0f) == 0x7BFF);
  CHECK(float_to_half_bits(std::nextafter(65520.0f, 0.0f)) == 0x7BFF);
  CHECK(float_to_half_bits(65520.0f) == 0x7C00);
  CHECK(float_to_half_bits(1e10f) == 0x7C00);
  CHECK(float_to_half_bits(-1e10f) == 0xFC00);
  CHECK(float_to_half_bits(std::numeric_limits<float>::infinity()) == 0x7C00);
  CHECK(float_to_half_bits(-std::numeric_limits<float>::infinity()) == 0xFC00);
  const std::uint16_t nan = float_to_half_bits(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7C00) == 0x7C00);
  CHECK((nan & 0x03FF) != 0);
  // Subnormals: multiples of 2^-24; 2^-25 is a tie with 0 (even).
  CHECK(float_to_half_bits(0x1p-24f) == 0x0001);
  CHECK(float_to_half_bits(0x1p-25f) == 0x0000);
  CHECK(float_to_half_bits(std::nextafter(0x1p-25f, 1.0f)) == 0x0001);
  CHECK(float_to_half_bits(3 * 0x1p-25f) == 0x0002);         // tie 1|2 -> 2
  CHECK(float_to_half_bits(5 * 0x1p-25f) == 0x0002);         // tie 2|3 -> 2
  CHECK(float_to_half_bits(0x1p-14f) == 0x0400);             // smallest normal
  CHECK(float_to_half_bits(0x1p-14f - 0x1p-25f) == 0x0400);  // tie 0x3FF|0x400 -> even
  CHECK(float_to_half_bits(-0x1p-24f) == 0x8001);
  CHECK(float_to_half_bits(1e-30f) == 0x0000);
  CHECK(float_to_half_bits(std::numeric_limits<float>::denorm_min()) == 0x0000);
}

TEST_CASE("float16 conversions round-trip every non-NaN value exactly") {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    const float f = half_bits_to_float(bits);
    if (std::isnan(f)) {
      CHECK((bits & 0x7C00) == 0x7C00);
      continue;
    }
    if (float_to_half_bits(f) != bits) FAIL("half " << h << " did not round-trip");
  }
  CHECK(half_bits_to_float(0x0001) == 0x1p-24f);
  CHECK(half_bits_to_float(0x7BFF) == 65504.0f);
  CHECK(half_bits_to_float(0x8400) == -0x1p-14f);
}

TEST_CASE("bfloat16 rounding to nearest even") {
  auto bf = [](std::uint32_t bits) { return float_to_bfloat16_bits(std::bit_cast<float>(bits)); };
  CHECK(float_to_bfloat16_bits(1.0f) == 0x3F80);
  CHECK(bf(0x3F808000) == 0x3F80);  // tie -> even
  CHECK(bf(0x3F818000) == 0x3F82);  // tie -> even (up)
  CHECK(bf(0x3F808001) == 0x3F81);
  CHECK(bf(0x7F7FFFFF) == 0x7F80);  // max float overflows to inf
  CHECK(bf(0xFF7FFFFF) == 0xFF80);
  CHECK(bf(0x00008000) == 0x0000);  // subnormal tie -> even
  CHECK(bf(0x00018000) == 0x0002);
  CHECK(bf(0x00010001) == 0x0001);
  CHECK(bf(0x7F800000) == 0x7F80);
  const std::uint16_t nan = bf(0x7F800001);  // signalling NaN whose payload would vanish
  CHECK((nan & 0x7F80) == 0x7F80);
  CHECK((nan & 0x007F) != 0);
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bfloat16_bits_to_float(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) continue;
    if (float_to_bfloat16_bits(f) != h) FAIL("bfloat16 " << h << " did not round-trip");
  }
}

// ---------------------------------------------------------------------------
// collect_model_tensors

TEST_CASE("collect_model_tensors finds initializers, Constants and subgraph tensors in order") {
  graph_builder then_g("then");
  then_g.add_initializer("then_w", {2}, {1, 2});
  then_g.add_constant(make_tensor("then_c", {1}, {3}));
  then_g.add_node("Identity", {"then_w"}, {"then_out"});
  graph_builder else_g("else");
  else_g.add_constant(make_tensor("else_c", {2}, {4, 5}), "else_const");
  else_g.add_node("Identity", {"else_c"}, {"else_out"});
  graph_builder loop_body("body");
  loop_body.add_initializer("body_w", {1}, {6});
  graph_builder inner("inner");
  inner.add_initializer("inner_w", {1}, {7});
  loop_body.add_node(
      "If", {"cond"}, {"o"},
      {make_attribute("then_branch", inner.graph()), make_attribute("else_branch", inner.graph())},
      "inner_if");

  graph_builder g;
  g.add_initializer("main_w", {2}, {0, 1});
  g.add_constant(make_tensor("main_c", {1}, {8}));
  g.add_node("If", {"cond"}, {"if_out"},
             {make_attribute("then_branch", then_g.graph()),
              make_attribute("else_branch", else_g.graph())},
             "If_0");
  g.add_node("Loop", {"", "cond"}, {"loop_out"}, {make_attribute("body", loop_body.graph())});
  g.add_constant(make_int64_tensor("shape", {1}, {2}));
  onnx::ModelProto model = g.model();

  std::vector<model_tensor> tensors = collect_model_tensors(model);
  std::vector<std::string> got;
  for (const auto& t : tensors)
    got.push_back(t.ref.graph_path + ":" + t.ref.name +
                  (t.ref.origin == tensor_origin::constant_node ? "(c)" : ""));
  CHECK(got == std::vector<std::string>{
                   ":main_w", ":main_c(c)", ":shape(c)", "If_0/then_branch:then_w",
                   "If_0/then_branch:then_c(c)", "If_0/else_branch:else_c(c)", "#2/body:body_w",
                   "#2/body/inner_if/then_branch:inner_w", "#2/body/inner_if/else_branch:inner_w"});
  // The pointers are the model's own tensors, and the const overload agrees.
  CHECK(tensors[0].proto == model.mutable_graph()->mutable_initializer(0));
  CHECK(tensors[3].graph == &model.graph().node(1).attribute(0).g());
  const onnx::ModelProto& cmodel = model;
  std::vector<const_model_tensor> ctensors = collect_model_tensors(cmodel);
  REQUIRE(ctensors.size() == tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    CHECK(ctensors[i].ref == tensors[i].ref);
    CHECK(ctensors[i].proto == tensors[i].proto);
  }
}

// ---------------------------------------------------------------------------
// Inline round trips

TEST_CASE("every dtype x storage form round-trips and keeps its form") {
  const element_type types[] = {element_type::float32, element_type::float64, element_type::float16,
                                element_type::bfloat16};
  const storage_form forms[] = {storage_form::raw, storage_form::typed};
  for (element_type type : types)
    for (storage_form form : forms) {
      DYNAMIC_SECTION(to_string(type) << (form == storage_form::raw ? " raw" : " typed")) {
        temp_dir dir;
        // Multiples of 1/4 below 4 are exact in every type.
        const std::vector<float> w = ramp(12, -1.0f, 0.25f), b = ramp(3, 0.5f, 0.5f);
        const onnx::ModelProto in = with_metadata(matmul_graph(w, b, type, form).model());
        write_model(dir / "in.onnx", in);
        const std::string in_bytes = read_file(dir / "in.onnx");

        loaded_model m = load_model(dir / "in.onnx");
        onnx::TensorProto& wt = *find_initializer(m.proto(), "W");
        const tensor_storage before = storage_of(wt);
        CHECK(read_tensor_values<float>(m, wt) == w);
        const std::vector<double> wd = read_tensor_values<double>(m, wt);
        CHECK(wd == std::vector<double>(w.begin(), w.end()));

        const std::vector<float> neww = ramp(12, 2.0f, -0.5f);
        write_tensor_values<float>(m, wt, neww);
        CHECK(read_tensor_values<float>(m, wt) == neww);
        save_model(m, dir / "out.onnx");
        CHECK(read_file(dir / "in.onnx") == in_bytes);
        CHECK_NOTHROW(onnx::checker::check_model((dir / "out.onnx").string()));

        loaded_model out = load_model(dir / "out.onnx");
        onnx::TensorProto& ow = *find_initializer(out.proto(), "W");
        CHECK(storage_of(ow) == before);
        CHECK(read_tensor_values<float>(out, ow) == neww);
        CHECK(read_tensor_values<float>(out, *find_initializer(out.proto(), "B")) == b);
        // The untouched initializer is byte-identical.
        CHECK(out.proto().graph().initializer(1).SerializeAsString() ==
              in.graph().initializer(1).SerializeAsString());
        require_structure_preserved(in, out.proto());

        // Double values into any dtype.
        write_tensor_values<double>(out, ow, std::vector<double>(12, 1.5));
        CHECK(read_tensor_values<float>(out, ow) == std::vector<float>(12, 1.5f));
      }
    }
}

TEST_CASE("16-bit writes round to nearest even") {
  temp_dir dir;
  graph_builder g;
  g.add_initializer("h", {2}, {0, 0}, element_type::float16, storage_form::typed);
  g.add_initializer("b", {2}, {0, 0}, element_type::bfloat16, storage_form::raw);
  loaded_model m = loaded_model::from_proto(g.model());
  const std::vector<float> v = {1.0f + 0x1p-11f, 70000.0f};
  write_tensor_values<float>(m, *find_initializer(m.proto(), "h"), v);
  CHECK(find_initializer(m.proto(), "h")->int32_data(0) == 0x3C00);
  CHECK(find_initializer(m.proto(), "h")->int32_data(1) == 0x7C00);
  write_tensor_values<float>(m, *find_initializer(m.proto(), "b"), v);
  const std::vector<float> back = read_tensor_values<float>(m, *find_initializer(m.proto(), "b"));
  CHECK(back[0] == 1.0f);
  CHECK(back[1] == 70144.0f);  // nearest bfloat16
}

TEST_CASE("tensor_bytes gives little-endian element bytes for any fixed-size type") {
  graph_builder g;
  g.add_initializer(make_int64_tensor("shape", {2}, {3, -1}));
  g.add_initializer("w", {2}, {1.5f, -2.0f}, element_type::float32, storage_form::typed);
  loaded_model m = loaded_model::from_proto(g.model());
  const std::vector<std::int64_t> shape = {3, -1};
  // Typed fields are converted into an owned buffer: keep the view alive.
  const tensor_bytes_view shape_view = tensor_bytes(m, *find_initializer(m.proto(), "shape"));
  const auto sb = shape_view.bytes();
  CHECK(std::string(reinterpret_cast<const char*>(sb.data()), sb.size()) ==
        std::string(reinterpret_cast<const char*>(shape.data()), 16));
  const tensor_bytes_view w_view = tensor_bytes(m, *find_initializer(m.proto(), "w"));
  const auto wb = w_view.bytes();
  CHECK(std::string(reinterpret_cast<const char*>(wb.data()), wb.size()) ==
        float_bytes({1.5f, -2.0f}));
  std::vector<float> part(1);
  read_tensor_values<float>(m, *find_initializer(m.proto(), "w"), 1, std::span<float>(part));
  CHECK(part[0] == -2.0f);
}

// ---------------------------------------------------------------------------
// External data

namespace {

// in.onnx with W (4x3 float) at offset 0 and B (3 floats) at offset 4096 of
// weights.bin, with a marker in the gap; C stays inline.
struct external_fixture {
  temp_dir dir;
  std::vector<float> w = ramp(12, -1.0f), b = ramp(3, 0.5f, 0.5f);
  onnx::ModelProto in;
  std::string data;
  external_fixture() {
    graph_builder g = matmul_graph(w, b);
    in = with_metadata(g.model());
    set_external(*find_initializer(in, "W"), "weights.bin", 0, 48);
    set_external(*find_initializer(in, "B"), "weights.bin", 4096, 12);
    data = float_bytes(w);
    data.resize(4096, '\0');
    data.replace(100, 6, "marker");
    data += float_bytes(b);
    data += "tail";
    write_file(dir / "weights.bin", data);
    write_model(dir / "in.onnx", in);
  }
};

}  // namespace

TEST_CASE("external data: read, rewrite, save in the same layout elsewhere") {
  external_fixture f;
  const std::string in_bytes = read_file(f.dir / "in.onnx");
  loaded_model m = load_model(f.dir / "in.onnx");
  CHECK(m.has_external_data());
  onnx::TensorProto& w = *find_initializer(m.proto(), "W");
  CHECK(storage_of(w) == tensor_storage::external);
  CHECK(read_tensor_values<float>(m, w) == f.w);
  CHECK(read_tensor_values<float>(m, *find_initializer(m.proto(), "B")) == f.b);

  const std::vector<float> neww = ramp(12, 5.0f, 1.0f);
  write_tensor_values<float>(m, w, neww);
  CHECK(read_tensor_values<float>(m, w) == neww);     // pending, visible to reads
  CHECK(read_file(f.dir / "weights.bin") == f.data);  // but nothing written yet

  fs::create_directories(f.dir / "out");
  save_model(m, f.dir / "out" / "model.onnx");
  CHECK(read_file(f.dir / "in.onnx") == in_bytes);
  CHECK(read_file(f.dir / "weights.bin") == f.data);
  CHECK(dir_listing(f.dir / "out") == std::set<std::string>{"model.onnx", "weights.bin"});
  std::string expected = f.data;
  expected.replace(0, 48, float_bytes(neww));
  CHECK(read_file(f.dir / "out" / "weights.bin") == expected);  // gaps and tail kept

  loaded_model out = load_model(f.dir / "out" / "model.onnx");
  CHECK(read_tensor_values<float>(out, *find_initializer(out.proto(), "W")) == neww);
  require_structure_preserved(f.in, out.proto());
  CHECK(out.proto().graph().initializer(1).SerializeAsString() ==
        f.in.graph().initializer(1).SerializeAsString());
}

TEST_CASE("external data: saving beside the input picks new data file names") {
  external_fixture f;
  const std::string in_bytes = read_file(f.dir / "in.onnx");
  loaded_model m = load_model(f.dir / "in.onnx");
  const std::vector<float> newb = {9, 8, 7};
  write_tensor_values<float>(m, *find_initializer(m.proto(), "B"), newb);
  save_model(m, f.dir / "out.onnx");
  CHECK(read_file(f.dir / "in.onnx") == in_bytes);
  CHECK(read_file(f.dir / "weights.bin") == f.data);
  CHECK(dir_listing(f.dir.path) ==
        std::set<std::string>{"in.onnx", "weights.bin", "out.onnx", "out.onnx.data"});
  loaded_model out = load_model(f.dir / "out.onnx");
  for (const auto& e : find_initializer(out.proto(), "B")->external_data())
    if (e.key() == "location") CHECK(e.value() == "out.onnx.data");
  CHECK(read_tensor_values<float>(out, *find_initializer(out.proto(), "B")) == newb);
  CHECK(read_tensor_values<float>(out, *find_initializer(out.proto(), "W")) == f.w);
  // The loaded model is unchanged by save: still the input's locations.
  for (const auto& e : find_initializer(m.proto(), "B")->external_data())
    if (e.key() == "location") CHECK(e.value() == "weights.bin");
}

TEST_CASE("external data: in-place rewrite replaces model and data files") {
  external_fixture f;
  loaded_model m = load_model(f.dir / "in.onnx");
  CHECK_THROWS_WITH(save_model(m, f.dir / "in.onnx"),
                    Catch::Contains("refusing to overwrite the input model"));
  CHECK_THROWS_AS(save_model(m, f.dir / "in.onnx"), usage_error);
  write_tensor_values<float>(m, *find_initializer(m.proto(), "W"), std::vector<float>(12, 3.0f));
  save_options opt;
  opt.in_place = true;
  save_model(m, f.dir / "in.onnx", opt);
  // The new data goes to a fresh name (never renamed over the file the old
  // model references); the old data file is removed once the model is in.
  CHECK(dir_listing(f.dir.path) == std::set<std::string>{"in.onnx", "weights.bin.r1"});
  loaded_model again = load_model(f.dir / "in.onnx");
  CHECK(read_tensor_values<float>(again, *find_initializer(again.proto(), "W")) ==
        std::vector<float>(12, 3.0f));
  CHECK(read_tensor_values<float>(again, *find_initializer(again.proto(), "B")) == f.b);
}

TEST_CASE("external data: consolidated into one aligned file") {
  external_fixture f;
  const std::string in_bytes = read_file(f.dir / "in.onnx");
  loaded_model m = load_model(f.dir / "in.onnx");
  // A streamed producer writing in two chunks.
  const std::vector<float> neww = ramp(12, 1.0f, 2.0f);
  write_tensor_data(m, *find_initializer(m.proto(), "W"), [&](const byte_sink& sink) {
    const auto bytes = std::as_bytes(std::span<const float>(neww));
    sink(bytes.first(20));
    sink(bytes.subspan(20));
  });
  save_options opt;
  opt.external_data_name = "all.bin";
  save_model(m, f.dir / "out.onnx", opt);
  CHECK(read_file(f.dir / "in.onnx") == in_bytes);
  CHECK(read_file(f.dir / "weights.bin") == f.data);
  CHECK(dir_listing(f.dir.path) ==
        std::set<std::string>{"in.onnx", "weights.bin", "out.onnx", "all.bin"});
  loaded_model out = load_model(f.dir / "out.onnx");
  std::vector<std::uint64_t> offsets;
  for (const char* name : {"W", "B"}) {
    for (const auto& e : find_initializer(out.proto(), name)->external_data()) {
      if (e.key() == "location") CHECK(e.value() == "all.bin");
      if (e.key() == "offset") offsets.push_back(std::stoull(e.value()));
    }
  }
  CHECK(offsets == std::vector<std::uint64_t>{0, 4096});
  CHECK(read_tensor_values<float>(out, *find_initializer(out.proto(), "W")) == neww);
  CHECK(read_tensor_values<float>(out, *find_initializer(out.proto(), "B")) == f.b);

  // Consolidating beside the input onto its own data file is refused.
  opt.external_data_name = "weights.bin";
  CHECK_THROWS_WITH(save_model(m, f.dir / "out2.onnx", opt),
                    Catch::Contains("would overwrite an input data file"));
  CHECK(read_file(f.dir / "weights.bin") == f.data);
}

TEST_CASE("external data: an inline model is consolidated above 1 KiB") {
  temp_dir dir;
  graph_builder g;
  g.add_input("X", {-1, 16});
  const std::vector<float> w = ramp(16 * 32, 0.0f, 0.125f);  // 2 KiB
  g.add_initializer("W", {16, 32}, w, element_type::float32, storage_form::typed);
  g.add_initializer("B", {32}, ramp(32));  // 128 bytes: stays inline
  g.add_initializer("W2", {32, 32}, ramp(32 * 32, 1.0f, 0.5f), element_type::float16);
  g.add_node("MatMul", {"X", "W"}, {"XW"});
  g.add_node("Add", {"XW", "B"}, {"H"});
  g.add_node("Cast", {"H"}, {"H16"}, {make_attribute("to", std::int64_t{10})});
  g.add_node("MatMul", {"H16", "W2"}, {"Y"});
  g.add_output("Y", {-1, 32}, element_type::float16);
  write_model(dir / "in.onnx", g.model());
  loaded_model m = load_model(dir / "in.onnx");
  save_options opt;
  opt.external_data_name = "out.data";
  save_model(m, dir / "out.onnx", opt);
  loaded_model out = load_model(dir / "out.onnx");
  CHECK(storage_of(*find_initializer(out.proto(), "W")) == tensor_storage::external);
  CHECK(storage_of(*find_initializer(out.proto(), "W2")) == tensor_storage::external);
  CHECK(storage_of(*find_initializer(out.proto(), "B")) == tensor_storage::raw_data);
  CHECK(read_tensor_values<float>(out, *find_initializer(out.proto(), "W")) == w);
  CHECK(fs::file_size(dir / "out.data") == 4096 + 2048);
  // The loaded model's proto was restored after the save.
  CHECK(storage_of(*find_initializer(m.proto(), "W")) == tensor_storage::float_data);
  CHECK(read_tensor_values<float>(m, *find_initializer(m.proto(), "W")) == w);
}

// ---------------------------------------------------------------------------
// Refusals

namespace {

// Loads a model whose W is stored at `location` and returns the error text.
std::string external_refusal(const temp_dir& dir, const std::string& location,
                             std::uint64_t offset = 0, std::uint64_t length = 48) {
  onnx::ModelProto m = matmul_graph(ramp(12), ramp(3)).model();
  set_external(*find_initializer(m, "W"), location, offset, length);
  write_model(dir / "m.onnx", m);
  try {
    load_model(dir / "m.onnx");
  } catch (const external_data_error& e) {
    CHECK(std::string(e.what()).find("'W'") != std::string::npos);
    return e.what();
  }
  return "(no external_data_error)";
}

}  // namespace

TEST_CASE("unsafe or broken external data locations are refused") {
  temp_dir dir;
  temp_dir outside;
  write_file(outside / "secret.bin", std::string(64, 'x'));
  write_file(dir / "ok.bin", std::string(48, '\0'));
  CHECK_THAT(external_refusal(dir, (outside / "secret.bin").string()),
             Catch::Contains("is absolute"));
  CHECK_THAT(external_refusal(dir, "../" + outside.path.filename().string() + "/secret.bin"),
             Catch::Contains("contains '..'"));
  CHECK_THAT(external_refusal(dir, "sub/../ok.bin"), Catch::Contains("contains '..'"));
  fs::create_symlink(outside / "secret.bin", dir / "link.bin");
  CHECK_THAT(external_refusal(dir, "link.bin"), Catch::Contains("outside the model's directory"));
  fs::create_directory_symlink(outside.path, dir / "linkdir");
  CHECK_THAT(external_refusal(dir, "linkdir/secret.bin"),
             Catch::Contains("outside the model's directory"));
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
  CHECK_THAT(external_refusal(dir, "fifo"), Catch::Contains("not a regular file"));
  fs::create_directory(dir / "subdir");
  CHECK_THAT(external_refusal(dir, "subdir"), Catch::Contains("not a regular file"));
  CHECK_THAT(external_refusal(dir, "/dev/zero"), Catch::Contains("is absolute"));
  CHECK_THAT(external_refusal(dir, "missing.bin"), Catch::Contains("does not exist"));
  CHECK_THAT(external_refusal(dir, "ok.bin", 8, 48), Catch::Contains("past the end"));
  CHECK_THAT(external_refusal(dir, "ok.bin", 49, 0), Catch::Contains("past the end"));
  CHECK_THAT(external_refusal(dir, "ok.bin", 8, std::numeric_limits<std::uint64_t>::max() - 4),
             Catch::Contains("past the end"));
  // A symlink that stays inside the directory is fine.
  fs::create_symlink("ok.bin", dir / "inside.bin");
  CHECK(external_refusal(dir, "inside.bin") == "(no external_data_error)");
  // The error names the location.
  CHECK_THAT(external_refusal(dir, "missing.bin"), Catch::Contains("'missing.bin'"));
}

TEST_CASE("external length absent means to the end of the file; mismatch is a model_error") {
  temp_dir dir;
  onnx::ModelProto m = matmul_graph(ramp(12), ramp(3)).model();
  set_external(*find_initializer(m, "W"), "w.bin", 4, 48);
  auto& entries = *find_initializer(m, "W")->mutable_external_data();
  entries.RemoveLast();  // drop length
  write_file(dir / "w.bin", "abcd" + float_bytes(ramp(12)));
  write_model(dir / "m.onnx", m);
  loaded_model lm = load_model(dir / "m.onnx");
  CHECK(read_tensor_values<float>(lm, *find_initializer(lm.proto(), "W")) == ramp(12));
  write_file(dir / "w.bin", "abcd" + float_bytes(ramp(13)));
  // Refused at load now (issue 5: data lengths are checked before anything
  // is allocated from dims).
  CHECK_THROWS_AS(load_model(dir / "m.onnx"), model_error);
  CHECK_THROWS_WITH(load_model(dir / "m.onnx"),
                    Catch::Contains("external data length 52 disagrees"));
}

TEST_CASE("corrupt, truncated and inconsistent models are refused") {
  temp_dir dir;
  write_file(dir / "garbage.onnx", "\xff\xff\xff\xff this is not a protobuf");
  CHECK_THROWS_AS(load_model(dir / "garbage.onnx"), model_error);
  CHECK_THROWS_WITH(load_model(dir / "garbage.onnx"),
                    Catch::Contains("garbage.onnx") && Catch::Contains("not a valid ONNX model"));

  const std::string full = matmul_graph(ramp(4 * 256), ramp(256)).model().SerializeAsString();
  write_file(dir / "truncated.onnx", full.substr(0, full.size() / 2));
  CHECK_THROWS_WITH(load_model(dir / "truncated.onnx"),
                    Catch::Contains("truncated.onnx") && Catch::Contains("corrupt or truncated"));
  write_file(dir / "empty.onnx", "");
  CHECK_THROWS_WITH(load_model(dir / "empty.onnx"), Catch::Contains("no graph"));
  CHECK_THROWS_AS(load_model(dir / "nothing.onnx"), io_error);

  onnx::ModelProto m = matmul_graph(ramp(12), ramp(3)).model();
  find_initializer(m, "W")->mutable_raw_data()->resize(47);
  loaded_model short_raw = loaded_model::from_proto(m);
  CHECK_THROWS_WITH(read_tensor_values<float>(short_raw, *find_initializer(short_raw.proto(), "W")),
                    Catch::Contains("tensor 'W': raw_data holds 47 bytes but dims x element size "
                                    "= 48 bytes"));

  m = matmul_graph(ramp(12), ramp(3)).model();
  find_initializer(m, "W")->set_dims(0, -4);
  loaded_model negative = loaded_model::from_proto(m);
  CHECK_THROWS_WITH(read_tensor_values<float>(negative, *find_initializer(negative.proto(), "W")),
                    Catch::Contains("tensor 'W' has a negative dimension (-4)"));

  m = matmul_graph(ramp(12), ramp(3)).model();
  find_initializer(m, "W")->set_dims(0, std::int64_t{1} << 40);
  find_initializer(m, "W")->set_dims(1, std::int64_t{1} << 40);
  loaded_model huge = loaded_model::from_proto(m);
  CHECK_THROWS_WITH(read_tensor_values<float>(huge, *find_initializer(huge.proto(), "W")),
                    Catch::Contains("tensor 'W': the product of its dims overflows int64"));
  // 2^61 floats is 2^63 bytes: the element count fits, the byte size does not.
  find_initializer(huge.proto(), "W")->set_dims(0, std::int64_t{1} << 61);
  find_initializer(huge.proto(), "W")->set_dims(1, 1);
  CHECK_THROWS_WITH(tensor_bytes(huge, *find_initializer(huge.proto(), "W")),
                    Catch::Contains("overflows"));

  m = matmul_graph(ramp(12), ramp(3), element_type::float32, storage_form::typed).model();
  find_initializer(m, "W")->mutable_float_data()->RemoveLast();
  loaded_model short_typed = loaded_model::from_proto(m);
  CHECK_THROWS_WITH(
      read_tensor_values<float>(short_typed, *find_initializer(short_typed.proto(), "W")),
      Catch::Contains("float_data holds 11 values but dims call for 12"));
}

// ---------------------------------------------------------------------------
// Safe saving

TEST_CASE("a failed save leaves no file behind and the input untouched") {
  external_fixture f;
  // An unknown op in the default domain fails the checker.
  f.in.mutable_graph()->mutable_node(0)->set_op_type("NoSuchOp");
  write_model(f.dir / "in.onnx", f.in);
  const std::string in_bytes = read_file(f.dir / "in.onnx");
  loaded_model m = load_model(f.dir / "in.onnx");
  write_tensor_values<float>(m, *find_initializer(m.proto(), "W"), std::vector<float>(12, 1.0f));
  const std::set<std::string> before = dir_listing(f.dir.path);
  CHECK_THROWS_AS(save_model(m, f.dir / "out.onnx"), model_error);
  CHECK_THROWS_WITH(save_model(m, f.dir / "out.onnx"), Catch::Contains("ONNX checker"));
  save_options consolidate;
  consolidate.external_data_name = "one.bin";
  CHECK_THROWS_AS(save_model(m, f.dir / "out.onnx", consolidate), model_error);
  CHECK(dir_listing(f.dir.path) == before);
  CHECK(read_file(f.dir / "in.onnx") == in_bytes);
  CHECK(read_file(f.dir / "weights.bin") == f.data);

  // A producer that writes the wrong size fails the save too.
  f.in.mutable_graph()->mutable_node(0)->set_op_type("MatMul");
  loaded_model ok = loaded_model::from_proto(f.in, f.dir.path);
  write_tensor_data(ok, *find_initializer(ok.proto(), "W"),
                    [](const byte_sink& sink) { sink(std::vector<std::byte>(3)); });
  CHECK_THROWS_WITH(save_model(ok, f.dir / "out.onnx"), Catch::Contains("wrote 3 bytes, 48"));
  CHECK(dir_listing(f.dir.path) == before);

  // A missing output directory is an io_error.
  CHECK_THROWS_AS(save_model(ok, f.dir / "nope" / "out.onnx"), io_error);
}

namespace {

// x -> If(c) -> y, each branch a MatMul with its own weight. The branch
// outputs have no type and y has no shape: exporters write this and ONNX
// Runtime runs it, but ONNX 1.12's checker wants a shape on y.
onnx::ModelProto if_model_without_shapes() {
  auto branch = [](const std::string& name) {
    graph_builder b(name);
    b.add_initializer(name + "_w", {4, 4}, ramp(16));
    b.add_node("MatMul", {"x", name + "_w"}, {name + "_y"});
    b.graph().add_output()->set_name(name + "_y");
    return b.graph();
  };
  graph_builder g;
  g.add_input("x", {2, 4});
  g.add_input("c", {}, onnx::TensorProto::BOOL);
  g.add_node("If", {"c"}, {"y"},
             {make_attribute("then_branch", branch("then")),
              make_attribute("else_branch", branch("else"))});
  g.add_output("y", {}).mutable_type()->mutable_tensor_type()->clear_shape();
  return g.model();
}

}  // namespace

TEST_CASE("an input failing the checker is written if the output fails no new way") {
  temp_dir dir;
  loaded_model m = loaded_model::from_proto(if_model_without_shapes(), dir.path);
  const std::optional<checker_failure> failure = check_input_model(m);
  REQUIRE(failure);
  CHECK_THAT(failure->message, Catch::Contains("shape"));
  write_tensor_values<float>(m,
                             *m.proto()
                                  .mutable_graph()
                                  ->mutable_node(0)
                                  ->mutable_attribute(0)
                                  ->mutable_g()
                                  ->mutable_initializer(0),
                             std::vector<float>(16, 0.5f));

  // Without the input's result, the failure is an error and nothing is written.
  CHECK_THROWS_WITH(save_model(m, dir / "out.onnx"),
                    Catch::Contains("fails the ONNX checker") && Catch::Contains("shape"));
  CHECK_FALSE(fs::exists(dir / "out.onnx"));

  // With it, the same failure is accepted and reported back.
  save_options options;
  options.input_check_failure = failure;
  save_result r;
  REQUIRE_NOTHROW(r = save_model(m, dir / "out.onnx", options));
  CHECK(r.checker_failure == failure->message);
  const loaded_model back = load_model(dir / "out.onnx");
  CHECK(read_tensor_values<float>(back, back.proto().graph().node(0).attribute(0).g().initializer(
                                            0)) == std::vector<float>(16, 0.5f));
  CHECK(check_input_model(back) == failure);

  // A failure the input did not have is still an error: behind the same
  // first message (the checker stops there) or instead of it.
  m.proto().mutable_graph()->mutable_node(0)->set_op_type("NoSuchOp");
  CHECK_THROWS_WITH(save_model(m, dir / "out2.onnx", options),
                    Catch::Contains("shape") && Catch::Contains("structure changed"));
  m.proto()
      .mutable_graph()
      ->mutable_output(0)
      ->mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape();
  CHECK_THROWS_WITH(save_model(m, dir / "out2.onnx", options),
                    Catch::Contains("NoSuchOp") && Catch::Contains("the input fails it otherwise"));
  CHECK_FALSE(fs::exists(dir / "out2.onnx"));

  // A passing input has no message; its output must pass.
  loaded_model good = loaded_model::from_proto(if_model_without_shapes(), dir.path);
  good.proto()
      .mutable_graph()
      ->mutable_output(0)
      ->mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape()
      ->add_dim()
      ->set_dim_value(2);
  CHECK_FALSE(check_input_model(good));
  options.input_check_failure = check_input_model(good);
  good.proto()
      .mutable_graph()
      ->mutable_output(0)
      ->mutable_type()
      ->mutable_tensor_type()
      ->clear_shape();
  CHECK_THROWS_AS(save_model(good, dir / "out3.onnx", options), model_error);
  CHECK_FALSE(fs::exists(dir / "out3.onnx"));
}
