// The runtime stage: inspection figures against an independent forward pass
// (Eigen, and plain loops for the convolutions), the batch, the deep-MLP
// behaviour of PyTorch's default init, the default policy and LSUV, and
// ONNX Runtime's failures.
#include <fmt/format.h>
#include <Eigen/Dense>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include <unistd.h>

#include "onnx_reinit/analysis.h"
#include "onnx_reinit/plan.h"
#include "onnx_reinit/rewrite.h"
#include "onnx_reinit/runtime.h"
#include "runtime_internal.h"
#include "support/onnx_builder.h"
#include "support/standard_registry.h"

namespace ori = onnx_reinit;
using ori::test::graph_builder;
using ori::test::make_attribute;
using ori::test::make_tensor;
namespace fs = std::filesystem;

#ifdef ONNX_REINIT_NO_RUNTIME
TEST_CASE("without ONNX Runtime the runtime stage says how to get it", "[runtime]") {
  CHECK_FALSE(ori::runtime_available());
  graph_builder g;
  g.add_input("x", {1, 2});
  g.add_initializer("w", {2, 2}, {1, 0, 0, 1});
  g.add_node("MatMul", {"x", "w"}, {"y"});
  g.add_output("y", {1, 2});
  auto model = ori::loaded_model::from_proto(g.model());
  CHECK_THROWS_WITH(ori::inspect_model(model, {}), Catch::Contains("built without ONNX Runtime") &&
                                                       Catch::Contains("ONNX_REINIT_RUNTIME=ON"));
  CHECK_THROWS_AS(ori::calibrate_lsuv(model, {}, {}, {}), ori::runtime_unavailable_error);
}
#else

namespace {

using matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

std::vector<float> uniform_values(std::size_t n, double bound, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> u(-bound, bound);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(u(gen));
  return v;
}

// A scratch directory holding ONNX test-data files.
struct data_dir {
  fs::path path;
  explicit data_dir(const std::string& tag) {
    path = fs::temp_directory_path() / ("onnx_reinit_runtime_" + tag + std::to_string(getpid()));
    fs::create_directories(path);
  }
  ~data_dir() { fs::remove_all(path); }
  void write(int index, const onnx::TensorProto& t) const {
    std::ofstream f(path / fmt::format("input_{}.pb", index), std::ios::binary);
    t.SerializeToOstream(&f);
  }
};

struct figures {
  double mean = 0, std = 0, max_abs = 0;
};
template <class V>
figures figures_of(const V& v) {
  figures f;
  const double n = static_cast<double>(v.size());
  for (double x : v) f.mean += x;
  f.mean /= n;
  for (double x : v) {
    f.std += (x - f.mean) * (x - f.mean);
    f.max_abs = std::max(f.max_abs, std::abs(x));
  }
  f.std = std::sqrt(f.std / n);
  return f;
}

double fraction(const std::vector<double>& v, bool (*pred)(double)) {
  double k = 0;
  for (double x : v) k += pred(x) ? 1 : 0;
  return k / static_cast<double>(v.size());
}

std::vector<double> to_vector(const matrix& m) {
  return {m.data(), m.data() + m.size()};
}

void check_close(double got, double want) {
  INFO("got " << got << ", want " << want);
  CHECK(std::abs(got - want) <= 1e-5 * std::max(1.0, std::abs(want)) + 1e-7);
}

}  // namespace

TEST_CASE("ONNX Runtime is the version the headers were written for", "[runtime]") {
  CHECK(ori::runtime_available());
  CHECK(ori::runtime_version() == "1.29.0");
}

TEST_CASE("inspection of an MLP agrees with an Eigen forward pass", "[runtime]") {
  // x[64,16] -Gemm(W1,b1)-> Relu -MatMul(W2)+b2-> Tanh; W1 given transposed.
  const int n = 64, d_in = 16, d_h = 32, d_out = 8;
  graph_builder g;
  g.add_input("x", {-1, d_in});
  auto w1 = uniform_values(d_h * d_in, 0.5, 1);
  auto b1 = uniform_values(d_h, 0.1, 2);
  auto w2 = uniform_values(d_h * d_out, 0.4, 3);
  auto b2 = uniform_values(d_out, 0.1, 4);
  g.add_initializer("w1", {d_h, d_in}, w1);
  g.add_initializer("b1", {d_h}, b1);
  g.add_initializer("w2", {d_h, d_out}, w2);
  g.add_initializer("b2", {d_out}, b2);
  g.add_node("Gemm", {"x", "w1", "b1"}, {"h1"}, {make_attribute("transB", std::int64_t{1})});
  g.add_node("Relu", {"h1"}, {"a1"});
  g.add_node("MatMul", {"a1", "w2"}, {"h2"});
  g.add_node("Add", {"h2", "b2"}, {"z2"});
  g.add_node("Tanh", {"z2"}, {"y"});
  g.add_output("y", {-1, d_out});
  auto model = ori::loaded_model::from_proto(g.model());

  auto x = uniform_values(n * d_in, 2.0, 5);
  data_dir dir("mlp");
  dir.write(0, make_tensor("x", {n, d_in}, x));
  ori::runtime_options options;
  options.data_dir = dir.path;
  const ori::inspection r = ori::inspect_model(model, options);

  auto as_matrix = [](const std::vector<float>& v, int rows, int cols) {
    matrix m(rows, cols);
    for (int i = 0; i < rows * cols; ++i) m.data()[i] = v[static_cast<std::size_t>(i)];
    return m;
  };
  matrix mx = as_matrix(x, n, d_in);
  matrix mw1 = as_matrix(w1, d_h, d_in), mw2 = as_matrix(w2, d_h, d_out);
  Eigen::RowVectorXd mb1(d_h), mb2(d_out);
  for (int i = 0; i < d_h; ++i) mb1(i) = b1[static_cast<std::size_t>(i)];
  for (int i = 0; i < d_out; ++i) mb2(i) = b2[static_cast<std::size_t>(i)];
  matrix mh1 = (mx * mw1.transpose()).rowwise() + mb1;
  matrix ma1 = mh1.cwiseMax(0.0);
  matrix mh2 = ma1 * mw2;
  matrix my = ((mh2.rowwise() + mb2).array().tanh()).matrix();

  REQUIRE(r.batch == n);
  REQUIRE(r.inputs.size() == 1);
  CHECK(r.inputs[0].source == "file input_0.pb");
  REQUIRE(r.layers.size() == 2);
  const auto& l1 = r.layers[0];
  const auto& l2 = r.layers[1];
  CHECK(l1.name == "w1");
  CHECK(l1.op == "Gemm");
  CHECK(l1.output == "h1");
  CHECK(l1.act == "relu");
  CHECK(l2.name == "w2");
  CHECK(l2.output == "h2");
  CHECK(l2.act == "tanh");
  auto f1 = figures_of(to_vector(mh1)), a1 = figures_of(to_vector(ma1));
  auto f2 = figures_of(to_vector(mh2)), a2 = figures_of(to_vector(my));
  check_close(l1.mean, f1.mean);
  check_close(l1.std, f1.std);
  check_close(l1.max_abs, f1.max_abs);
  check_close(l1.act_std, a1.std);
  check_close(l1.dead_fraction, fraction(to_vector(ma1), [](double v) { return v == 0.0; }));
  CHECK(std::isnan(l1.saturated_fraction));
  check_close(l2.mean, f2.mean);
  check_close(l2.std, f2.std);
  check_close(l2.act_std, a2.std);
  check_close(l2.saturated_fraction,
              fraction(to_vector(my), [](double v) { return std::abs(v) > 0.99; }));
  CHECK(std::isnan(l2.dead_fraction));
  check_close(l2.ratio_to_first, f2.std / f1.std);
  check_close(r.summary.last_first_ratio, f2.std / f1.std);
  CHECK(l1.nonfinite == 0);
}

