// The library pipeline (onnx_reinit/reinit.h) against the command: the same
// arguments give the same model bytes and the same report, whatever the
// argument kind (seed and rules, --only, presets, --from with --map,
// --external-data, --calibrate lsuv with --inspect); errors are thrown, not
// printed, and a failed run writes nothing; the runtime takes its batch
// from memory as from a --data directory.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <random>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/reinit.h"
#include "support/cli_runner.h"
#include "support/onnx_builder.h"

namespace ori = onnx_reinit;
using namespace ori::test;
using json = nlohmann::ordered_json;

namespace {

// x[N,16] -> Gemm(fc0) -> Relu -> Gemm(fc1) -> Relu -> Gemm(head), with
// PyTorch-like values; `prefix` names the first two layers.
onnx::ModelProto mlp(const std::string& prefix = "", int seed = 3, std::int64_t classes = 4) {
  graph_builder g;
  g.add_input("x", {-1, 16});
  std::mt19937 gen(static_cast<unsigned>(seed));
  std::uniform_real_distribution<float> u(-0.25f, 0.25f);
  auto values = [&](std::size_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = u(gen);
    return v;
  };
  std::string h = "x";
  for (int i = 0; i < 3; ++i) {
    const bool head = i == 2;
    const std::string n = head ? std::string("head") : fmt::format("{}fc{}", prefix, i);
    const std::int64_t out = head ? classes : 16;
    g.add_initializer(n + ".weight", {out, 16}, values(static_cast<std::size_t>(out * 16)));
    g.add_initializer(n + ".bias", {out}, values(static_cast<std::size_t>(out)));
    g.add_node("Gemm", {h, n + ".weight", n + ".bias"}, {n + ".z"},
               {make_attribute("transB", std::int64_t{1})});
    h = n + ".z";
    if (!head) {
      g.add_node("Relu", {h}, {n + ".a"});
      h = n + ".a";
    }
  }
  g.add_output(h, {-1, classes});
  return g.model();
}

const ori::registry& strategies() {
  static const ori::registry r = [] {
    ori::plugin_options o;
    o.dirs.emplace_back(ONNX_REINIT_BUILD_PLUGIN_DIR);
    return ori::load_strategies(o);
  }();
  return r;
}

// One argument set as the command's flags and as the library's options.
struct case_t {
  std::string label;
  std::vector<std::string> flags;
  ori::reinit_options options;
  std::string external_data;
};

std::vector<case_t> cases(const fs::path& dir) {
  std::vector<case_t> out;
  {
    case_t c{"seed and rules", {"--seed", "7", "--rule", "*.bias=normal(std=0.1)"}, {}, {}};
    c.options.seed = 7;
    c.options.rules = {"*.bias=normal(std=0.1)"};
    out.push_back(c);
  }
  {
    case_t c{"only and torch fans", {"--only", "fc*", "--fan-convention", "torch"}, {}, {}};
    c.options.only = {"fc*"};
    c.options.convention = ori::fan_convention::torch;
    out.push_back(c);
  }
  {
    case_t c{"preset", {"--preset", "small-head", "--seed", "2"}, {}, {}};
    c.options.presets = {"small-head"};
    c.options.seed = 2;
    out.push_back(c);
  }
  {
    case_t c{"from with a map",
             {"--from", (dir / "pretrained.onnx").string(), "--map", "backbone.=", "--seed", "5"},
             {},
             {}};
    c.options.from = dir / "pretrained.onnx";
    c.options.maps = {"backbone.="};
    c.options.seed = 5;
    out.push_back(c);
  }
  {
    case_t c{
        "external data", {"--external-data", "weights.bin", "--threads", "1"}, {}, "weights.bin"};
    c.options.threads = 1;
    out.push_back(c);
  }
#ifndef ONNX_REINIT_NO_RUNTIME
  {
    case_t c{"lsuv with inspect",
             {"--calibrate", "lsuv", "--inspect", "--json", "--batch", "64", "--seed", "4"},
             {},
             {}};
    c.options.calibrate = "lsuv";
    c.options.inspect = true;
    c.options.batch = 64;
    c.options.seed = 4;
    out.push_back(c);
  }
#endif
  return out;
}

}  // namespace

