// Skeleton loading (load_options::skeleton): a model loaded with its raw_data
// payloads left in the file holds the same model as a whole parse, on the
// test models, on tensors in every place a tensor can sit, on the wire forms
// the scan leaves to the parser, and on thousands of mutated files (the same
// model or the same error).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"
#include "support/corpus_dir.h"
#include "support/onnx_builder.h"
#include "support/temp_dir.h"
#include "support/wire_forms.h"

namespace fs = std::filesystem;
using namespace onnx_reinit;
using namespace onnx_reinit::test;

namespace {

// What loading a file gives: the whole model serialised, or the error.
using load_outcome = std::variant<std::string, std::string>;  // 0: model, 1: error

load_outcome load_outcome_of(const fs::path& path, bool skeleton) {
  load_options options;
  options.skeleton = skeleton;
  try {
    const loaded_model m = load_model(path, options);
    return load_outcome(std::in_place_index<0>, whole_proto(m).SerializeAsString());
  } catch (const error& e) {
    return load_outcome(std::in_place_index<1>, e.what());
  }
}

std::string describe(const load_outcome& outcome) {
  return outcome.index() == 0 ? fmt::format("a model of {} bytes", std::get<0>(outcome).size())
                              : fmt::format("error: {}", std::get<1>(outcome));
}

void require_same_load(const fs::path& path) {
  const load_outcome whole = load_outcome_of(path, false);
  const load_outcome skeleton = load_outcome_of(path, true);
  INFO(path.filename().string() << (whole.index() == 1 ? " error: " + std::get<1>(whole) : ""));
  REQUIRE(skeleton.index() == whole.index());
  CHECK(skeleton == whole);
}

// Every tensor holding raw_data in a whole parse is left in the file by a
// skeleton load, and reads the same bytes.
void require_payloads_detached(const fs::path& path) {
  INFO(path.filename().string());
  load_options whole_options;
  whole_options.skeleton = false;
  const loaded_model whole = load_model(path, whole_options);
  const loaded_model skeleton = load_model(path);
  const auto a = collect_model_tensors(whole.proto());
  const auto b = collect_model_tensors(skeleton.proto());
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO(a[i].proto->name());
    const bool raw = a[i].proto->has_raw_data() && !a[i].proto->raw_data().empty() &&
                     a[i].proto->data_location() != onnx::TensorProto::EXTERNAL;
    CHECK(data_outside_proto(skeleton, *b[i].proto) ==
          (raw || a[i].proto->data_location() == onnx::TensorProto::EXTERNAL));
    if (raw)
      CHECK(tensor_bytes(skeleton, *b[i].proto).bytes().size() == a[i].proto->raw_data().size());
  }
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST_CASE("a skeleton load holds the model a whole parse holds, on the test models") {
  std::vector<fs::path> models =
      onnx_files(fs::path(ONNX_REINIT_SOURCE_DIR) / "tests/exports/torch");
  for (const fs::path& dir : {fs::path(ONNX_REINIT_SOURCE_DIR) / "examples/models", corpus_dir()}) {
    const std::vector<fs::path> more = onnx_files(dir);
    models.insert(models.end(), more.begin(), more.end());
  }
  REQUIRE(models.size() > 10);
  for (const fs::path& model : models) {
    require_same_load(model);
    require_payloads_detached(model);
  }
}

TEST_CASE("payloads are found wherever a tensor can sit") {
  temp_dir dir;
  const onnx::ModelProto m = model_with_tensors_everywhere();
  write_bytes(dir / "m.onnx", m.SerializeAsString());
  require_same_load(dir / "m.onnx");
  require_payloads_detached(dir / "m.onnx");
  // Function bodies, sparse tensors and training info are not in
  // collect_model_tensors: the whole proto shows they came back.
  const loaded_model loaded = load_model(dir / "m.onnx");
  CHECK(loaded.proto().functions(0).node(0).attribute(0).t().raw_data().size() == 1);
  CHECK(loaded.proto().training_info(0).initialization().initializer(0).raw_data().size() == 1);
  // Sparse tensors stay whole (the checker reads their indices).
  CHECK(loaded.proto().graph().sparse_initializer(0).values().raw_data() ==
        m.graph().sparse_initializer(0).values().raw_data());
  // The checker passes the skeleton as it passes the whole model (it reads
  // the sparse initializer's indices, which therefore stay whole).
  load_options whole_parse;
  whole_parse.skeleton = false;
  CHECK_FALSE(check_input_model(load_model(dir / "m.onnx", whole_parse)).has_value());
  CHECK_FALSE(check_input_model(loaded).has_value());
  const onnx::ModelProto whole = whole_proto(loaded);
  CHECK(whole.functions(0).node(0).attribute(0).t().raw_data() ==
        m.functions(0).node(0).attribute(0).t().raw_data());
  CHECK(whole.training_info(0).initialization().initializer(0).raw_data() ==
        m.training_info(0).initialization().initializer(0).raw_data());
  CHECK(whole.graph().sparse_initializer(0).indices().raw_data() ==
        m.graph().sparse_initializer(0).indices().raw_data());
}

TEST_CASE("wire forms the scan leaves to the parser load as a whole parse does") {
  temp_dir dir;
  const std::string w = weight().SerializeAsString();
  const std::string raw = weight().raw_data();
  onnx::TensorProto without_data = weight();
  without_data.clear_raw_data();
  const std::vector<std::pair<std::string, std::string>> forms = {
      {"hand-written, canonical order but for the graph", model_around(w)},
      {"non-minimal length prefixes", model_around(w, 3)},
      {"raw_data given twice (the last one counts)",
       model_around(w + field(9, std::string(raw.size(), '\x7f')))},
      {"raw_data before the dims", model_around(field(9, raw) + without_data.SerializeAsString())},
      {"the graph given twice (protobuf merges them)",
       model_around(w) + field(7, field(2, "renamed"))},
      {"a group field", model_around(w) + varint(99 << 3 | 3) + varint(99 << 3 | 4)},
      {"an unknown field holding bytes", model_around(w + field(77, "opaque"))},
  };
  for (const auto& [name, bytes] : forms) {
    INFO(name);
    write_bytes(dir / "m.onnx", bytes);
    require_same_load(dir / "m.onnx");
  }
}

TEST_CASE("mutated model files load as a whole parse loads them, or fail with its error") {
  temp_dir dir;
  const std::string original = model_with_tensors_everywhere().SerializeAsString();
  std::mt19937_64 random(20261129);
  int loaded = 0;
  for (int i = 0; i < 1500; ++i) {
    std::string bytes = original;
    const int edits = 1 + static_cast<int>(random() % 3);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = random() % bytes.size();
      switch (random() % 4) {
        case 0:  // flip bits
          bytes[at] = static_cast<char>(bytes[at] ^ static_cast<char>(1 + random() % 255));
          break;
        case 1:  // cut the file
          bytes.resize(at);
          break;
        case 2:  // insert a byte
          bytes.insert(at, 1, static_cast<char>(random() % 256));
          break;
        default:  // remove a run
          bytes.erase(at, 1 + random() % 8);
          break;
      }
      if (bytes.empty()) bytes = "\x08";
    }
    write_bytes(dir / "m.onnx", bytes);
    INFO("mutation " << i);
    const load_outcome whole = load_outcome_of(dir / "m.onnx", false);
    const load_outcome skeleton = load_outcome_of(dir / "m.onnx", true);
    INFO("whole parse: " << describe(whole) << "; skeleton: " << describe(skeleton));
    REQUIRE(skeleton == whole);
    loaded += whole.index() == 0 ? 1 : 0;
  }
  // Both outcomes were exercised, many times each.
  CHECK(loaded > 100);
  CHECK(loaded < 1400);
}
