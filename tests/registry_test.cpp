// Registry tests: loading good and purpose-built bad plugins (each failure
// gives its own error kind and loading carries on), discovery order, schema
// metadata, parameter validation messages, create/fill and lifetimes.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/registry.h"
#ifdef ONNX_REINIT_HAVE_HOST_RNG
#include "onnx_reinit/random.h"
#include "onnx_reinit/sdk/rng.h"
#endif

namespace fs = std::filesystem;
using namespace onnx_reinit;
using Catch::Matchers::Contains;

namespace {

const fs::path fixture_dir = ONNX_REINIT_FIXTURE_PLUGIN_DIR;
const fs::path env_dir = ONNX_REINIT_FIXTURE_ENV_PLUGIN_DIR;

fs::path fixture(const std::string& name) {
  return fixture_dir / (name + ".so");
}

// A stand-in for the host RNG, so these tests do not depend on it: element i
// of a uniform fill is low + (high - low) * ((first + i) % 8) / 8.
void fake_uniform(const onnx_reinit_rng*, const onnx_reinit_span* out, double low, double high) {
  for (std::uint64_t i = 0; i < out->count; ++i) {
    double v = low + (high - low) * static_cast<double>((out->first + i) % 8) / 8.0;
    if (out->dtype == ONNX_REINIT_FLOAT32)
      static_cast<float*>(out->data)[i] = static_cast<float>(v);
    else
      static_cast<double*>(out->data)[i] = v;
  }
}
void fake_normal(const onnx_reinit_rng*, const onnx_reinit_span*, double, double) {}
void fake_truncated(const onnx_reinit_rng*, const onnx_reinit_span*, double, double, double,
                    double) {}
const onnx_reinit_rng_api fake_api = {sizeof(onnx_reinit_rng_api), fake_uniform, fake_normal,
                                      fake_truncated, nullptr};
const onnx_reinit_rng fake_rng = {{1, 2}, 0, &fake_api};

tensor_info matrix(std::string name, std::int64_t rows, std::int64_t cols) {
  tensor_info t;
  t.name = std::move(name);
  t.shape = {rows, cols};
  t.fan_in = static_cast<double>(cols);
  t.fan_out = static_cast<double>(rows);
  t.set_default_blocks();
  return t;
}

registry good_registry() {
  registry r;
  REQUIRE(r.load_file(fixture("good")));
  REQUIRE(r.load_errors().empty());
  return r;
}

std::vector<plugin_load_error> errors_for(const registry& r, const fs::path& path) {
  std::vector<plugin_load_error> out;
  for (const plugin_load_error& e : r.load_errors())
    if (fs::path(e.path).filename() == path.filename()) out.push_back(e);
  return out;
}

// Loads `name` after nothing else and expects exactly one error of `kind`.
plugin_load_error single_error(const std::string& name, plugin_load_error_kind kind) {
  registry r;
  CHECK_FALSE(r.load_file(fixture(name)));
  REQUIRE(r.load_errors().size() == 1);
  const plugin_load_error& e = r.load_errors().front();
  CHECK(e.kind == kind);
  CHECK(fs::path(e.path).filename() == fixture(name).filename());
  CHECK_FALSE(e.message.empty());
  CHECK(r.strategies().empty());
  CHECK(r.plugins().empty());
  return e;
}

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  FAIL("no exception");
  return {};
}

}  // namespace

