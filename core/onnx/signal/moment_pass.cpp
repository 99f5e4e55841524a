// The analytic moment pass (docs/DESIGN.md section 14); see moment_pass.h.
#include "moment_pass.h"

#include <fmt/format.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <set>

#include "elementwise.h"
#include "ops.h"
#include "patterns.h"

namespace onnx_reinit::signal {

using detail::model_index;
using detail::moment_rule;

// The quadrature's relative tolerance in the pass (gaussian_moments.h).
constexpr double pass_tolerance = 1e-8;

moments moments_of(const std::vector<double>& values) {
  if (values.empty()) return {0.0, 0.0};
  double sum = 0.0, squares = 0.0;
  for (double v : values) {
    sum += v;
    squares += v * v;
  }
  const auto n = static_cast<double>(values.size());
  return {sum / n, squares / n};
}

namespace {

// A constant as ONNX shape inference may read it: small integer tensors
// (shapes, axes) rebuilt from the decoded values, so inference never parses
// stored bytes (ONNX 1.12's ParseData trusts the dims); anything else
// becomes a typed graph input.
void add_constant(const detail::model_index& index, const onnx::TensorProto& t,
                  onnx::GraphProto& g) {
  const std::vector<std::int64_t> dims = detail::tensor_dims(t);
  const bool integer =
      t.data_type() == onnx::TensorProto::INT64 || t.data_type() == onnx::TensorProto::INT32;
  std::optional<std::vector<double>> values;
  if (integer) values = index.values(t, 64);
  if (values) {
    onnx::TensorProto& c = *g.add_initializer();
    c.set_name(t.name());
    c.set_data_type(t.data_type());
    for (std::int64_t d : dims) c.add_dims(d);
    for (double v : *values) {
      if (t.data_type() == onnx::TensorProto::INT64)
        c.add_int64_data(static_cast<std::int64_t>(v));
      else
        c.add_int32_data(static_cast<std::int32_t>(v));
    }
  }
  onnx::ValueInfoProto& in = *g.add_input();
  in.set_name(t.name());
  auto& type = *in.mutable_type()->mutable_tensor_type();
  type.set_elem_type(t.data_type());
  auto& shape = *type.mutable_shape();
  for (std::int64_t d : dims) shape.add_dim()->set_dim_value(d);
}

bool holds_subgraph(const onnx::NodeProto& n) {
  for (const onnx::AttributeProto& a : n.attribute())
    if (a.type() == onnx::AttributeProto::GRAPH || a.type() == onnx::AttributeProto::GRAPHS)
      return true;
  return false;
}

}  // namespace

std::unordered_map<std::string, std::vector<std::int64_t>> infer_value_shapes(
    const detail::model_index& index, const onnx::ModelProto& model) {
  // Inference runs on a copy holding the main graph's nodes (Constant nodes
  // and subgraph holders aside) and no stored tensor bytes.
  onnx::ModelProto copy;
  *copy.mutable_opset_import() = model.opset_import();
  copy.set_ir_version(model.ir_version());
  onnx::GraphProto& g = *copy.mutable_graph();
  const onnx::GraphProto& src = model.graph();
  std::set<std::string> declared;
  for (const onnx::ValueInfoProto& v : src.input()) declared.insert(v.name());
  for (const onnx::NodeProto& n : src.node()) {
    if (n.op_type() == "Constant" && n.output_size() == 1) {
      if (const onnx::TensorProto* t = index.constant(n.output(0), 0);
          t != nullptr && declared.insert(n.output(0)).second)
        add_constant(index, *t, g);
      continue;
    }
    if (!holds_subgraph(n)) *g.add_node() = n;
  }
  for (const onnx::TensorProto& t : src.initializer())
    if (declared.insert(t.name()).second) add_constant(index, t, g);
  for (const onnx::ValueInfoProto& v : src.input()) *g.add_input() = v;
  *g.mutable_output() = src.output();
  std::unordered_map<std::string, std::vector<std::int64_t>> shapes;
  try {
    onnx::ShapeInferenceOptions options{false, 0, false};
    onnx::shape_inference::InferShapes(copy, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception&) {
    // What inference typed before it stopped stays; the rest is absent.
  }
  auto take = [&](const onnx::ValueInfoProto& v) {
    if (!v.type().has_tensor_type() || !v.type().tensor_type().has_shape()) return;
    std::vector<std::int64_t> dims;
    for (const auto& d : v.type().tensor_type().shape().dim())
      dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    shapes[v.name()] = std::move(dims);
  };
  for (const auto& v : g.input()) take(v);
  for (const auto& v : g.value_info()) take(v);
  for (const auto& v : g.output()) take(v);
  return shapes;
}

namespace {

// Known, positive element count of a shape; nullopt with an unknown dim.
std::optional<double> element_count(const std::vector<std::int64_t>& dims) {
  double n = 1.0;
  for (std::int64_t d : dims) {
    if (d < 0) return std::nullopt;
    n *= static_cast<double>(d);
  }
  return n;
}

moments from_mean_variance(double mean, double variance) {
  return {mean, std::max(variance, 0.0) + mean * mean};
}

// The chain of elementwise nodes from a root value to a value, and the
// compiled function of the root it computes.
struct elementwise_origin {
  std::string root;
  std::vector<int> nodes;  // in node order
  scalar_function function;
};

class pass {
 public:
  pass(const model_index& index, const onnx::ModelProto& model, const moment_pass_hooks& hooks)
      : index_(index), model_(model), hooks_(hooks) {}

  moment_pass_result run() {
    find_decomposed_norms();
    for (int i = 0; i < static_cast<int>(index_.nodes().size()); ++i)
      if (index_.node_graph(i) == 0) visit(i);
    return std::move(result_);
  }

 private:
  struct norm_site {
    std::string input;
    std::string scale;  // constant names; "" when absent
    std::string bias;
    bool rms = false;
  };

  const model_index& index_;
  const onnx::ModelProto& model_;
  // Inferred on first use: chains of layers and activations need none.
  mutable std::optional<std::unordered_map<std::string, std::vector<std::int64_t>>> shapes_;
  const moment_pass_hooks& hooks_;
  moment_pass_result result_;
  std::unordered_map<std::string, elementwise_origin> origins_;
  std::unordered_map<std::string, norm_site> norms_;  // by the norm's output
  std::set<std::string> norm_inputs_;

  // ---- values -------------------------------------------------------------

  std::optional<value_moments> get(const std::string& name) {
    if (name.empty()) return std::nullopt;
    if (auto it = result_.values.find(name); it != result_.values.end()) return it->second;
    if (index_.constant(name, 0) != nullptr) {
      if (!hooks_.constant) return std::nullopt;
      std::optional<moments> m = hooks_.constant(name);
      if (!m) return std::nullopt;
      return value_moments{*m};
    }
    if (index_.producer(name, 0) < 0)
      return value_moments{hooks_.input ? hooks_.input(name) : moments{}};
    return std::nullopt;
  }
  bool is_constant(const std::string& name) const { return index_.constant(name, 0) != nullptr; }

  std::optional<std::vector<std::int64_t>> shape(const std::string& name) const {
    if (!shapes_) shapes_ = infer_value_shapes(index_, model_);
    auto it = shapes_->find(name);
    if (it == shapes_->end()) return std::nullopt;
    return it->second;
  }

  std::optional<double> scalar_constant(const std::string& name) const {
    const onnx::TensorProto* t = index_.constant(name, 0);
    if (t == nullptr) return std::nullopt;
    // One value, or a few equal ones; a bias vector is no scalar and is not
    // decoded to find that out.
    std::optional<double> count = element_count(detail::tensor_dims(*t));
    if (!count || *count > 16) return std::nullopt;
    std::optional<std::vector<double>> v = index_.values(*t, 1 << 16);
    if (!v || v->empty()) return std::nullopt;
    for (double x : *v)
      if (x != v->front()) return std::nullopt;
    return v->front();
  }

  void set(const onnx::NodeProto& node, value_moments v) {
    for (const std::string& out : node.output())
      if (!out.empty()) result_.values[out] = v;
  }
  void assume(const onnx::NodeProto& node, std::string_view why) {
    const std::string key = why.empty() ? detail::qualified_op(node)
                                        : fmt::format("{} ({})", detail::qualified_op(node), why);
    ++result_.assumptions[key];
  }
  void pass_through(const onnx::NodeProto& node, std::string_view why) {
    assume(node, why);
    if (node.input_size() > 0)
      if (std::optional<value_moments> in = get(node.input(0))) set(node, *in);
  }

  // ---- decomposed norms -----------------------------------------------------

  std::string constant_at(const detail::value_use& use) const {
    if (use.node < 0) return {};
    const onnx::NodeProto& n = index_.node(use.node);
    if (use.slot >= n.input_size()) return {};
    return detail::constant_source(index_, n.input(use.slot), index_.node_graph(use.node));
  }

  void find_decomposed_norms() {
    std::set<std::string> tried;
    for (int i = 0; i < static_cast<int>(index_.nodes().size()); ++i) {
      const onnx::NodeProto& n = index_.node(i);
      if (index_.node_graph(i) != 0 || n.op_type() != "ReduceMean" || n.input_size() == 0) continue;
      // LayerNorm starts at ReduceMean(x); RMSNorm at ReduceMean(x^2): try x
      // and, for the latter, the Pow/Mul's input.
      std::vector<std::string> candidates{n.input(0)};
      if (int p = index_.producer(n.input(0), 0); p >= 0 && index_.node(p).input_size() > 0)
        candidates.push_back(index_.node(p).input(0));
      for (const std::string& x : candidates) {
        if (!tried.insert(x).second) continue;
        std::optional<detail::decomposed_norm> d = detail::match_decomposed_norm(index_, x, 0);
        if (!d || d->graph != 0) continue;
        norms_[d->output] = {x, constant_at(d->scale), constant_at(d->bias),
                             d->form == detail::norm_form::rms_norm};
        norm_inputs_.insert(x);
      }
    }
  }

  value_moments reset_by_norm(const std::string& input, const std::string& scale,
                              const std::string& bias, bool rms) {
    moments gamma{1.0, 1.0}, beta{0.0, 0.0};
    if (!scale.empty())
      if (std::optional<value_moments> g = get(scale)) gamma = g->m;
    if (!bias.empty())
      if (std::optional<value_moments> b = get(bias)) beta = b->m;
    // The normalised value: mean 0 and second moment 1 (RMSNorm keeps the
    // mean's share: mean m / rms).
    double normalized_mean = 0.0;
    if (rms)
      if (std::optional<value_moments> x = get(input); x && x->m.second > 0)
        normalized_mean = x->m.mean / std::sqrt(x->m.second);
    const double mean = gamma.mean * normalized_mean + beta.mean;
    return {{mean, gamma.second + beta.second + 2.0 * gamma.mean * beta.mean * normalized_mean}};
  }

  // Whether a norm reads `value`, through a bias Add and layout ops.
  bool norm_follows(std::string value) const {
    for (int step = 0; step < 8; ++step) {
      if (norm_inputs_.count(value) != 0) return true;
      const std::vector<detail::value_use> uses = index_.value_uses(value, 0);
      if (uses.size() != 1) return false;
      const onnx::NodeProto& n = index_.node(uses[0].node);
      const detail::op_entry& e = detail::op_info(n);
      if (e.moments == moment_rule::norm) return true;
      const bool bias_add =
          e.traits.bias_add && n.input_size() == 2 && is_constant(n.input(1 - uses[0].slot));
      const bool moves = e.moments == moment_rule::layout || e.moments == moment_rule::dropout;
      if ((!bias_add && !moves) || n.output_size() < 1) return false;
      value = n.output(0);
    }
    return false;
  }

  // ---- elementwise chains --------------------------------------------------

  bool try_elementwise(int i) {
    const onnx::NodeProto& node = index_.node(i);
    if (!detail::is_default_domain(node) || !is_known_elementwise(node.op_type()) ||
        node.output_size() < 1 || node.output(0).empty())
      return false;
    std::string root;
    std::set<int> nodes{i};
    for (const std::string& in : node.input()) {
      if (in.empty() || is_constant(in)) continue;
      auto it = origins_.find(in);
      const std::string r = it == origins_.end() ? in : it->second.root;
      if (!root.empty() && r != root) return false;
      root = r;
      if (it != origins_.end()) nodes.insert(it->second.nodes.begin(), it->second.nodes.end());
    }
    if (root.empty()) return false;
    std::optional<value_moments> r = get(root);
    if (!r) return false;
    std::vector<const onnx::NodeProto*> chain;
    for (int n : nodes) chain.push_back(&index_.node(n));
    std::optional<elementwise_program> program = elementwise_program::compile(
        chain, root, node.output(0),
        [this](const std::string& name) { return scalar_constant(name); });
    if (!program) return false;
    scalar_function f = program->function();
    value_moments out;
    out.m = cached_moments(program->signature(), f, r->m);
    out.probabilities = r->probabilities && program->ops() == "Identity";
    set(node, out);
    origins_[node.output(0)] = {root, std::vector<int>(nodes.begin(), nodes.end()), std::move(f)};
    return true;
  }

  // Deep chains repeat the same function of the same Gaussian layer after
  // layer: its moments are computed once (inputs equal to 12 digits).
  moments cached_moments(const std::string& signature, const scalar_function& f, const moments& x) {
    const std::string key = fmt::format("{}|{:.12g}|{:.12g}", signature, x.mean, x.second);
    if (auto it = moment_cache_.find(key); it != moment_cache_.end()) return it->second;
    const moments m = moments_after(f, x);
    moment_cache_.emplace(key, m);
    return m;
  }
  std::unordered_map<std::string, moments> moment_cache_;

  // E[h(max of k values)] of a value: the value is its chain's function of a
  // Gaussian root (identity when it has none), taken monotone, so the max
  // commutes with it: order statistics of the root.
  moments max_of(const std::string& value, const moments& x, double k) {
    scalar_function f{[](double z) { return z; }, {}};
    moments root = x;
    if (auto it = origins_.find(value); it != origins_.end())
      if (std::optional<value_moments> r = get(it->second.root)) {
        f = it->second.function;
        root = r->m;
      }
    const double sd = std::sqrt(std::max(root.variance(), 0.0));
    if (!(sd > 0.0) || k <= 1.0) return x;
    auto density = [k](double u) {
      const double cdf = 0.5 * std::erfc(-u / std::numbers::sqrt2);
      return k * std::pow(cdf, k - 1.0);
    };
    const double mu = root.mean;
    std::vector<double> kinks;
    for (double k0 : f.kinks) kinks.push_back((k0 - mu) / sd);
    const double mean = gaussian_moments([&](double u) { return f(mu + sd * u) * density(u); },
                                         {0.0, 1.0}, kinks, pass_tolerance)
                            .mean;
    const double second = gaussian_moments(
                              [&](double u) {
                                const double y = f(mu + sd * u);
                                return y * y * density(u);
                              },
                              {0.0, 1.0}, kinks, pass_tolerance)
                              .mean;
    return {mean, second};
  }

  // ---- the rules -------------------------------------------------------------

  void visit(int i) {
    const onnx::NodeProto& node = index_.node(i);
    if (node.output_size() > 0)
      if (auto it = norms_.find(node.output(0)); it != norms_.end()) {
        const norm_site& s = it->second;
        set(node, reset_by_norm(s.input, s.scale, s.bias, s.rms));
        return;
      }
    if (try_elementwise(i)) return;
    const detail::op_entry& e = detail::op_info(node);
    switch (e.moments) {
      case moment_rule::weighted:
        return weighted(i, e);
      case moment_rule::pointwise:
        return pointwise(node);
      case moment_rule::sum:
        return sum(node, +1.0);
      case moment_rule::difference:
        return sum(node, -1.0);
      case moment_rule::concat:
        return concat(node);
      case moment_rule::gate:
        return gate(node);
      case moment_rule::scale_by_constant:
        return divide(node);
      case moment_rule::average_pool:
        return average_pool(node);
      case moment_rule::max_pool:
        return max_pool(node);
      case moment_rule::global_pool:
        return global_pool(node);
      case moment_rule::mean_reduce:
        return mean_reduce(node);
      case moment_rule::dropout:
      case moment_rule::layout:
        if (node.input_size() > 0)
          if (std::optional<value_moments> in = get(node.input(0))) set(node, *in);
        return;
      case moment_rule::norm:
        return norm(node, e);
      case moment_rule::softmax:
        return softmax(node);
      case moment_rule::gather:
        return gather(node);
      case moment_rule::recurrent:
        return pass_through(node, "recurrent: left to its textbook rule");
      case moment_rule::attention:
        return pass_through(node, "fused attention: no rule yet");
      case moment_rule::unknown:
        break;
    }
    if (detail::reads_shape_only(node) || node.output_size() == 0) return;
    if (!carries_signal(node)) return;
    pass_through(node, "no rule");
  }

  bool carries_signal(const onnx::NodeProto& node) const {
    // Shape arithmetic, comparisons and index ops carry no signal: no
    // assumption is listed for them.
    static const std::set<std::string> non_signal = {"Shape",    "Size",        "ConstantOfShape",
                                                     "Range",    "NonZero",     "ArgMax",
                                                     "ArgMin",   "Equal",       "Less",
                                                     "Greater",  "LessOrEqual", "GreaterOrEqual",
                                                     "Not",      "And",         "Or",
                                                     "Constant", "TopK"};
    return non_signal.count(node.op_type()) == 0;
  }

  void weighted(int i, const detail::op_entry& e) {
    const onnx::NodeProto& node = index_.node(i);
    // The weight: the first weight slot whose input is a constant (through layout ops).
    int weight_slot = -1;
    std::string weight;
    for (const detail::slot_entry& s : e.slots) {
      if (s.role != tensor_role::weight || s.slot < 0 || s.slot >= node.input_size()) continue;
      std::string c = detail::constant_source(index_, node.input(s.slot), 0);
      if (!c.empty()) {
        weight_slot = s.slot;
        weight = std::move(c);
        break;
      }
    }
    if (weight.empty()) return product(node);
    const int data_slot = weight_slot == 0 ? 1 : 0;
    std::optional<value_moments> x = get(node.input(data_slot));
    std::optional<double> fan = summed_terms(node, e, weight_slot);
    if (!x || !fan) return pass_through(node, "weighted: input or fan unknown");
    const double alpha =
        node.op_type() == "Gemm" ? detail::float_attribute(node, "alpha").value_or(1.0f) : 1.0;
    if (hooks_.layer) {
      layer_visit visit{i,
                        weight,
                        node.output(0),
                        *fan,
                        alpha,
                        x->m,
                        norm_follows(node.output(0)),
                        [this](const std::string& v) -> std::optional<moments> {
                          auto it = result_.values.find(v);
                          if (it == result_.values.end()) return std::nullopt;
                          return it->second.m;
                        }};
      hooks_.layer(visit);
    }
    std::optional<value_moments> w = get(weight);
    if (!w) return pass_through(node, "weighted: weight moments unknown");
    double mean = alpha * *fan * w->m.mean * x->m.mean;
    double variance =
        alpha * alpha * *fan *
        std::max(w->m.second * x->m.second - w->m.mean * w->m.mean * x->m.mean * x->m.mean, 0.0);
    if (const detail::slot_entry* b = e.first_slot(tensor_role::bias);
        b && b->slot < node.input_size())
      if (std::optional<value_moments> bias = get(node.input(b->slot))) {
        const double beta =
            node.op_type() == "Gemm" ? detail::float_attribute(node, "beta").value_or(1.0f) : 1.0;
        mean += beta * bias->m.mean;
        variance += beta * beta * bias->m.variance();
      }
    set(node, {from_mean_variance(mean, variance)});
  }

  // Products summed per output element of a weighted layer.
  std::optional<double> summed_terms(const onnx::NodeProto& node, const detail::op_entry& e,
                                     int weight_slot) const {
    // The weight as the layer reads it: the constant's dims when it is read
    // directly, else (through layout ops) the inferred shape.
    std::optional<std::vector<std::int64_t>> w;
    if (const onnx::TensorProto* t = index_.constant(node.input(weight_slot), 0))
      w = detail::tensor_dims(*t);
    else
      w = shape(node.input(weight_slot));
    if (!w) return std::nullopt;
    const auto& d = *w;
    const auto r = static_cast<std::ptrdiff_t>(d.size());
    auto product_of = [&](std::ptrdiff_t from) {
      double n = 1.0;
      for (std::ptrdiff_t k = from; k < r; ++k)
        n *= static_cast<double>(d[static_cast<std::size_t>(k)]);
      return n;
    };
    if (r == 0 || std::any_of(d.begin(), d.end(), [](std::int64_t v) { return v < 0; }))
      return std::nullopt;
    switch (e.fans) {
      case detail::fan_kind::conv:
        return product_of(1);
      case detail::fan_kind::conv_transpose: {
        const double group = static_cast<double>(detail::int_attribute(node, "group").value_or(1));
        double stride = 1.0;
        if (auto s = detail::ints_attribute(node, "strides"))
          for (std::int64_t v : *s) stride *= static_cast<double>(std::max<std::int64_t>(v, 1));
        return static_cast<double>(d[0]) / group * product_of(2) / stride;
      }
      case detail::fan_kind::gemm: {
        if (r != 2) return std::nullopt;
        const bool trans =
            detail::int_attribute(node, weight_slot == 1 ? "transB" : "transA").value_or(0) != 0;
        // B [K, N] (transB: [N, K]); A [M, K] (transA: [K, M]).
        if (weight_slot == 1) return static_cast<double>(trans ? d[1] : d[0]);
        return static_cast<double>(trans ? d[0] : d[1]);
      }
      case detail::fan_kind::matmul:
        if (r == 1) return static_cast<double>(d[0]);
        return static_cast<double>(weight_slot == 1 ? d[static_cast<std::size_t>(r - 2)]
                                                    : d[static_cast<std::size_t>(r - 1)]);
      default:
        return std::nullopt;
    }
  }

  // MatMul (or Gemm) of two computed values: attention's Q K^T and P V.
  void product(const onnx::NodeProto& node) {
    if (node.input_size() < 2) return pass_through(node, "product: one input");
    std::optional<value_moments> a = get(node.input(0));
    std::optional<value_moments> b = get(node.input(1));
    std::optional<std::vector<std::int64_t>> sa = shape(node.input(0));
    if (!a || !b || !sa || sa->empty() || sa->back() <= 0)
      return pass_through(node, "product: operand or length unknown");
    const auto k = static_cast<double>(sa->back());
    if (a->probabilities || b->probabilities) {
      // Softmax weights near uniform at initialization: an average of the
      // other operand over k rows.
      const moments v = a->probabilities ? b->m : a->m;
      return set(node, {from_mean_variance(v.mean, v.variance() / k)});
    }
    const double mean = k * a->m.mean * b->m.mean;
    const double variance =
        k *
        std::max(a->m.second * b->m.second - a->m.mean * a->m.mean * b->m.mean * b->m.mean, 0.0);
    set(node, {from_mean_variance(mean, variance)});
  }

  void pointwise(const onnx::NodeProto& node) {
    // PRelu with a per-channel slope: the mean slope's leaky ReLU.
    if (node.op_type() == "PRelu" && node.input_size() > 1) {
      std::optional<value_moments> x = get(node.input(0));
      std::optional<value_moments> slope = get(node.input(1));
      if (x && slope) {
        scalar_function f = activation_function(activation_kind::leaky_relu, slope->m.mean);
        return set(node, {moments_after(f, x->m)});
      }
    }
    pass_through(node, "elementwise function not compiled");
  }

  void sum(const onnx::NodeProto& node, double sign) {
    double mean = 0.0, variance = 0.0;
    bool first = true;
    for (const std::string& in : node.input()) {
      std::optional<value_moments> v = get(in);
      if (!v) return pass_through(node, "an operand unknown");
      mean += first ? v->m.mean : sign * v->m.mean;
      variance += v->m.variance();
      first = false;
    }
    set(node, {from_mean_variance(mean, variance)});
  }

  void concat(const onnx::NodeProto& node) {
    const std::int64_t axis = detail::int_attribute(node, "axis").value_or(0);
    double weight_sum = 0.0, mean = 0.0, second = 0.0;
    for (const std::string& in : node.input()) {
      std::optional<value_moments> v = get(in);
      if (!v) return pass_through(node, "an operand unknown");
      double w = 1.0;
      if (std::optional<std::vector<std::int64_t>> s = shape(in); s && !s->empty()) {
        const auto r = static_cast<std::int64_t>(s->size());
        const std::int64_t a = axis < 0 ? axis + r : axis;
        if (a >= 0 && a < r && (*s)[static_cast<std::size_t>(a)] > 0)
          w = static_cast<double>((*s)[static_cast<std::size_t>(a)]);
      }
      weight_sum += w;
      mean += w * v->m.mean;
      second += w * v->m.second;
    }
    if (weight_sum > 0) set(node, {{mean / weight_sum, second / weight_sum}});
  }

  void gate(const onnx::NodeProto& node) {
    if (node.input_size() != 2) return pass_through(node, "gate: not two operands");
    std::optional<value_moments> a = get(node.input(0));
    std::optional<value_moments> b = get(node.input(1));
    if (!a || !b) return pass_through(node, "an operand unknown");
    set(node, {{a->m.mean * b->m.mean, a->m.second * b->m.second}});
  }

  void divide(const onnx::NodeProto& node) {
    if (node.input_size() != 2) return pass_through(node, "");
    std::optional<value_moments> x = get(node.input(0));
    const onnx::TensorProto* c = index_.constant(node.input(1), 0);
    std::optional<std::vector<double>> v = c ? index_.values(*c, 1 << 20) : std::nullopt;
    if (!x || !v || v->empty()) return pass_through(node, "divisor computed");
    double inv = 0.0, inv2 = 0.0;
    for (double d : *v) {
      inv += 1.0 / d;
      inv2 += 1.0 / (d * d);
    }
    const auto n = static_cast<double>(v->size());
    set(node, {{x->m.mean * inv / n, x->m.second * inv2 / n}});
  }

  void average_pool(const onnx::NodeProto& node) {
    std::optional<value_moments> x = get(node.input(0));
    auto kernel = detail::ints_attribute(node, "kernel_shape");
    if (!x || !kernel) return pass_through(node, "pool: kernel unknown");
    double k = 1.0;
    for (std::int64_t v : *kernel) k *= static_cast<double>(std::max<std::int64_t>(v, 1));
    // Neighbouring outputs of a layer with random weights are uncorrelated:
    // the window averages k independent values.
    set(node, {from_mean_variance(x->m.mean, x->m.variance() / k)});
  }

  void max_pool(const onnx::NodeProto& node) {
    std::optional<value_moments> x = get(node.input(0));
    auto kernel = detail::ints_attribute(node, "kernel_shape");
    if (!x || !kernel) return pass_through(node, "pool: kernel unknown");
    double k = 1.0;
    for (std::int64_t v : *kernel) k *= static_cast<double>(std::max<std::int64_t>(v, 1));
    set(node, {max_of(node.input(0), x->m, k)});
  }

  void global_pool(const onnx::NodeProto& node) {
    std::optional<value_moments> x = get(node.input(0));
    std::optional<std::vector<std::int64_t>> s = shape(node.input(0));
    if (!x || !s || s->size() < 3) return pass_through(node, "pool: input shape unknown");
    std::optional<double> n = element_count(std::vector<std::int64_t>(s->begin() + 2, s->end()));
    if (!n) return pass_through(node, "pool: input shape unknown");
    if (node.op_type() == "GlobalMaxPool") return set(node, {max_of(node.input(0), x->m, *n)});
    set(node, {from_mean_variance(x->m.mean, x->m.variance() / *n)});
  }

  void mean_reduce(const onnx::NodeProto& node) {
    std::optional<value_moments> x = get(node.input(0));
    std::optional<std::vector<std::int64_t>> si = shape(node.input(0));
    std::optional<std::vector<std::int64_t>> so = shape(node.output(0));
    std::optional<double> ni = si ? element_count(*si) : std::nullopt;
    std::optional<double> no = so ? element_count(*so) : std::nullopt;
    if (!x || !ni || !no || *no <= 0) return pass_through(node, "reduced count unknown");
    set(node, {from_mean_variance(x->m.mean, x->m.variance() / std::max(*ni / *no, 1.0))});
  }

  void norm(const onnx::NodeProto& node, const detail::op_entry& e) {
    auto input_at = [&](tensor_role r) -> std::string {
      const detail::slot_entry* s = e.first_slot(r);
      return s && s->slot < node.input_size() ? node.input(s->slot) : std::string{};
    };
    if (node.op_type() == "BatchNormalization") return batch_norm(node);
    const bool rms = node.op_type() == "RMSNormalization" ||
                     node.op_type() == "SimplifiedLayerNormalization" ||
                     node.op_type() == "SkipSimplifiedLayerNormalization";
    set(node, reset_by_norm(node.input(0), input_at(tensor_role::norm_scale),
                            input_at(tensor_role::norm_bias), rms));
  }

  // Inference-mode BatchNormalization is affine per channel with the running
  // statistics: it rescales, it does not normalise.
  void batch_norm(const onnx::NodeProto& node) {
    if (node.input_size() < 5) return pass_through(node, "");
    std::optional<value_moments> x = get(node.input(0));
    std::optional<value_moments> g = get(node.input(1));
    std::optional<value_moments> b = get(node.input(2));
    std::optional<value_moments> mu = get(node.input(3));
    std::optional<value_moments> var = get(node.input(4));
    if (!x || !g || !b || !mu || !var) return pass_through(node, "parameters unknown");
    const double eps = detail::float_attribute(node, "epsilon").value_or(1e-5f);
    const double inv_sd = 1.0 / std::sqrt(std::max(var->m.mean, 0.0) + eps);
    const double centred_mean = x->m.mean - mu->m.mean;
    const double centred_second = x->m.variance() + centred_mean * centred_mean + mu->m.variance();
    const double mean = g->m.mean * inv_sd * centred_mean + b->m.mean;
    const double second = g->m.second * inv_sd * inv_sd * centred_second +
                          2.0 * g->m.mean * inv_sd * centred_mean * b->m.mean + b->m.second;
    set(node, {{mean, second}});
  }

  void softmax(const onnx::NodeProto& node) {
    std::optional<std::vector<std::int64_t>> s = shape(node.input(0));
    value_moments out;
    out.probabilities = true;
    if (s && !s->empty()) {
      const auto r = static_cast<std::int64_t>(s->size());
      std::int64_t axis = detail::int_attribute(node, "axis").value_or(-1);
      if (axis < 0) axis += r;
      if (axis >= 0 && axis < r && (*s)[static_cast<std::size_t>(axis)] > 0) {
        const auto k = static_cast<double>((*s)[static_cast<std::size_t>(axis)]);
        out.m = {1.0 / k, 1.0 / (k * k)};
        return set(node, out);
      }
    }
    assume(node, "softmax length unknown");
    out.m = {0.0, 0.0};
    set(node, out);
  }

  void gather(const onnx::NodeProto& node) {
    if (node.input_size() < 1) return;
    if (std::optional<value_moments> table = get(node.input(0))) set(node, *table);
  }
};

}  // namespace

moments moments_after(const scalar_function& f, const moments& x) {
  // A variance of 0 (or below, by rounding) is a point: gaussian_moments
  // evaluates f there.
  return gaussian_moments(f.apply, {x.mean, std::sqrt(std::max(x.variance(), 0.0))}, f.kinks,
                          pass_tolerance);
}

moment_pass_result run_moment_pass(const model_index& index, const onnx::ModelProto& model,
                                   const moment_pass_hooks& hooks) {
  return pass(index, model, hooks).run();
}

}  // namespace onnx_reinit::signal