TEST_CASE("inspection of a CNN agrees with a direct convolution", "[runtime]") {
  // x[4,2,6,6] -Conv(3x3, pad 1)-> Relu -Conv(3x3, stride 2)-> Sigmoid
  const int n = 4, c = 2, h = 6, m1 = 4, m2 = 3;
  graph_builder g;
  g.add_input("x", {n, c, h, h});
  auto w1 = uniform_values(m1 * c * 9, 0.5, 11);
  auto w2 = uniform_values(m2 * m1 * 9, 0.5, 12);
  auto b2 = uniform_values(m2, 0.2, 13);
  g.add_initializer("cw1", {m1, c, 3, 3}, w1);
  g.add_initializer("cw2", {m2, m1, 3, 3}, w2);
  g.add_initializer("cb2", {m2}, b2);
  g.add_node("Conv", {"x", "cw1"}, {"c1"},
             {make_attribute("pads", std::vector<std::int64_t>{1, 1, 1, 1})});
  g.add_node("Relu", {"c1"}, {"r1"});
  g.add_node("Conv", {"r1", "cw2", "cb2"}, {"c2"},
             {make_attribute("strides", std::vector<std::int64_t>{2, 2})});
  g.add_node("Sigmoid", {"c2"}, {"y"});
  g.add_output("y", {n, m2, 2, 2});
  auto model = ori::loaded_model::from_proto(g.model());
  auto x = uniform_values(n * c * h * h, 1.5, 14);
  data_dir dir("cnn");
  dir.write(0, make_tensor("x", {n, c, h, h}, x));
  ori::runtime_options options;
  options.data_dir = dir.path;
  const ori::inspection r = ori::inspect_model(model, options);

  // Plain loops: out[b,o,i,j] = bias[o] + sum w[o,k,u,v] * in[b,k,i*s+u-p,j*s+v-p]
  auto conv = [](const std::vector<double>& in, int b_n, int k_n, int size,
                 const std::vector<float>& w, const std::vector<float>* bias, int o_n, int stride,
                 int pad, int& out_size) {
    out_size = (size + 2 * pad - 3) / stride + 1;
    std::vector<double> out(static_cast<std::size_t>(b_n * o_n * out_size * out_size));
    for (int b = 0; b < b_n; ++b)
      for (int o = 0; o < o_n; ++o)
        for (int i = 0; i < out_size; ++i)
          for (int j = 0; j < out_size; ++j) {
            double s = bias ? (*bias)[static_cast<std::size_t>(o)] : 0.0;
            for (int k = 0; k < k_n; ++k)
              for (int u = 0; u < 3; ++u)
                for (int v = 0; v < 3; ++v) {
                  int y = i * stride + u - pad, z = j * stride + v - pad;
                  if (y < 0 || z < 0 || y >= size || z >= size) continue;
                  s += w[static_cast<std::size_t>(((o * k_n + k) * 3 + u) * 3 + v)] *
                       in[static_cast<std::size_t>(((b * k_n + k) * size + y) * size + z)];
                }
            out[static_cast<std::size_t>(((b * o_n + o) * out_size + i) * out_size + j)] = s;
          }
    return out;
  };
  std::vector<double> xin(x.begin(), x.end());
  int s1 = 0, s2 = 0;
  auto c1 = conv(xin, n, c, h, w1, nullptr, m1, 1, 1, s1);
  std::vector<double> r1(c1.size());
  for (std::size_t i = 0; i < c1.size(); ++i) r1[i] = std::max(c1[i], 0.0);
  auto c2 = conv(r1, n, m1, s1, w2, &b2, m2, 2, 0, s2);
  std::vector<double> y(c2.size());
  for (std::size_t i = 0; i < c2.size(); ++i) y[i] = 1.0 / (1.0 + std::exp(-c2[i]));
  REQUIRE(s2 == 2);

  REQUIRE(r.layers.size() == 2);
  CHECK(r.layers[0].name == "cw1");
  CHECK(r.layers[0].act == "relu");
  CHECK(r.layers[1].act == "sigmoid");
  check_close(r.layers[0].mean, figures_of(c1).mean);
  check_close(r.layers[0].std, figures_of(c1).std);
  check_close(r.layers[0].act_std, figures_of(r1).std);
  check_close(r.layers[0].dead_fraction, fraction(r1, [](double v) { return v == 0.0; }));
  check_close(r.layers[1].mean, figures_of(c2).mean);
  check_close(r.layers[1].std, figures_of(c2).std);
  check_close(r.layers[1].max_abs, figures_of(c2).max_abs);
  check_close(r.layers[1].act_std, figures_of(y).std);
  check_close(r.layers[1].saturated_fraction,
              fraction(y, [](double v) { return v < 0.01 || v > 0.99; }));
}

