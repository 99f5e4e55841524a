// Model I/O: 16-bit conversions, tensor collection, every dtype x storage
// round trip, the numeric value decoder, external data (same layout and
// consolidated), refusal of unsafe or inconsistent models, safe saving, and
// the writer's figures (the same for any thread count and split).
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <onnx/checker.h>
#include <tbb/global_control.h>
#include <catch2/catch.hpp>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/staged_file.h"
#include "support/file_bytes.h"
#include "support/model_structure.h"
#include "support/onnx_builder.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using namespace onnx_reinit;
using namespace onnx_reinit::test;

namespace {

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

TEST_CASE("16-bit NaN and infinity bytes are exact") {
  constexpr float inf = std::numeric_limits<float>::infinity();
  constexpr float nan = std::numeric_limits<float>::quiet_NaN();
  // Every NaN becomes the quiet NaN of its sign; infinities stay infinities.
  CHECK(float_to_half_bits(nan) == 0x7E00);
  CHECK(float_to_half_bits(-nan) == 0xFE00);
  CHECK(float_to_half_bits(std::bit_cast<float>(0x7F800001u)) == 0x7E00);  // signalling
  CHECK(float_to_bfloat16_bits(nan) == 0x7FC0);
  CHECK(float_to_bfloat16_bits(-nan) == 0xFFC0);
  CHECK(float_to_bfloat16_bits(std::bit_cast<float>(0x7F800001u)) == 0x7FC0);
  CHECK(float_to_bfloat16_bits(inf) == 0x7F80);
  CHECK(float_to_bfloat16_bits(-inf) == 0xFF80);
  // Decoding is exact, NaN payloads included.
  CHECK(half_bits_to_float(0x7C00) == inf);
  CHECK(half_bits_to_float(0xFC00) == -inf);
  CHECK(std::bit_cast<std::uint32_t>(half_bits_to_float(0x7E00)) == 0x7FC00000u);
  CHECK(std::bit_cast<std::uint32_t>(half_bits_to_float(0xFD01)) == 0xFFA02000u);
  CHECK(std::bit_cast<std::uint32_t>(bfloat16_bits_to_float(0xFFC1)) == 0xFFC10000u);
  CHECK(bfloat16_bits_to_float(0x0001) == 0x1p-133f);  // subnormal
}

TEST_CASE("float16 rounds every midpoint between neighbours to the even one") {
  // For each pair of adjacent finite halves a < b (a >= 0): the midpoint is
  // exact in float; it goes to whichever of a, b has an even mantissa, and
  // the floats just below and above it go to a and b. Together with the
  // round trip this pins the conversion on every half interval.
  for (std::uint16_t a = 0; a < 0x7BFF; ++a) {
    const auto b = static_cast<std::uint16_t>(a + 1);
    const float mid = (half_bits_to_float(a) + half_bits_to_float(b)) / 2;
    const std::uint16_t even = (a & 1) == 0 ? a : b;
    if (float_to_half_bits(mid) != even) FAIL("midpoint after half " << a);
    if (float_to_half_bits(std::nextafter(mid, 0.0f)) != a) FAIL("below midpoint after " << a);
    if (float_to_half_bits(std::nextafter(mid, 1e9f)) != b) FAIL("above midpoint after " << a);
    if (float_to_half_bits(-mid) != (even | 0x8000)) FAIL("negative midpoint after " << a);
  }
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
        const std::string in_bytes = file_bytes(dir / "in.onnx");

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
        CHECK(file_bytes(dir / "in.onnx") == in_bytes);
        CHECK_NOTHROW(onnx::checker::check_model((dir / "out.onnx").string()));

        loaded_model out = load_model(dir / "out.onnx");
        onnx::TensorProto& ow = *find_initializer(out.proto(), "W");
        CHECK(storage_of(ow) == before);
        CHECK(read_tensor_values<float>(out, ow) == neww);
        CHECK(read_tensor_values<float>(out, *find_initializer(out.proto(), "B")) == b);
        // The untouched initializer is byte-identical.
        const onnx::ModelProto whole = whole_proto(out);
        CHECK(whole.graph().initializer(1).SerializeAsString() ==
              in.graph().initializer(1).SerializeAsString());
        onnx_reinit::test::check_same_structure(in, whole);

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

// Float values as a byte source read `window` bytes at a time; every read
// from byte `fail_from` on throws (a strategy failing while the writer
// streams it: at once, or in a later window, which the writer reads on a
// worker while it writes the one before).
class windowed_source final : public byte_source {
 public:
  static constexpr std::uint64_t never = std::numeric_limits<std::uint64_t>::max();
  windowed_source(std::vector<float> values, std::uint64_t window, std::uint64_t fail_from = never)
      : values_(std::move(values)), window_(window), fail_from_(fail_from) {}
  std::uint64_t size() const override { return values_.size() * sizeof(float); }
  std::uint64_t window() const override { return window_; }
  void read(std::uint64_t offset, std::span<std::byte> out) const override {
    if (offset >= fail_from_) throw model_error("the source failed", "test");
    ++reads;
    std::memcpy(out.data(), reinterpret_cast<const std::byte*>(values_.data()) + offset,
                out.size());
  }
  std::string describe() const override { return "test values"; }
  mutable int reads = 0;

 private:
  std::vector<float> values_;
  std::uint64_t window_;
  std::uint64_t fail_from_;
};

}  // namespace

TEST_CASE("external data: read, rewrite, save in the same layout elsewhere") {
  external_fixture f;
  const std::string in_bytes = file_bytes(f.dir / "in.onnx");
  loaded_model m = load_model(f.dir / "in.onnx");
  CHECK(m.has_external_data());
  onnx::TensorProto& w = *find_initializer(m.proto(), "W");
  CHECK(storage_of(w) == tensor_storage::external);
  CHECK(read_tensor_values<float>(m, w) == f.w);
  CHECK(read_tensor_values<float>(m, *find_initializer(m.proto(), "B")) == f.b);

  const std::vector<float> neww = ramp(12, 5.0f, 1.0f);
  write_tensor_values<float>(m, w, neww);
  CHECK(read_tensor_values<float>(m, w) == neww);      // pending, visible to reads
  CHECK(file_bytes(f.dir / "weights.bin") == f.data);  // but nothing written yet

  fs::create_directories(f.dir / "out");
  save_model(m, f.dir / "out" / "model.onnx");
  CHECK(file_bytes(f.dir / "in.onnx") == in_bytes);
  CHECK(file_bytes(f.dir / "weights.bin") == f.data);
  CHECK(dir_listing(f.dir / "out") == std::set<std::string>{"model.onnx", "weights.bin"});
  std::string expected = f.data;
  expected.replace(0, 48, float_bytes(neww));
  CHECK(file_bytes(f.dir / "out" / "weights.bin") == expected);  // gaps and tail kept

  loaded_model out = load_model(f.dir / "out" / "model.onnx");
  CHECK(read_tensor_values<float>(out, *find_initializer(out.proto(), "W")) == neww);
  onnx_reinit::test::check_same_structure(f.in, out.proto());
  CHECK(out.proto().graph().initializer(1).SerializeAsString() ==
        f.in.graph().initializer(1).SerializeAsString());
}

TEST_CASE("external data: saving beside the input picks new data file names") {
  external_fixture f;
  const std::string in_bytes = file_bytes(f.dir / "in.onnx");
  loaded_model m = load_model(f.dir / "in.onnx");
  const std::vector<float> newb = {9, 8, 7};
  write_tensor_values<float>(m, *find_initializer(m.proto(), "B"), newb);
  save_model(m, f.dir / "out.onnx");
  CHECK(file_bytes(f.dir / "in.onnx") == in_bytes);
  CHECK(file_bytes(f.dir / "weights.bin") == f.data);
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
  const std::string in_bytes = file_bytes(f.dir / "in.onnx");
  loaded_model m = load_model(f.dir / "in.onnx");
  // A source read in windows of 20 bytes: two reads and a short last one.
  const std::vector<float> neww = ramp(12, 1.0f, 2.0f);
  write_tensor_source(m, *find_initializer(m.proto(), "W"),
                      std::make_shared<windowed_source>(neww, 20));
  save_options opt;
  opt.external_data_name = "all.bin";
  save_model(m, f.dir / "out.onnx", opt);
  CHECK(file_bytes(f.dir / "in.onnx") == in_bytes);
  CHECK(file_bytes(f.dir / "weights.bin") == f.data);
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
  CHECK(file_bytes(f.dir / "weights.bin") == f.data);
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
  // Refused at load now (data lengths are checked before anything
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
  const std::string in_bytes = file_bytes(f.dir / "in.onnx");
  loaded_model m = load_model(f.dir / "in.onnx");
  write_tensor_values<float>(m, *find_initializer(m.proto(), "W"), std::vector<float>(12, 1.0f));
  const std::set<std::string> before = dir_listing(f.dir.path);
  CHECK_THROWS_AS(save_model(m, f.dir / "out.onnx"), model_error);
  CHECK_THROWS_WITH(save_model(m, f.dir / "out.onnx"), Catch::Contains("ONNX checker"));
  save_options consolidate;
  consolidate.external_data_name = "one.bin";
  CHECK_THROWS_AS(save_model(m, f.dir / "out.onnx", consolidate), model_error);
  CHECK(dir_listing(f.dir.path) == before);
  CHECK(file_bytes(f.dir / "in.onnx") == in_bytes);
  CHECK(file_bytes(f.dir / "weights.bin") == f.data);

  // A source of the wrong size is refused at once; one that fails while
  // read fails the save, and nothing is written.
  f.in.mutable_graph()->mutable_node(0)->set_op_type("MatMul");
  loaded_model ok = loaded_model::from_proto(f.in, f.dir.path);
  CHECK_THROWS_WITH(write_tensor_source(ok, *find_initializer(ok.proto(), "W"),
                                        bytes_in_memory(std::vector<std::byte>(3))),
                    Catch::Contains("a source of 3 bytes given, 48 needed"));
  for (const std::uint64_t fail_from : {0, 16, 32}) {
    CAPTURE(fail_from);
    write_tensor_source(ok, *find_initializer(ok.proto(), "W"),
                        std::make_shared<windowed_source>(std::vector<float>(12), 16, fail_from));
    CHECK_THROWS_WITH(save_model(ok, f.dir / "out.onnx"), Catch::Contains("source failed"));
    CHECK(dir_listing(f.dir.path) == before);
  }

  // A missing output directory is an io_error.
  CHECK_THROWS_AS(save_model(ok, f.dir / "nope" / "out.onnx"), io_error);
}

// ---------------------------------------------------------------------------
// decode_tensor_values: the one decoder of numeric values

namespace {

// The largest single operator new request made while `tracking` is set on
// this thread: shows a hostile tensor is refused before anything is
// allocated from its dims.
thread_local bool tracking = false;
thread_local std::size_t largest_request = 0;

}  // namespace

// Out of line, so that GCC does not see new/delete pairs it would take for
// mismatched malloc/free. Not under AddressSanitizer, whose own operator new
// must pair with its operator delete: the size check runs in the other builds.
#if !defined(__SANITIZE_ADDRESS__)
constexpr bool allocations_tracked = true;
[[gnu::noinline]] void* operator new(std::size_t n) {
  if (tracking && n > largest_request) largest_request = n;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#else
constexpr bool allocations_tracked = false;
#endif

namespace {

// One dtype: its elements as little-endian bytes (raw_data and external
// data), as a typed field, and the values expected, all written by hand.
struct decode_case {
  onnx::TensorProto::DataType type;
  std::string raw;
  std::function<void(onnx::TensorProto&)> typed;
  std::vector<double> expected;
};

std::vector<decode_case> decode_cases() {
  using tp = onnx::TensorProto;
  auto i32 = [](std::vector<std::int32_t> v) {
    return [v](tp& t) {
      for (auto x : v) t.add_int32_data(x);
    };
  };
  return {
      {tp::FLOAT,
       std::string("\x00\x00\xc0\x3f\x00\x00\x00\xc0", 8),  // 0x3fc00000, 0xc0000000
       [](tp& t) {
         t.add_float_data(1.5f);
         t.add_float_data(-2.0f);
       },
       {1.5, -2.0}},
      {tp::DOUBLE,
       std::string("\x00\x00\x00\x00\x00\x00\xf8\x3f\x9a\x99\x99\x99\x99\x99\xb9\x3f", 16),
       [](tp& t) {
         t.add_double_data(1.5);
         t.add_double_data(0.1);
       },
       {1.5, 0.1}},
      // float16 0x3c00 = 1, 0xc000 = -2, 0x3555 = 0.333251953125, 0x0001 =
      // 2^-24 (smallest subnormal), 0x7bff = 65504.
      {tp::FLOAT16,
       std::string("\x00\x3c\x00\xc0\x55\x35\x01\x00\xff\x7b", 10),
       i32({0x3c00, 0xc000, 0x3555, 0x0001, 0x7bff}),
       {1.0, -2.0, 0.333251953125, std::ldexp(1.0, -24), 65504.0}},
      // bfloat16 0x3f80 = 1, 0xc040 = -3, 0x4049 = 3.140625.
      {tp::BFLOAT16,
       std::string("\x80\x3f\x40\xc0\x49\x40", 6),
       i32({0x3f80, 0xc040, 0x4049}),
       {1.0, -3.0, 3.140625}},
      {tp::INT8, std::string("\x7f\x80\xff", 3), i32({127, -128, -1}), {127.0, -128.0, -1.0}},
      {tp::UINT8, std::string("\xff\x00\x07", 3), i32({255, 0, 7}), {255.0, 0.0, 7.0}},
      {tp::INT16, std::string("\x00\x80\xff\x7f", 4), i32({-32768, 32767}), {-32768.0, 32767.0}},
      {tp::UINT16, std::string("\xff\xff\x02\x00", 4), i32({65535, 2}), {65535.0, 2.0}},
      {tp::INT32,
       std::string("\x00\x00\x00\x80\x07\x00\x00\x00", 8),
       i32({std::numeric_limits<std::int32_t>::min(), 7}),
       {-2147483648.0, 7.0}},
      {tp::INT64,
       std::string("\xfb\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x01\x00\x00", 16),
       [](tp& t) {
         t.add_int64_data(-5);
         t.add_int64_data(std::int64_t{1} << 40);
       },
       {-5.0, std::ldexp(1.0, 40)}},
      {tp::UINT32,
       std::string("\xff\xff\xff\xff\x03\x00\x00\x00", 8),
       [](tp& t) {
         t.add_uint64_data(4294967295u);
         t.add_uint64_data(3);
       },
       {4294967295.0, 3.0}},
      {tp::UINT64,
       std::string("\x00\x00\x00\x00\x00\x00\x00\x80\x2a\x00\x00\x00\x00\x00\x00\x00", 16),
       [](tp& t) {
         t.add_uint64_data(std::uint64_t{1} << 63);
         t.add_uint64_data(42);
       },
       {std::ldexp(1.0, 63), 42.0}},
      {tp::BOOL, std::string("\x00\x01\x01", 3), i32({0, 1, 1}), {0.0, 1.0, 1.0}},
  };
}

onnx::TensorProto decode_tensor(const std::string& name, const decode_case& c) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(c.type);
  t.add_dims(static_cast<std::int64_t>(c.expected.size()));
  return t;
}

// Equal element by element, NaN never expected.
bool same_values(const std::optional<std::vector<double>>& got, const std::vector<double>& want) {
  return got && *got == want;
}

}  // namespace

TEST_CASE("decode_tensor_values reads every numeric dtype from every storage form") {
  temp_dir dir;
  graph_builder g;
  std::string data;
  const std::vector<decode_case> cases = decode_cases();
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const decode_case& c = cases[i];
    const std::string name = fmt::format("t{}", i);
    INFO("data type " << c.type);

    onnx::TensorProto raw = decode_tensor(name, c);
    raw.set_raw_data(c.raw);
    CHECK(same_values(decode_tensor_values(raw, nullptr, 64), c.expected));

    onnx::TensorProto typed = decode_tensor(name, c);
    c.typed(typed);
    CHECK(same_values(decode_tensor_values(typed, nullptr, 64), c.expected));

    // External: every tensor in one file, at its own offset.
    onnx::TensorProto external = decode_tensor(name, c);
    set_external(external, "values.bin", data.size(), c.raw.size());
    data += c.raw;
    g.add_initializer(external);
    // Without a model to read it through, external data is unknown.
    CHECK_FALSE(decode_tensor_values(external, nullptr, 64));
  }
  write_file(dir / "values.bin", data);
  write_model(dir / "m.onnx", g.model());
  const loaded_model m = load_model(dir / "m.onnx");
  for (std::size_t i = 0; i < cases.size(); ++i) {
    INFO("data type " << cases[i].type);
    CHECK(same_values(
        decode_tensor_values(m.proto().graph().initializer(static_cast<int>(i)), &m, 64),
        cases[i].expected));
  }
}