TEST_CASE("a good plugin's metadata is copied without creating anything") {
  registry r = good_registry();
  REQUIRE(r.plugins().size() == 1);
  const plugin_info& p = r.plugins().front();
  CHECK(p.id == "fixture.good");
  CHECK(p.version == "1.2.3");
  CHECK(p.path == fs::canonical(fixture("good")).string());
  CHECK(p.strategies == std::vector<std::string>{"fixture_index", "fixture_params", "fixture_range",
                                                 "fixture_whole"});

  REQUIRE(r.strategies().size() == 4);
  const strategy_info* s = r.find("fixture_params");
  REQUIRE(s != nullptr);
  CHECK(s->summary == "every parameter type");
  CHECK(s->formula == "scale * count + 1000 flag + 10 mode");
  CHECK(s->elementwise);
  CHECK(s->plugin_id == "fixture.good");
  CHECK(s->plugin_path == p.path);
  REQUIRE(s->params.size() == 4);

  const param_info& scale = s->params[0];
  CHECK(scale.name == "scale");
  CHECK(scale.type == param_type::number);
  CHECK(scale.default_text() == "1");
  CHECK(scale.range_text() == "(0, inf)");
  CHECK(scale.help == "a positive float");
  const param_info& count = s->params[1];
  CHECK(count.type == param_type::integer);
  CHECK(count.default_text() == "3");
  CHECK(count.range_text() == "[1, 100]");
  const param_info& flag = s->params[2];
  CHECK(flag.type == param_type::boolean);
  CHECK(flag.default_text() == "false");
  CHECK(flag.range_text().empty());
  const param_info& mode = s->params[3];
  CHECK(mode.type == param_type::choice);
  CHECK(mode.choices == std::vector<std::string>{"a", "b", "c"});
  CHECK(mode.default_text() == "b");
  CHECK(mode.range_text() == "a|b|c");
  CHECK(to_string(mode.type) == "choice");

  CHECK(r.find("fixture_index")->params[1].range_text().empty());  // unbounded
  CHECK_FALSE(r.find("fixture_whole")->elementwise);
  CHECK(r.find("nope") == nullptr);
}

TEST_CASE("each bad plugin gives its own error kind") {
  using k = plugin_load_error_kind;
  CHECK_THAT(single_error("wrong_abi", k::abi_mismatch).message, Contains("999"));
  CHECK_THAT(single_error("small_descriptor", k::abi_mismatch).message, Contains("8 bytes"));
  CHECK_THAT(single_error("no_entry", k::no_entry_point).message,
             Contains("onnx_reinit_plugin_entry"));
  CHECK_THAT(single_error("null_entry", k::bad_descriptor).message, Contains("null"));
  CHECK_THAT(single_error("unresolved", k::cannot_open).message,
             Contains("onnx_reinit_fixture_undefined_function"));
  single_error("not_a_library", k::cannot_open);
  CHECK_THAT(single_error("missing_file", k::cannot_open).message, Contains("cannot open"));

  CHECK_THAT(single_error("bad_descriptor_1", k::bad_descriptor).message, Contains("(null)"));
  CHECK_THAT(single_error("bad_descriptor_2", k::bad_descriptor).message,
             Contains("default 5 is outside its range [0, 1]"));
  CHECK_THAT(single_error("bad_descriptor_3", k::bad_descriptor).message, Contains("'Bad-Name'"));
  CHECK_THAT(single_error("bad_descriptor_4", k::bad_descriptor).message,
             Contains("'fan_avg' is not one of fan_in|fan_out"));
  CHECK_THAT(single_error("bad_descriptor_5", k::bad_descriptor).message, Contains("fill"));
  CHECK_THAT(single_error("bad_descriptor_6", k::bad_descriptor).message,
             Contains("unknown type 17"));
  CHECK(to_string(k::duplicate_strategy) == "duplicate_strategy");
}

TEST_CASE("the host carries on after bad plugins") {
  registry r;
  for (const char* bad : {"wrong_abi", "no_entry", "null_entry", "unresolved", "not_a_library",
                          "bad_descriptor_1", "bad_descriptor_2", "throwing_factory"})
    r.load_file(fixture(bad));
  CHECK(r.load_errors().size() == 7);  // throwing_factory loads: it only fails on create
  CHECK(r.load_file(fixture("good")));
  CHECK(r.load_errors().size() == 7);
  CHECK(r.plugins().size() == 2);
  // A bad entry rejects its whole plugin, good siblings included.
  CHECK(r.find("fixture_bad_sibling") == nullptr);
  std::vector<float> out(4);
  r.create("fixture_index").fill(matrix("w", 2, 2), fake_rng, 0, std::span<float>(out));
  CHECK(out == std::vector<float>{0, 1, 2, 3});
}

