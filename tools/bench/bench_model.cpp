// onnx-reinit-bench-model: writes a synthetic transformer-like model for the
// benchmark, built with the ONNX protobuf API and saved through the
// library's save_model. Each layer is LayerNorm -> Q/K/V MatMuls ->
// attention (MatMul, Softmax, MatMul) -> output Gemm -> residual ->
// LayerNorm -> Gemm -> GELU (Erf form) -> Gemm -> residual.
//
//   onnx-reinit-bench-model OUT.onnx [--mb N] [--hidden D] [--external-data NAME]
//
// The layer count is chosen so the weights come to about N MB (at least one
// layer). With --external-data every float initializer of 1 KiB or more goes
// to the one file NAME beside OUT.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/sdk/tensor_info.h"

namespace ori = onnx_reinit;

namespace {

struct arguments {
  std::string out;
  double mb = 100;
  std::int64_t hidden = 1024;
  std::string external_data;
};

// A float32 tensor in raw_data. The values only need to be cheap and not
// zero: zero pages would make reading the input artificially cheap (the
// kernel shares them and file systems may store them sparsely).
onnx::TensorProto make_filled(const std::string& name, std::vector<std::int64_t> dims,
                              std::uint32_t salt) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (std::int64_t d : dims) t.add_dims(d);
  const std::int64_t count = ori::checked_product(dims).value();
  std::string raw(static_cast<std::size_t>(count) * sizeof(float), '\0');
  // xorshift32 into the mantissa of [1, 2), shifted to [-0.5, 0.5).
  std::uint32_t x = 0x9e3779b9u ^ (salt * 0x85ebca6bu);
  if (x == 0) x = 1;
  char* p = raw.data();
  for (std::int64_t i = 0; i < count; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    const std::uint32_t bits = (x >> 9) | 0x3f800000u;
    float v;
    std::memcpy(&v, &bits, sizeof v);
    v -= 1.5f;
    std::memcpy(p + i * sizeof(float), &v, sizeof v);
  }
  t.set_raw_data(std::move(raw));
  return t;
}

onnx::TensorProto make_scalar(const std::string& name, float value) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_float_data(value);
  return t;
}

onnx::AttributeProto int_attribute(const std::string& name, std::int64_t value) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INT);
  a.set_i(value);
  return a;
}

onnx::AttributeProto ints_attribute(const std::string& name, std::vector<std::int64_t> values) {
  onnx::AttributeProto a;
  a.set_name(name);
  a.set_type(onnx::AttributeProto::INTS);
  for (std::int64_t v : values) a.add_ints(v);
  return a;
}

void set_value_info(onnx::ValueInfoProto& v, const std::string& name, std::int64_t hidden) {
  v.set_name(name);
  auto* tt = v.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  tt->mutable_shape()->add_dim()->set_dim_param("N");
  tt->mutable_shape()->add_dim()->set_dim_value(hidden);
}

class model_builder {
 public:
  explicit model_builder(std::int64_t hidden) : hidden_(hidden) {}

  std::string node(const std::string& op, std::vector<std::string> inputs,
                   std::vector<onnx::AttributeProto> attributes = {}) {
    onnx::NodeProto& n = *graph_.add_node();
    n.set_op_type(op);
    n.set_name(fmt::format("{}_{}", op, graph_.node_size()));
    for (auto& i : inputs) n.add_input(i);
    const std::string out = fmt::format("t{}", graph_.node_size());
    n.add_output(out);
    for (auto& a : attributes) *n.add_attribute() = std::move(a);
    return out;
  }

  std::string weight(const std::string& name, std::vector<std::int64_t> dims) {
    *graph_.add_initializer() = make_filled(name, std::move(dims), salt_++);
    return name;
  }

  std::string layer_norm(const std::string& x, const std::string& prefix) {
    return node("LayerNormalization",
                {x, weight(prefix + ".scale", {hidden_}), weight(prefix + ".bias", {hidden_})},
                {int_attribute("axis", -1)});
  }

  std::string linear_matmul(const std::string& x, const std::string& prefix, std::int64_t in,
                            std::int64_t out) {
    const std::string y = node("MatMul", {x, weight(prefix + ".weight", {in, out})});
    return node("Add", {y, weight(prefix + ".bias", {out})});
  }

  std::string linear_gemm(const std::string& x, const std::string& prefix, std::int64_t in,
                          std::int64_t out) {
    return node("Gemm",
                {x, weight(prefix + ".weight", {in, out}), weight(prefix + ".bias", {out})});
  }

