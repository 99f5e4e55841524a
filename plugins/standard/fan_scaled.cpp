// Fan-scaled strategies: variance_scaling (Keras/JAX), xavier_* and
// kaiming_* (torch.nn.init), lecun_* (Keras) and torch_default (PyTorch's
// nn.Linear/Conv reset). Each turns the tensor's fans into one distribution;
// bounds and stds are computed in double in the reference's own order of
// operations, so they agree with it to the last bit.
#include <cmath>
#include <optional>
#include <stdexcept>
#include <string>

#include "onnx_reinit/sdk/gains.h"
#include "onnx_reinit/sdk/plugin.h"
#include "strategy_lists.h"

namespace onnx_reinit::standard {
namespace {

// std of N(0, 1) cut at +-2, as in Keras/JAX: dividing by it makes the
// truncated distribution's std the requested one.
constexpr double truncation_std = 0.87962566103423978;

enum class distribution { uniform, normal, truncated_normal };
enum class fan_mode { fan_in, fan_out, fan_avg };

// What one tensor gets: U(-spread, spread), N(0, spread^2), or
// N(0, spread^2) cut at +-2 spread.
struct sampling {
  distribution dist;
  double spread;
};

// Uniform or normal with standard deviation `std`: a uniform's bound is
// sqrt(3) std (PyTorch's computation, so its bits).
sampling with_std(distribution dist, double std) {
  return {dist, dist == distribution::uniform ? std::sqrt(3.0) * std : std};
}

// Base of every strategy here; subclasses only say how fans become a
// sampling. Only rng fills at `first` are used, so chunks equal whole fills.
class fan_scaled : public basic_strategy<fan_scaled> {
 public:
  template <class T>
  void fill_values(const tensor_info& tensor, const rng_stream& rng, std::uint64_t first,
                   std::span<T> out) const {
    sampling s = plan(tensor);
    switch (s.dist) {
      case distribution::uniform:
        rng.uniform(out, first, -s.spread, s.spread);
        break;
      case distribution::normal:
        rng.normal(out, first, 0.0, s.spread);
        break;
      case distribution::truncated_normal:
        rng.truncated_normal(out, first, 0.0, s.spread, -2.0, 2.0);
        break;
    }
  }

  std::optional<strategy::moments> target_moments(const tensor_info& tensor) const override {
    sampling s = plan(tensor);
    switch (s.dist) {
      case distribution::uniform:
        return strategy::moments{0.0, s.spread / std::sqrt(3.0)};
      case distribution::normal:
        return strategy::moments{0.0, s.spread};
      case distribution::truncated_normal:
        return strategy::moments{0.0, s.spread * truncation_std};
    }
    return std::nullopt;
  }

