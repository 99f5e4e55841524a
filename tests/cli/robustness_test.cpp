// Robustness tests of the onnx-reinit command: broken plugins,
// size limits, hostile models and SIGKILL at any point of a write. Each
// TEST_CASE backs one row of docs/failure_behaviour.md. The helpers that run
// the CLI are in support/cli_runner.h.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <onnx/checker.h>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/staged_file.h"
#include "support/cli_runner.h"
#include "support/onnx_builder.h"

namespace fs = std::filesystem;
namespace ori = onnx_reinit;
using ori::element_type;
using ori::test::graph_builder;
using ori::test::if_model_with_shapes;
using ori::test::if_model_without_shapes;
using ori::test::ramp;
using ori::test::storage_form;

using ori::test::check_error;
using ori::test::contains;
using ori::test::read_file;
using ori::test::run_cli;
using ori::test::run_result;
using ori::test::save_proto;
using ori::test::temp_dir;
using ori::test::write_file;

namespace {

// ---------------------------------------------------------------------------
// Models

// x -> MatMul(w) -> Add(b) -> Relu -> y, with w [in, out] float32.
onnx::ModelProto dense_model(std::int64_t in, std::int64_t out) {
  graph_builder g;
  g.add_input("x", {-1, in});
  g.add_initializer("w", {in, out}, ramp(static_cast<std::size_t>(in * out), 0.5f, 1e-6f));
  g.add_initializer("b", {out}, ramp(static_cast<std::size_t>(out), 0.25f, 1e-3f));
  g.add_node("MatMul", {"x", "w"}, {"h0"});
  g.add_node("Add", {"h0", "b"}, {"h1"});
  g.add_node("Relu", {"h1"}, {"y"});
  g.add_output("y", {-1, out});
  return g.model();
}

// A failed run: the documented one-line error naming every `mentions`, and
// the directory exactly as before (input untouched, no output, no temp).
void check_failed_run(const temp_dir& dir, const std::vector<std::string>& args, int status,
                      const std::vector<std::string>& mentions) {
  const auto before = dir.snapshot();
  check_error(run_cli(args), status, mentions);
  CHECK(dir.snapshot() == before);
}

}  // namespace

// ---------------------------------------------------------------------------
// Broken plugins

TEST_CASE("a strategy that throws while filling fails the run, naming plugin and strategy") {
  temp_dir dir;
  save_proto(dense_model(8, 4), dir / "in.onnx");
  for (const std::string mode : {"-o", "--in-place"}) {
    std::vector<std::string> args{(dir / "in.onnx").string(), "--plugin",
                                  ONNX_REINIT_FIXTURE_BROKEN_PLUGIN, "--rule",
                                  "w=fixture_fill_throws"};
    if (mode == "-o")
      args.insert(args.end(), {"-o", (dir / "out.onnx").string()});
    else
      args.push_back(mode);
    check_failed_run(dir, args, 1,
                     {"fixture_fill_throws", "fixture.broken_strategies", "'w'", "fill exploded"});
  }
}