TEST_CASE("a later duplicate strategy is reported; the plugin's other strategies load") {
  registry r = good_registry();
  CHECK(r.load_file(fixture("duplicate")));
  REQUIRE(r.load_errors().size() == 1);
  const plugin_load_error& e = r.load_errors().front();
  CHECK(e.kind == plugin_load_error_kind::duplicate_strategy);
  CHECK_THAT(e.message, Contains("'fixture_index'") && Contains("fixture.good"));
  CHECK(fs::path(e.path).filename() == "duplicate.so");
  CHECK(r.find("fixture_index")->plugin_id == "fixture.good");  // first found wins
  CHECK(r.find("fixture_extra")->plugin_id == "fixture.duplicate");
  REQUIRE(r.plugins().size() == 2);
  CHECK(r.plugins()[1].strategies == std::vector<std::string>{"fixture_extra"});
}

TEST_CASE("loading the same library twice is a no-op") {
  registry r = good_registry();
  CHECK(r.load_file(fixture_dir / "." / "good.so"));
  CHECK(r.load_file(fs::relative(fixture("good"))));
  r.load_directory(fixture_dir);
  CHECK(r.plugins().front().id == "fixture.good");
  CHECK(r.strategies().size() == 6);  // + fixture_extra, fixture_throws
  CHECK(errors_for(r, fixture("good")).empty());
  // Bad plugins are remembered too: no second report.
  std::size_t errors = r.load_errors().size();
  CHECK_FALSE(r.load_file(fixture("wrong_abi")));
  r.load_directory(fixture_dir);
  CHECK(r.load_errors().size() == errors);
}

TEST_CASE("a directory loads its .so files in name order") {
  registry r;
  r.load_directory(fixture_dir);
  // duplicate.so sorts before good.so, so it provides fixture_index.
  CHECK(r.find("fixture_index")->plugin_id == "fixture.duplicate");
  CHECK(r.find("fixture_params")->plugin_id == "fixture.good");
  CHECK(r.find("fixture_throws") != nullptr);
  CHECK(r.find("fixture_env") == nullptr);  // other directory

  std::map<plugin_load_error_kind, int> kinds;
  std::vector<std::string> files;
  for (const plugin_load_error& e : r.load_errors()) {
    ++kinds[e.kind];
    files.push_back(fs::path(e.path).filename().string());
  }
  using k = plugin_load_error_kind;
  CHECK(kinds[k::cannot_open] == 2);  // unresolved, not_a_library
  CHECK(kinds[k::no_entry_point] == 1);
  CHECK(kinds[k::abi_mismatch] == 2);
  CHECK(kinds[k::bad_descriptor] == 7);  // null_entry + 6 variants
  CHECK(kinds[k::duplicate_strategy] == 1);
  CHECK(std::is_sorted(files.begin(), files.end()));
  CHECK(std::find(files.begin(), files.end(), "README.txt") == files.end());

  registry missing;
  missing.load_directory(fixture_dir / "no_such_dir");
  REQUIRE(missing.load_errors().size() == 1);
  CHECK(missing.load_errors()[0].kind == k::cannot_open);
  missing.load_directory(fixture_dir / "no_such_dir", false);
  CHECK(missing.load_errors().size() == 1);
}

TEST_CASE("discovery: explicit paths, then ONNX_REINIT_PLUGIN_PATH, then the default") {
  std::string path = "/nonexistent/onnx-reinit::" + env_dir.string();
  REQUIRE(::setenv("ONNX_REINIT_PLUGIN_PATH", path.c_str(), 1) == 0);
  CHECK(environment_plugin_dirs() == std::vector<fs::path>{"/nonexistent/onnx-reinit", env_dir});

  discovery_options options;
  options.plugin_files = {fixture("duplicate")};
  options.plugin_dirs = {fixture_dir};
  options.use_default_dir = false;
  registry r = registry::discover(options);
  CHECK(r.find("fixture_env") != nullptr);
  CHECK(r.plugins().front().id == "fixture.duplicate");
  CHECK(r.find("fixture_index")->plugin_id == "fixture.duplicate");
  CHECK(errors_for(r, fixture("good")).size() == 1);  // its fixture_index came second
  // Missing environment directories are skipped silently.
  for (const plugin_load_error& e : r.load_errors()) CHECK_THAT(e.path, !Contains("nonexistent"));

  options.use_environment = false;
  CHECK(registry::discover(options).find("fixture_env") == nullptr);
  ::unsetenv("ONNX_REINIT_PLUGIN_PATH");

  // The defaults are relative to the executable and nothing else: no build
  // path is compiled in, so an installed program never loads plugins from
  // the tree it was built in. (The build tree is laid out like an install.)
  const fs::path exe_dir = fs::read_symlink("/proc/self/exe").parent_path();
  std::vector<fs::path> expected{(exe_dir / "../lib/onnx-reinit/plugins").lexically_normal()};
  const fs::path configured = (exe_dir / ONNX_REINIT_PLUGIN_DIR_FROM_BINDIR).lexically_normal();
  if (configured != expected.front()) expected.push_back(configured);
  CHECK(default_plugin_dirs() == expected);
}