TEST_CASE("the synthesized batch is N(0, 1) with the batch size on the first dim", "[runtime]") {
  // y = x * I: the layer output is the input itself.
  const int d = 64;
  graph_builder g;
  g.add_input("x", {-1, d});
  std::vector<float> eye(d * d, 0.0f);
  for (int i = 0; i < d; ++i) eye[static_cast<std::size_t>(i * d + i)] = 1.0f;
  g.add_initializer("w", {d, d}, eye);
  g.add_node("MatMul", {"x", "w"}, {"y"});
  g.add_output("y", {-1, d});
  auto model = ori::loaded_model::from_proto(g.model());
  ori::runtime_options options;
  options.batch = 256;
  options.seed = 3;
  auto r = ori::inspect_model(model, options);
  REQUIRE(r.inputs.size() == 1);
  CHECK(r.inputs[0].shape == std::vector<std::int64_t>{256, d});
  CHECK(r.inputs[0].source == "normal(0, 1)");
  REQUIRE(r.layers.size() == 1);
  // 16384 draws: the mean's standard error is 1/128, the std's about
  // 1/sqrt(2*16384) = 0.0055; five standard errors each.
  CHECK(std::abs(r.layers[0].mean) < 5.0 / 128);
  CHECK(std::abs(r.layers[0].std - 1.0) < 5 * 0.0055);
  // Another seed gives another batch; the same seed the same.
  options.seed = 4;
  auto other = ori::inspect_model(model, options);
  CHECK(other.layers[0].std != r.layers[0].std);
  options.seed = 3;
  CHECK(ori::inspect_model(model, options).layers[0].std == r.layers[0].std);
}

namespace {

// An .npy file written byte by byte as the NumPy format specification says:
// magic, version, little-endian header length, the dict literal padded with
// spaces to a multiple of 64 and ended by '\n', then the raw data.
void write_npy(const fs::path& file, const std::string& descr, bool fortran,
               const std::string& shape, const std::string& data, int version = 1) {
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': {}, 'shape': {}, }}", descr,
                                   fortran ? "True" : "False", shape);
  const std::size_t prefix = version == 1 ? 10 : 12;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(version);
  out += '\0';
  const std::size_t len = header.size();
  for (std::size_t i = 0; i < (version == 1 ? 2u : 4u); ++i)
    out += static_cast<char>((len >> (8 * i)) & 0xff);
  std::ofstream(file, std::ios::binary) << out << header << data;
}

template <class T>
std::string raw_bytes(const std::vector<T>& v, bool big_endian = false) {
  std::string s(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
  if (big_endian)
    for (std::size_t i = 0; i < v.size(); ++i)
      std::reverse(s.begin() + static_cast<std::ptrdiff_t>(i * sizeof(T)),
                   s.begin() + static_cast<std::ptrdiff_t>((i + 1) * sizeof(T)));
  return s;
}

// y = x[2, 3] * w[3, 1] with w = (1, 0, 0): the layer output is column 0
// of x, so a wrong element order changes its mean.
ori::loaded_model column_picker(onnx::TensorProto::DataType elem_type = onnx::TensorProto::FLOAT) {
  graph_builder g;
  g.add_input("x", {-1, 3}, elem_type);
  if (elem_type == onnx::TensorProto::DOUBLE) {
    onnx::TensorProto w;
    w.set_name("w");
    w.set_data_type(onnx::TensorProto::DOUBLE);
    w.add_dims(3);
    w.add_dims(1);
    for (double v : {1.0, 0.0, 0.0}) w.add_double_data(v);
    *g.graph().add_initializer() = w;
  } else {
    g.add_initializer("w", {3, 1}, std::vector<float>{1, 0, 0});
  }
  g.add_node("MatMul", {"x", "w"}, {"y"});
  g.add_output("y", {-1, 1}, elem_type);
  return ori::loaded_model::from_proto(g.model());
}

}  // namespace

TEST_CASE(".npy inputs named after the graph inputs: dtype, byte and element order",
          "[runtime][npy]") {
  // x = [[1, 2, 3], [5, 6, 7]]: column 0 is {1, 5}, mean 3, std 2.
  const std::vector<float> c_order{1, 2, 3, 5, 6, 7};
  const std::vector<float> f_order{1, 5, 2, 6, 3, 7};
  data_dir dir("npy");
  ori::runtime_options options;
  options.data_dir = dir.path;
  auto model = column_picker();
  struct variant {
    const char* what;
    std::string descr;
    bool fortran;
    std::string data;
    int version;
  };
  for (const auto& v : {variant{"C order", "<f4", false, raw_bytes(c_order), 1},
                        variant{"Fortran order", "<f4", true, raw_bytes(f_order), 1},
                        variant{"big-endian", ">f4", false, raw_bytes(c_order, true), 1},
                        variant{"format 2.0", "<f4", false, raw_bytes(c_order), 2}}) {
    SECTION(v.what) {
      write_npy(dir.path / "x.npy", v.descr, v.fortran, "(2, 3)", v.data, v.version);
      auto r = ori::inspect_model(model, options);
      REQUIRE(r.inputs.size() == 1);
      CHECK(r.inputs[0].source == "file x.npy");
      CHECK(r.inputs[0].shape == std::vector<std::int64_t>{2, 3});
      CHECK(r.batch == 2);
      REQUIRE(r.layers.size() == 1);
      CHECK(r.layers[0].mean == 3.0);
      CHECK(r.layers[0].std == 2.0);
      CHECK(r.layers[0].max_abs == 5.0);
    }
  }
  SECTION("float64 input") {
    auto doubles = column_picker(onnx::TensorProto::DOUBLE);
    write_npy(dir.path / "x.npy", "<f8", false, "(2, 3)",
              raw_bytes(std::vector<double>{1, 2, 3, 5, 6, 7}));
    auto r = ori::inspect_model(doubles, options);
    CHECK(r.inputs[0].dtype == "double");
    CHECK(r.layers[0].mean == 3.0);
  }
}