TEST_CASE("a strategy that writes NaN or Inf fails the run and writes nothing") {
  temp_dir dir;
  save_proto(dense_model(8, 4), dir / "in.onnx");
  for (const std::string strategy : {"fixture_writes_nan", "fixture_writes_inf"}) {
    INFO(strategy);
    check_failed_run(dir,
                     {(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string(), "--plugin",
                      ONNX_REINIT_FIXTURE_BROKEN_PLUGIN, "--rule", "w=" + strategy},
                     1, {strategy, "fixture.broken_strategies", "non-finite value", "(w)"});
    check_failed_run(dir,
                     {(dir / "in.onnx").string(), "--in-place", "--plugin",
                      ONNX_REINIT_FIXTURE_BROKEN_PLUGIN, "--rule", "w=" + strategy},
                     1, {strategy, "fixture.broken_strategies"});
  }
}

TEST_CASE("a strategy that returns an error (refuses the tensor) fails the run") {
  temp_dir dir;
  save_proto(dense_model(8, 4), dir / "in.onnx");
  check_failed_run(dir,
                   {(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string(), "--plugin",
                    ONNX_REINIT_FIXTURE_BROKEN_PLUGIN, "--rule", "w=fixture_refuses"},
                   1, {"fixture_refuses", "fixture.broken_strategies", "cannot fill this tensor"});
}

TEST_CASE("--list shows the file every plugin was loaded from") {
  const run_result r = run_cli({"--list", "--plugin", ONNX_REINIT_FIXTURE_BROKEN_PLUGIN});
  INFO(r.err);
  REQUIRE(r.status == 0);
  CHECK(contains(r.out, fs::canonical(ONNX_REINIT_FIXTURE_BROKEN_PLUGIN).string()));
  CHECK(contains(r.out, "fixture.broken_strategies"));
  // The standard plugin, found in the build tree's plugin directory.
  CHECK(contains(r.out, fs::canonical(ONNX_REINIT_BUILD_PLUGIN_DIR).string()));
}

// ---------------------------------------------------------------------------
// Size limits

TEST_CASE("a tensor over --max-tensor-bytes is refused; --no-size-limit overrides") {
  temp_dir dir;
  save_proto(dense_model(64, 64), dir / "in.onnx");  // w: 16 KiB
  const std::string in = (dir / "in.onnx").string();
  const std::string out = (dir / "out.onnx").string();
  check_failed_run(dir, {in, "-o", out, "--max-tensor-bytes", "1kb"}, 1,
                   {"tensor 'w' is 16384 bytes", "per-tensor limit of 1024 bytes",
                    "--max-tensor-bytes", "--no-size-limit"});
  check_failed_run(dir, {in, "-o", out, "--max-total-bytes", "10000"}, 1,
                   {"total limit of 10000 bytes", "--max-total-bytes"});
  const run_result ok =
      run_cli({in, "-o", out, "--max-tensor-bytes", "1kb", "--no-size-limit", "-q"});
  INFO(ok.err);
  CHECK(ok.status == 0);
  CHECK(fs::exists(out));
  const run_result fits = run_cli({in, "--plan", "--max-tensor-bytes", "16kb"});
  CHECK(fits.status == 0);
  const run_result bad = run_cli({in, "--plan", "--max-tensor-bytes", "lots"});
  CHECK(bad.status == 2);
}

TEST_CASE("a tensor claiming 2^40 elements is refused before anything is allocated") {
  temp_dir dir;
  onnx::ModelProto m = dense_model(8, 4);
  onnx::TensorProto& w = *m.mutable_graph()->mutable_initializer(0);
  w.clear_dims();
  w.add_dims(std::int64_t{1} << 20);
  w.add_dims(std::int64_t{1} << 20);
  save_proto(m, dir / "in.onnx");
  check_failed_run(dir, {(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string()}, 1,
                   {"tensor 'w' is 4096.0 GiB", "per-tensor limit"});
  // Even with the limits lifted: the data is checked against dims first.
  check_failed_run(
      dir, {(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string(), "--no-size-limit"}, 1,
      {"tensor 'w'", "raw_data holds 128 bytes"});
}

TEST_CASE("hostile model files fail with one error line and exit status 1") {
  temp_dir dir;
  std::string good;
  REQUIRE(dense_model(8, 4).SerializeToString(&good));
  write_file(dir / "truncated.onnx", good.substr(0, good.size() / 2));
  write_file(dir / "garbage.onnx", std::string(64, '\xff'));
  onnx::ModelProto negative = dense_model(8, 4);
  negative.mutable_graph()->mutable_initializer(0)->set_dims(0, -8);
  save_proto(negative, dir / "negative.onnx");
  onnx::ModelProto overflow = dense_model(8, 4);
  overflow.mutable_graph()->mutable_initializer(0)->set_dims(0, std::int64_t{1} << 62);
  overflow.mutable_graph()->mutable_initializer(0)->set_dims(1, std::int64_t{1} << 62);
  save_proto(overflow, dir / "overflow.onnx");
  const std::pair<const char*, const char*> cases[] = {
      {"truncated.onnx", "corrupt or truncated protobuf"},
      {"garbage.onnx", "corrupt or truncated protobuf"},
      {"negative.onnx", "negative dimension (-8)"},
      {"overflow.onnx", "overflows int64"},
  };
  for (const auto& [file, message] : cases) {
    INFO(file);
    check_failed_run(dir, {(dir / file).string(), "-o", (dir / "out.onnx").string()}, 1,
                     {message, file});
  }
}

// ---------------------------------------------------------------------------
// Hostile arguments

TEST_CASE("a parameter expression nested 30,000 deep is a rule error, not a stack overflow") {
  temp_dir dir;
  save_proto(dense_model(8, 4), dir / "in.onnx");
  const std::size_t depth = 30000;
  auto repeated = [](const std::string& piece, std::size_t n) {
    std::string s;
    for (std::size_t i = 0; i < n; ++i) s += piece;
    return s;
  };
  // Every recursive form: parentheses, unary minus, sqrt (half as deep: an
  // argument may hold 128 KiB), a '^' chain.
  for (const std::string& expr :
       {repeated("(", depth) + "1" + repeated(")", depth), repeated("-", depth) + "1",
        repeated("sqrt(", depth / 2) + "1" + repeated(")", depth / 2),
        repeated("2^", depth) + "1"}) {
    INFO(expr.substr(0, 12));
    check_failed_run(dir,
                     {(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string(), "--rule",
                      "w=normal(std=" + expr + ")"},
                     2, {"nested deeper than 100 levels", "--rule 1"});
  }
  // At the limit it still parses (the plan shows it).
  const std::string ok = std::string(99, '(') + "0.5" + std::string(99, ')');
  const run_result r =
      run_cli({(dir / "in.onnx").string(), "--plan", "--rule", "w=normal(std=" + ok + ")"});
  INFO(r.err);
  CHECK(r.status == 0);
}

// ---------------------------------------------------------------------------
// Writes that fail midway

namespace {

// Runs the CLI with the file-size limit (RLIMIT_FSIZE) at `limit` bytes and
// SIGXFSZ ignored, so a write past it fails with EFBIG, as a write on a full
// disk fails with ENOSPC. The child inherits both; the test process writes
// no file while they are set, and restores both on every way out (a failed
// spawn included), so later tests run unlimited.
run_result run_cli_with_file_size_limit(const std::vector<std::string>& args, rlim_t limit) {
  struct limited_scope {
    rlimit saved{};
    struct sigaction previous {};
    explicit limited_scope(rlim_t limit) {
      REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
      struct sigaction ignore {};
      ignore.sa_handler = SIG_IGN;
      REQUIRE(sigaction(SIGXFSZ, &ignore, &previous) == 0);
      rlimit limited = saved;
      limited.rlim_cur = limit;
      REQUIRE(setrlimit(RLIMIT_FSIZE, &limited) == 0);
    }
    ~limited_scope() {
      setrlimit(RLIMIT_FSIZE, &saved);
      sigaction(SIGXFSZ, &previous, nullptr);
    }
    limited_scope(const limited_scope&) = delete;
    limited_scope& operator=(const limited_scope&) = delete;
  };
  const limited_scope scope(limit);
  return run_cli(args);
}

}  // namespace

TEST_CASE("a write that fails midway (file size limit) fails the run and writes nothing") {
  // One 12 MiB weight: the writer streams it in several windows, sampling
  // the next on a worker while it writes this one, and the limit (5 MiB)
  // stops a write in the middle. Inline (the model file spliced) and as
  // external data (a data file written).
  temp_dir dir;
  const std::int64_t rows = 3 << 10, cols = 1 << 10;
  save_proto(dense_model(rows, cols), dir / "inline.onnx");
  const run_result external =
      run_cli({(dir / "inline.onnx").string(), "-o", (dir / "external.onnx").string(),
               "--external-data", "external.bin", "-q"});
  REQUIRE(external.status == 0);
  for (const std::string model : {"inline.onnx", "external.onnx"}) {
    for (const std::string mode : {"-o", "--in-place"}) {
      INFO(model << " " << mode);
      std::vector<std::string> args{(dir / model).string()};
      if (mode == "-o")
        args.insert(args.end(), {"-o", (dir / "out.onnx").string()});
      else
        args.push_back(mode);
      const auto before = dir.snapshot();
      const run_result r = run_cli_with_file_size_limit(args, rlim_t{5} << 20);
      check_error(r, 1, {"cannot write", "File too large"});
      // The message names the file as it would be published; the staged
      // file is the error's location, in the closing parentheses.
      const std::string what = r.err.substr(0, r.err.rfind(" ("));
      CHECK(contains(what, dir.path().string()));
      CHECK_FALSE(contains(what, ".onnx-reinit-"));
      CHECK(contains(r.err.substr(what.size()), ".onnx-reinit-"));
      CHECK(dir.snapshot() == before);
    }
  }
}

// ---------------------------------------------------------------------------
// Inputs that already fail the ONNX checker (onnx_builder.h:
// if_model_without_shapes)

TEST_CASE("an input failing the ONNX checker is written with one warning if nothing new fails") {
  temp_dir dir;
  save_proto(if_model_without_shapes(32, 0.5f, 1e-6f), dir / "in.onnx");
  const std::string warning =
      "onnx-reinit: warning: the input model fails the ONNX checker: Field 'shape' of 'type' is "
      "required but missing; writing the output anyway since it fails the same way\n";

  // --plan stays read-only and quiet about it.
  const auto before = dir.snapshot();
  const run_result plan = run_cli({(dir / "in.onnx").string(), "--plan"});
  CHECK(plan.status == 0);
  CHECK_FALSE(contains(plan.err, "warning"));
  CHECK(dir.snapshot() == before);

  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, std::vector<std::string>{"--external-data", "out.bin"}}) {
    INFO((extra.empty() ? "inline" : "consolidated external data"));
    fs::remove(dir / "out.onnx");
    const run_result r = run_cli([&] {
      std::vector<std::string> args{(dir / "in.onnx").string(), "-o", (dir / "out.onnx").string(),
                                    "-q"};
      args.insert(args.end(), extra.begin(), extra.end());
      return args;
    }());
    INFO("stderr: " << r.err);
    CHECK(r.status == 0);
    CHECK(r.err == warning);
    REQUIRE(fs::exists(dir / "out.onnx"));
    // Written and rewritten: the branch weights no longer hold the ramp.
    const ori::loaded_model out = ori::load_model(dir / "out.onnx");
    const auto& w = out.proto().graph().node(0).attribute(0).g().initializer(0);
    const std::vector<double> v = ori::read_tensor_values<double>(out, w);
    CHECK(v.size() == 32 * 32);
    CHECK(v[0] != 0.5);
  }
}

TEST_CASE("a model that passes the ONNX checker is written without a warning") {
  // An output failing in a way its input did not cannot be made through the
  // command (a rewrite changes payloads only); model_io_test covers that
  // error in the library, which decides.
  temp_dir dir;
  const onnx::ModelProto good = if_model_with_shapes(32, 0.5f, 1e-6f);
  save_proto(good, dir / "good.onnx");
  const run_result r = run_cli({(dir / "good.onnx").string(), "-o", (dir / "out.onnx").string()});
  CHECK(r.status == 0);
  CHECK_FALSE(contains(r.err, "warning"));
}

// ---------------------------------------------------------------------------
// SIGKILL mid-write

namespace {

// Starts the CLI without waiting, after `prefix` (a tracer) when given;
// stdout/stderr to /dev/null.
pid_t spawn_cli(const std::vector<std::string>& args, std::vector<std::string> prefix = {}) {
  std::vector<std::string> argv_strings = std::move(prefix);
  argv_strings.push_back(ONNX_REINIT_CLI);
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_strings) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// Every tensor's bytes, concatenated in model order: the whole content of
// a model (inline and external), read through the library with all its
// checks.
std::string content_of(const fs::path& model) {
  const ori::loaded_model m = ori::load_model(model);
  std::string all;
  for (const auto& t : m.proto().graph().initializer()) {
    const ori::tensor_bytes_view v = ori::tensor_bytes(m, t);
    all.append(reinterpret_cast<const char*>(v.bytes().data()), v.size());
  }
  return all;
}

}  // namespace

namespace {

// The names of a directory's entries, hidden ones (staging directories,
// staged temp files) apart.
std::set<std::string> visible_names(const fs::path& dir, std::set<std::string>* hidden = nullptr) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.front() != '.')
      names.insert(name);
    else if (hidden != nullptr)
      hidden->insert(name);
  }
  return names;
}

// A committed publishing journal in one of OUT's staging directories
// (docs/DESIGN.md section 10).
bool publication_committed(const fs::path& out) {
  const std::string prefix = fmt::format(".{}.onnx-reinit-", out.filename().string());
  for (const auto& e : fs::directory_iterator(out.parent_path()))
    if (e.path().filename().string().starts_with(prefix) && fs::exists(e.path() / "journal"))
      return true;
  return false;
}

// The data files a model references.
std::set<std::string> data_files_of(const fs::path& model) {
  std::set<std::string> names;
  const ori::loaded_model m = ori::load_model(model);
  for (const auto& t : m.proto().graph().initializer())
    for (const auto& e : t.external_data())
      if (e.key() == "location") names.insert(e.value());
  return names;
}

}  // namespace