TEST_CASE("parameters: defaults, text, typed values") {
  registry r = good_registry();
  std::vector<resolved_param> d = r.resolve("fixture_params");
  REQUIRE(d.size() == 4);
  CHECK(to_string(d) == "scale=1, count=3, flag=false, mode=b");
  CHECK(d[0].is_default);

  std::vector<resolved_param> t = r.resolve(
      "fixture_params",
      param_text_list{{"mode", "c"}, {"flag", "yes"}, {"scale", "+2.5"}, {"count", " 7 "}});
  CHECK(to_string(t) == "scale=2.5, count=7, flag=true, mode=c");
  CHECK_FALSE(t[0].is_default);

  std::vector<resolved_param> v =
      r.resolve("fixture_params",
                {{"scale", 2.5}, {"count", std::int64_t{7}}, {"flag", true}, {"mode", "c"}});
  CHECK(to_string(v) == to_string(t));
  // Integers for floats, integral doubles for integers.
  CHECK(to_string(r.resolve("fixture_params", {{"scale", 2}, {"count", 7.0}})) ==
        "scale=2, count=7, flag=false, mode=b");

  std::map<std::string, std::string> m{{"value", "2"}, {"offset", "-1"}};
  configured_strategy s = r.create("fixture_index", m);
  CHECK(s.description() == "fixture_index(value=2, offset=-1)");
  CHECK(s.params()[0].text() == "2");
}

TEST_CASE("parameter errors name the strategy, the parameter and what is allowed") {
  registry r = good_registry();
  auto error_of = [&](std::string name, param_text_list params) {
    return message_of([&] { r.create(name, params); });
  };
  CHECK_THROWS_AS(r.create("fixture_idnex"), unknown_strategy_error);
  CHECK_THAT(error_of("fixture_idnex", {}), Contains("did you mean 'fixture_index'"));
  CHECK_THROWS_AS(r.create("fixture_params", param_text_list{{"sclae", "1"}}), param_error);
  CHECK_THAT(error_of("fixture_params", {{"sclae", "1"}}), Contains("'fixture_params'") &&
                                                               Contains("'sclae'") &&
                                                               Contains("did you mean 'scale'"));
  CHECK_THAT(error_of("fixture_whole", {{"x", "1"}}), Contains("takes no parameters"));
  CHECK_THAT(error_of("fixture_params", {{"scale", "abc"}}),
             Contains("'scale' expects a number, got 'abc'"));
  CHECK_THAT(error_of("fixture_params", {{"scale", "nan"}}), Contains("finite"));
  CHECK_THAT(error_of("fixture_params", {{"count", "1.5"}}),
             Contains("'count' expects an integer, got '1.5'"));
  CHECK_THAT(error_of("fixture_params", {{"flag", "maybe"}}),
             Contains("'flag' expects true or false") && Contains("'maybe'"));
  CHECK_THAT(error_of("fixture_params", {{"scale", "0"}}),
             Contains("'scale' is out of range: got 0, allowed (0, inf)"));
  CHECK_THAT(error_of("fixture_params", {{"count", "101"}}), Contains("allowed [1, 100]"));
  CHECK_THAT(error_of("fixture_index", {{"value", "-1e9"}}), Contains("[-1000, 1000]"));
  CHECK_THAT(error_of("fixture_params", {{"mode", "bb"}}),
             Contains("must be one of a|b|c, got 'bb' (did you mean 'b'?)"));
  CHECK_THAT(error_of("fixture_params", {{"mode", "a"}, {"mode", "b"}}),
             Contains("more than once"));
  CHECK_THAT(message_of([&] {
               r.create("fixture_params", {{"count", 1.5}});
             }),
             Contains("expects an integer"));
  CHECK_THAT(message_of([&] {
               r.create("fixture_params", {{"scale", true}});
             }),
             Contains("expects a number, got the boolean true"));
  try {
    r.create("fixture_params", {{"count", "0"}});
  } catch (const param_error& e) {
    CHECK(e.where() == "fixture_params.count");
  }
  CHECK_THAT(message_of([] { registry().create("anything"); }), Contains("no strategies"));
}