TEST_CASE("decode_tensor_values reads a scalar, an empty tensor and pending external writes") {
  onnx::TensorProto scalar;
  scalar.set_data_type(onnx::TensorProto::FLOAT);
  scalar.add_float_data(6.0f);
  CHECK(same_values(decode_tensor_values(scalar, nullptr, 1), {6.0}));
  onnx::TensorProto empty = make_tensor("e", {3, 0}, {});
  CHECK(same_values(decode_tensor_values(empty, nullptr, 0), {}));

  external_fixture f;
  loaded_model m = load_model(f.dir / "in.onnx");
  onnx::TensorProto& b = *find_initializer(m.proto(), "B");
  CHECK(same_values(decode_tensor_values(b, &m, 16), {0.5, 1.0, 1.5}));
  write_tensor_values<float>(m, b, std::vector<float>{4.0f, 5.0f, 6.0f});
  CHECK(same_values(decode_tensor_values(b, &m, 16), {4.0, 5.0, 6.0}));
}

TEST_CASE("decode_tensor_values honours the element cap") {
  const onnx::TensorProto t = make_tensor("t", {2, 3}, ramp(6));
  CHECK(same_values(decode_tensor_values(t, nullptr, 6), {0.0, 0.25, 0.5, 0.75, 1.0, 1.25}));
  CHECK_FALSE(decode_tensor_values(t, nullptr, 5));
  onnx::TensorProto scalar = make_tensor("s", {}, {2.0f});
  CHECK(same_values(decode_tensor_values(scalar, nullptr, 1), {2.0}));
  CHECK_FALSE(decode_tensor_values(scalar, nullptr, 0));
}

