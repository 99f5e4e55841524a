// The runtime stage's parts that need no ONNX Runtime: the batch, the
// layers to measure, their statistics and flags.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_io.h"
#include "onnx_reinit/random.h"
#include "onnx_reinit/sdk/tensor_info.h"
#include "runtime_internal.h"

namespace onnx_reinit {

std::vector<std::int64_t> parse_shape(const std::string& text, const std::string& what) {
  std::vector<std::int64_t> dims;
  std::size_t pos = 0;
  while (true) {
    std::size_t end = text.find('x', pos);
    std::string part = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    std::int64_t v = 0;
    std::size_t used = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (part.empty() || used != part.size() || v <= 0)
      throw usage_error(
          fmt::format("bad shape '{}': expected positive dims joined by 'x', as 1x3x224x224", text),
          what);
    dims.push_back(v);
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return dims;
}

std::size_t dtype_size(std::string_view dtype) {
  // Either case: the analysis names types as ONNX does ("INT32"), the
  // runtime in lower case ("int32"); one table knows both (io/dtype.h).
  const dtype_info* d = find_dtype(dtype);
  return d != nullptr && d->per_element == 1 ? d->size : 0;
}

namespace detail {

namespace {

using tp = onnx::TensorProto;

// The vocabulary size of a Gather whose indices are `input` (directly or
// through Cast) and whose data is an initializer; 0 when none.
std::int64_t gather_vocabulary(const onnx::GraphProto& graph, const std::string& input) {
  std::unordered_map<std::string, const tp*> inits;
  for (const auto& t : graph.initializer()) inits[t.name()] = &t;
  std::unordered_set<std::string> names{input};
  for (const auto& n : graph.node())
    if (n.op_type() == "Cast" && n.input_size() > 0 && names.count(n.input(0)) != 0 &&
        n.output_size() > 0)
      names.insert(n.output(0));
  for (const auto& n : graph.node()) {
    if (n.op_type() != "Gather" || n.input_size() < 2 || names.count(n.input(1)) == 0) continue;
    auto it = inits.find(n.input(0));
    if (it == inits.end()) continue;
    std::int64_t axis = 0;
    for (const auto& a : n.attribute())
      if (a.name() == "axis") axis = a.i();
    const auto& dims = it->second->dims();
    if (axis < 0) axis += dims.size();
    if (axis >= 0 && axis < dims.size() && dims[static_cast<int>(axis)] > 0)
      return dims[static_cast<int>(axis)];
  }
  return 0;
}

bool is_float_type(int t) {
  return t == tp::FLOAT || t == tp::DOUBLE || t == tp::FLOAT16 || t == tp::BFLOAT16;
}
bool is_integer_type(int t) {
  return t == tp::INT8 || t == tp::INT16 || t == tp::INT32 || t == tp::INT64 || t == tp::UINT8 ||
         t == tp::UINT16 || t == tp::UINT32 || t == tp::UINT64;
}

std::string shape_text(const std::vector<std::int64_t>& s) {
  return s.empty() ? std::string("scalar") : fmt::format("{}", fmt::join(s, "x"));
}

std::int64_t element_count(const std::vector<std::int64_t>& shape) {
  const std::optional<std::int64_t> n = checked_product(shape);
  if (!n) throw usage_error("input shape too large", shape_text(shape));
  return *n;
}

template <class T>
void put(std::vector<std::byte>& out, std::size_t i, T v) {
  std::memcpy(out.data() + i * sizeof(T), &v, sizeof(T));
}

// Checks a shape read from a data file against the graph input's.
void check_file_shape(const onnx::ValueInfoProto& in, const std::vector<std::int64_t>& shape,
                      const std::filesystem::path& file) {
  const auto& type = in.type().tensor_type();
  if (!type.has_shape()) return;
  const auto& dims = type.shape().dim();
  bool ok = dims.size() == static_cast<int>(shape.size());
  for (int i = 0; ok && i < dims.size(); ++i)
    ok = !dims[i].has_dim_value() || dims[i].dim_value() <= 0 || dims[i].dim_value() == shape[i];
  if (!ok)
    throw usage_error(fmt::format("shape {} does not fit input '{}'", shape_text(shape), in.name()),
                      file);
}

// The input `in` from the arrays given in memory (runtime_options::data).
void take_array(const std::map<std::string, input_array>& data, const onnx::ValueInfoProto& in,
                input_data& d) {
  const std::string where = fmt::format("input '{}'", in.name());
  auto it = data.find(in.name());
  if (it == data.end()) throw usage_error("no array given for this input", where);
  const input_array& a = it->second;
  if (a.dtype != d.info.dtype)
    throw usage_error(
        fmt::format("input '{}' is {}, the array holds {}", in.name(), d.info.dtype, a.dtype),
        where);
  check_file_shape(in, a.shape, where);
  const std::optional<std::int64_t> n = checked_product(a.shape);
  const std::size_t size = element_size_of(d.elem_type);
  if (!n || size == 0 || a.bytes.size() / size != static_cast<std::uint64_t>(*n) ||
      a.bytes.size() % size != 0)
    throw usage_error(fmt::format("the array holds {} bytes, not {} elements of {} bytes",
                                  a.bytes.size(), n.value_or(-1), size),
                      where);
  d.info.shape = a.shape;
  d.bytes = a.bytes;
  d.info.source = "array in memory";
}

// The input `in` (number `index` among the fed inputs) from DIR/<name>.npy
// or, when there is none, DIR/input_<index>.pb.
void read_data_file(const std::filesystem::path& dir, std::size_t index,
                    const onnx::ValueInfoProto& in, input_data& d) {
  const auto npy = dir / (in.name() + ".npy");
  const auto pb = dir / fmt::format("input_{}.pb", index);
  auto check_type = [&](int file_type, const std::string& file_dtype,
                        const std::filesystem::path& file) {
    if (file_type != d.elem_type)
      throw usage_error(
          fmt::format("input '{}' is {}, the file holds {}", in.name(), d.info.dtype, file_dtype),
          file);
  };
  std::error_code ec;
  if (std::filesystem::is_regular_file(npy, ec)) {
    npy_array a = read_npy(npy);
    check_type(a.elem_type, fmt::format("{} ('{}')", elem_type_name(a.elem_type), a.dtype), npy);
    check_file_shape(in, a.shape, npy);
    d.info.shape = std::move(a.shape);
    d.bytes = std::move(a.bytes);
    d.info.source = "file " + npy.filename().string();
    return;
  }
  std::ifstream f(pb, std::ios::binary);
  if (!f)
    throw usage_error(fmt::format("no data file for input '{}': give {} or {}", in.name(),
                                  npy.filename().string(), pb.filename().string()),
                      dir);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  tp t;
  if (!t.ParseFromString(bytes)) throw usage_error("not a TensorProto file", pb);
  check_type(t.data_type(), elem_type_name(t.data_type()), pb);
  d.info.shape.assign(t.dims().begin(), t.dims().end());
  check_file_shape(in, d.info.shape, pb);
  // The file's type is the input's, so its element bytes are fed as they
  // are: int64/uint64 values beyond 2^53 stay exact (no trip through double).
  try {
    const loaded_model none;  // the tensor is inline; nothing to look up
    const tensor_bytes_view view = tensor_bytes(none, t);
    d.bytes.assign(view.bytes().begin(), view.bytes().end());
  } catch (const error& e) {
    throw usage_error(fmt::format("cannot read the tensor's values: {}", e.what()), pb);
  }
  d.info.source = "file " + pb.filename().string();
}

}  // namespace

std::string elem_type_name(int t) {
  if (const dtype_info* dtype = find_dtype(t)) return std::string(dtype->name);
  if (!tp::DataType_IsValid(t)) return fmt::format("type {}", t);
  std::string s = tp::DataType_Name(static_cast<tp::DataType>(t));
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::size_t element_size_of(int t) {
  // Complex types have a size but no single value to feed.
  const dtype_info* dtype = find_dtype(t);
  return dtype != nullptr && dtype->per_element == 1 ? dtype->size : 0;
}

std::vector<std::byte> encode_values(const std::vector<double>& v, int t,
                                     const std::string& where) {
  const std::size_t size = element_size_of(t);
  if (size == 0)
    throw usage_error(fmt::format("cannot feed a tensor of type {}", elem_type_name(t)), where);
  std::vector<std::byte> out(v.size() * size);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const double x = v[i];
    switch (t) {
      case tp::FLOAT:
        put(out, i, static_cast<float>(x));
        break;
      case tp::DOUBLE:
        put(out, i, x);
        break;
      case tp::FLOAT16:
        put(out, i, float_to_half_bits(static_cast<float>(x)));
        break;
      case tp::BFLOAT16:
        put(out, i, float_to_bfloat16_bits(static_cast<float>(x)));
        break;
      case tp::INT8:
        put(out, i, static_cast<std::int8_t>(x));
        break;
      case tp::UINT8:
        put(out, i, static_cast<std::uint8_t>(x));
        break;
      case tp::BOOL:
        put(out, i, static_cast<std::uint8_t>(x != 0.0));
        break;
      case tp::INT16:
        put(out, i, static_cast<std::int16_t>(x));
        break;
      case tp::UINT16:
        put(out, i, static_cast<std::uint16_t>(x));
        break;
      case tp::INT32:
        put(out, i, static_cast<std::int32_t>(x));
        break;
      case tp::UINT32:
        put(out, i, static_cast<std::uint32_t>(x));
        break;
      case tp::INT64:
        put(out, i, static_cast<std::int64_t>(x));
        break;
      default:
        put(out, i, static_cast<std::uint64_t>(x));
        break;
    }
  }
  return out;
}

namespace {

using dim_list = google::protobuf::RepeatedPtrField<onnx::TensorShapeProto::Dimension>;

// The --input-shape given for `in`, checked against its declared dims (a
// dim fixed in the model must match).
std::vector<std::int64_t> given_shape(const onnx::ValueInfoProto& in,
                                      std::vector<std::int64_t> shape) {
  const bool has_shape = in.type().tensor_type().has_shape();
  const dim_list& dims = in.type().tensor_type().shape().dim();
  bool ok = !has_shape || dims.size() == static_cast<int>(shape.size());
  for (int i = 0; ok && has_shape && i < dims.size(); ++i)
    ok = !dims[i].has_dim_value() || dims[i].dim_value() <= 0 || dims[i].dim_value() == shape[i];
  if (!ok)
    throw usage_error(fmt::format("shape {} does not fit input '{}'", shape_text(shape), in.name()),
                      "--input-shape");
  return shape;
}

// The shape the model declares for `in`, its first dim the batch when not
// fixed; any other unfixed dim is an error whose hint shows the known dims.
std::vector<std::int64_t> declared_shape(const onnx::ValueInfoProto& in, std::int64_t batch) {
  if (!in.type().tensor_type().has_shape())
    throw usage_error(fmt::format("the shape of input '{}' is unknown: give it with "
                                  "--input-shape {}=DxDx...",
                                  in.name(), in.name()),
                      "--input-shape");
  const dim_list& dims = in.type().tensor_type().shape().dim();
  auto fixed = [&](int i) { return dims[i].has_dim_value() && dims[i].dim_value() > 0; };
  std::vector<std::string> hint;
  for (int i = 0; i < dims.size(); ++i)
    hint.push_back(fixed(i) ? std::to_string(dims[i].dim_value())
                   : i == 0 ? std::to_string(batch)
                            : std::string("D"));
  std::vector<std::int64_t> shape;
  for (int i = 0; i < dims.size(); ++i) {
    if (fixed(i) || i == 0) {
      shape.push_back(fixed(i) ? dims[i].dim_value() : batch);
      continue;
    }
    const std::string label =
        dims[i].has_dim_param() ? fmt::format(" ('{}')", dims[i].dim_param()) : "";
    throw usage_error(fmt::format("dim {}{} of input '{}' is not fixed: give the whole "
                                  "shape with --input-shape {}={}",
                                  i, label, in.name(), in.name(), fmt::join(hint, "x")),
                      "--input-shape");
  }
  return shape;
}

// The largest synthesized input: the batch is held in memory (with 12 more
// bytes per element while it is drawn) beside ONNX Runtime's activations.
constexpr std::uint64_t max_input_bytes = std::uint64_t{4} << 30;

std::string byte_text(std::uint64_t bytes) {
  constexpr double gib = 1024.0 * 1024.0 * 1024.0;
  return bytes >= (std::uint64_t{1} << 40)
             ? fmt::format("{:.1f} TiB", static_cast<double>(bytes) / (gib * 1024.0))
             : fmt::format("{:.1f} GiB", static_cast<double>(bytes) / gib);
}

// Refuses, before anything is allocated, an input whose shape (declared by
// the model or given) holds more than max_input_bytes.
void check_input_size(const onnx::ValueInfoProto& in, const input_data& d) {
  const std::optional<std::int64_t> n = checked_product(d.info.shape);
  const std::size_t size = element_size_of(d.elem_type);
  const bool too_big = !n || (size > 0 && static_cast<std::uint64_t>(*n) > max_input_bytes / size);
  if (!too_big) return;
  const std::string bytes =
      n && static_cast<std::uint64_t>(*n) <= std::numeric_limits<std::uint64_t>::max() / size
          ? fmt::format("{} bytes ({})", static_cast<std::uint64_t>(*n) * size,
                        byte_text(static_cast<std::uint64_t>(*n) * size))
          : std::string("more than 2^64 bytes");
  // --input-shape can change only the dims the model leaves free; say so
  // when it fixes them all (ONNX Runtime runs such an input at that size).
  const dim_list& dims = in.type().tensor_type().shape().dim();
  const bool all_fixed = std::all_of(dims.begin(), dims.end(), [](const auto& dim) {
    return dim.has_dim_value() && dim.dim_value() > 0;
  });
  throw usage_error(
      fmt::format("input '{}' of shape {} ({}) would need {}, over the {} a synthesized input "
                  "may take; give a smaller shape with --input-shape {}=DxDx...{}",
                  in.name(), shape_text(d.info.shape), d.info.dtype, bytes,
                  byte_text(max_input_bytes), in.name(),
                  all_fixed ? " (the model fixes every dim of this input, and ONNX Runtime "
                              "runs it only at that size)"
                            : ""),
      "--input-shape");
}

// Values for a synthesized input `d` of the graph input `in` (shape and
// type set): N(0, 1) floats, random booleans, integers below the vocabulary
// of the Gather they index (else zeros), each from the input's own stream.
// Sets d.info.source.
std::vector<double> synthesized_values(const onnx::GraphProto& graph,
                                       const onnx::ValueInfoProto& in, std::uint64_t seed,
                                       input_data& d) {
  const std::int64_t n = element_count(d.info.shape);
  std::vector<double> values(static_cast<std::size_t>(n), 0.0);
  const onnx_reinit_rng rng = make_tensor_rng(seed, "input:" + in.name());
  std::vector<float> draws(static_cast<std::size_t>(n));
  if (is_float_type(d.elem_type)) {
    fill_normal_f32(rng, draws.data(), 0, draws.size(), 0.0, 1.0);
    std::copy(draws.begin(), draws.end(), values.begin());
    d.info.source = "normal(0, 1)";
  } else if (d.elem_type == tp::BOOL) {
    fill_uniform_f32(rng, draws.data(), 0, draws.size(), 0.0, 1.0);
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = draws[i] < 0.5f ? 0.0 : 1.0;
    d.info.source = "random booleans";
  } else if (is_integer_type(d.elem_type)) {
    if (std::int64_t vocab = gather_vocabulary(graph, in.name()); vocab > 0) {
      fill_uniform_f32(rng, draws.data(), 0, draws.size(), 0.0, 1.0);
      for (std::size_t i = 0; i < values.size(); ++i)
        values[i] = std::min<double>(std::floor(draws[i] * static_cast<double>(vocab)),
                                     static_cast<double>(vocab - 1));
      d.info.source = fmt::format("uniform integers in [0, {}) (Gather vocabulary)", vocab);
    } else {
      d.info.source = "zeros";
    }
  } else {
    throw usage_error(
        fmt::format("cannot synthesize an input of type {}; give it with --data", d.info.dtype),
        fmt::format("input '{}'", in.name()));
  }
  return values;
}

}  // namespace

std::vector<input_data> make_batch(const onnx::ModelProto& model, const runtime_options& options) {
  const auto& graph = model.graph();
  std::unordered_set<std::string> inits;
  for (const auto& t : graph.initializer()) inits.insert(t.name());
  std::set<std::string> unused_shapes;
  for (const auto& [name, shape] : options.input_shapes) unused_shapes.insert(name);
  if (options.batch <= 0) throw usage_error("the batch size must be positive", "--batch");
  std::vector<input_data> out;
  for (const auto& in : graph.input()) {
    if (inits.count(in.name()) != 0) continue;
    const std::size_t index = out.size();
    input_data d;
    d.info.name = in.name();
    if (!in.type().has_tensor_type())
      throw usage_error("only tensor inputs can be fed", fmt::format("input '{}'", in.name()));
    d.elem_type = in.type().tensor_type().elem_type();
    d.info.dtype = elem_type_name(d.elem_type);
    if (!options.data_dir.empty() || !options.data.empty()) {
      if (!options.data_dir.empty())
        read_data_file(options.data_dir, index, in, d);
      else
        take_array(options.data, in, d);
      out.push_back(std::move(d));
      continue;
    }
    if (auto it = options.input_shapes.find(in.name()); it != options.input_shapes.end()) {
      unused_shapes.erase(in.name());
      d.info.shape = given_shape(in, it->second);
    } else {
      d.info.shape = declared_shape(in, options.batch);
    }
    check_input_size(in, d);
    d.bytes = encode_values(synthesized_values(graph, in, options.seed, d), d.elem_type, in.name());
    out.push_back(std::move(d));
  }
  if (!unused_shapes.empty())
    throw usage_error(fmt::format("no graph input named '{}'", *unused_shapes.begin()),
                      "--input-shape");
  for (const auto& given : options.data)
    if (std::none_of(out.begin(), out.end(),
                     [&](const input_data& d) { return d.info.name == given.first; }))
      throw usage_error(fmt::format("no graph input named '{}'", given.first), "data");
  return out;
}

std::vector<layer_site> find_layers(const onnx::ModelProto& model,
                                    const std::vector<tensor_analysis>& analysis) {
  std::unordered_map<std::string, int> producer;
  const auto& graph = model.graph();
  for (int i = 0; i < graph.node_size(); ++i)
    for (const auto& o : graph.node(i).output()) producer.emplace(o, i);
  std::vector<layer_site> sites;
  std::unordered_map<std::string, std::size_t> by_output;
  for (int pass = 0; pass < 2; ++pass) {  // weights first, then recurrent weights
    const tensor_role role = pass == 0 ? tensor_role::weight : tensor_role::recurrent_weight;
    for (const auto& a : analysis) {
      // Quantized weights too: their layers' outputs are float.
      if (a.info.role != role || a.layer_output.empty() || (!a.is_float && !a.quantized)) continue;
      auto p = producer.find(a.layer_output);
      if (p == producer.end() || by_output.count(a.layer_output) != 0) continue;
      const auto& node = graph.node(p->second);
      layer_site s;
      s.weight = a.info.name;
      s.ref = a.ref;
      s.op = a.consumer_op;
      s.output = a.layer_output;
      s.act = a.info.activation;
      s.act_param = a.info.activation_param;
      s.act_input = a.activation_input;
      s.act_output = a.activation_output;
      s.quantized = a.quantized.has_value();
      s.recurrent = node.op_type() == "LSTM" || node.op_type() == "GRU" || node.op_type() == "RNN";
      if (s.recurrent) {  // the cell's activation is inside the layer
        s.act_input.clear();
        s.act_output.clear();
      }
      s.node = p->second;
      by_output.emplace(s.output, sites.size());
      sites.push_back(std::move(s));
    }
  }
  std::stable_sort(sites.begin(), sites.end(),
                   [](const layer_site& a, const layer_site& b) { return a.node < b.node; });
  return sites;
}

double apply_activation(activation_kind kind, double p, double x) {
  auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  auto softplus = [](double v) { return v > 30 ? v : std::log1p(std::exp(v)); };
  switch (kind) {
    case activation_kind::linear:
      return x;
    case activation_kind::relu:
      return std::max(x, 0.0);
    case activation_kind::relu6:
      return std::clamp(x, 0.0, 6.0);
    case activation_kind::leaky_relu:
    case activation_kind::prelu:
      return x >= 0 ? x : p * x;
    case activation_kind::elu:
      return x >= 0 ? x : p * std::expm1(x);
    case activation_kind::selu:
      return 1.0507009873554805 * (x >= 0 ? x : 1.6732632423543772 * std::expm1(x));
    case activation_kind::gelu:
      return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case activation_kind::silu:
      return x * sigmoid((p > 0 ? p : 1.0) * x);
    case activation_kind::hardswish:
      return x * std::clamp(x + 3.0, 0.0, 6.0) / 6.0;
    case activation_kind::mish:
      return x * std::tanh(softplus(x));
    case activation_kind::softplus:
      return softplus(x);
    case activation_kind::sigmoid:
      return sigmoid(x);
    case activation_kind::hardsigmoid:
      return std::clamp(0.2 * x + 0.5, 0.0, 1.0);
    case activation_kind::tanh:
      return std::tanh(x);
  }
  return x;
}

void fill_layer_stats(layer_stats& s, const moments& layer, const moments& act,
                      activation_kind kind) {
  s.mean = layer.count > 0 ? layer.mean : NAN;
  s.std = layer.std();
  s.max_abs = layer.count > 0 ? layer.max_abs : NAN;
  s.nonfinite = layer.nonfinite;
  s.act_std = act.std();
  const double n = static_cast<double>(act.count);
  s.dead_fraction = NAN;
  s.saturated_fraction = NAN;
  if (kind == activation_kind::relu || kind == activation_kind::relu6)
    s.dead_fraction = act.count > 0 ? static_cast<double>(act.zeros) / n : NAN;
  if (kind == activation_kind::tanh)
    s.saturated_fraction = act.count > 0 ? static_cast<double>(act.beyond_tanh) / n : NAN;
  if (kind == activation_kind::sigmoid || kind == activation_kind::hardsigmoid)
    s.saturated_fraction = act.count > 0 ? static_cast<double>(act.beyond_sigmoid) / n : NAN;
}

void finish_inspection(inspection& r, const inspect_thresholds& th) {
  auto& sum = r.summary;
  sum = {};
  sum.last_first_ratio = NAN;
  if (r.layers.empty()) return;
  const double first = r.layers.front().std;
  std::vector<std::string> order = {"vanishing", "exploding", "dead",
                                    "saturated", "nonfinite", "constant"};
  std::set<std::string> seen;
  double worst = -1.0;
  for (auto& l : r.layers) {
    l.flags.clear();
    l.ratio_to_first = first > 0 && std::isfinite(first) ? l.std / first : NAN;
    if (std::isfinite(l.ratio_to_first) && l.ratio_to_first < th.vanishing_ratio)
      l.flags.push_back("vanishing");
    if (std::isfinite(l.ratio_to_first) && l.ratio_to_first > th.exploding_ratio)
      l.flags.push_back("exploding");
    if (l.dead_fraction > th.dead_fraction) l.flags.push_back("dead");
    if (l.saturated_fraction > th.saturated_fraction) l.flags.push_back("saturated");
    if (l.nonfinite > 0) l.flags.push_back("nonfinite");
    if (l.std == 0.0) l.flags.push_back("constant");
    for (const auto& f : l.flags) seen.insert(f);
    double badness = l.nonfinite > 0 ? std::numeric_limits<double>::infinity()
                     : l.ratio_to_first > 0 && std::isfinite(l.ratio_to_first)
                         ? std::abs(std::log(l.ratio_to_first))
                         : 0.0;
    if (badness > worst) {
      worst = badness;
      sum.worst_layer = l.name;
    }
  }
  sum.last_first_ratio = r.layers.back().ratio_to_first;
  if (sum.last_first_ratio < th.vanishing_ratio) seen.insert("vanishing");
  if (sum.last_first_ratio > th.exploding_ratio) seen.insert("exploding");
  for (const auto& f : order)
    if (seen.count(f) != 0) sum.flags.push_back(f);
}

}  // namespace detail
}  // namespace onnx_reinit