TEST_CASE("plugin refusals and throwing factories become host errors") {
  registry r = good_registry();
  REQUIRE(r.load_file(fixture("throwing_factory")));
  CHECK_THROWS_AS(r.create("fixture_range", {{"low", 1}, {"high", 1}}), param_error);
  CHECK_THAT(message_of([&] {
               r.create("fixture_range", {{"low", 1}, {"high", 1}});
             }),
             Contains("fixture_range") && Contains("low must be below high"));
  CHECK_THROWS_AS(r.create("fixture_throws"), strategy_error);
  CHECK_THAT(message_of([&] { r.create("fixture_throws"); }),
             Contains("'fixture_throws'") && Contains("factory exploded"));
}

TEST_CASE("fill: float and double, in chunks, and errors naming the tensor") {
  registry r = good_registry();
  configured_strategy s = r.create("fixture_index", {{"value", 0.5}, {"offset", 1}});
  CHECK(s.name() == "fixture_index");
  CHECK(s.plugin_id() == "fixture.good");
  CHECK(s.elementwise());
  tensor_info t = matrix("layer.weight", 3, 4);

  std::vector<float> whole(12), chunked(12);
  s.fill(t, fake_rng, 0, std::span<float>(whole));
  s.fill(t, fake_rng, 0, std::span<float>(chunked).subspan(0, 5));
  s.fill(t, fake_rng, 5, std::span<float>(chunked).subspan(5));
  CHECK(whole == chunked);
  CHECK(whole[11] == 1.0f + 0.5f * 11);
  std::vector<double> d(12);
  s.fill(t, fake_rng, 0, std::span<double>(d));
  CHECK(d[3] == 2.5);

  configured_strategy p = r.create("fixture_params", {{"mode", "c"}, {"flag", "on"}});
  p.fill(t, fake_rng, 0, std::span<double>(d));
  CHECK(d[0] == 1.0 * 3 + 1000 + 20);

  configured_strategy u = r.create("fixture_range", {{"low", -2}, {"high", 2}});
  u.fill(t, fake_rng, 0, std::span<double>(d));
  CHECK(d[1] == -2.0 + 4.0 / 8.0);  // the RNG stream reaches the plugin
  tensor_info vec = t;
  vec.shape = {12};
  CHECK_THROWS_AS(u.fill(vec, fake_rng, 0, std::span<double>(d)), strategy_error);
  try {
    u.fill(vec, fake_rng, 0, std::span<double>(d));
  } catch (const strategy_error& e) {
    CHECK_THAT(std::string(e.what()), Contains("'fixture_range'") && Contains("'layer.weight'") &&
                                          Contains("needs a 2-D tensor"));
    CHECK(e.where() == "layer.weight");
  }

  configured_strategy w = r.create("fixture_whole");
  CHECK_FALSE(w.elementwise());
  w.fill(t, fake_rng, 0, std::span<double>(d));
  CHECK(d[7] == 4.0);
  CHECK_THROWS_AS(w.fill(t, fake_rng, 4, std::span<double>(d).subspan(4)), usage_error);

  configured_strategy empty;
  CHECK_FALSE(empty);
  CHECK_THROWS_AS(empty.fill(t, fake_rng, 0, std::span<double>(d)), usage_error);
}