// A large model (~200 MB: a 192 MiB external tensor and a 4 MiB inline one)
// is rewritten with a report, in turn with -o onto an older output, with
// --in-place and with -o to a new output (data files of a new OUT), and the
// process is SIGKILLed after a random delay; ONNX_REINIT_KILL_RUNS kills
// (default 21; tools/scripts/kill_loop.sh runs more under load). After
// every kill the output path holds the old model (or nothing) or the
// complete new one, verified through load (data lengths, external
// ranges), the ONNX checker and the bytes of every tensor. The set (model,
// data files, report) is published as one (docs/DESIGN.md section 10): before
// the commit point nothing of the new set is visible; after it the set is
// rolled forward, by the next save to OUT or recover_publications. Once
// recovered, the directory holds exactly the old set or exactly the new
// one, with no leftover at all.
TEST_CASE("SIGKILL at any point leaves the old set or the new one, never a mix", "[slow]") {
  temp_dir dir;
  fs::create_directories(dir / "src");
  graph_builder g;
  const std::int64_t rows = 6144, cols = 8192, inline_cols = 1024;
  g.add_input("x", {-1, rows});
  g.add_initializer("big", {rows, cols}, {});
  g.add_initializer("small", {cols, inline_cols},
                    std::vector<float>(static_cast<std::size_t>(cols * inline_cols), 0.125f));
  g.add_node("MatMul", {"x", "big"}, {"h"});
  g.add_node("Relu", {"h"}, {"h1"});
  g.add_node("MatMul", {"h1", "small"}, {"y"});
  g.add_output("y", {-1, inline_cols});
  onnx::ModelProto m = g.model();
  const std::uint64_t big_bytes = static_cast<std::uint64_t>(rows * cols) * 4;
  ori::test::set_external(*m.mutable_graph()->mutable_initializer(0), "big.bin", 0, big_bytes);
  m.mutable_graph()->mutable_initializer(0)->clear_dims();
  m.mutable_graph()->mutable_initializer(0)->add_dims(rows);
  m.mutable_graph()->mutable_initializer(0)->add_dims(cols);
  save_proto(m, dir / "src" / "model.onnx");
  {
    std::ofstream data(dir / "src" / "big.bin", std::ios::binary);
    const std::vector<float> row(static_cast<std::size_t>(cols), 1.5f);
    for (std::int64_t r = 0; r < rows; ++r)
      data.write(reinterpret_cast<const char*>(row.data()),
                 static_cast<std::streamsize>(row.size() * sizeof(float)));
  }
  const std::string old_content = content_of(dir / "src" / "model.onnx");

  // The reference: one uninterrupted run with the same seed.
  fs::create_directories(dir / "ref");
  const auto start = std::chrono::steady_clock::now();
  const run_result ref = run_cli({(dir / "src" / "model.onnx").string(), "-o",
                                  (dir / "ref" / "model.onnx").string(), "--seed", "7", "-q"});
  const double full_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  INFO(ref.err);
  REQUIRE(ref.status == 0);
  const std::string new_content = content_of(dir / "ref" / "model.onnx");
  REQUIRE(new_content != old_content);

  const char* runs_env = std::getenv("ONNX_REINIT_KILL_RUNS");
  const int runs = runs_env != nullptr ? std::atoi(runs_env) : 21;
  const std::string old_report = "old report\n";
  std::mt19937 random(12345);
  std::uniform_real_distribution<double> when(0.05, 1.1);
  int saw_old = 0, saw_new = 0, saw_committed = 0;
  for (int i = 0; i < runs; ++i) {
    enum class mode { onto_older, in_place, new_out } const how = static_cast<mode>(i % 3);
    const bool in_place = how == mode::in_place;
    const fs::path work = dir / fmt::format("run{}", i);
    fs::create_directories(work);
    fs::copy_file(dir / "src" / "model.onnx", work / "model.onnx");
    fs::copy_file(dir / "src" / "big.bin", work / "big.bin");
    write_file(work / "report.json", old_report);
    const fs::path out = in_place ? work / "model.onnx" : work / "out.onnx";
    // -o onto an existing older output: it must stay whole too.
    if (how == mode::onto_older) fs::copy_file(work / "model.onnx", out);
    const std::set<std::string> old_names = visible_names(work);
    std::vector<std::string> args{(work / "model.onnx").string(), "--seed", "7", "-q", "--report",
                                  (work / "report.json").string()};
    if (in_place)
      args.push_back("--in-place");
    else
      args.insert(args.end(), {"-o", out.string()});

    const pid_t pid = spawn_cli(args);
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(when(random) * full_ms));
    ::kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }

    INFO("run " << i << (in_place ? " --in-place" : how == mode::new_out ? " -o new" : " -o"));
    const bool committed = publication_committed(out);
    saw_committed += committed ? 1 : 0;
    // Whatever the instant, OUT (when there) is a whole model, old or new.
    bool out_new = false;
    if (fs::exists(out)) {
      CHECK_NOTHROW(onnx::checker::check_model(out.string()));
      const std::string content = content_of(out);
      out_new = content == new_content;
      CHECK((out_new || content == old_content));
    }
    if (!committed && !out_new) {
      // Before the commit point: exactly the old set, old bytes.
      CHECK(visible_names(work) == old_names);
      CHECK(read_file(work / "report.json") == old_report);
    }
    if (out_new) {
      // The model is renamed last: with it the whole new set is there.
      for (const std::string& data : data_files_of(out)) CHECK(fs::exists(work / data));
      CHECK(read_file(work / "report.json") != old_report);
    }

    // Recovery (what the next save to OUT does first) completes or clears.
    ori::recover_publications(out);
    std::set<std::string> hidden;
    const std::set<std::string> names = visible_names(work, &hidden);
    CHECK(hidden.empty());
    const bool is_new = fs::exists(out) && content_of(out) == new_content;
    CHECK(is_new == (committed || out_new));
    if (is_new) {
      std::set<std::string> expected = data_files_of(out);
      expected.insert({"model.onnx", out.filename().string(), "report.json"});
      if (!in_place) expected.insert("big.bin");  // the input's own data
      CHECK(names == expected);
      CHECK(read_file(work / "report.json") != old_report);
      CHECK(contains(read_file(work / "report.json"), "\"tensors\""));
      ++saw_new;
    } else {
      CHECK(names == old_names);
      CHECK(read_file(work / "report.json") == old_report);
      if (how != mode::new_out) CHECK(content_of(out) == old_content);
      ++saw_old;
    }
    fs::remove_all(work);
  }
  // The delays span the whole run, so both outcomes should be seen; not
  // required (a slow machine may finish late), hence only reported.
  WARN("kills that left the old set: " << saw_old << ", the new one: " << saw_new
                                       << " (of which committed, rolled forward on recovery: "
                                       << saw_committed << ")");
}

