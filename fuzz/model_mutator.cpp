// Structure-aware mutation for model_fuzzer (Debian has no
// libprotobuf-mutator): an input that parses as a ModelProto is changed at
// the level the analysis reads (attribute values, dims, edges, op types,
// tensor data types and sizes) and serialized again, so the fuzzer reaches
// the graph analysis with valid protobufs instead of spending its time on
// parse errors. Inputs that do not parse, and a share of those that do, get
// libFuzzer's own byte mutation.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

namespace {

using rng_t = std::minstd_rand;

// Ops whose attributes and input slots the analysis interprets.
constexpr std::array known_ops = {"Conv",
                                  "ConvTranspose",
                                  "Gemm",
                                  "MatMul",
                                  "LSTM",
                                  "GRU",
                                  "RNN",
                                  "BatchNormalization",
                                  "LayerNormalization",
                                  "InstanceNormalization",
                                  "GroupNormalization",
                                  "Clip",
                                  "Reshape",
                                  "Slice",
                                  "Split",
                                  "Concat",
                                  "Transpose",
                                  "Gather",
                                  "PRelu",
                                  "If",
                                  "Identity",
                                  "Cast",
                                  "Squeeze",
                                  "Unsqueeze",
                                  "Flatten",
                                  "Add",
                                  "Mul",
                                  "Relu",
                                  "LeakyRelu",
                                  "Sigmoid",
                                  "Tanh",
                                  "Gelu",
                                  "Erf",
                                  "Div",
                                  "Softmax",
                                  "DequantizeLinear",
                                  "Constant",
                                  "Dropout",
                                  "MaxPool",
                                  "HardSigmoid"};

// Attributes the analysis reads, to add where none is.
constexpr std::array known_int_attrs = {"hidden_size", "group",     "axis",     "transA",
                                        "transB",      "allowzero", "keepdims", "direction"};
constexpr std::array known_ints_attrs = {"strides", "kernel_shape", "perm", "axes",      "split",
                                         "starts",  "ends",         "pads", "dilations", "shape"};
constexpr std::array known_float_attrs = {"alpha", "beta", "min", "max", "epsilon"};

constexpr std::int64_t extreme_ints[] = {0,
                                         1,
                                         -1,
                                         2,
                                         3,
                                         4,
                                         8,
                                         std::int64_t{1} << 31,
                                         (std::int64_t{1} << 31) - 1,
                                         std::int64_t{1} << 32,
                                         -(std::int64_t{1} << 32),
                                         std::int64_t{1} << 61,
                                         std::numeric_limits<std::int64_t>::min(),
                                         std::numeric_limits<std::int64_t>::max()};

template <class T, std::size_t n>
const T& pick(const T (&values)[n], rng_t& rng) {
  return values[rng() % n];
}
template <class T, std::size_t n>
const T& pick(const std::array<T, n>& values, rng_t& rng) {
  return values[rng() % n];
}

std::int64_t some_int(rng_t& rng) {
  if (rng() % 4 == 0) return static_cast<std::int64_t>(rng() % 17) - 8;
  return pick(extreme_ints, rng);
}

float some_float(rng_t& rng) {
  constexpr float values[] = {std::numeric_limits<float>::quiet_NaN(),
                              std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::max(),
                              -std::numeric_limits<float>::max(),
                              std::numeric_limits<float>::denorm_min(),
                              0.0f,
                              -0.0f,
                              1e30f,
                              -6.0f,
                              6.0f,
                              0.25f};
  return pick(values, rng);
}

// Every graph of the model, subgraphs of If/Loop/Scan included.
void collect_graphs(onnx::GraphProto& g, std::vector<onnx::GraphProto*>& out, int depth) {
  out.push_back(&g);
  if (depth > 8) return;
  for (auto& node : *g.mutable_node())
    for (auto& a : *node.mutable_attribute()) {
      if (a.has_g()) collect_graphs(*a.mutable_g(), out, depth + 1);
      for (auto& sub : *a.mutable_graphs()) collect_graphs(sub, out, depth + 1);
    }
}

// Value names visible in a graph: inputs, initializers, node outputs.
std::vector<std::string> value_names(const onnx::GraphProto& g) {
  std::vector<std::string> names;
  for (const auto& v : g.input()) names.push_back(v.name());
  for (const auto& t : g.initializer()) names.push_back(t.name());
  for (const auto& n : g.node())
    for (const auto& o : n.output()) names.push_back(o);
  return names;
}

// Initializers and Constant-node tensors of one graph.
std::vector<onnx::TensorProto*> tensors_of(onnx::GraphProto& g) {
  std::vector<onnx::TensorProto*> out;
  for (auto& t : *g.mutable_initializer()) out.push_back(&t);
  for (auto& n : *g.mutable_node())
    for (auto& a : *n.mutable_attribute())
      if (a.has_t()) out.push_back(a.mutable_t());
  return out;
}

void mutate_attribute(onnx::NodeProto& node, rng_t& rng) {
  if (node.attribute_size() == 0 || rng() % 4 == 0) {
    onnx::AttributeProto& a = *node.add_attribute();
    switch (rng() % 3) {
      case 0:
        a.set_name(pick(known_int_attrs, rng));
        a.set_type(onnx::AttributeProto::INT);
        a.set_i(some_int(rng));
        break;
      case 1:
        a.set_name(pick(known_ints_attrs, rng));
        a.set_type(onnx::AttributeProto::INTS);
        for (unsigned i = 0, n = rng() % 5; i < n; ++i) a.add_ints(some_int(rng));
        break;
      default:
        a.set_name(pick(known_float_attrs, rng));
        a.set_type(onnx::AttributeProto::FLOAT);
        a.set_f(some_float(rng));
        break;
    }
    return;
  }
  const int k = static_cast<int>(rng() % static_cast<unsigned>(node.attribute_size()));
  onnx::AttributeProto& a = *node.mutable_attribute(k);
  switch (rng() % 6) {
    case 0:  // drop
      node.mutable_attribute()->DeleteSubrange(k, 1);
      break;
    case 1:  // duplicate, possibly with another value
      *node.add_attribute() = a;
      break;
    case 2:
      a.set_i(some_int(rng));
      break;
    case 3:
      if (a.ints_size() > 0)
        a.set_ints(static_cast<int>(rng() % static_cast<unsigned>(a.ints_size())), some_int(rng));
      else
        a.add_ints(some_int(rng));
      if (rng() % 3 == 0) a.add_ints(some_int(rng));
      if (rng() % 3 == 0 && a.ints_size() > 0) a.mutable_ints()->RemoveLast();
      break;
    case 4:
      a.set_f(some_float(rng));
      for (auto& f : *a.mutable_floats()) f = some_float(rng);
      break;
    default:  // a type that disagrees with the value
      a.set_type(static_cast<onnx::AttributeProto::AttributeType>(rng() % 13));
      break;
  }
}

void mutate_dims(onnx::TensorProto& t, rng_t& rng) {
  switch (rng() % 4) {
    case 0:
      if (t.dims_size() > 0) {
        t.set_dims(static_cast<int>(rng() % static_cast<unsigned>(t.dims_size())), some_int(rng));
        break;
      }
      [[fallthrough]];
    case 1:
      t.add_dims(rng() % 2 ? some_int(rng) : static_cast<std::int64_t>(rng() % 9));
      break;
    case 2:
      if (t.dims_size() > 0) t.mutable_dims()->RemoveLast();
      break;
    default: {
      // Same element count, another shape: keeps the data length valid so
      // the model gets past load into the analysis.
      std::int64_t n = 1;
      for (auto d : t.dims())
        if (d > 0 && d < (1 << 20) && n < (1 << 20)) n *= d;
      t.clear_dims();
      for (std::int64_t f : {2, 3, 4, 8})
        while (n % f == 0 && n > f && rng() % 2) {
          t.add_dims(f);
          n /= f;
        }
      t.add_dims(n);
      break;
    }
  }
}

void mutate_tensor(onnx::TensorProto& t, rng_t& rng) {
  switch (rng() % 6) {
    case 0:
    case 1:
      mutate_dims(t, rng);
      break;
    case 2:
      t.set_data_type(static_cast<int>(rng() % 24));
      break;
    case 3: {  // data length
      std::string& raw = *t.mutable_raw_data();
      if (rng() % 2 && !raw.empty())
        raw.resize(rng() % raw.size());
      else
        raw.append(static_cast<std::size_t>(rng() % 64), '\x7f');
      break;
    }
    case 4: {  // values: extreme floats in the raw bytes
      std::string& raw = *t.mutable_raw_data();
      for (std::size_t i = 0; i + 4 <= raw.size() && i < 64; i += 4)
        if (rng() % 3 == 0) {
          float f = some_float(rng);
          std::memcpy(raw.data() + i, &f, 4);
        }
      break;
    }
    default: {  // storage form: raw_data to float_data or external
      if (rng() % 2) {
        std::string raw = t.raw_data();
        t.clear_raw_data();
        for (std::size_t i = 0; i + 4 <= raw.size(); i += 4) {
          float f;
          std::memcpy(&f, raw.data() + i, 4);
          t.add_float_data(f);
        }
      } else {
        t.set_data_location(onnx::TensorProto::EXTERNAL);
        auto* e = t.add_external_data();
        e->set_key(rng() % 2 ? "location" : "length");
        e->set_value(rng() % 2 ? "weights.bin" : std::to_string(some_int(rng)));
      }
      break;
    }
  }
}

void mutate_edges(onnx::GraphProto& g, onnx::NodeProto& node, rng_t& rng) {
  const std::vector<std::string> names = value_names(g);
  auto random_name = [&]() -> std::string {
    switch (rng() % 6) {
      case 0:
        return "dangling_" + std::to_string(rng() % 4);
      case 1:
        return "";
      case 2:  // an output of this node: a self loop
        if (node.output_size() > 0) return node.output(0);
        [[fallthrough]];
      default:
        return names.empty() ? "x" : names[rng() % names.size()];
    }
  };
  switch (rng() % 5) {
    case 0:
    case 1:
      if (node.input_size() > 0)
        node.set_input(static_cast<int>(rng() % static_cast<unsigned>(node.input_size())),
                       random_name());
      else
        node.add_input(random_name());
      break;
    case 2:
      node.add_input(random_name());
      break;
    case 3:
      if (node.output_size() > 0)
        node.set_output(static_cast<int>(rng() % static_cast<unsigned>(node.output_size())),
                        random_name());
      else
        node.add_output(random_name());
      break;
    default:
      if (node.input_size() > 1)
        std::swap(*node.mutable_input(0), *node.mutable_input(static_cast<int>(
                                              rng() % static_cast<unsigned>(node.input_size()))));
      else if (node.input_size() == 1)
        node.mutable_input()->RemoveLast();
      break;
  }
}

// A new node of a known op over existing values, so rarely seen
// combinations (a Split feeding an LSTM bias) appear.
void add_node(onnx::GraphProto& g, rng_t& rng) {
  const std::vector<std::string> names = value_names(g);
  if (names.empty()) return;
  onnx::NodeProto& n = *g.add_node();
  n.set_op_type(pick(known_ops, rng));
  for (unsigned i = 0, k = 1 + rng() % 4; i < k; ++i) n.add_input(names[rng() % names.size()]);
  for (unsigned i = 0, k = 1 + rng() % 2; i < k; ++i)
    n.add_output("new_" + std::to_string(rng() % 1000));
  if (rng() % 2) mutate_attribute(n, rng);
  // Consumed by another node, so the new value is on some path.
  if (g.node_size() > 1 && rng() % 2) {
    auto& other = *g.mutable_node(static_cast<int>(rng() % static_cast<unsigned>(g.node_size())));
    if (other.input_size() > 0) other.set_input(0, n.output(0));
  }
}

void mutate_model(onnx::ModelProto& m, rng_t& rng) {
  std::vector<onnx::GraphProto*> graphs;
  collect_graphs(*m.mutable_graph(), graphs, 0);
  onnx::GraphProto& g = *graphs[rng() % graphs.size()];
  const unsigned what = rng() % 10;
  if (what <= 2 || what == 5 || what == 6) {
    if (g.node_size() == 0) return add_node(g, rng);
    onnx::NodeProto& node =
        *g.mutable_node(static_cast<int>(rng() % static_cast<unsigned>(g.node_size())));
    if (what <= 2)
      mutate_attribute(node, rng);
    else if (what == 5)
      mutate_edges(g, node, rng);
    else
      node.set_op_type(pick(known_ops, rng));
    return;
  }
  if (what <= 4) {
    std::vector<onnx::TensorProto*> tensors = tensors_of(g);
    if (!tensors.empty()) mutate_tensor(*tensors[rng() % tensors.size()], rng);
    return;
  }
  if (what == 7) return add_node(g, rng);
  if (what == 8 && g.node_size() > 0) {  // delete, duplicate or reorder nodes
    const int k = static_cast<int>(rng() % static_cast<unsigned>(g.node_size()));
    switch (rng() % 3) {
      case 0:
        g.mutable_node()->DeleteSubrange(k, 1);
        break;
      case 1:
        *g.add_node() = g.node(k);
        break;
      default:
        g.mutable_node()->SwapElements(k, g.node_size() - 1);
        break;
    }
    return;
  }
  // Graph inputs' and value_infos' shapes, and the opset version.
  if (rng() % 2 && m.opset_import_size() > 0) {
    m.mutable_opset_import(0)->set_version(static_cast<std::int64_t>(rng() % 24));
    return;
  }
  if (g.input_size() > 0) {
    auto* shape = g.mutable_input(static_cast<int>(rng() % static_cast<unsigned>(g.input_size())))
                      ->mutable_type()
                      ->mutable_tensor_type()
                      ->mutable_shape();
    if (shape->dim_size() > 0 && rng() % 2)
      shape->mutable_dim(static_cast<int>(rng() % static_cast<unsigned>(shape->dim_size())))
          ->set_dim_value(some_int(rng));
    else
      shape->add_dim()->set_dim_value(some_int(rng));
  }
}

std::size_t write_back(const onnx::ModelProto& m, std::uint8_t* data, std::size_t size,
                       std::size_t max_size) {
  std::string out;
  if (!m.SerializeToString(&out) || out.size() > max_size)
    return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

}  // namespace

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size,
                                               std::size_t max_size, unsigned int seed) {
  rng_t rng(seed);
  onnx::ModelProto m;
  // One in four: bytes, which also reaches the parser's and load's checks.
  if (rng() % 4 == 0 || !m.ParseFromArray(data, static_cast<int>(size)) || !m.has_graph())
    return LLVMFuzzerMutate(data, size, max_size);
  for (unsigned i = 0, n = 1 + rng() % 3; i < n; ++i) mutate_model(m, rng);
  return write_back(m, data, size, max_size);
}