TEST_CASE("configured strategies keep their plugin loaded after the registry is gone") {
  std::vector<configured_strategy> kept;
  {
    registry r = good_registry();
    kept.push_back(r.create("fixture_params", {{"mode", "a"}, {"count", 5}}));
    kept.push_back(kept.front());  // copies share the instance
    kept.push_back(r.create("fixture_index"));
  }
  std::vector<float> out(3);
  kept[1].fill(matrix("w", 1, 3), fake_rng, 0, std::span<float>(out));
  CHECK(out[2] == 5.0f);  // reads the choice string the host keeps alive
  kept[2].fill(matrix("w", 1, 3), fake_rng, 0, std::span<float>(out));
  CHECK(out[2] == 2.0f);
  CHECK(kept[0].params()[3].choice == "a");
}

TEST_CASE("nearest_name") {
  std::vector<std::string> names{"xavier_uniform", "xavier_normal", "kaiming_normal"};
  CHECK(nearest_name("xavier_unifrom", names) == "xavier_uniform");
  CHECK(nearest_name("kaiming", names) == "kaiming_normal");
  CHECK_FALSE(nearest_name("x", {}).has_value());
}

#ifdef ONNX_REINIT_HAVE_HOST_RNG
TEST_CASE("with the host RNG, plugin fills match the stream and any chunking") {
  registry r = good_registry();
  configured_strategy u = r.create("fixture_range", {{"low", -3}, {"high", 3}});
  onnx_reinit_rng rng = make_tensor_rng(42, "w");
  tensor_info t = matrix("w", 16, 16);
  std::vector<float> whole(256), chunked(256), direct(256);
  u.fill(t, rng, 0, std::span<float>(whole));
  u.fill(t, rng, 0, std::span<float>(chunked).first(100));
  u.fill(t, rng, 100, std::span<float>(chunked).subspan(100));
  rng_stream(rng).uniform(std::span<float>(direct), 0, -3.0, 3.0);
  CHECK(whole == chunked);
  CHECK(whole == direct);
}
#endif

// ---- The SDK contract: versioned structs, target_moments errors -------------

namespace {

const fs::path sdk_fixture_dir = ONNX_REINIT_FIXTURE_SDK_PLUGIN_DIR;

fs::path sdk_fixture(const std::string& name) {
  return sdk_fixture_dir / (name + ".so");
}

}  // namespace

TEST_CASE("target_moments: known, cannot say, and a plugin's exception reported") {
  registry r;
  REQUIRE(r.load_file(sdk_fixture("moments")));
  REQUIRE(r.load_errors().empty());
  tensor_info t = matrix("layer.w", 4, 6);

  auto known = r.create("fixture_moments_known").target_moments(t);
  REQUIRE(known.has_value());
  CHECK(known->mean == 0.5);
  CHECK(known->std == 6.0);  // the tensor's fan_in reached the plugin
  CHECK_FALSE(r.create("fixture_moments_unknown").target_moments(t).has_value());

  // Throwing is a failure, not "cannot say": the caller hears of it, with
  // the strategy, the plugin, the tensor and the plugin's message.
  configured_strategy throws = r.create("fixture_moments_throws");
  CHECK_THROWS_AS(throws.target_moments(t), strategy_error);
  try {
    throws.target_moments(t);
  } catch (const strategy_error& e) {
    CHECK_THAT(std::string(e.what()), Contains("'fixture_moments_throws'") &&
                                          Contains("fixture.moments") && Contains("'layer.w'") &&
                                          Contains("moments exploded"));
    CHECK(e.where() == "layer.w");
  }
}