namespace {

// Runs the CLI under strace, SIGKILLed when it makes its `n`-th call of
// rename(2) (or of renameat2(2): strace counts each syscall apart), before
// the call takes effect.
void run_cli_killed_at_rename(const std::vector<std::string>& args, int n) {
  const pid_t pid = spawn_cli(
      args, {"/usr/bin/strace", "-f", "-o", "/dev/null", "-e", "trace=rename,renameat,renameat2",
             "-e", fmt::format("inject=rename,renameat,renameat2:signal=KILL:when={}", n), "--"});
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

bool strace_works() {
  if (::access("/usr/bin/strace", X_OK) != 0) return false;
  return std::system("/usr/bin/strace -o /dev/null true >/dev/null 2>&1") == 0;
}

}  // namespace

// The instants the random kills rarely hit, each in turn: the CLI is
// killed at its 1st, 2nd, ... rename (strace fault injection), with -o onto
// an older output beside the input (so the new data file is out.onnx.data)
// and a report. Before the fix, a kill at the model's rename left the new
// out.onnx.data beside the old model, and a kill at the report's rename
// the new model with the old report.
TEST_CASE("a kill at each rename of a save leaves the old set or, recovered, the new one") {
  if (!strace_works()) {
    WARN("strace cannot trace here; skipped");
    return;
  }
  temp_dir dir;
  fs::create_directories(dir / "src");
  onnx::ModelProto m = dense_model(64, 32);
  ori::test::set_external(*m.mutable_graph()->mutable_initializer(0), "big.bin", 0, 64 * 32 * 4);
  save_proto(m, dir / "src" / "model.onnx");
  write_file(dir / "src" / "big.bin", std::string(64 * 32 * 4, '\x3e'));
  const std::string old_content = content_of(dir / "src" / "model.onnx");
  const std::string old_report = "old report\n";
  auto fresh = [&](const std::string& name) {
    const fs::path work = dir / name;
    fs::create_directories(work);
    for (const char* f : {"model.onnx", "big.bin"}) fs::copy_file(dir / "src" / f, work / f);
    fs::copy_file(work / "model.onnx", work / "out.onnx");
    write_file(work / "report.json", old_report);
    return work;
  };
  auto args_for = [](const fs::path& work) {
    return std::vector<std::string>{(work / "model.onnx").string(),
                                    "-o",
                                    (work / "out.onnx").string(),
                                    "--report",
                                    (work / "report.json").string(),
                                    "--seed",
                                    "3",
                                    "-q"};
  };
  // The report names the model's path: compared with the directory masked.
  auto report_of = [](const fs::path& work) {
    std::string text = read_file(work / "report.json");
    for (std::size_t at; (at = text.find(work.string())) != std::string::npos;)
      text.replace(at, work.string().size(), "DIR");
    return text;
  };
  const fs::path ref = fresh("ref");
  REQUIRE(run_cli(args_for(ref)).status == 0);
  const std::string new_content = content_of(ref / "out.onnx");
  const std::set<std::string> new_names = visible_names(ref);
  const std::string new_report = report_of(ref);
  REQUIRE(new_names.contains("out.onnx.data"));
  int killed_before_commit = 0, killed_after = 0;
  for (int n = 1; n <= 4; ++n) {
    INFO("killed at rename " << n);
    const fs::path work = fresh(fmt::format("run{}", n));
    const std::set<std::string> old_names = visible_names(work);
    run_cli_killed_at_rename(args_for(work), n);
    const bool committed = publication_committed(work / "out.onnx");
    const std::string content = content_of(work / "out.onnx");
    CHECK((content == old_content || content == new_content));
    if (!committed && content == old_content) {
      ++killed_before_commit;
      CHECK(visible_names(work) == old_names);  // no new data file beside OUT
      CHECK(read_file(work / "report.json") == old_report);
    }
    if (content == new_content) CHECK(report_of(work) == new_report);
    killed_after += committed ? 1 : 0;
    ori::recover_publications(work / "out.onnx");
    std::set<std::string> hidden;
    const std::set<std::string> names = visible_names(work, &hidden);
    CHECK(hidden.empty());
    if (committed || content == new_content) {
      CHECK(names == new_names);
      CHECK(content_of(work / "out.onnx") == new_content);
      CHECK(report_of(work) == new_report);
    } else {
      CHECK(names == old_names);
      CHECK(read_file(work / "report.json") == old_report);
    }
  }
  // Renames: the journal (before it, nothing), then the report and the
  // model, with the data file's renameat2 between: two kills after the
  // commit point.
  CHECK(killed_before_commit == 1);
  CHECK(killed_after == 2);
}