TEST_CASE("decode_tensor_values refuses hostile dims without allocating from them") {
  const std::size_t no_cap = std::numeric_limits<std::size_t>::max();
  struct hostile {
    const char* what;
    std::vector<std::int64_t> dims;
  };
  const std::vector<hostile> all = {
      {"product overflows int64", {std::int64_t{1} << 40, std::int64_t{1} << 40, 3}},
      {"product overflows uint64", {std::numeric_limits<std::int64_t>::max(), 4}},
      {"2^60 elements", {std::int64_t{1} << 30, std::int64_t{1} << 30}},
      {"2^34 elements", {std::int64_t{1} << 17, std::int64_t{1} << 17}},
      {"negative dim", {-1, 4}},
      {"negative dims whose product is positive", {-2, -2}},
  };
  for (const hostile& h : all) {
    INFO(h.what);
    onnx::TensorProto t;
    t.set_name("h");
    t.set_data_type(onnx::TensorProto::FLOAT);
    for (std::int64_t d : h.dims) t.add_dims(d);
    t.add_float_data(1.0f);
    largest_request = 0;
    tracking = true;
    const auto capped = decode_tensor_values(t, nullptr, 1 << 16);
    const auto uncapped = decode_tensor_values(t, nullptr, no_cap);
    tracking = false;
    CHECK_FALSE(capped);
    CHECK_FALSE(uncapped);
    // Error messages may be built; nothing near the size of the tensor is.
    if (allocations_tracked) CHECK(largest_request < 4096);
  }
}

