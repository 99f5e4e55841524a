// The command line's recipes: --list-presets, --print-policy --preset,
// --preset in a plan and its refusals, and the residual positions --plan
// and the report show, on the PyTorch reference exports.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/cli_runner.h"
#include "support/reference_models.h"

namespace fs = std::filesystem;
using onnx_reinit::test::check_error;
using onnx_reinit::test::contains;
using onnx_reinit::test::run_cli;

namespace {

std::string reference(const std::string& file) {
  return onnx_reinit::test::reference_model(file).string();
}

}  // namespace

TEST_CASE("--list-presets shows every preset with its reference and formula", "[cli]") {
  const auto r = run_cli({"--list-presets"});
  CHECK(r.status == 0);
  for (const char* name : {"zero-init-residual\n", "fixup\n", "gpt2\n", "skipinit\n", "rezero\n",
                           "layerscale\n", "small-head\n"})
    CHECK(contains(r.out, name));
  CHECK(contains(r.out, "Goyal et al. 2017"));
  CHECK(contains(r.out, "L^(-1/(2m-2))"));
}

TEST_CASE("--print-policy --preset prints the preset's rules before the policy", "[cli]") {
  const auto r = run_cli({"--print-policy", "--preset", "gpt2"});
  CHECK(r.status == 0);
  const auto preset = r.out.find("residual:last&role:weight=normal(mean=0,std=0.02/sqrt(L))");
  const auto policy = r.out.find("# The default policy");
  CHECK(preset != std::string::npos);
  CHECK(policy != std::string::npos);
  CHECK(preset < policy);
}

TEST_CASE("--print-policy --preset deepnet prints its attention rules", "[cli]") {
  const auto r = run_cli({"--print-policy", "--preset", "deepnet(architecture=encoder)"});
  REQUIRE(r.status == 0);
  CHECK(r.out.find("attention:query|key&role:weight=xavier_normal(gain=1)\n") != std::string::npos);
  CHECK(
      r.out.find("attention:value|output|ffn&role:weight=xavier_normal(gain=(8*layers)^(-1/4))") !=
      std::string::npos);
}

TEST_CASE("--plan shows each tensor's branch and position", "[cli]") {
  const auto r = run_cli({reference("resnet18_train.onnx"), "--plan"});
  CHECK(r.status == 0);
  CHECK(contains(r.out, "[branch 5 of 8, layer 2 of 2]"));
  CHECK(contains(r.out, "[branch 8 of 8, last norm]"));
  CHECK(contains(r.out, "[output layer]"));
  const auto z = run_cli(
      {reference("resnet18_train.onnx"), "--plan", "--json", "--preset", "zero-init-residual"});
  REQUIRE(z.status == 0);
  const auto report = nlohmann::json::parse(z.out);
  int zeros = 0;
  for (const auto& t : report["tensors"])
    if (t["strategy"] == "zeros" && t["role"] == "norm_scale") {
      ++zeros;
      CHECK(t["residual"].get<std::string>().ends_with("last norm"));
      CHECK(t["rule"] == "residual:norm&role:norm_scale=zeros");
    }
  CHECK(zeros == 8);
}

TEST_CASE("presets that cannot apply are refused with exit 2, writing nothing", "[cli]") {
  onnx_reinit::test::temp_dir dir;
  const auto out = (dir / "out.onnx").string();
  check_error(
      run_cli({reference("resnet18_eval.onnx"), "-o", out, "--preset", "zero-init-residual"}), 2,
      {"zero-init-residual", "normalization", "--preset zero-init-residual"});
  check_error(run_cli({reference("resnet18_train.onnx"), "-o", out, "--preset", "fixup"}), 2,
              {"without normalization"});
  check_error(run_cli({reference("resnet18_train.onnx"), "--plan", "--preset", "zero_init"}), 2,
              {"unknown preset 'zero_init'"});
  check_error(run_cli({reference("resnet18_train.onnx"), "--plan", "--rule", "residual:end=zeros"}),
              2, {"unknown residual 'end'"});
  check_error(
      run_cli({reference("encoder_split_eval.onnx"), "-o", out, "--preset", "deepnet"}), 2,
      {"does not tell an encoder from a decoder", "--preset 'deepnet(architecture=encoder)'"});
  check_error(run_cli({reference("vit_eval.onnx"), "-o", out, "--preset", "t-fixup"}), 2,
              {"fused q/k/v projection"});
  CHECK_FALSE(fs::exists(out));
}

TEST_CASE("--from copies matching tensors and says what it could not use", "[cli]") {
  onnx_reinit::test::temp_dir dir;
  const auto out = (dir / "out.onnx").string();
  const auto report = (dir / "report.json").string();
  // The same architecture in eval form: BatchNorm folded, so the convolutions'
  // names and the norms do not match; fc.weight and fc.bias do.
  const auto r = run_cli({reference("resnet18_train.onnx"), "-o", out, "--report", report, "--from",
                          reference("resnet18_eval.onnx")});
  INFO(r.err);
  REQUIRE(r.status == 0);
  const auto j = nlohmann::json::parse(onnx_reinit::test::read_file(report));
  std::vector<std::string> transferred;
  for (const auto& t : j["tensors"])
    if (t["action"] == "transferred") transferred.push_back(t["name"]);
  CHECK(transferred == std::vector<std::string>{"fc.weight", "fc.bias"});
  CHECK(j["transfer"]["transferred"] == 2);
  CHECK_FALSE(j["transfer"]["unused"].empty());
  CHECK(contains(r.err, "transfer from"));
  check_error(run_cli({reference("resnet18_train.onnx"), "--plan", "--map", "a=b"}), 2,
              {"--map goes with --from"});
  check_error(run_cli({reference("resnet18_train.onnx"), "-o", out, "--from", out}), 2,
              {"refusing to overwrite the pretrained model"});
  // Conflicting maps: one OLD prefix to two NEW ones, or two pretrained
  // tensors onto one model tensor; nothing written.
  fs::remove(out);
  check_error(run_cli({reference("resnet18_train.onnx"), "-o", out, "--from",
                       reference("resnet18_eval.onnx"), "--map", "fc=head", "--map", "fc=B"}),
              2, {"--map 'fc=head' and --map 'fc=B'", "(command line)"});
  check_error(
      run_cli({reference("resnet18_train.onnx"), "-o", out, "--from",
               reference("resnet18_eval.onnx"), "--map", "fc.weight=x", "--map", "fc.bias=x"}),
      2, {"'fc.weight' (by --map 'fc.weight=x')", "'fc.bias' (by --map 'fc.bias=x')", "into 'x'"});
  CHECK_FALSE(fs::exists(out));
}
