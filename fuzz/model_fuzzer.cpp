// libFuzzer target over everything a hostile model file reaches before any
// strategy runs: protobuf parsing and the load-time checks (external data,
// data lengths, size limits), analysis, planning, and reading every float
// tensor's values; and the skeleton load (the wire-format scan), which must
// give what a whole parse gives. Errors of the library's own types are the expected,
// clean outcome; anything else (a crash, a sanitizer report, a foreign
// exception, an allocation beyond libFuzzer's -rss_limit_mb) is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/plan.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;

namespace {

// A model directory holding one small data file, so seeds with external
// data (location "weights.bin") reach the offset/length and read paths.
const fs::path& model_directory() {
  static const fs::path dir = [] {
    std::string pattern = (fs::temp_directory_path() / "onnx-reinit-fuzz-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    std::ofstream data(fs::path(pattern) / "weights.bin", std::ios::binary);
    for (int i = 0; i < 65536; ++i) data.put(static_cast<char>((i * 131) & 0xff));
    return fs::path(pattern);
  }();
  return dir;
}

// Small bounds keep every execution within libFuzzer's memory limit; the
// limit checks themselves are part of what is fuzzed.
ori::load_options fuzz_load_options() {
  ori::load_options options;
  options.max_tensor_bytes = std::uint64_t{64} << 20;
  options.max_total_bytes = std::uint64_t{256} << 20;
  return options;
}

// The whole model as loaded (payloads set back), or the error's message.
std::string load_outcome(const std::function<ori::loaded_model()>& load) {
  try {
    return "model " + ori::whole_proto(load()).SerializeAsString();
  } catch (const ori::error& e) {
    return std::string("error ") + e.what();
  }
}

// A file load parses only the skeleton (load_options::skeleton): it must
// give the model a whole parse gives, or the same error.
void compare_skeleton_load(std::span<const std::byte> bytes) {
  const fs::path file = model_directory() / "fuzz-input.onnx";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    if (!out) std::abort();
  }
  ori::load_options whole = fuzz_load_options();
  whole.skeleton = false;
  const std::string a = load_outcome([&] { return ori::load_model(file, fuzz_load_options()); });
  const std::string b = load_outcome([&] { return ori::load_model(file, whole); });
  if (a != b) {
    std::fprintf(stderr, "model_fuzzer: a skeleton load differs from a whole parse\n");
    std::abort();
  }
}

void run_one(std::span<const std::byte> bytes) {
  compare_skeleton_load(bytes);
  ori::loaded_model model =
      ori::load_model_from_bytes(bytes, "fuzz-input.onnx", model_directory(), fuzz_load_options());
  const std::vector<ori::tensor_analysis> analysed = ori::analyze_model(model);
  const std::vector<ori::tensor_plan> plans = ori::make_plan(analysed, ori::plan_options{});
  for (const ori::const_model_tensor& t :
       ori::collect_model_tensors(std::as_const(model).proto())) {
    if (!ori::float_element_type(*t.proto)) continue;
    const std::vector<double> values = ori::read_tensor_values<double>(model, *t.proto);
    if (values.size() != static_cast<std::size_t>(ori::tensor_element_count(*t.proto)))
      std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    run_one(std::as_bytes(std::span(data, size)));
  } catch (const ori::error&) {
    // A clean refusal: what the CLI prints as "onnx-reinit: error: ...".
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_fuzzer: exception outside onnx_reinit::error: %s\n", e.what());
    std::abort();
  }
  return 0;
}