TEST_CASE("decode_tensor_values gives nullopt for types without a real value and bad data") {
  auto base = [](onnx::TensorProto::DataType type) {
    onnx::TensorProto t;
    t.set_name("t");
    t.set_data_type(type);
    t.add_dims(2);
    return t;
  };
  onnx::TensorProto strings = base(onnx::TensorProto::STRING);
  strings.add_string_data("a");
  strings.add_string_data("b");
  CHECK_FALSE(decode_tensor_values(strings, nullptr, 64));
  onnx::TensorProto complex = base(onnx::TensorProto::COMPLEX64);
  for (int i = 0; i < 4; ++i) complex.add_float_data(1.0f);
  CHECK_FALSE(decode_tensor_values(complex, nullptr, 64));
  for (int type : {0, 999}) {
    onnx::TensorProto unknown = base(onnx::TensorProto::FLOAT);
    unknown.set_data_type(type);
    unknown.set_raw_data(std::string(8, '\0'));
    CHECK_FALSE(decode_tensor_values(unknown, nullptr, 64));
  }
  // Lengths that disagree with dims, in every form.
  onnx::TensorProto short_raw = base(onnx::TensorProto::FLOAT);
  short_raw.set_raw_data(std::string(7, '\0'));
  CHECK_FALSE(decode_tensor_values(short_raw, nullptr, 64));
  onnx::TensorProto long_raw = base(onnx::TensorProto::FLOAT);
  long_raw.set_raw_data(std::string(9, '\0'));
  CHECK_FALSE(decode_tensor_values(long_raw, nullptr, 64));
  onnx::TensorProto short_field = base(onnx::TensorProto::FLOAT16);
  short_field.add_int32_data(0x3c00);
  CHECK_FALSE(decode_tensor_values(short_field, nullptr, 64));
  onnx::TensorProto long_field = base(onnx::TensorProto::INT64);
  for (int i = 0; i < 3; ++i) long_field.add_int64_data(i);
  CHECK_FALSE(decode_tensor_values(long_field, nullptr, 64));

  // External data that cannot be read: a missing file, a range past the
  // end, a length that disagrees with dims, and a model with no directory.
  // (The tensors are not part of the model, so its load did not refuse them.)
  temp_dir dir;
  write_file(dir / "four.bin", std::string(4, '\0'));
  onnx::TensorProto missing = base(onnx::TensorProto::FLOAT);
  set_external(missing, "nope.bin", 0, 8);
  onnx::TensorProto past_end = base(onnx::TensorProto::FLOAT);
  set_external(past_end, "four.bin", 0, 8);
  onnx::TensorProto wrong_length = base(onnx::TensorProto::FLOAT);
  set_external(wrong_length, "four.bin", 0, 4);
  const loaded_model m = loaded_model::from_proto(graph_builder().model(), dir.path);
  const loaded_model no_dir = loaded_model::from_proto(graph_builder().model());
  for (const onnx::TensorProto* t : {&missing, &past_end, &wrong_length}) {
    INFO(t->external_data(0).value() << " length " << t->external_data(2).value());
    CHECK_FALSE(decode_tensor_values(*t, &m, 64));
    CHECK_FALSE(decode_tensor_values(*t, &no_dir, 64));
  }
  // The same file read correctly, to show the refusals are about the data.
  onnx::TensorProto ok = base(onnx::TensorProto::FLOAT16);
  set_external(ok, "four.bin", 0, 4);
  CHECK(same_values(decode_tensor_values(ok, &m, 64), {0.0, 0.0}));
}