TEST_CASE("bad .npy files fail naming the file and the problem", "[runtime][npy]") {
  data_dir dir("npy_bad");
  ori::runtime_options options;
  options.data_dir = dir.path;
  auto model = column_picker();
  const std::string six = raw_bytes(std::vector<float>(6, 1.0f));
  auto fails_with = [&](const std::string& text) {
    try {
      ori::inspect_model(model, options);
      FAIL("no error");
    } catch (const ori::usage_error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(text) != std::string::npos);
      CHECK(e.where().find("x.npy") != std::string::npos);
    }
  };
  SECTION("complex dtype") {
    write_npy(dir.path / "x.npy", "<c8", false, "(2, 3)", six + six);
    fails_with("npy dtype '<c8' is not supported");
  }
  SECTION("string dtype") {
    write_npy(dir.path / "x.npy", "<U3", false, "(2,)", std::string(24, 'a'));
    fails_with("npy dtype '<U3' is not supported");
  }
  SECTION("dtype other than the input's") {
    write_npy(dir.path / "x.npy", "<f8", false, "(2, 3)", six + six);
    fails_with("input 'x' is float, the file holds double ('<f8')");
  }
  SECTION("shape other than the input's") {
    write_npy(dir.path / "x.npy", "<f4", false, "(3, 2)", six);
    fails_with("shape 3x2 does not fit input 'x'");
  }
  SECTION("data shorter than the shape") {
    write_npy(dir.path / "x.npy", "<f4", false, "(2, 3)", six.substr(0, 20));
    fails_with("npy data holds 20 bytes");
  }
  // A hostile header: dims whose product, or byte size, wraps. The zero
  // dim must not hide the overflow of the others (every partial product of
  // an accepted shape is defined, as for a model's dims).
  SECTION("dims whose product overflows int64") {
    write_npy(dir.path / "x.npy", "<f4", false, "(4294967296, 4294967296, 16)", six);
    fails_with("npy shape (4294967296, 4294967296, 16) of '<f4' is too large");
  }
  SECTION("dims whose byte size overflows") {
    write_npy(dir.path / "x.npy", "<f4", false, "(4611686018427387904,)", six);
    fails_with("npy shape (4611686018427387904,) of '<f4' is too large");
  }
  SECTION("an overflowing product behind a zero dim") {
    write_npy(dir.path / "x.npy", "<f4", false, "(0, 4294967296, 4294967296, 4)", "");
    fails_with("npy shape (0, 4294967296, 4294967296, 4) of '<f4' is too large");
  }
  SECTION("no magic") {
    std::ofstream(dir.path / "x.npy", std::ios::binary) << "just some text, not numpy";
    fails_with("not a NumPy .npy file");
  }
  SECTION("header without a shape") {
    std::string header = "{'descr': '<f4', 'fortran_order': False, }";
    std::string out = "\x93NUMPY\x01";
    out += '\0';
    out += static_cast<char>(header.size());
    out += '\0';
    std::ofstream(dir.path / "x.npy", std::ios::binary) << out << header << six;
    fails_with("npy header without 'shape'");
  }
  SECTION("neither .npy nor .pb") {
    try {
      ori::inspect_model(model, options);
      FAIL("no error");
    } catch (const ori::usage_error& e) {
      CHECK(std::string(e.what()).find("give x.npy or input_0.pb") != std::string::npos);
    }
  }
}

TEST_CASE("integer inputs feeding a Gather are drawn below the vocabulary size", "[runtime]") {
  graph_builder g;
  g.add_input("ids", {-1, 5}, onnx::TensorProto::INT64);
  g.add_initializer("emb", {7, 4}, uniform_values(28, 1.0, 21));
  g.add_initializer("w", {4, 3}, uniform_values(12, 1.0, 22));
  g.add_node("Gather", {"emb", "ids"}, {"e"});
  g.add_node("MatMul", {"e", "w"}, {"y"});
  g.add_output("y", {-1, 5, 3});
  auto model = ori::loaded_model::from_proto(g.model());
  ori::runtime_options options;
  options.batch = 3;
  // An index out of [0, 7) would make ONNX Runtime fail the Gather.
  auto r = ori::inspect_model(model, options);
  REQUIRE(r.inputs.size() == 1);
  CHECK(r.inputs[0].source == "uniform integers in [0, 7) (Gather vocabulary)");
  CHECK(r.inputs[0].shape == std::vector<std::int64_t>{3, 5});
  REQUIRE(r.layers.size() == 1);
  CHECK(r.layers[0].std > 0);
}

TEST_CASE("an unknown dim fails naming the input and --input-shape", "[runtime]") {
  graph_builder g;
  auto& in = g.add_input("img", {-1, 3, 8, 8});
  in.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(2)->set_dim_param("H");
  g.add_initializer("w", {4, 3, 1, 1}, uniform_values(12, 1.0, 1));
  g.add_node("Conv", {"img", "w"}, {"y"});
  g.add_output("y", {-1, 4, 8, 8});
  auto model = ori::loaded_model::from_proto(g.model());
  ori::runtime_options options;
  try {
    ori::inspect_model(model, options);
    FAIL("no error");
  } catch (const ori::usage_error& e) {
    CHECK(std::string(e.what()).find("'img'") != std::string::npos);
    CHECK(std::string(e.what()).find("--input-shape") != std::string::npos);
    CHECK(std::string(e.what()).find("'H'") != std::string::npos);
  }
  options.input_shapes["img"] = ori::parse_shape("2x3x5x8", "--input-shape");
  auto r = ori::inspect_model(model, options);
  CHECK(r.inputs[0].shape == std::vector<std::int64_t>{2, 3, 5, 8});
  options.input_shapes["img"] = {2, 4, 5, 8};  // channel dim is fixed at 3
  CHECK_THROWS_AS(ori::inspect_model(model, options), ori::usage_error);
  CHECK_THROWS_AS(ori::parse_shape("2x0x5", "--input-shape"), ori::usage_error);
  CHECK_THROWS_AS(ori::parse_shape("2xx5", "--input-shape"), ori::usage_error);
}

TEST_CASE("a model ONNX Runtime cannot load fails with its message", "[runtime]") {
  graph_builder g;
  g.add_input("x", {2, 4});
  g.add_initializer("w", {4, 4}, uniform_values(16, 1.0, 1));
  g.add_node("MatMul", {"x", "w"}, {"h"});
  g.add_node("NoSuchOp", {"h"}, {"y"}, {}, "mystery", "ai.example");
  g.add_output("y", {2, 4});
  auto proto = g.model();
  auto* op = proto.add_opset_import();
  op->set_domain("ai.example");
  op->set_version(1);
  auto model = ori::loaded_model::from_proto(proto);
  try {
    ori::inspect_model(model, {});
    FAIL("no error");
  } catch (const ori::runtime_error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("ONNX Runtime cannot load the model") != std::string::npos);
    CHECK(std::string(e.what()).find("NoSuchOp") != std::string::npos);
  }
}

namespace {

// A 32-layer MLP of width 256 with PyTorch's default Linear init (weights
// and biases U(+-1/sqrt(fan_in))) and the given activation after every
// layer.
ori::loaded_model deep_mlp(const std::string& act, int depth = 32, int width = 256) {
  graph_builder g;
  g.add_input("x", {-1, width});
  std::string h = "x";
  const double bound = 1.0 / std::sqrt(static_cast<double>(width));
  for (int i = 0; i < depth; ++i) {
    const std::string w = fmt::format("fc{}.weight", i);
    const std::string b = fmt::format("fc{}.bias", i);
    g.add_initializer(w, {width, width},
                      uniform_values(static_cast<std::size_t>(width * width), bound, 100 + i));
    g.add_initializer(b, {width}, uniform_values(static_cast<std::size_t>(width), bound, 200 + i));
    const std::string z = fmt::format("z{}", i);
    g.add_node("Gemm", {h, w, b}, {z}, {make_attribute("transB", std::int64_t{1})});
    h = fmt::format("a{}", i);
    g.add_node(act, {z}, {h});
  }
  g.add_output(h, {-1, width});
  return ori::loaded_model::from_proto(g.model());
}

// The default policy's plan for `model`: what LSUV may calibrate.
std::vector<ori::tensor_plan> default_plan(const ori::loaded_model& model) {
  return ori::make_plan(ori::analyze_model(model), {});
}

void apply_default_policy(ori::loaded_model& model) {
  auto plans = ori::make_plan(ori::analyze_model(model), {});
  ori::rewrite_options options;
  options.seed = 7;
  ori::rewrite_model(model, plans, ori::test::standard_registry(), options);
}

}  // namespace