TEST_CASE("the pipeline writes the command's bytes and report for the same arguments", "[reinit]") {
  temp_dir dir;
  const fs::path model = dir / "m.onnx";
  save_proto(mlp(), model);
  save_proto(mlp("backbone.", 11, 6), dir / "pretrained.onnx");
  for (const case_t& c : cases(dir.path())) {
    SECTION(c.label) {
      const fs::path cli_dir = dir / ("cli-" + c.label), lib_dir = dir / ("lib-" + c.label);
      fs::create_directories(cli_dir);
      fs::create_directories(lib_dir);
      std::vector<std::string> args{model.string(),
                                    "-o",
                                    (cli_dir / "out.onnx").string(),
                                    "--report",
                                    (cli_dir / "report.json").string(),
                                    "-q"};
      args.insert(args.end(), c.flags.begin(), c.flags.end());
      const run_result r = run_cli(args);
      INFO(r.err);
      REQUIRE(r.status == 0);

      ori::reinit_plan plan = ori::plan_reinit(model, c.options, strategies());
      ori::reinit_output output;
      output.path = lib_dir / "out.onnx";
      output.report = lib_dir / "report.json";
      output.external_data = c.external_data;
      const ori::reinit_result result = ori::execute_reinit(plan, output);

      CHECK(read_file(lib_dir / "out.onnx") == read_file(cli_dir / "out.onnx"));
      if (!c.external_data.empty())
        CHECK(read_file(lib_dir / c.external_data) == read_file(cli_dir / c.external_data));
      // The reports differ only in the output they do not name: equal.
      CHECK(read_file(lib_dir / "report.json") == read_file(cli_dir / "report.json"));
      CHECK(result.report_json == read_file(cli_dir / "report.json"));
      if (c.options.inspect) CHECK(result.inspection_json() == r.out);
      if (c.external_data.empty()) {
        // The same run into memory (reinit_output::memory): the bytes -o
        // writes, for the model loaded from its file (payloads spliced in
        // place) and from bytes (the proto serialised).
        const std::string input = read_file(model);
        for (const bool from_bytes : {false, true}) {
          INFO("from bytes: " << from_bytes);
          ori::reinit_plan again =
              from_bytes ? ori::plan_reinit(ori::load_model_from_bytes(
                                                std::as_bytes(std::span(input)), model.string()),
                                            model.string(), c.options, strategies())
                         : ori::plan_reinit(model, c.options, strategies());
          std::vector<std::byte> bytes;
          std::size_t asked = 0;
          ori::reinit_output memory;
          memory.memory = [&](std::size_t n) {
            ++asked;
            bytes.resize(n);
            return std::span<std::byte>(bytes);
          };
          const ori::reinit_result in_memory = ori::execute_reinit(again, memory);
          CHECK(asked == 1);
          CHECK(std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()) ==
                read_file(cli_dir / "out.onnx"));
          CHECK(in_memory.report_json == result.report_json);
        }
      }
      if (!c.options.from.empty()) {
        REQUIRE(plan.header.transfer);
        CHECK(plan.header.transfer->transferred == 4);  // fc0, fc1: weight and bias
        CHECK(fmt::format("{}", *plan.header.transfer) ==
              fmt::format("from {}: 4 transferred, 2 mismatched, 0 kept, 0 unused",
                          (dir / "pretrained.onnx").string()));
      }
    }
  }
}

TEST_CASE("--plan --json is the planning step's report", "[reinit]") {
  temp_dir dir;
  save_proto(mlp(), dir / "m.onnx");
  const run_result r = run_cli({(dir / "m.onnx").string(), "--plan", "--json", "--seed", "3"});
  REQUIRE(r.status == 0);
  ori::reinit_options o;
  o.seed = 3;
  const ori::reinit_plan plan = ori::plan_reinit(dir / "m.onnx", o, strategies());
  CHECK(plan.report_json() == r.out);
  CHECK(fmt::format("{}", plan) ==
        fmt::format("{}: 6 tensors: 6 rewrite, 0 transfer, 0 keep; seed 3",
                    (dir / "m.onnx").string()));
  // 16x16 + 16 + 16x16 + 16 + 4x16 + 4 float32 values.
  CHECK(plan.rewritten_bytes() == 4u * (256 + 16 + 256 + 16 + 64 + 4));
}