TEST_CASE("an input failing the checker is written if the output fails no new way") {
  temp_dir dir;
  loaded_model m = loaded_model::from_proto(if_model_without_shapes(4), dir.path);
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
  loaded_model good = loaded_model::from_proto(if_model_with_shapes(4), dir.path);
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

// ---------------------------------------------------------------------------
// Writer figures

namespace {

// Bytes in memory read `window` bytes at a time by the writer.
class windowed_bytes : public byte_source {
 public:
  windowed_bytes(std::string bytes, std::uint64_t window)
      : bytes_(std::move(bytes)), window_(window) {}
  std::uint64_t size() const override { return bytes_.size(); }
  void read(std::uint64_t offset, std::span<std::byte> out) const override {
    std::memcpy(out.data(), bytes_.data() + offset, out.size());
  }
  std::uint64_t window() const override { return window_; }
  std::string describe() const override { return "test bytes"; }

 private:
  std::string bytes_;
  std::uint64_t window_;
};

}  // namespace

TEST_CASE("writer figures do not depend on the thread count or how the bytes are split") {
  temp_dir dir;
  // Five whole blocks of 2^16 values and a partial one, far from zero, with
  // a trend so that every block's figures differ (a merge in another order
  // rounds otherwise).
  std::vector<float> w(5 * 65536 + 123);
  std::uint32_t state = 12345;
  for (std::size_t i = 0; i < w.size(); ++i) {
    state = state * 1664525u + 1013904223u;
    w[i] = 1000.0f + 1e-3f * static_cast<float>(i) + static_cast<float>(state >> 8) * 1e-5f;
  }
  graph_builder g;
  g.add_initializer("W", {static_cast<std::int64_t>(w.size())}, ramp(w.size(), 0.0f, 1.0f));
  g.add_node("Identity", {"W"}, {"Y"}, {}, "id");
  g.add_output("Y", {static_cast<std::int64_t>(w.size())}, element_type::float32);
  write_model(dir / "inline.onnx", g.model());
  save_options to_external;
  to_external.external_data_name = "w.bin";
  loaded_model source = load_model(dir / "inline.onnx");
  save_model(source, dir / "external.onnx", to_external);

  auto figures = [&](const char* model, int threads, std::uint64_t window) {
    const tbb::global_control limit(tbb::global_control::max_allowed_parallelism,
                                    static_cast<std::size_t>(threads));
    loaded_model m = load_model(dir / model);
    onnx::TensorProto& t = *find_initializer(m.proto(), "W");
    write_tensor_source(m, t, std::make_shared<windowed_bytes>(float_bytes(w), window));
    fs::remove_all(dir / "out");
    fs::create_directories(dir / "out");
    const save_result r = save_model(m, dir / "out" / "model.onnx");
    REQUIRE(r.written.size() == 1);
    return r.written[0];
  };
  // Streamed 4 KiB at a time: every block is filled piece by piece.
  const written_tensor pieces = figures("external.onnx", 1, 4096);
  for (const int threads : {1, 2, 4}) {
    for (const char* model : {"inline.onnx", "external.onnx"}) {
      const written_tensor whole = figures(model, threads, w.size() * 4);
      CHECK(whole.count == w.size());
      CHECK(std::bit_cast<std::uint64_t>(whole.mean) == std::bit_cast<std::uint64_t>(pieces.mean));
      CHECK(std::bit_cast<std::uint64_t>(whole.std) == std::bit_cast<std::uint64_t>(pieces.std));
    }
  }
  // Not measured (save_options::measure): the same bytes, the count, NaN
  // figures.
  {
    loaded_model m = load_model(dir / "external.onnx");
    write_tensor_source(m, *find_initializer(m.proto(), "W"),
                        std::make_shared<windowed_bytes>(float_bytes(w), 4096));
    fs::remove_all(dir / "unmeasured");
    fs::create_directories(dir / "unmeasured");
    save_options unmeasured;
    unmeasured.measure = false;
    const save_result r = save_model(m, dir / "unmeasured" / "model.onnx", unmeasured);
    REQUIRE(r.written.size() == 1);
    CHECK(r.written[0].count == w.size());
    CHECK(std::isnan(r.written[0].mean));
    CHECK(std::isnan(r.written[0].std));
    figures("external.onnx", 2, 4096);
    REQUIRE(dir_listing(dir / "unmeasured") == dir_listing(dir / "out"));
    for (const std::string& file : dir_listing(dir / "out"))
      CHECK(file_bytes(dir / "unmeasured" / file) == file_bytes(dir / "out" / file));
  }
  // And they are the figures: a two-pass sum in long double.
  long double sum = 0, squares = 0;
  for (const float v : w) sum += v;
  const long double mean = sum / static_cast<long double>(w.size());
  for (const float v : w) squares += (v - mean) * (v - mean);
  const double std = static_cast<double>(std::sqrt(squares / static_cast<long double>(w.size())));
  CHECK(pieces.mean == Approx(static_cast<double>(mean)).epsilon(1e-12));
  CHECK(pieces.std == Approx(std).epsilon(1e-9));
}

// Requantized weights (--quantized requantize) are integer tensors: the
// writer takes their new bytes in raw_data, in int32_data (one int32 per
// int8/uint8/int32 value, as ONNX stores them) and, with a skeleton load,
// from the model file, and lists them in save_result::written unmeasured.
TEST_CASE("integer tensors of quantized weights take new bytes in every storage form") {
  temp_dir dir;
  const auto make = [](const std::string& name, onnx::TensorProto::DataType type, bool raw) {
    onnx::TensorProto t;
    t.set_name(name);
    t.set_data_type(type);
    t.add_dims(3);
    if (raw) {
      t.set_raw_data(std::string(type == onnx::TensorProto::INT32 ? 12 : 3, '\0'));
    } else {
      for (int i = 0; i < 3; ++i) t.add_int32_data(0);
    }
    return t;
  };
  graph_builder b;
  b.add_input("x", {3});
  b.add_initializer(make("q8_raw", onnx::TensorProto::INT8, true));
  b.add_initializer(make("q8_typed", onnx::TensorProto::INT8, false));
  b.add_initializer(make("u8_typed", onnx::TensorProto::UINT8, false));
  b.add_initializer(make("q32_typed", onnx::TensorProto::INT32, false));
  b.add_initializer(make("q32_raw", onnx::TensorProto::INT32, true));
  onnx::TensorProto& shape = b.add_initializer(make("shape", onnx::TensorProto::INT64, true));
  shape.set_raw_data(std::string(24, '\0'));
  b.add_node("Add", {"x", "x"}, {"y"});
  b.add_output("y", {3});
  const fs::path in = dir / "in.onnx";
  write_model(in, b.model());
  const std::int8_t s8[3] = {-127, 0, 127};
  const std::uint8_t u8[3] = {0, 128, 255};
  const std::int32_t s32[3] = {std::numeric_limits<std::int32_t>::min(), -1,
                               std::numeric_limits<std::int32_t>::max()};
  for (const bool skeleton : {true, false}) {
    loaded_model m = load_model(in, {.skeleton = skeleton});
    auto tensors = collect_model_tensors(m.proto());
    const auto proto = [&](const std::string& name) -> onnx::TensorProto& {
      for (auto& t : tensors)
        if (t.ref.name == name) return *t.proto;
      FAIL("no " << name);
      throw;
    };
    write_tensor_bytes(m, proto("q8_raw"), std::as_bytes(std::span(s8)));
    write_tensor_bytes(m, proto("q8_typed"), std::as_bytes(std::span(s8)));
    write_tensor_source(m, proto("u8_typed"),
                        bytes_in_memory({std::as_bytes(std::span(u8)).begin(),
                                         std::as_bytes(std::span(u8)).end()}));
    fill_tensor_bytes(m, proto("q32_typed"),
                      [&](std::span<std::byte> out) { std::memcpy(out.data(), s32, sizeof s32); });
    write_tensor_bytes(m, proto("q32_raw"), std::as_bytes(std::span(s32)));
    CHECK_THROWS_AS(write_tensor_bytes(m, proto("shape"), std::as_bytes(std::span(s32))),
                    model_error);
    const save_result saved = save_model(m, dir / "out.onnx");
    REQUIRE(saved.written.size() == 5);
    for (const written_tensor& w : saved.written) {
      CHECK(!w.is_float);
      CHECK(w.count == 3);
      CHECK(std::isnan(w.std));
    }
    const loaded_model out = load_model(dir / "out.onnx");
    const auto values = [&](const std::string& name) {
      for (const auto& t : collect_model_tensors(out.proto()))
        if (t.ref.name == name) return *decode_tensor_values(*t.proto, &out, 16);
      FAIL("no " << name);
      throw;
    };
    CHECK(values("q8_raw") == std::vector<double>{-127, 0, 127});
    CHECK(values("q8_typed") == std::vector<double>{-127, 0, 127});
    CHECK(values("u8_typed") == std::vector<double>{0, 128, 255});
    CHECK(values("q32_typed") == std::vector<double>{-2147483648.0, -1, 2147483647.0});
    CHECK(values("q32_raw") == std::vector<double>{-2147483648.0, -1, 2147483647.0});
  }
}

// ---------------------------------------------------------------------------
// Publishing as one step (docs/DESIGN.md section 10)

namespace {

// The top-level files of `dir` with their bytes; hidden entries (staging
// directories, staged temp files) apart.
struct dir_state {
  std::map<std::string, std::string> visible;
  std::set<std::string> hidden;
};

dir_state state_of(const fs::path& dir) {
  dir_state s;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.front() == '.')
      s.hidden.insert(name);
    else
      s.visible[name] = e.is_regular_file() ? file_bytes(e.path()) : std::string("<dir>");
  }
  return s;
}