TEST_CASE("deep MLPs with PyTorch's default init vanish; the default policy keeps them",
          "[runtime][deep]") {
  // With biases U(+-b), b^2 = 1/n, the pre-activation variance settles at
  // the fixed point v = g(v)/3 + 1/(3n) for v = E[act(z)^2]/Var(z) ratio g:
  // ReLU g = 1/2 -> v = 1/(3n)/(5/6); tanh (near 0) g = 1 -> v = 1/(3n)/(2/3);
  // SELU g ~ 2.10 -> v = 1/(3n)/0.30. The first layer's std is
  // sqrt(1/3 + 1/(3n)) for N(0, 1) inputs. With n = 256 the expected ratios
  // are 0.068, 0.077 and 0.11; the batch of 256 rows and finite depth allow
  // 30%.
  struct expectation {
    std::string act;
    double ratio;
  };
  const double n = 256;
  const double first = std::sqrt(1.0 / 3 + 1.0 / (3 * n));
  for (const auto& e : {expectation{"Relu", std::sqrt(1.0 / (3 * n) / (5.0 / 6)) / first},
                        expectation{"Tanh", std::sqrt(1.0 / (3 * n) / (2.0 / 3)) / first},
                        expectation{"Selu", std::sqrt(1.0 / (3 * n) / 0.301) / first}}) {
    SECTION(e.act) {
      auto model = deep_mlp(e.act);
      ori::runtime_options options;
      options.batch = 256;
      auto before = ori::inspect_model(model, options);
      REQUIRE(before.layers.size() == 32);
      INFO(e.act << " last/first " << before.summary.last_first_ratio);
      CHECK(before.summary.last_first_ratio == Approx(e.ratio).epsilon(0.3));
      CHECK(std::count(before.summary.flags.begin(), before.summary.flags.end(), "vanishing") == 1);
      CHECK(before.summary.worst_layer != "fc0.weight");

      apply_default_policy(model);
      auto after = ori::inspect_model(model, options);
      INFO("after the default policy " << after.summary.last_first_ratio);
      CHECK(after.summary.last_first_ratio >= 0.5);
      CHECK(after.summary.last_first_ratio <= 2.0);
      CHECK(std::count(after.summary.flags.begin(), after.summary.flags.end(), "vanishing") == 0);
    }
  }
}

TEST_CASE("LSUV brings every layer's std to 1 within the tolerance", "[runtime][lsuv]") {
  for (const std::string act : {"Relu", "Tanh"}) {
    SECTION(act) {
      auto model = deep_mlp(act, 12, 128);
      ori::runtime_options options;
      options.batch = 256;
      options.seed = 1;
      const auto before =
          ori::read_tensor_values<double>(model, model.proto().graph().initializer(0));
      const auto bias_before =
          ori::read_tensor_values<double>(model, model.proto().graph().initializer(1));
      ori::lsuv_options lsuv;
      auto results = ori::calibrate_lsuv(model, default_plan(model), options, lsuv);
      REQUIRE(results.size() == 12);
      for (std::size_t i = 0; i < results.size(); ++i) {
        INFO(results[i].name << " std " << results[i].std);
        CHECK(results[i].name == fmt::format("fc{}.weight", i));
        CHECK(std::abs(results[i].std - 1.0) <= lsuv.tolerance);
        CHECK(results[i].iterations >= 1);
        CHECK(results[i].note.empty());
      }
      // The weight is the old one times the reported scale; biases stay.
      const auto after =
          ori::read_tensor_values<double>(model, model.proto().graph().initializer(0));
      for (std::size_t i = 0; i < after.size(); i += 97)
        CHECK(after[i] == Approx(before[i] * results[0].scale).epsilon(1e-6));
      CHECK(ori::read_tensor_values<double>(model, model.proto().graph().initializer(1)) ==
            bias_before);
      // The same batch measures the same; a fresh batch within 0.1.
      auto same = ori::inspect_model(model, options);
      for (const auto& l : same.layers) CHECK(std::abs(l.std - 1.0) <= lsuv.tolerance);
      options.seed = 2;
      auto fresh = ori::inspect_model(model, options);
      for (const auto& l : fresh.layers) {
        INFO(l.name << " fresh std " << l.std);
        CHECK(std::abs(l.std - 1.0) <= 0.1);
      }
    }
  }
}

namespace {

// A residual CNN without normalization: a 3x3 stem Conv + Relu, `blocks`
// blocks y = Relu(x + Conv(Relu(Conv(x)))) at 16 channels, global average
// pooling and a Gemm to 10 classes; weights and biases as PyTorch's
// default (U(+-1/sqrt(fan_in))).
ori::loaded_model residual_cnn(int blocks) {
  const int c = 16;
  graph_builder g;
  g.add_input("x", {-1, 3, 16, 16});
  const auto pads = make_attribute("pads", std::vector<std::int64_t>{1, 1, 1, 1});
  std::uint32_t seed = 300;
  auto conv = [&](const std::string& in, const std::string& name, int c_in) {
    const double bound = 1.0 / std::sqrt(9.0 * c_in);
    g.add_initializer(name + ".weight", {c, c_in, 3, 3},
                      uniform_values(static_cast<std::size_t>(c * c_in * 9), bound, seed++));
    g.add_initializer(name + ".bias", {c}, uniform_values(c, bound, seed++));
    g.add_node("Conv", {in, name + ".weight", name + ".bias"}, {name}, {pads});
    return name;
  };
  g.add_node("Relu", {conv("x", "stem", 3)}, {"h0"});
  std::string h = "h0";
  for (int b = 0; b < blocks; ++b) {
    const std::string p = fmt::format("block{}", b);
    g.add_node("Relu", {conv(h, p + ".conv1", c)}, {p + ".r1"});
    g.add_node("Add", {h, conv(p + ".r1", p + ".conv2", c)}, {p + ".sum"});
    h = p + ".out";
    g.add_node("Relu", {p + ".sum"}, {h});
  }
  g.add_node("GlobalAveragePool", {h}, {"pooled"});
  g.add_node("Flatten", {"pooled"}, {"flat"});
  g.add_initializer("fc.weight", {10, c}, uniform_values(10 * c, 0.25, seed++));
  g.add_initializer("fc.bias", {10}, uniform_values(10, 0.25, seed++));
  g.add_node("Gemm", {"flat", "fc.weight", "fc.bias"}, {"logits"},
             {make_attribute("transB", std::int64_t{1})});
  g.add_output("logits", {-1, 10});
  return ori::loaded_model::from_proto(g.model());
}

bool has_flag(const std::vector<std::string>& flags, const std::string& f) {
  return std::find(flags.begin(), flags.end(), f) != flags.end();
}

}  // namespace