 protected:
  virtual sampling plan(const tensor_info& tensor) const = 0;
};

fan_mode parse_mode(std::string_view strategy, std::string_view text) {
  if (text == "fan_in") return fan_mode::fan_in;
  if (text == "fan_out") return fan_mode::fan_out;
  if (text == "fan_avg") return fan_mode::fan_avg;
  throw std::invalid_argument(std::string(strategy) + ": unknown mode '" + std::string(text) + "'");
}

// Keras 3's own words. "normal" is refused: old Keras and TF1 took it for the
// truncated normal (with the 0.8796 correction), JAX for the untruncated
// one, so either reading would silently give some users other values.
distribution parse_distribution(std::string_view text) {
  if (text == "uniform") return distribution::uniform;
  if (text == "untruncated_normal") return distribution::normal;
  if (text == "truncated_normal") return distribution::truncated_normal;
  if (text == "normal")
    throw std::invalid_argument(
        "variance_scaling: distribution 'normal' is ambiguous (older Keras and tf.compat.v1 mean a "
        "normal "
        "truncated at 2 std, JAX an untruncated one); say distribution=truncated_normal (Keras's "
        "default) or distribution=untruncated_normal");
  throw std::invalid_argument("variance_scaling: unknown distribution '" + std::string(text) + "'");
}

double select_fan(std::string_view strategy, const tensor_info& t, fan_mode mode) {
  switch (mode) {
    case fan_mode::fan_in:
      return checked_fan(strategy, t, "fan_in", t.fan_in);
    case fan_mode::fan_out:
      return checked_fan(strategy, t, "fan_out", t.fan_out);
    case fan_mode::fan_avg:
      return (checked_fan(strategy, t, "fan_in", t.fan_in) +
              checked_fan(strategy, t, "fan_out", t.fan_out)) /
             2.0;
  }
  return 0.0;
}

// fan_in + fan_out, each checked, for the Glorot formulas.
double fan_sum(std::string_view strategy, const tensor_info& t) {
  return checked_fan(strategy, t, "fan_in", t.fan_in) +
         checked_fan(strategy, t, "fan_out", t.fan_out);
}

// Keras VarianceScaling.__call__ after `scale /= n`.
sampling keras_variance_scaling(double scale, distribution dist) {
  switch (dist) {
    case distribution::uniform:
      return {dist, std::sqrt(3.0 * scale)};
    case distribution::normal:
      return {dist, std::sqrt(scale)};
    case distribution::truncated_normal:
      return {dist, std::sqrt(scale) / truncation_std};
  }
  return {dist, 0.0};
}

class variance_scaling_strategy : public fan_scaled {
 public:
  explicit variance_scaling_strategy(const param_values& p)
      : scale_(p.number("scale")),
        mode_(parse_mode("variance_scaling", p.choice("mode"))),
        dist_(parse_distribution(p.choice("distribution"))) {
    require_finite("variance_scaling", "scale", scale_);
  }

 protected:
  sampling plan(const tensor_info& t) const override {
    return keras_variance_scaling(scale_ / select_fan("variance_scaling", t, mode_), dist_);
  }

 private:
  double scale_;
  fan_mode mode_;
  distribution dist_;
};

// xavier_uniform_ and xavier_normal_: std = gain * sqrt(2 / (fan_in + fan_out)).
class xavier_strategy : public fan_scaled {
 public:
  xavier_strategy(const param_values& p, const char* name, distribution dist)
      : name_(name), dist_(dist), gain_(p.number("gain")) {
    require_finite(name, "gain", gain_);
  }

 protected:
  sampling plan(const tensor_info& t) const override {
    double std = gain_ * std::sqrt(2.0 / fan_sum(name_, t));
    return with_std(dist_, std);
  }

 private:
  const char* name_;
  distribution dist_;
  double gain_;
};

// kaiming_uniform_ and kaiming_normal_: std = gain / sqrt(fan), the gain from
// `nonlinearity` (calculate_gain, slope `a`) or, for `auto`, from the
// activation the analysis found after the tensor.
class kaiming_strategy : public fan_scaled {
 public:
  kaiming_strategy(const param_values& p, const char* name, distribution dist)
      : name_(name), dist_(dist), mode_(parse_mode(name, p.choice("mode"))) {
    double a = p.number("a");
    require_finite(name, "a", a);
    std::string_view nonlinearity = p.choice("nonlinearity");
    if (nonlinearity == "auto") return;
    gain_ = nonlinearity_gain(nonlinearity, a);
    if (!gain_)
      throw std::invalid_argument(std::string(name) + ": unknown nonlinearity '" +
                                  std::string(nonlinearity) + "'");
  }

 protected:
  sampling plan(const tensor_info& t) const override {
    double gain = gain_ ? *gain_ : activation_gain(t.activation, t.activation_param);
    double std = gain / std::sqrt(select_fan(name_, t, mode_));
    return with_std(dist_, std);
  }

