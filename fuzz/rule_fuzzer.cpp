// libFuzzer target over the rule language: parse_rule on the input as a
// --rule argument, evaluate_parameter of every parameter against a tensor
// in a residual branch, the match against it, and load_rules_file on the
// input as a YAML rules file. rule_error (or any library error) is the
// expected, clean outcome; a crash, a sanitizer report (a stack overflow in
// the recursive-descent expression parser among them) or a foreign
// exception is a finding. Seeds: fuzz/rule_seeds/.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/errors.h"
#include "onnx_reinit/rules.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;

namespace {

// A weight every name of the expression language is defined for.
const ori::tensor_analysis& sample_tensor() {
  static const ori::tensor_analysis t = [] {
    ori::tensor_analysis a;
    a.info.name = "layer.0.w";
    a.info.shape = {64, 32};
    a.info.fan_in = 32;
    a.info.fan_out = 64;
    a.info.gain = 1.41421356;
    a.is_float = true;
    a.consumer_op = "MatMul";
    ori::residual_position r;
    r.branch_count = 12;
    r.layer_count = 2;
    a.residual = r;
    return a;
  }();
  return t;
}

const fs::path& rules_file() {
  static const fs::path file = [] {
    std::string pattern = (fs::temp_directory_path() / "onnx-reinit-rule-fuzz-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    return fs::path(pattern) / "rules.yaml";
  }();
  return file;
}

template <class F>
void clean_or_abort(F&& run) {
  try {
    run();
  } catch (const ori::error&) {
    // A clean refusal: what the CLI prints as "onnx-reinit: error: ...".
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rule_fuzzer: exception outside onnx_reinit::error: %s\n", e.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  clean_or_abort([&] {
    const ori::rule r = ori::parse_rule(text, "--rule 1");
    (void)r.matches(sample_tensor());
    for (const auto& [key, value] : r.call.params)
      (void)ori::evaluate_parameter(value, sample_tensor(), "--rule 1");
  });
  clean_or_abort([&] {
    {
      std::ofstream out(rules_file(), std::ios::binary | std::ios::trunc);
      out << text;
      if (!out) std::abort();
    }
    for (const ori::rule& r : ori::load_rules_file(rules_file()))
      for (const auto& [key, value] : r.call.params)
        (void)ori::evaluate_parameter(value, sample_tensor(), r.origin);
  });
  return 0;
}