  std::string layer(const std::string& x, int index) {
    const std::string p = fmt::format("layers.{}", index);
    const std::int64_t d = hidden_;
    const std::string h = layer_norm(x, p + ".ln1");
    const std::string q = linear_matmul(h, p + ".attn.q", d, d);
    const std::string k = linear_matmul(h, p + ".attn.k", d, d);
    const std::string v = linear_matmul(h, p + ".attn.v", d, d);
    const std::string kt = node("Transpose", {k}, {ints_attribute("perm", {1, 0})});
    const std::string scores = node("Mul", {node("MatMul", {q, kt}), "attn_scale"});
    const std::string ctx =
        node("MatMul", {node("Softmax", {scores}, {int_attribute("axis", -1)}), v});
    const std::string x1 = node("Add", {x, linear_gemm(ctx, p + ".attn.o", d, d)});
    const std::string u = linear_gemm(layer_norm(x1, p + ".ln2"), p + ".mlp.fc1", d, 4 * d);
    // GELU, Erf form: 0.5 * u * (1 + erf(u / sqrt(2))).
    const std::string e = node("Add", {node("Erf", {node("Div", {u, "sqrt2"})}), "one"});
    const std::string g = node("Mul", {node("Mul", {u, e}), "half"});
    return node("Add", {x1, linear_gemm(g, p + ".mlp.fc2", 4 * d, d)});
  }

  onnx::ModelProto build(int layers) {
    graph_.set_name("bench_transformer");
    *graph_.add_initializer() = make_scalar("sqrt2", std::sqrt(2.0f));
    *graph_.add_initializer() = make_scalar("one", 1.0f);
    *graph_.add_initializer() = make_scalar("half", 0.5f);
    *graph_.add_initializer() =
        make_scalar("attn_scale", 1.0f / std::sqrt(static_cast<float>(hidden_)));
    set_value_info(*graph_.add_input(), "x", hidden_);
    std::string x = "x";
    for (int i = 0; i < layers; ++i) x = layer(x, i);
    x = layer_norm(x, "final_ln");
    // The graph output is the last node's output, under its generated name.
    set_value_info(*graph_.add_output(), x, hidden_);

    onnx::ModelProto m;
    m.set_ir_version(8);
    m.set_producer_name("onnx-reinit-bench-model");
    auto* op = m.add_opset_import();
    op->set_domain("");
    op->set_version(17);
    *m.mutable_graph() = std::move(graph_);
    return m;
  }

 private:
  std::int64_t hidden_;
  std::uint32_t salt_ = 1;
  onnx::GraphProto graph_;
};

[[noreturn]] void usage(const std::string& message) {
  fmt::print(stderr,
             "onnx-reinit-bench-model: error: {}\n"
             "usage: onnx-reinit-bench-model OUT.onnx [--mb N] [--hidden D] "
             "[--external-data NAME]\n",
             message);
  std::exit(2);
}

arguments parse(int argc, char** argv) {
  arguments a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--mb")
      a.mb = std::stod(value());
    else if (arg == "--hidden")
      a.hidden = std::stoll(value());
    else if (arg == "--external-data")
      a.external_data = value();
    else if (!arg.empty() && arg[0] == '-')
      usage("unknown option " + arg);
    else if (a.out.empty())
      a.out = arg;
    else
      usage("more than one OUT given");
  }
  if (a.out.empty()) usage("no OUT given");
  if (a.mb <= 0 || a.hidden <= 0) usage("--mb and --hidden must be positive");
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const arguments a = parse(argc, argv);
  try {
    // 12 d^2 weights per layer: Q, K, V, O (d x d) and the MLP (d x 4d, 4d x d).
    const double layer_bytes = 12.0 * static_cast<double>(a.hidden * a.hidden) * sizeof(float);
    const int layers = std::max(1, static_cast<int>(std::lround(a.mb * 1e6 / layer_bytes)));
    model_builder builder(a.hidden);
    ori::loaded_model model = ori::loaded_model::from_proto(
        builder.build(layers), std::filesystem::absolute(a.out).parent_path());
    ori::save_options options;
    options.external_data_name = a.external_data;
    ori::save_model(model, a.out, options);
    fmt::print(stderr,
               "onnx-reinit-bench-model: {} layers, hidden {}, {:.0f} MB of weights -> {}\n",
               layers, a.hidden, layers * layer_bytes / 1e6, a.out);
    return 0;
  } catch (const ori::error& e) {
    fmt::print(stderr, "onnx-reinit-bench-model: error: {} ({})\n", e.what(), e.where());
  } catch (const std::exception& e) {
    fmt::print(stderr, "onnx-reinit-bench-model: error: {}\n", e.what());
  }
  return 1;
}