TEST_CASE("strategy entries carry their size: larger ones load, smaller or mixed are refused") {
  // Entries from a newer SDK are larger than the host's struct: the host
  // steps through the array by the plugin's size and reads only what it
  // knows, so the second entry is found where the plugin put it.
  registry r;
  REQUIRE(r.load_file(sdk_fixture("strategy_sizes_1")));
  REQUIRE(r.load_errors().empty());
  REQUIRE(r.strategies().size() == 2);
  CHECK(r.strategies()[1].name == "fixture_future_nine");
  CHECK(r.strategies()[1].summary == "x = 9");
  std::vector<float> out(4);
  r.create("fixture_future_nine").fill(matrix("w", 2, 2), fake_rng, 0, std::span<float>(out));
  CHECK(out == std::vector<float>{9, 9, 9, 9});
  r.create("fixture_future_seven").fill(matrix("w", 2, 2), fake_rng, 0, std::span<float>(out));
  CHECK(out == std::vector<float>{7, 7, 7, 7});

  using k = plugin_load_error_kind;
  registry small;
  CHECK_FALSE(small.load_file(sdk_fixture("strategy_sizes_2")));
  REQUIRE(small.load_errors().size() == 1);
  CHECK(small.load_errors()[0].kind == k::bad_descriptor);
  CHECK_THAT(small.load_errors()[0].message, Contains("strategy #0") && Contains("8 bytes"));
  CHECK(small.strategies().empty());

  registry mixed;
  CHECK_FALSE(mixed.load_file(sdk_fixture("strategy_sizes_3")));
  REQUIRE(mixed.load_errors().size() == 1);
  CHECK(mixed.load_errors()[0].kind == k::bad_descriptor);
  CHECK_THAT(
      mixed.load_errors()[0].message,
      Contains("strategy #1") && Contains(std::to_string(sizeof(onnx_reinit_strategy_desc))));
  CHECK(mixed.strategies().empty());
}

TEST_CASE("the plugin descriptor's size is checked against the first released layout") {
  // A descriptor of exactly ONNX_REINIT_PLUGIN_DESC_MIN_SIZE bytes (36 on
  // LP64, less than sizeof with its padding) is the first released layout:
  // it loads, as one from an SDK that appended a field later would.
  STATIC_REQUIRE(ONNX_REINIT_PLUGIN_DESC_MIN_SIZE < sizeof(onnx_reinit_plugin_desc));
  registry r;
  REQUIRE(r.load_file(sdk_fixture("strategy_sizes_4")));
  REQUIRE(r.load_errors().empty());
  REQUIRE(r.strategies().size() == 2);
  std::vector<float> out(4);
  r.create("fixture_future_nine").fill(matrix("w", 2, 2), fake_rng, 0, std::span<float>(out));
  CHECK(out == std::vector<float>{9, 9, 9, 9});

  // One byte less is refused, naming both sizes.
  registry small;
  CHECK_FALSE(small.load_file(sdk_fixture("strategy_sizes_5")));
  REQUIRE(small.load_errors().size() == 1);
  CHECK(small.load_errors()[0].kind == plugin_load_error_kind::abi_mismatch);
  CHECK(small.load_errors()[0].message ==
        fmt::format("plugin descriptor is {} bytes, expected at least {}",
                    ONNX_REINIT_PLUGIN_DESC_MIN_SIZE - 1, ONNX_REINIT_PLUGIN_DESC_MIN_SIZE));
  CHECK(small.strategies().empty());
}

TEST_CASE("the host refuses a random stream whose API table is missing or too small") {
  registry r = good_registry();
  configured_strategy u = r.create("fixture_range");
  tensor_info t = matrix("w", 2, 2);
  std::vector<float> out(4);
  // An API table from an older host: only `uniform` exists.
  const onnx_reinit_rng_api old_api = {
      static_cast<std::uint32_t>(offsetof(onnx_reinit_rng_api, normal)), fake_uniform, nullptr,
      nullptr, nullptr};
  const onnx_reinit_rng old_rng = {{1, 2}, 0, &old_api};
  CHECK_THROWS_AS(u.fill(t, old_rng, 0, std::span<float>(out)), usage_error);
  CHECK_THAT(message_of([&] { u.fill(t, old_rng, 0, std::span<float>(out)); }),
             Contains("'w'") && Contains("16-byte API table"));
  const onnx_reinit_rng no_api = {{1, 2}, 0, nullptr};
  CHECK_THAT(message_of([&] { u.fill(t, no_api, 0, std::span<float>(out)); }),
             Contains("no API table"));
  // A larger table (a newer host's) is fine.
  struct newer_api {
    onnx_reinit_rng_api base;
    void (*future)(void);
  };
  const newer_api bigger = {{sizeof(newer_api), fake_uniform, fake_normal, fake_truncated, nullptr},
                            nullptr};
  const onnx_reinit_rng bigger_rng = {{1, 2}, 0, &bigger.base};
  u.fill(t, bigger_rng, 0, std::span<float>(out));
  CHECK(out[1] == -1.0f + 2.0f / 8.0f);
}