TEST_CASE("a residual CNN without normalization explodes under the default policy; LSUV fixes it",
          "[runtime][lsuv][residual]") {
  // Each block adds a branch of about the input's variance (He-scaled
  // convolutions after a Relu), so the variance roughly doubles per block:
  // over 8 blocks the std grows by about 2^4 = 16, far past the
  // exploding threshold of 4.
  auto model = residual_cnn(8);
  ori::runtime_options options;
  options.batch = 16;
  apply_default_policy(model);
  const auto rewritten = ori::inspect_model(model, options);
  REQUIRE(rewritten.layers.size() == 18);
  INFO("default policy: last/first " << rewritten.summary.last_first_ratio);
  CHECK(has_flag(rewritten.summary.flags, "exploding"));
  CHECK(rewritten.layers[16].ratio_to_first > 4.0);  // the last block's second conv
  CHECK(has_flag(rewritten.layers[16].flags, "exploding"));

  const auto results = ori::calibrate_lsuv(model, default_plan(model), options, {});
  REQUIRE(results.size() == 18);
  for (const auto& r : results) {
    INFO(r.name << " std " << r.std);
    CHECK(std::abs(r.std - 1.0) <= 0.05);
  }
  const auto calibrated = ori::inspect_model(model, options);
  INFO("after LSUV: last/first " << calibrated.summary.last_first_ratio);
  CHECK(calibrated.summary.last_first_ratio >= 0.5);
  CHECK(calibrated.summary.last_first_ratio <= 2.0);
  CHECK_FALSE(has_flag(calibrated.summary.flags, "exploding"));
  // A fresh batch: every layer within 0.1 of 1.
  options.seed = 9;
  for (const auto& l : ori::inspect_model(model, options).layers) {
    INFO(l.name << " fresh std " << l.std);
    CHECK(std::abs(l.std - 1.0) <= 0.1);
  }
}

TEST_CASE("LSUV changes only the weights the plan rewrites", "[runtime][lsuv][plan]") {
  // Four Relu layers with PyTorch's default weights (each layer's output std
  // is far from 1, so LSUV scales every weight it is handed). The plan
  // rewrites fc1 and fc3 only: fc0 by --skip, fc2 by a `keep` rule; fc3 is
  // then marked transferred. Only fc1 may change.
  auto model = deep_mlp("Relu", 4, 64);
  ori::plan_options options;
  options.skip = {"fc0.*"};
  options.rules.push_back(ori::parse_rule("fc2.weight=keep", "--rule 1"));
  auto plans = ori::make_plan(ori::analyze_model(model), options);
  auto plan_of = [&](const std::string& name) -> ori::tensor_plan& {
    for (auto& p : plans)
      if (p.tensor.info.name == name) return p;
    FAIL("no plan for " << name);
    return plans.front();
  };
  REQUIRE(plan_of("fc1.weight").action == ori::plan_action::rewrite);
  plan_of("fc3.weight").action = ori::plan_action::transfer;
  plan_of("fc3.weight").transfer_source = "pretrained.fc3.weight";
  std::vector<std::vector<double> > before;
  for (const auto& t : model.proto().graph().initializer())
    before.push_back(ori::read_tensor_values<double>(model, t));

  ori::runtime_options runtime;
  runtime.batch = 64;
  const auto results = ori::calibrate_lsuv(model, plans, runtime, {});
  auto result_of = [&](const std::string& name) {
    auto it = std::find_if(results.begin(), results.end(),
                           [&](const ori::lsuv_result& r) { return r.name == name; });
    REQUIRE(it != results.end());
    return *it;
  };
  CHECK(result_of("fc1.weight").iterations >= 1);
  CHECK(result_of("fc1.weight").note.empty());
  CHECK_THAT(fmt::format("{}", result_of("fc1.weight")), Catch::StartsWith("fc1.weight: scaled "));
  CHECK(fmt::format("{}", result_of("fc3.weight")) ==
        "fc3.weight: transferred from pretrained.fc3.weight: not calibrated");
  for (const char* kept : {"fc0.weight", "fc2.weight", "fc3.weight"}) {
    INFO(kept << ": " << result_of(kept).note);
    CHECK(result_of(kept).iterations == 0);
    CHECK(result_of(kept).scale == 1.0);
  }
  CHECK_THAT(result_of("fc0.weight").note, Catch::StartsWith("kept by the plan ("));
  CHECK_THAT(result_of("fc2.weight").note, Catch::StartsWith("kept by the plan ("));
  CHECK(result_of("fc3.weight").note == "transferred from pretrained.fc3.weight: not calibrated");
  // The flag the command counts by, not the note's text.
  for (const char* left : {"fc0.weight", "fc2.weight", "fc3.weight"})
    CHECK(result_of(left).left_by_plan);
  CHECK_FALSE(result_of("fc1.weight").left_by_plan);
  const auto& inits = model.proto().graph().initializer();
  for (int i = 0; i < inits.size(); ++i) {
    INFO(inits[i].name());
    const bool calibrated = inits[i].name() == "fc1.weight";
    CHECK((ori::read_tensor_values<double>(model, inits[i]) != before[i]) == calibrated);
  }
}

TEST_CASE("an inspection given the model's analysis measures what one analysing it does",
          "[runtime]") {
  auto model = deep_mlp("Tanh", 3, 16);
  ori::runtime_options options;
  options.batch = 8;
  const auto analysis = ori::analyze_model(model);
  const auto given = ori::inspect_model(model, analysis, options);
  const auto own = ori::inspect_model(model, options);
  REQUIRE(given.layers.size() == 3);
  REQUIRE(own.layers.size() == 3);
  CHECK(fmt::format("{}", given) == fmt::format("{}", own));
  CHECK_THAT(fmt::format("{}", given.layers[0]), Catch::StartsWith("fc0.weight Gemm tanh std="));
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(given.layers[i].name == own.layers[i].name);
    CHECK(given.layers[i].act == "tanh");
    CHECK(given.layers[i].std == own.layers[i].std);
  }
  CHECK_THROWS_AS(ori::inspect_model(model, ori::analyze_model(deep_mlp("Tanh", 2, 16)), options),
                  ori::usage_error);
}