 private:
  const char* name_;
  distribution dist_;
  fan_mode mode_;
  std::optional<double> gain_;  // nullopt: `auto`
};

// Keras LecunUniform / LecunNormal: VarianceScaling(1, fan_in, ...).
class lecun_strategy : public fan_scaled {
 public:
  lecun_strategy(const param_values&, const char* name, distribution dist)
      : name_(name), dist_(dist) {}

 protected:
  sampling plan(const tensor_info& t) const override {
    return keras_variance_scaling(1.0 / checked_fan(name_, t, "fan_in", t.fan_in), dist_);
  }

 private:
  const char* name_;
  distribution dist_;
};

// One strategy of a family: `Family` with its name and distribution fixed,
// constructible from the parameters alone, as describe_strategy needs.
template <class Family, const char* Name, distribution Dist>
class family_member : public Family {
 public:
  explicit family_member(const param_values& p) : Family(p, Name, Dist) {}
};

constexpr char xavier_uniform[] = "xavier_uniform";
constexpr char xavier_normal[] = "xavier_normal";
constexpr char kaiming_uniform[] = "kaiming_uniform";
constexpr char kaiming_normal[] = "kaiming_normal";
constexpr char lecun_uniform[] = "lecun_uniform";
constexpr char lecun_normal[] = "lecun_normal";
using xavier_uniform_strategy =
    family_member<xavier_strategy, xavier_uniform, distribution::uniform>;
using xavier_normal_strategy = family_member<xavier_strategy, xavier_normal, distribution::normal>;
using kaiming_uniform_strategy =
    family_member<kaiming_strategy, kaiming_uniform, distribution::uniform>;
using kaiming_normal_strategy =
    family_member<kaiming_strategy, kaiming_normal, distribution::normal>;
using lecun_uniform_strategy = family_member<lecun_strategy, lecun_uniform, distribution::uniform>;
using lecun_normal_strategy =
    family_member<lecun_strategy, lecun_normal, distribution::truncated_normal>;

// PyTorch's nn.Linear / nn.ConvNd reset_parameters: the weight through
// kaiming_uniform_(a = sqrt(5)), the bias as 1 / sqrt(fan_in). Both are
// U(+-1/sqrt(fan_in)); keeping PyTorch's two computations keeps its bits.
class torch_default_strategy : public fan_scaled {
 public:
  explicit torch_default_strategy(const param_values&) {}