TEST_CASE("errors are thrown with the command's messages, and nothing is written", "[reinit]") {
  temp_dir dir;
  const fs::path model = dir / "m.onnx";
  save_proto(mlp(), model);
  ori::reinit_options o;
  SECTION("a bad rule") {
    o.rules = {"*.weight=no_such_strategy()"};
    CHECK_THROWS_AS(ori::plan_reinit(model, o, strategies()), ori::error);
    o.rules = {"*.weight"};
    CHECK_THROWS_AS(ori::plan_reinit(model, o, strategies()), ori::rule_error);
  }
  SECTION("a missing model") {
    CHECK_THROWS_AS(ori::plan_reinit(dir / "none.onnx", o, strategies()), ori::error);
  }
  SECTION("--map without --from") {
    o.maps = {"a.=b."};
    CHECK_THROWS_WITH(ori::plan_reinit(model, o, strategies()),
                      "--map goes with --from PRETRAINED");
  }
  SECTION("options that need a rewrite or --inspect") {
    o.calibrate = "lsuv";
    CHECK_THROWS_AS(ori::check_reinit_options(o, false), ori::usage_error);
    o.calibrate = "other";
    CHECK_THROWS_AS(ori::check_reinit_options(o, true), ori::usage_error);
    o.calibrate.clear();
    o.plot = dir / "p.svg";
    o.inspect = true;
    CHECK_THROWS_WITH(ori::check_reinit_options(o, true),
                      "--plot needs a renderer (reinit_options::renderer)");
    CHECK_THROWS_AS(ori::parse_input_shape("x:1x16"), ori::usage_error);
  }
  SECTION("a report that cannot be written: no model either") {
    ori::reinit_plan plan = ori::plan_reinit(model, o, strategies());
    ori::reinit_output output;
    output.path = dir / "out.onnx";
    output.report = dir / "missing" / "report.json";
    CHECK_THROWS_AS(ori::execute_reinit(plan, output), ori::error);
    CHECK_FALSE(fs::exists(dir / "out.onnx"));
    // The failed run rewrote the plan's model in memory: it is not run twice.
    output.report.clear();
    CHECK_THROWS_WITH(ori::execute_reinit(plan, output),
                      Catch::Contains("this plan was executed already"));
    CHECK_FALSE(fs::exists(dir / "out.onnx"));
  }
#ifndef ONNX_REINIT_NO_RUNTIME
  SECTION("a runtime failure: nothing written") {
    o.calibrate = "lsuv";
    o.input_shapes["nothing"] = {1, 16};
    ori::reinit_plan plan = ori::plan_reinit(model, o, strategies());
    ori::reinit_output output;
    output.path = dir / "out.onnx";
    CHECK_THROWS_WITH(ori::execute_reinit(plan, output), "no graph input named 'nothing'");
    CHECK_FALSE(fs::exists(dir / "out.onnx"));
  }
#endif
}