// Graft a few nodes and initializers of one model into another: an LSTM
// of one seed meets the Split/Concat chain of another. A few, not all:
// grafting whole graphs makes inputs grow run after run.
extern "C" std::size_t LLVMFuzzerCustomCrossOver(const std::uint8_t* data1, std::size_t size1,
                                                 const std::uint8_t* data2, std::size_t size2,
                                                 std::uint8_t* out, std::size_t max_out_size,
                                                 unsigned int seed) {
  rng_t rng(seed);
  onnx::ModelProto a, b;
  auto copy_first = [&] {
    const std::size_t n = std::min(size1, max_out_size);
    std::memcpy(out, data1, n);
    return n;
  };
  if (!a.ParseFromArray(data1, static_cast<int>(size1)) ||
      !b.ParseFromArray(data2, static_cast<int>(size2)) || !a.has_graph() || !b.has_graph())
    return copy_first();
  onnx::GraphProto& g = *a.mutable_graph();
  const auto& other = b.graph();
  constexpr unsigned max_grafted = 4;
  if (other.node_size() > 0) {
    const auto first = static_cast<int>(rng() % static_cast<unsigned>(other.node_size()));
    for (int i = first; i < other.node_size() && i < first + static_cast<int>(max_grafted); ++i)
      *g.add_node() = other.node(i);
  }
  for (unsigned i = 0; i < max_grafted && other.initializer_size() > 0; ++i)
    if (rng() % 2)
      *g.add_initializer() = other.initializer(
          static_cast<int>(rng() % static_cast<unsigned>(other.initializer_size())));
  std::string bytes;
  if (!a.SerializeToString(&bytes) || bytes.size() > max_out_size) return copy_first();
  std::memcpy(out, bytes.data(), bytes.size());
  return bytes.size();
}
