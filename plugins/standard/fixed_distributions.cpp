// Fixed-distribution strategies: zeros, ones, constant, uniform, normal and
// truncated_normal. All are element-wise: value i depends only on counter i.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <optional>
#include <stdexcept>
#include <string>

#include "onnx_reinit/sdk/plugin.h"
#include "strategy_lists.h"

namespace onnx_reinit::standard {
namespace {

template <class Derived>
class constant_base : public basic_strategy<Derived> {
 public:
  explicit constant_base(double value) : value_(value) {}
  template <class T>
  void fill_values(const tensor_info&, const rng_stream&, std::uint64_t, std::span<T> out) const {
    std::fill(out.begin(), out.end(), static_cast<T>(value_));
  }
  std::optional<strategy::moments> target_moments(const tensor_info&) const override {
    return strategy::moments{value_, 0.0};
  }

 private:
  double value_;
};

class zeros_strategy : public constant_base<zeros_strategy> {
 public:
  explicit zeros_strategy(const param_values&) : constant_base(0.0) {}
};

class ones_strategy : public constant_base<ones_strategy> {
 public:
  explicit ones_strategy(const param_values&) : constant_base(1.0) {}
};

class constant_strategy : public constant_base<constant_strategy> {
 public:
  explicit constant_strategy(const param_values& p) : constant_base(read(p)) {}

 private:
  static double read(const param_values& p) {
    double v = p.number("value");
    require_finite("constant", "value", v);
    return v;
  }
};

class uniform_strategy : public basic_strategy<uniform_strategy> {
 public:
  explicit uniform_strategy(const param_values& p)
      : low_(p.number("low")), high_(p.number("high")) {
    require_interval("uniform", "low", low_, "high", high_);
  }
  template <class T>
  void fill_values(const tensor_info&, const rng_stream& rng, std::uint64_t first,
                   std::span<T> out) const {
    rng.uniform(out, first, low_, high_);
  }
  std::optional<strategy::moments> target_moments(const tensor_info&) const override {
    return strategy::moments{(low_ + high_) / 2.0, (high_ - low_) / std::sqrt(12.0)};
  }

 private:
  double low_, high_;
};

class normal_strategy : public basic_strategy<normal_strategy> {
 public:
  explicit normal_strategy(const param_values& p) : mean_(p.number("mean")), std_(p.number("std")) {
    require_finite("normal", "mean", mean_);
    require_finite("normal", "std", std_);
  }
  template <class T>
  void fill_values(const tensor_info&, const rng_stream& rng, std::uint64_t first,
                   std::span<T> out) const {
    rng.normal(out, first, mean_, std_);
  }
  std::optional<strategy::moments> target_moments(const tensor_info&) const override {
    return strategy::moments{mean_, std_};
  }

 private:
  double mean_, std_;
};

class truncated_normal_strategy : public basic_strategy<truncated_normal_strategy> {
 public:
  explicit truncated_normal_strategy(const param_values& p)
      : mean_(p.number("mean")), std_(p.number("std")), a_(p.number("a")), b_(p.number("b")) {
    require_finite("truncated_normal", "mean", mean_);
    require_finite("truncated_normal", "std", std_);
    require_interval("truncated_normal", "a", a_, "b", b_);
  }
  template <class T>
  void fill_values(const tensor_info&, const rng_stream& rng, std::uint64_t first,
                   std::span<T> out) const {
    rng.truncated_normal(out, first, mean_, std_, a_, b_);
  }
  // Moments of the normal truncated to [a, b] (in units of std):
  // Z = Phi(b) - Phi(a), m = (phi(a) - phi(b)) / Z,
  // var = 1 + (a phi(a) - b phi(b)) / Z - m^2.
  std::optional<strategy::moments> target_moments(const tensor_info&) const override {
    auto pdf = [](double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * std::numbers::pi); };
    auto cdf = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
    const double z = cdf(b_) - cdf(a_);
    if (!(z > 0.0)) return std::nullopt;
    const double m = (pdf(a_) - pdf(b_)) / z;
    const double var = 1.0 + (a_ * pdf(a_) - b_ * pdf(b_)) / z - m * m;
    return strategy::moments{mean_ + std_ * m, std_ * std::sqrt(std::max(var, 0.0))};
  }

 private:
  double mean_, std_, a_, b_;
};

constexpr onnx_reinit_param_schema constant_params[] = {
    param::number("value", 0.0, "the value of every element")};
constexpr onnx_reinit_param_schema uniform_params[] = {
    param::number("low", 0.0, "lower bound (inclusive); must be below high"),
    param::number("high", 1.0, "upper bound (exclusive)")};
constexpr onnx_reinit_param_schema normal_params[] = {
    param::number("mean", 0.0, "mean"), param::positive("std", 1.0, "standard deviation")};
constexpr onnx_reinit_param_schema truncated_params[] = {
    param::number("mean", 0.0, "mean"),
    param::positive("std", 1.0, "standard deviation of the normal before truncation"),
    param::number("a", -2.0, "lower cut in units of std around mean (not an absolute bound)"),
    param::number("b", 2.0, "upper cut in units of std around mean (not an absolute bound); > a")};

constexpr std::uint32_t elementwise = ONNX_REINIT_STRATEGY_ELEMENTWISE;

const onnx_reinit_strategy_desc descriptors[] = {
    describe_strategy<zeros_strategy>("zeros", "All elements 0 (torch.nn.init.zeros_)", "x = 0",
                                      elementwise),
    describe_strategy<ones_strategy>("ones", "All elements 1 (torch.nn.init.ones_)", "x = 1",
                                     elementwise),
    describe_strategy<constant_strategy>("constant", "All elements one value (constant_)",
                                         "x = value", constant_params, elementwise),
    describe_strategy<uniform_strategy>("uniform", "Uniform on [low, high) (uniform_)",
                                        "x ~ U(low, high)", uniform_params, elementwise),
    describe_strategy<normal_strategy>("normal", "Normal distribution (normal_)",
                                       "x ~ N(mean, std^2)", normal_params, elementwise),
    describe_strategy<truncated_normal_strategy>(
        "truncated_normal", "Normal cut at a and b standard deviations (Keras TruncatedNormal)",
        "x ~ N(mean, std^2) restricted to [mean + a*std, mean + b*std] (inverse CDF); std is the "
        "std of the untruncated normal and a, b are in units of std, as in Keras/JAX. PyTorch's "
        "trunc_normal_(mean, std, a, b) takes absolute bounds instead: pass a = (a_abs - mean) / "
        "std, b = (b_abs - mean) / std",
        truncated_params, elementwise),
};

}  // namespace

std::span<const onnx_reinit_strategy_desc> fixed_distribution_strategies() {
  return descriptors;
}

}  // namespace onnx_reinit::standard