 protected:
  sampling plan(const tensor_info& t) const override {
    double fan_in = checked_fan("torch_default", t, "fan_in", t.fan_in);
    if (t.role == tensor_role::bias) return {distribution::uniform, 1.0 / std::sqrt(fan_in)};
    double slope = std::sqrt(5.0);
    double gain = std::sqrt(2.0 / (1.0 + slope * slope));
    return {distribution::uniform, std::sqrt(3.0) * (gain / std::sqrt(fan_in))};
  }
};

constexpr const char* nonlinearities =
    "leaky_relu|relu|linear|identity|conv|conv1d|conv2d|conv3d|conv_transpose1d|"
    "conv_transpose2d|conv_transpose3d|sigmoid|tanh|selu|relu6|prelu|elu|gelu|silu|hardswish|"
    "mish|softplus|hardsigmoid|auto";

constexpr onnx_reinit_param_schema variance_scaling_params[] = {
    param::positive("scale", 1.0, "variance scale: the target variance is scale / n"),
    param::choice("mode", "fan_in|fan_out|fan_avg", "fan_in",
                  "n = fan_in, fan_out, or (fan_in + fan_out) / 2"),
    param::choice("distribution", "truncated_normal|untruncated_normal|uniform|normal",
                  "truncated_normal",
                  "Keras's choices, all with variance scale / n; 'normal' is refused as "
                  "ambiguous (truncated in older Keras / tf.compat.v1, untruncated in JAX)")};
constexpr onnx_reinit_param_schema gain_params[] = {
    param::positive("gain", 1.0, "multiplier of the std, e.g. calculate_gain of the activation")};
constexpr onnx_reinit_param_schema kaiming_params[] = {
    param::number("a", 0.0,
                  "negative slope of leaky_relu / prelu (ignored by other nonlinearities)"),
    param::choice("mode", "fan_in|fan_out", "fan_in",
                  "fan_in preserves the forward variance, fan_out the backward one"),
    param::choice("nonlinearity", nonlinearities, "leaky_relu",
                  "activation whose gain (torch calculate_gain) is used; auto = the activation "
                  "found after the tensor")};

constexpr std::uint32_t elementwise = ONNX_REINIT_STRATEGY_ELEMENTWISE;

const onnx_reinit_strategy_desc descriptors[] = {
    describe_strategy<variance_scaling_strategy>(
        "variance_scaling", "Keras/JAX VarianceScaling: variance scale / n",
        "n = fan_in | fan_out | (fan_in + fan_out) / 2 (not clamped at 1, as JAX; Keras uses "
        "max(1, n)); uniform: U(-b, b), b = sqrt(3 * scale / n); untruncated_normal: "
        "N(0, scale / n); "
        "truncated_normal: N(0, s^2) cut at +-2 s, s = sqrt(scale / n) / 0.87962566103423978, "
        "so the final std is sqrt(scale / n); normal: refused (ambiguous: older Keras truncated, "
        "JAX "
        "untruncated)",
        variance_scaling_params, elementwise),
    describe_strategy<xavier_uniform_strategy>(
        "xavier_uniform", "Glorot/Xavier uniform (torch.nn.init.xavier_uniform_)",
        "U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))", gain_params, elementwise),
    describe_strategy<xavier_normal_strategy>(
        "xavier_normal", "Glorot/Xavier normal, untruncated (torch.nn.init.xavier_normal_)",
        "N(0, s^2), s = gain * sqrt(2 / (fan_in + fan_out))", gain_params, elementwise),
    describe_strategy<kaiming_uniform_strategy>(
        "kaiming_uniform", "He/Kaiming uniform (torch.nn.init.kaiming_uniform_)",
        "U(-b, b), b = gain * sqrt(3 / fan), fan = fan_in | fan_out (mode), gain = "
        "calculate_gain(nonlinearity, a): leaky_relu/prelu sqrt(2 / (1 + a^2)) (sqrt(2) at the "
        "default a = 0), auto = gain of the tensor's activation",
        kaiming_params, elementwise),
    describe_strategy<kaiming_normal_strategy>(
        "kaiming_normal", "He/Kaiming normal, untruncated (torch.nn.init.kaiming_normal_)",
        "N(0, s^2), s = gain / sqrt(fan), fan = fan_in | fan_out (mode), gain = "
        "calculate_gain(nonlinearity, a): leaky_relu/prelu sqrt(2 / (1 + a^2)) (sqrt(2) at the "
        "default a = 0), auto = gain of the tensor's activation",
        kaiming_params, elementwise),
    describe_strategy<lecun_uniform_strategy>("lecun_uniform", "LeCun uniform (Keras LecunUniform)",
                                              "U(-b, b), b = sqrt(3 / fan_in)", elementwise),
    describe_strategy<lecun_normal_strategy>(
        "lecun_normal", "LeCun normal, truncated (Keras LecunNormal)",
        "N(0, s^2) cut at +-2 s, s = sqrt(1 / fan_in) / 0.87962566103423978; final std "
        "1 / sqrt(fan_in)",
        elementwise),
    describe_strategy<torch_default_strategy>(
        "torch_default", "PyTorch's default for nn.Linear / nn.ConvNd weights and biases",
        "U(-b, b), b = 1 / sqrt(fan_in) (weights: kaiming_uniform_ with a = sqrt(5); biases: "
        "1 / sqrt(fan_in) of the layer)",
        elementwise),
};

}  // namespace

std::span<const onnx_reinit_strategy_desc> fan_scaled_strategies() {
  return descriptors;
}

}  // namespace onnx_reinit::standard