// A committed journal in one of OUT's staging directories.
bool committed(const fs::path& dir, const std::string& out_name) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().starts_with("." + out_name + ".onnx-reinit-") &&
        fs::exists(e.path() / "journal"))
      return true;
  return false;
}

// Runs the helper: true when it was killed, false when it finished.
bool run_helper(const fs::path& model, const fs::path& out, const fs::path& report, int step) {
  const std::string step_text = std::to_string(step);
  std::vector<std::string> args{PUBLISH_KILL_HELPER, model.string(), out.string(), report.string(),
                                step_text};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) == 0);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    REQUIRE(WTERMSIG(status) == SIGKILL);
    return true;
  }
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  return false;
}

}  // namespace

TEST_CASE("a kill at every step of publishing leaves the old set or, recovered, the new one") {
  for (const bool in_place : {false, true}) {
    INFO((in_place ? "in place" : "-o beside the input, onto an older output and report"));
    external_fixture f;
    // The old set: the input, its data and (for -o) an older output and report.
    if (!in_place) fs::copy_file(f.dir / "in.onnx", f.dir / "out.onnx");
    write_file(f.dir / "report.json", "old report\n");
    const std::string out_name = in_place ? "in.onnx" : "out.onnx";
    auto copy_of = [&](const std::string& name) {
      const fs::path to = f.dir.path.parent_path() / (f.dir.path.filename().string() + name);
      fs::remove_all(to);
      fs::copy(f.dir.path, to, fs::copy_options::recursive);
      return to;
    };
    const dir_state old_state = state_of(f.dir.path);

    const fs::path ref = copy_of("-ref");
    REQUIRE_FALSE(run_helper(ref / "in.onnx", ref / out_name, ref / "report.json", -1));
    const dir_state new_state = state_of(ref);
    fs::remove_all(ref);
    REQUIRE(new_state.hidden.empty());
    REQUIRE(new_state.visible.at(out_name) != old_state.visible.at(out_name));
    REQUIRE(new_state.visible.at("report.json") == "new report\n");
    // The new set has a data file the old one lacks: "out.onnx.data", or
    // "weights.bin.r1" in place (the old weights.bin then removed).
    REQUIRE(new_state.visible.size() == (in_place ? 3 : 5));

    int kills = 0;
    for (int step = 0;; ++step) {
      INFO("killed at step " << step);
      const fs::path work = copy_of("-work");
      const bool killed = run_helper(work / "in.onnx", work / out_name, work / "report.json", step);
      if (!killed) {
        CHECK(state_of(work).visible == new_state.visible);
        fs::remove_all(work);
        break;
      }
      ++kills;
      const dir_state after_kill = state_of(work);
      const bool was_committed = committed(work, out_name);
      if (!was_committed) {
        // Before the commit point nothing of the new set is visible.
        CHECK(after_kill.visible == old_state.visible);
      } else {
        // Rolling forward: each file is the old one or the new one.
        for (const auto& [name, bytes] : after_kill.visible) {
          INFO(name);
          const bool is_old =
              old_state.visible.contains(name) && old_state.visible.at(name) == bytes;
          const bool is_new =
              new_state.visible.contains(name) && new_state.visible.at(name) == bytes;
          CHECK((is_old || is_new));
        }
        // The model is renamed last: the new model means the whole new set.
        if (after_kill.visible.at(out_name) == new_state.visible.at(out_name))
          for (const auto& [name, bytes] : new_state.visible)
            CHECK(after_kill.visible.at(name) == bytes);
      }
      // Any later save to OUT recovers first; here, recovery alone.
      recover_publications(work / out_name);
      const dir_state recovered = state_of(work);
      CHECK(recovered.visible == (was_committed ? new_state.visible : old_state.visible));
      CHECK(recovered.hidden.empty());
      fs::remove_all(work);
    }
    // Steps: before the journal, journal written, committed, one per file
    // renamed (data, report, model), the obsolete files removed.
    CHECK(kills == 7);
  }
}
