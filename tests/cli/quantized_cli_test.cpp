// The command on a per-channel int8 QDQ model in ONNX Runtime's layout
// (tools/scripts/make_qdq_model.py, written by the make_qdq_model fixture):
// quantized weights are kept with one line saying so, a rule naming a
// tensor the tool never rewrites is an error, and --quantized requantize
// rewrites the weights, biases and their scales into a model that still
// runs, with the planned spread and every code in range.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <onnx/checker.h>
#include <nlohmann/json.hpp>

#include "onnx_reinit/model_io.h"
#include "support/cli_runner.h"
#include "support/sample_stats.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;
using json = nlohmann::json;
using ori::test::check_error;
using ori::test::contains;
using ori::test::lines_of;
using ori::test::read_file;
using ori::test::run_cli;
using ori::test::temp_dir;

namespace {

fs::path qdq_model() {
  const fs::path path = fs::path(ONNX_REINIT_QDQ_MODELS) / "qdq_cnn.onnx";
  INFO("run the make_qdq_model test (ctest fixture) first");
  REQUIRE(fs::exists(path));
  return path;
}

// The layers of the model: quantized weight and bias, and what the
// documented policy (README, docs/DESIGN.md section 7) draws for the weight:
// kaiming_normal(fan_in) before the ReLUs ONNX Runtime folded into the
// QuantizeLinear after conv1, conv2 and fc1, xavier_uniform(gain=1) for the
// linear output layer fc2. Fans from the float architecture.
struct layer {
  std::string name;
  double fan_in, fan_out;
  bool relu;
  std::size_t channels;
};
const std::vector<layer> layers = {{"conv1", 3 * 9, 16 * 9, true, 16},
                                   {"conv2", 16 * 9, 32 * 9 / 2, true, 32},
                                   {"fc1", 32, 64, true, 64},
                                   {"fc2", 64, 10, false, 10}};

double planned_std(const layer& l) {
  return l.relu ? std::sqrt(2.0) / std::sqrt(l.fan_in) : std::sqrt(2.0 / (l.fan_in + l.fan_out));
}

const onnx::TensorProto& tensor_of(const ori::loaded_model& m, const std::string& name) {
  for (const ori::const_model_tensor& t : ori::collect_model_tensors(m.proto()))
    if (t.ref.name == name) return *t.proto;
  FAIL("no tensor " << name);
  throw;
}

std::vector<double> values_of(const ori::loaded_model& m, const std::string& name) {
  auto v = ori::decode_tensor_values(tensor_of(m, name), &m, std::size_t{1} << 24);
  REQUIRE(v);
  return *v;
}

std::vector<float> floats_of(const ori::loaded_model& m, const std::string& name) {
  return ori::read_tensor_values<float>(m, tensor_of(m, name));
}

std::map<std::string, std::string> bytes_by_name(const ori::loaded_model& m) {
  std::map<std::string, std::string> out;
  for (const ori::const_model_tensor& t : ori::collect_model_tensors(m.proto())) {
    const ori::tensor_bytes_view v = ori::tensor_bytes(m, *t.proto);
    out[t.ref.name].assign(reinterpret_cast<const char*>(v.bytes().data()), v.size());
  }
  return out;
}

// Dequantized values of a per-channel tensor quantized along axis 0 (every
// tensor of this model is: Conv weights, Gemm weights with transB=1,
// biases): (q - z) * scale of its row.
std::vector<double> dequantized(const ori::loaded_model& m, const std::string& codes,
                                const std::string& scale, const std::string& zero_point) {
  const std::vector<double> q = values_of(m, codes), z = values_of(m, zero_point);
  const std::vector<float> s = floats_of(m, scale);
  const std::size_t per_row = q.size() / s.size();
  std::vector<double> out(q.size());
  for (std::size_t i = 0; i < q.size(); ++i)
    out[i] = (q[i] - z[i / per_row]) * static_cast<double>(s[i / per_row]);
  return out;
}

// Relative bound on |sample std / std - 1| for n iid draws of kurtosis k:
// the sample variance has relative standard error sqrt((k - 1) / n), the
// std half that; 6 of them make a false failure below 1e-8. The smallest
// tensor here (conv1, 432 values, normal) gives 0.204, so a factor 2 in
// variance (1.414 in std) fails every layer. Rounding to 255 levels adds a
// relative variance near (max|w| / 127)^2 / 12 / var < 1e-4: negligible.
double std_tolerance(std::size_t n, double kurtosis) {
  return 6.0 * std::sqrt((kurtosis - 1.0) / (4.0 * static_cast<double>(n)));
}

std::size_t count_lines_with(const std::string& text, const std::string& part) {
  const std::vector<std::string> lines = lines_of(text);
  return static_cast<std::size_t>(std::count_if(
      lines.begin(), lines.end(), [&](const std::string& l) { return contains(l, part); }));
}

}  // namespace