TEST_CASE("LSUV refuses a plan of another model", "[runtime][lsuv][plan]") {
  auto model = deep_mlp("Relu", 2, 8);
  auto other = deep_mlp("Relu", 3, 8);
  CHECK_THROWS_AS(ori::calibrate_lsuv(model, default_plan(other), {}, {}), ori::usage_error);
}

TEST_CASE("LSUV leaves a layer with a constant output alone", "[runtime][lsuv]") {
  graph_builder g;
  g.add_input("x", {-1, 8});
  g.add_initializer("w0", {8, 8}, std::vector<float>(64, 0.0f));  // output is all zeros
  g.add_initializer("w1", {8, 8}, uniform_values(64, 0.3, 5));
  g.add_node("MatMul", {"x", "w0"}, {"h0"});
  g.add_node("MatMul", {"x", "w1"}, {"h1"});
  g.add_node("Add", {"h0", "h1"}, {"y"});
  g.add_output("y", {-1, 8});
  auto model = ori::loaded_model::from_proto(g.model());
  auto results = ori::calibrate_lsuv(model, default_plan(model), {}, {});
  REQUIRE(results.size() == 2);
  CHECK(results[0].name == "w0");
  CHECK(results[0].note == "constant output; left alone");
  CHECK(results[0].iterations == 0);
  CHECK(results[0].scale == 1.0);
  CHECK(std::abs(results[1].std - 1.0) <= 0.05);
}

TEST_CASE("LSUV reports the weights it does not calibrate, with the reason", "[runtime][lsuv]") {
  SECTION("recurrent weights") {
    auto model =
        ori::load_model(fs::path(ONNX_REINIT_SOURCE_DIR) / "examples/models/tiny_net.onnx");
    apply_default_policy(model);
    auto lstm_w = [&] {
      for (const auto& t : model.proto().graph().initializer())
        if (t.name() == "lstm.W") return ori::read_tensor_values<double>(model, t);
      FAIL("no lstm.W");
      return std::vector<double>{};
    };
    const auto w_before = lstm_w();
    auto results = ori::calibrate_lsuv(model, default_plan(model), {}, {});
    auto it = std::find_if(results.begin(), results.end(),
                           [](const ori::lsuv_result& r) { return r.name == "lstm.W"; });
    REQUIRE(it != results.end());
    CHECK(it->note.find("recurrent weight") != std::string::npos);
    CHECK(it->iterations == 0);
    CHECK(it->scale == 1.0);
    CHECK(lstm_w() == w_before);
    // The other layers are calibrated.
    CHECK(std::count_if(results.begin(), results.end(),
                        [](const ori::lsuv_result& r) { return r.note.empty(); }) == 4);
  }
  SECTION("weights in subgraphs") {
    auto model = ori::loaded_model::from_proto(ori::test::if_model_without_shapes(4));
    auto results = ori::calibrate_lsuv(model, default_plan(model), {}, {});
    REQUIRE(results.size() == 2);
    CHECK(results[0].name == "then_w");
    CHECK(results[0].note == "in subgraph #0/then_branch: not calibrated");
    CHECK(results[1].name == "else_w");
    CHECK(std::isnan(results[1].std));
  }
}

TEST_CASE("LSUV fails naming the layer on a non-finite activation", "[runtime][lsuv]") {
  graph_builder g;
  g.add_input("x", {-1, 4});
  g.add_initializer("w", {4, 4}, uniform_values(16, 1.0, 5));
  g.add_initializer("inf", {4}, std::vector<float>(4, INFINITY));
  g.add_node("Add", {"x", "inf"}, {"xi"});
  g.add_node("MatMul", {"xi", "w"}, {"y"});
  g.add_output("y", {-1, 4});
  auto model = ori::loaded_model::from_proto(g.model());
  const auto before = ori::read_tensor_values<double>(model, model.proto().graph().initializer(0));
  try {
    ori::calibrate_lsuv(model, default_plan(model), {}, {});
    FAIL("no error");
  } catch (const ori::runtime_error& e) {
    CHECK(e.where() == "w");
    CHECK(std::string(e.what()).find("non-finite") != std::string::npos);
  }
  CHECK(ori::read_tensor_values<double>(model, model.proto().graph().initializer(0)) == before);
}
TEST_CASE("the example model with a recurrent layer and a decomposed GELU is inspected",
          "[runtime]") {
  // Conv-BN-Relu, depthwise Conv-Relu, MatMul+bias with an Erf GELU, Gemm,
  // and an LSTM over a Gather embedding.
  auto model = ori::load_model(fs::path(ONNX_REINIT_SOURCE_DIR) / "examples/models/tiny_net.onnx");
  // As shipped, its BatchNorm has negative running variances: NaN from the
  // depthwise Conv on, flagged, and the first such layer is the worst.
  auto original = ori::inspect_model(model, {});
  REQUIRE(original.layers.size() == 5);
  CHECK(original.layers[0].nonfinite == 0);
  CHECK(original.layers[1].nonfinite > 0);
  CHECK(std::count(original.layers[1].flags.begin(), original.layers[1].flags.end(), "nonfinite") ==
        1);
  CHECK(std::isnan(original.layers[2].std));  // every element is NaN
  CHECK(original.summary.worst_layer == "dw.weight");

  apply_default_policy(model);
  auto r = ori::inspect_model(model, {});
  for (const auto& l : r.layers) CHECK(l.nonfinite == 0);
  std::vector<std::string> names, acts;
  for (const auto& l : r.layers) {
    names.push_back(l.name);
    acts.push_back(l.act);
  }
  CHECK(names == std::vector<std::string>{"conv1.weight", "dw.weight", "fc1.weight", "fc2.weight",
                                          "lstm.W"});
  CHECK(acts == std::vector<std::string>{"relu", "relu", "gelu", "linear", "tanh"});
  // The GELU is measured by applying it to its input h1b: positive
  // inputs pass almost unchanged, so its std is non-zero and finite.
  CHECK(r.layers[2].act_std > 0);
  // The LSTM's hidden state is already past the cell's tanh: |y| < 1.
  CHECK(r.layers[4].max_abs < 1.0);
  CHECK(r.layers[4].act_std == r.layers[4].std);
  CHECK(r.inputs[1].source.find("Gather vocabulary") != std::string::npos);
}
TEST_CASE("dead and saturated layers are flagged", "[runtime]") {
  // Relu after a bias of -50: every output is 0. Tanh after weights of 20
  // on 4 N(0, 1) inputs: z ~ N(0, 40^2), and |tanh z| <= 0.99 only for
  // |z| < 2.65, probability 0.053; over 1024 outputs the saturated share
  // is 0.947 with a standard error of 0.007, so above 0.9.
  graph_builder g;
  g.add_input("x", {-1, 4});
  g.add_initializer("w_dead", {4, 4}, uniform_values(16, 0.5, 1));
  g.add_initializer("b_dead", {4}, std::vector<float>(4, -50.0f));
  g.add_initializer("w_sat", {4, 4}, std::vector<float>(16, 20.0f));
  g.add_node("MatMul", {"x", "w_dead"}, {"h"});
  g.add_node("Add", {"h", "b_dead"}, {"hb"});
  g.add_node("Relu", {"hb"}, {"dead"});
  g.add_node("MatMul", {"x", "w_sat"}, {"s"});
  g.add_node("Tanh", {"s"}, {"sat"});
  g.add_output("dead", {-1, 4});
  g.add_output("sat", {-1, 4});
  auto model = ori::loaded_model::from_proto(g.model());
  ori::runtime_options options;
  options.batch = 256;
  auto r = ori::inspect_model(model, options);
  REQUIRE(r.layers.size() == 2);
  CHECK(r.layers[0].dead_fraction == 1.0);
  CHECK(r.layers[0].act_std == 0.0);
  CHECK(r.layers[0].flags == std::vector<std::string>{"dead"});
  CHECK(r.layers[1].saturated_fraction > 0.9);
  CHECK(r.layers[1].flags == std::vector<std::string>{"exploding", "saturated"});
  CHECK(r.summary.flags == std::vector<std::string>{"exploding", "dead", "saturated"});
  CHECK(r.summary.worst_layer == "w_sat");
}