#ifndef ONNX_REINIT_NO_RUNTIME
TEST_CASE("the batch in memory is inspected as the same batch from a --data file", "[reinit]") {
  temp_dir dir;
  save_proto(mlp(), dir / "m.onnx");
  // 8x16 float32 values, as x.npy (version 1.0, data at byte 128).
  std::vector<float> values(8 * 16);
  for (std::size_t i = 0; i < values.size(); ++i)
    values[i] = std::sin(static_cast<float>(i) * 0.37f) * 2.0f;
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (8, 16), }";
  header.resize(128 - 10 - 1, ' ');
  header += '\n';
  std::string npy = std::string("\x93NUMPY\x01\x00", 8);
  npy += static_cast<char>(header.size() & 0xff);
  npy += static_cast<char>(header.size() >> 8);
  npy += header;
  npy.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  fs::create_directories(dir / "data");
  write_file(dir / "data" / "x.npy", npy);

  const ori::loaded_model model = ori::load_model(dir / "m.onnx");
  ori::reinit_options from_file;
  from_file.inspect = true;
  from_file.data_dir = dir / "data";
  ori::reinit_options in_memory;
  in_memory.inspect = true;
  ori::input_array x{"float", {8, 16}, std::vector<std::byte>(values.size() * sizeof(float))};
  std::memcpy(x.bytes.data(), values.data(), x.bytes.size());
  in_memory.data["x"] = x;
  const ori::inspection a = ori::inspect_reinit(model, from_file);
  const ori::inspection b = ori::inspect_reinit(model, in_memory);
  REQUIRE(a.layers.size() == 3);
  CHECK(a.batch == 8);
  CHECK(b.inputs.at(0).source == "array in memory");
  for (std::size_t i = 0; i < a.layers.size(); ++i) CHECK(a.layers[i].std == b.layers[i].std);
  // What the command prints for the file.
  const run_result r = run_cli(
      {(dir / "m.onnx").string(), "--inspect", "--json", "--data", (dir / "data").string()});
  REQUIRE(r.status == 0);
  CHECK(ori::inspection_json(a) == r.out);

  in_memory.data["x"].dtype = "int64";
  CHECK_THROWS_WITH(ori::inspect_reinit(model, in_memory),
                    "input 'x' is float, the array holds int64");
  in_memory.data["x"].dtype = "float";
  in_memory.data["x"].bytes.pop_back();
  CHECK_THROWS_AS(ori::inspect_reinit(model, in_memory), ori::usage_error);
}
#endif

TEST_CASE("the position while external tensors stream never wraps and stays in the total",
          "[reinit][progress]") {
  using onnx_reinit::streamed_position;
  // 100 bytes sampled inline, then 300 streamed: 100 + done.
  CHECK(streamed_position(400, 300, 0) == 100);
  CHECK(streamed_position(400, 300, 150) == 250);
  CHECK(streamed_position(400, 300, 300) == 400);
  // --from with external data once counted transferred tensors in the
  // writer's `streamed` but not in the bar's total: total - streamed + done
  // wrapped around to ~2^64. Clamped, the bar stays in [0, total] and
  // still moves forward.
  CHECK(streamed_position(100, 300, 0) == 0);
  CHECK(streamed_position(100, 300, 50) == 50);
  CHECK(streamed_position(100, 300, 300) == 100);
  CHECK(streamed_position(100, 50, 80) == 100);  // done past streamed
  CHECK(streamed_position(0, 10, 5) == 0);
}

TEST_CASE("a model with external data is not written into memory, and nothing is written",
          "[reinit]") {
  temp_dir dir;
  save_proto(mlp(), dir / "m.onnx");
  {
    ori::reinit_plan plan = ori::plan_reinit(dir / "m.onnx", {}, strategies());
    ori::reinit_output output;
    output.path = dir / "ext.onnx";
    output.external_data = "ext.data";
    ori::execute_reinit(plan, output);
  }
  const std::string data = read_file(dir / "ext.data");
  ori::reinit_plan plan = ori::plan_reinit(dir / "ext.onnx", {}, strategies());
  bool asked = false;
  ori::reinit_output memory;
  memory.memory = [&](std::size_t n) {
    asked = true;
    static std::vector<std::byte> bytes;
    bytes.resize(n);
    return std::span<std::byte>(bytes);
  };
  CHECK_THROWS_WITH(ori::execute_reinit(plan, memory),
                    Catch::Contains("a model with external data is written to files"));
  CHECK(!asked);
  CHECK(read_file(dir / "ext.data") == data);

  // Memory and a path are one output or the other.
  ori::reinit_plan other = ori::plan_reinit(dir / "m.onnx", {}, strategies());
  memory.path = dir / "both.onnx";
  CHECK_THROWS_AS(ori::execute_reinit(other, memory), ori::usage_error);
  CHECK(!fs::exists(dir / "both.onnx"));
}