TEST_CASE("quantized weights are kept by default, with one line saying so", "[cli][quantized]") {
  temp_dir dir;
  const fs::path in = qdq_model();
  const auto r = run_cli({in.string(), "-o", (dir / "out.onnx").string()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  // 4 weights and 4 biases.
  CHECK(count_lines_with(r.err,
                         "onnx-reinit: 8 quantized weights kept; --quantized requantize "
                         "rewrites them") == 1);
  CHECK(count_lines_with(r.err, "quantized") == 1);
  const ori::loaded_model before = ori::load_model(in), after = ori::load_model(dir / "out.onnx");
  CHECK(bytes_by_name(before) == bytes_by_name(after));

  const auto plan = run_cli({in.string(), "--plan", "--json"});
  REQUIRE(plan.status == 0);
  std::size_t kept = 0;
  const json report = json::parse(plan.out);
  for (const json& t : report["tensors"]) {
    if (!t["name"].get<std::string>().ends_with("_quantized")) continue;
    CHECK(t["action"] == "kept");
    CHECK(t["reason"] == "quantized weight; --quantized requantize rewrites it");
    ++kept;
  }
  CHECK(kept == 8);
}

TEST_CASE("a rule naming a tensor the tool never rewrites is an error", "[cli][quantized]") {
  const std::string in = qdq_model().string();
  SECTION("an int8 weight without --quantized requantize") {
    check_error(run_cli({in, "--plan", "--rule", "conv1.weight_quantized=normal(std=0.1)"}), 2,
                {"conv1.weight_quantized=normal(std=0.1)", "'conv1.weight_quantized'",
                 "--quantized requantize", "--rule 1"});
  }
  SECTION("a shape constant (int64)") {
    check_error(run_cli({in, "--plan", "--rule", "/Constant_output_0=normal(std=1)"}), 2,
                {"'/Constant_output_0'", "int64", "never rewritten", "--rule 1"});
  }
  SECTION("the scale of a quantized weight") {
    check_error(run_cli({in, "--plan", "--rule", "conv1.weight_scale=constant(value=1)"}), 2,
                {"'conv1.weight_scale'", "quantization scale", "--rule 1"});
  }
  SECTION("a glob picking a weight with the later rules") {
    check_error(run_cli({in, "--plan", "--rule", "fc*=normal(std=0.1)"}), 2,
                {"'fc1.weight_quantized'", "--quantized requantize"});
  }
  SECTION("but a keep rule, or a rule of `*`, may match them") {
    CHECK(run_cli({in, "--plan", "--rule", "conv1.*=keep"}).status == 0);
    CHECK(run_cli({in, "--plan", "--rule", "*&role:weight=normal(std=0.1)"}).status == 0);
  }
}

TEST_CASE("requantize: quantized weights, biases and their scales are rewritten",
          "[cli][quantized]") {
  temp_dir dir;
  const fs::path in = qdq_model();
  const fs::path out = dir / "out.onnx";
  const auto r = run_cli({in.string(), "-o", out.string(), "--quantized", "requantize", "--seed",
                          "7", "--report", (dir / "report.json").string()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(count_lines_with(r.err, "quantized weights kept") == 0);

  const ori::loaded_model before = ori::load_model(in), after = ori::load_model(out);
  onnx::checker::check_model(after.proto());

  SECTION("dequantized weights have the planned std; codes in range, zero points kept") {
    for (const layer& l : layers) {
      const std::string w = l.name + ".weight";
      const std::vector<double> v =
          dequantized(after, w + "_quantized", w + "_scale", w + "_zero_point");
      const double expected = planned_std(l);
      INFO(w << ": n=" << v.size() << " std " << ori::test::std_of(v) << " planned " << expected);
      CHECK(std::abs(ori::test::std_of(v) / expected - 1.0) <
            std_tolerance(v.size(), l.relu ? 3.0 : 1.8));
      for (double q : values_of(after, w + "_quantized")) CHECK((q >= -127 && q <= 127));
      // Symmetric: one channel's largest code is 127 in magnitude.
      const std::vector<double> codes = values_of(after, w + "_quantized");
      CHECK(std::abs(*std::max_element(codes.begin(), codes.end(), [](double a, double b) {
              return std::abs(a) < std::abs(b);
            })) == 127.0);
      CHECK(values_of(after, w + "_zero_point") == values_of(before, w + "_zero_point"));
      CHECK(floats_of(after, w + "_scale").size() == l.channels);
    }
  }

  SECTION("int32 biases: zeros, scale = input scale x weight scale as float32") {
    const std::map<std::string, std::string> input_of = {{"conv1", "input"},
                                                         {"conv2", "/Relu_output_0"},
                                                         {"fc1", "/Reshape_output_0"},
                                                         {"fc2", "/Relu_2_output_0"}};
    for (const layer& l : layers) {
      const std::string b = l.name + ".bias_quantized";
      for (double q : values_of(after, b)) CHECK(q == 0.0);
      const float input_scale = floats_of(after, input_of.at(l.name) + "_scale").at(0);
      CHECK(floats_of(after, input_of.at(l.name) + "_scale") ==
            floats_of(before, input_of.at(l.name) + "_scale"));
      const std::vector<float> ws = floats_of(after, l.name + ".weight_scale");
      const std::vector<float> bs = floats_of(after, b + "_scale");
      REQUIRE(bs.size() == ws.size());
      for (std::size_t c = 0; c < bs.size(); ++c) CHECK(bs[c] == input_scale * ws[c]);
      CHECK(values_of(after, b + "_zero_point") == values_of(before, b + "_zero_point"));
    }
  }

  SECTION("the report lists exactly the tensors whose bytes changed") {
    const auto old_bytes = bytes_by_name(before), new_bytes = bytes_by_name(after);
    std::set<std::string> changed, rewritten;
    for (const auto& [name, bytes] : new_bytes)
      if (old_bytes.at(name) != bytes) changed.insert(name);
    const json report = json::parse(read_file(dir / "report.json"));
    for (const json& t : report["tensors"]) {
      if (t["action"] == "kept") continue;
      CHECK(t["action"] == "rewritten");
      rewritten.insert(t["name"].get<std::string>());
      const std::string notes = t["notes"].dump();
      INFO(t.dump());
      CHECK(contains(notes, "requantized"));
    }
    CHECK(changed == rewritten);
    CHECK(rewritten.size() == 16);  // 8 quantized tensors, 8 scales
  }

  SECTION("the model runs in ONNX Runtime") {
    const auto inspected = run_cli({out.string(), "--inspect", "--json"});
    INFO(inspected.err);
#ifdef ONNX_REINIT_NO_RUNTIME
    CHECK(inspected.status == 1);
#else
    REQUIRE(inspected.status == 0);
    // Every layer behind its DequantizeLinear is run and measured.
    const json inspection = json::parse(inspected.out);
    REQUIRE(inspection["layers"].size() == layers.size());
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const json& l = inspection["layers"][i];
      CHECK(l["name"] == layers[i].name + ".weight_quantized");
      CHECK(l["nonfinite"] == 0);
      CHECK(l["std"].get<double>() > 0.0);
    }
#endif
  }

  SECTION("the same seed gives the same bytes, any thread count") {
    const fs::path again = dir / "again.onnx";
    REQUIRE(run_cli({in.string(), "-o", again.string(), "--quantized", "requantize", "--seed", "7",
                     "--threads", "1"})
                .status == 0);
    CHECK(read_file(again) == read_file(out));
  }
}

TEST_CASE("requantize: rules naming quantized tensors apply", "[cli][quantized]") {
  temp_dir dir;
  const fs::path in = qdq_model();
  const fs::path out = dir / "out.onnx";
  const auto r = run_cli({in.string(), "-o", out.string(), "--quantized", "requantize", "--rule",
                          "fc1.weight_quantized=normal(std=0.05)", "--rule",
                          "role:bias=normal(std=0.1)", "--skip", "conv2.*"});
  INFO(r.err);
  REQUIRE(r.status == 0);
  const ori::loaded_model before = ori::load_model(in), after = ori::load_model(out);
  const std::vector<double> fc1 =
      dequantized(after, "fc1.weight_quantized", "fc1.weight_scale", "fc1.weight_zero_point");
  CHECK(std::abs(ori::test::std_of(fc1) / 0.05 - 1.0) < std_tolerance(fc1.size(), 3.0));
  // All 122 biases together, drawn N(0, 0.1) and quantized on a step far
  // below it.
  std::vector<double> biases;
  for (const std::string l : {"conv1", "fc1", "fc2"}) {
    const std::string b = l + ".bias_quantized";
    const std::vector<double> v = dequantized(after, b, b + "_scale", b + "_zero_point");
    biases.insert(biases.end(), v.begin(), v.end());
  }
  CHECK(std::abs(ori::test::std_of(biases) / 0.1 - 1.0) < std_tolerance(biases.size(), 3.0));
  // --skip keeps conv2's weight, bias and scales.
  const auto old_bytes = bytes_by_name(before), new_bytes = bytes_by_name(after);
  for (const std::string name : {"conv2.weight_quantized", "conv2.weight_scale",
                                 "conv2.bias_quantized", "conv2.bias_quantized_scale"})
    CHECK(old_bytes.at(name) == new_bytes.at(name));
}

TEST_CASE("requantize: --from never transfers the scales of requantized weights",
          "[cli][quantized]") {
  temp_dir dir;
  const fs::path in = qdq_model();
  const fs::path out = dir / "out.onnx";
  const auto r = run_cli({in.string(), "-o", out.string(), "--quantized", "requantize", "--from",
                          in.string(), "--report", (dir / "report.json").string()});
  INFO(r.err);
  REQUIRE(r.status == 0);
  const ori::loaded_model after = ori::load_model(out);
  // The scales written are those of the new codes: max|code| is 127 per
  // channel and the bias scales are the products with the new weight scales.
  for (const layer& l : layers) {
    const std::string w = l.name + ".weight";
    const std::vector<double> v =
        dequantized(after, w + "_quantized", w + "_scale", w + "_zero_point");
    CHECK(std::abs(ori::test::std_of(v) / planned_std(l) - 1.0) <
          std_tolerance(v.size(), l.relu ? 3.0 : 1.8));
  }
  const json report = json::parse(read_file(dir / "report.json"));
  for (const json& t : report["tensors"])
    if (t["name"].get<std::string>().ends_with("_scale") ||
        t["name"].get<std::string>().ends_with("_zero_point"))
      CHECK(t["action"] != "transferred");
}