// The batch itself (runtime_internal.h).

TEST_CASE("--data integers are fed exactly, beyond 2^53 and at the type limits", "[runtime]") {
  constexpr std::int64_t i64_max = std::numeric_limits<std::int64_t>::max();
  constexpr std::int64_t i64_min = std::numeric_limits<std::int64_t>::min();
  constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();
  constexpr std::int64_t beyond = (std::int64_t{1} << 53) + 1;  // no double holds it
  const std::vector<std::int64_t> signed_values{i64_max, i64_min, beyond, -beyond};
  const std::vector<std::uint64_t> unsigned_values{u64_max, std::uint64_t{beyond},
                                                   std::uint64_t{1} << 63};
  graph_builder g;
  g.add_input("a", {4}, onnx::TensorProto::INT64);
  g.add_input("b", {3}, onnx::TensorProto::UINT64);
  g.add_node("Identity", {"a"}, {"ya"});
  g.add_node("Identity", {"b"}, {"yb"});
  g.add_output("ya", {4}, onnx::TensorProto::INT64);
  g.add_output("yb", {3}, onnx::TensorProto::UINT64);
  const onnx::ModelProto model = g.model();
  auto bytes_of = [](const auto& values) {
    std::vector<std::byte> out(values.size() * 8);
    std::memcpy(out.data(), values.data(), out.size());
    return out;
  };
  for (const bool raw : {false, true}) {
    INFO((raw ? "raw_data" : "int64_data / uint64_data"));
    data_dir dir(raw ? "exact_raw" : "exact_typed");
    onnx::TensorProto a, b;
    a.set_data_type(onnx::TensorProto::INT64);
    a.add_dims(4);
    b.set_data_type(onnx::TensorProto::UINT64);
    b.add_dims(3);
    if (raw) {
      const auto ab = bytes_of(signed_values), bb = bytes_of(unsigned_values);
      a.set_raw_data(std::string(reinterpret_cast<const char*>(ab.data()), ab.size()));
      b.set_raw_data(std::string(reinterpret_cast<const char*>(bb.data()), bb.size()));
    } else {
      for (std::int64_t v : signed_values) a.add_int64_data(v);
      for (std::uint64_t v : unsigned_values) b.add_uint64_data(v);
    }
    dir.write(0, a);
    dir.write(1, b);
    ori::runtime_options options;
    options.data_dir = dir.path;
    const auto batch = ori::detail::make_batch(model, options);
    REQUIRE(batch.size() == 2);
    CHECK(batch[0].bytes == bytes_of(signed_values));
    CHECK(batch[1].bytes == bytes_of(unsigned_values));
  }
}

TEST_CASE("an input declared 2^40 x 4 is refused before allocating, naming its bytes",
          "[runtime]") {
  graph_builder g;
  g.add_input("x", {std::int64_t{1} << 40, 4});
  g.add_initializer("w", {4, 2}, uniform_values(8, 1.0, 3));
  g.add_node("MatMul", {"x", "w"}, {"y"});
  g.add_output("y", {std::int64_t{1} << 40, 2});
  ori::runtime_options options;
  try {
    (void)ori::detail::make_batch(g.model(), options);
    FAIL("no error");
  } catch (const ori::usage_error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("input 'x' of shape 1099511627776x4 (float)") != std::string::npos);
    CHECK(what.find("would need 17592186044416 bytes (16.0 TiB)") != std::string::npos);
    CHECK(what.find("--input-shape x=") != std::string::npos);
    CHECK(what.find("the model fixes every dim of this input") != std::string::npos);
  }
  // A free first dim: --batch or --input-shape helps, no note.
  graph_builder free;
  free.add_input("x", {-1, std::int64_t{1} << 40});
  free.add_initializer("w", {std::int64_t{1} << 40, 1}, {});
  free.add_node("MatMul", {"x", "w"}, {"y"});
  free.add_output("y", {-1, 1});
  try {
    (void)ori::detail::make_batch(free.model(), ori::runtime_options{});
    FAIL("no error");
  } catch (const ori::usage_error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(what.find("input 'x' of shape 32x1099511627776 (float)") != std::string::npos);
    CHECK(what.find("the model fixes") == std::string::npos);
  }
  // A given shape is checked the same way; a small one is fed.
  options.input_shapes["x"] = {std::int64_t{1} << 40, 4};
  CHECK_THROWS_AS(ori::detail::make_batch(g.model(), options), ori::usage_error);
  options.input_shapes["x"] = {3, 4};
  CHECK_THROWS_AS(ori::detail::make_batch(g.model(), options), ori::usage_error);  // dim 0 fixed
}
#endif

TEST_CASE("dtype sizes by the names the analysis and the runtime use", "[runtime]") {
  CHECK(ori::dtype_size("float") == 4);
  CHECK(ori::dtype_size("FLOAT") == 4);
  CHECK(ori::dtype_size("INT32") == 4);
  CHECK(ori::dtype_size("int8") == 1);
  CHECK(ori::dtype_size("float16") == 2);
  CHECK(ori::dtype_size("DOUBLE") == 8);
  CHECK(ori::dtype_size("string") == 0);
  CHECK(ori::dtype_size("no such type") == 0);
}
