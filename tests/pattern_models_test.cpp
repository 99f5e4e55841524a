// The pattern models of issue 17, exported from public architectures by
// tools/scripts/export_pattern_models.py (the export_pattern_models
// fixture), planned with the default policy: what each pattern must keep,
// the activation each layer must get, and that the learned weights around
// them are still rewritten (nothing kept beyond the pattern).
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/plan.h"

namespace ori = onnx_reinit;

namespace {

std::vector<ori::tensor_plan> plan_of(const std::string& file) {
  const auto path = std::filesystem::path(ONNX_REINIT_PATTERN_MODELS) / file;
  INFO("run the export_pattern_models test (ctest fixture) first");
  REQUIRE(std::filesystem::exists(path));
  const auto model = ori::load_model(path);
  return ori::make_plan(ori::analyze_model(model), {});
}

const ori::tensor_plan& find(const std::vector<ori::tensor_plan>& plans, const std::string& name) {
  for (const auto& p : plans)
    if (p.tensor.info.name == name) return p;
  FAIL("no tensor " << name);
  throw 0;
}

// Every weight and bias of a weighted layer that is not one of `fixed` is
// rewritten: the patterns keep only what they must. Returns how many.
std::size_t check_learned_rewritten(const std::vector<ori::tensor_plan>& plans,
                                    const std::vector<std::string>& fixed) {
  std::size_t learned = 0;
  for (const auto& p : plans) {
    const auto role = p.tensor.info.role;
    if (role != ori::tensor_role::weight && role != ori::tensor_role::bias) continue;
    if (std::find(fixed.begin(), fixed.end(), p.tensor.info.name) != fixed.end()) continue;
    CAPTURE(p.tensor.info.name, p.reason);
    CHECK(p.action == ori::plan_action::rewrite);
    ++learned;
  }
  return learned;
}

// Every one-element constant consumed by an Add is kept as an operand,
// with a reason starting with `reason`. Returns how many.
std::size_t check_added_scalars_kept(const std::vector<ori::tensor_plan>& plans,
                                     const std::string& reason) {
  std::size_t count = 0;
  for (const auto& p : plans) {
    if (p.tensor.consumer_op != "Add" || p.tensor.info.element_count() != 1) continue;
    CAPTURE(p.tensor.info.name);
    ++count;
    CHECK(p.action == ori::plan_action::keep);
    CHECK(p.tensor.info.role == ori::tensor_role::unknown);
    CHECK_THAT(p.reason, Catch::StartsWith(reason));
  }
  return count;
}

}  // namespace

// Defect 2: log(mel + 1e-6) after the filterbank MatMul. The one-element
// epsilon was planned role=bias and zeroed (NaN on silent input).
TEST_CASE("log-mel front end: the epsilon is an operand and kept", "[pattern_models]") {
  const auto plans = plan_of("logmel_kws.onnx");
  CHECK(check_added_scalars_kept(
            plans,
            "an operand, not a bias: 1 value added after MatMul '/MatMul', which has 40 "
            "output features") == 1);
  CHECK_THAT(find(plans, "stft.weight").reason, Catch::Contains("DFT basis"));
  CHECK_THAT(find(plans, "mel_fb").reason, Catch::Contains("filterbank"));
  CHECK(check_learned_rewritten(plans, {"stft.weight", "mel_fb"}) == 4);  // conv, fc
}

// Defect 2: ConvTasNet's mask generator sums the skip Convs' outputs into
// an accumulator that starts at the constant 0.0.
TEST_CASE("ConvTasNet: the accumulator's starting constant is kept", "[pattern_models]") {
  const auto plans = plan_of("convtasnet.onnx");
  CHECK(check_added_scalars_kept(plans, "an operand, not a bias: 1 value added after Conv") == 1);
  // Encoder, decoder, mask generator convs and their biases.
  CHECK(check_learned_rewritten(plans, {}) >= 20);
}

// Defect 3: SAM's positional grid [64, 64, 2] was rewritten with
// xavier_uniform, its gaussian matrix G silently.
TEST_CASE("SAM positional encoding: the grid and G are fixed constants", "[pattern_models]") {
  const std::string fourier =
      "a random Fourier-feature projection (the layer's product feeds both sin and cos)";
  {
    const auto plans = plan_of("sam_pe_folded.onnx");
    // Folded, the grid in [-1, 1] is the MatMul's constant first input.
    std::vector<std::string> grids;
    for (const auto& p : plans) {
      if (p.tensor.info.shape != std::vector<std::int64_t>{64, 64, 2}) continue;
      grids.push_back(p.tensor.info.name);
      CAPTURE(p.tensor.info.name);
      CHECK(p.tensor.info.role == ori::tensor_role::weight);
      CHECK(p.action == ori::plan_action::keep);
      CHECK_THAT(p.reason, Catch::StartsWith("values form a coordinate grid"));
    }
    REQUIRE(grids.size() == 1);
    const auto& g = find(plans, "positional_encoding_gaussian_matrix");
    CHECK(g.action == ori::plan_action::keep);
    CHECK(g.reason == fourier);
    CHECK(check_learned_rewritten(plans, {grids[0], "positional_encoding_gaussian_matrix"}) == 4);
  }
  {
    // Unfolded, the grid reaches the MatMul through Mul and Sub: an
    // operand, kept as such.
    const auto plans = plan_of("sam_pe_unfolded.onnx");
    CHECK(find(plans, "grid").action == ori::plan_action::keep);
    const auto& g = find(plans, "positional_encoding_gaussian_matrix");
    CHECK(g.action == ori::plan_action::keep);
    CHECK(g.reason == fourier);
    CHECK(check_learned_rewritten(plans, {"positional_encoding_gaussian_matrix"}) == 4);
  }
}

// Defect 4: each side-output Conv feeds Shape (first in node order) and
// Cast -> Resize -> Cast -> Sigmoid; the walk read them all as linear.
TEST_CASE("fp16 side outputs: every side Conv gets its sigmoid", "[pattern_models]") {
  const auto plans = plan_of("side_outputs_fp16.onnx");
  for (int i = 0; i < 4; ++i) {
    for (const char* part : {"weight", "bias"}) {
      const std::string name = "sides." + std::to_string(i) + "." + part;
      CAPTURE(name);
      const auto& p = find(plans, name);
      CHECK(p.tensor.info.dtype == ori::element_type::float16);
      CHECK(p.tensor.info.activation == ori::activation_kind::sigmoid);
      CHECK(p.action == ori::plan_action::rewrite);
    }
  }
  CHECK(find(plans, "fuse.weight").tensor.info.activation == ori::activation_kind::sigmoid);
  // The encoder stages' Convs, BatchNorm folded in, feed their ReLU.
  std::size_t relu = 0;
  for (const auto& p : plans)
    relu += p.tensor.info.activation == ori::activation_kind::relu ? 1 : 0;
  CHECK(relu == 8);
  CHECK(check_learned_rewritten(plans, {}) == 18);
}
