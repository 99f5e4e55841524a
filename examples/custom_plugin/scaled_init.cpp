// An example third-party plugin with two depth-aware initializations:
//  - scaled_normal: GPT-2's residual-projection init, N(0, std^2) with std
//    divided by sqrt(2 * depth) when scale_by_depth is set;
//  - fixup: Fixup (Zhang et al., 2019): He-normal scaled by
//    num_layers^(-1 / (2 * branch_layers - 2)), or zeros for the last layer
//    of each residual branch.
// It uses nothing but the SDK (onnx_reinit/sdk.h). The host calls fill on one
// instance from several threads at once, so the strategies set their members
// in the constructor and only read them afterwards.
#include <onnx_reinit/sdk.h>

#include <cmath>
#include <cstdint>
#include <span>
#include <stdexcept>

namespace {

using onnx_reinit::param_values;
using onnx_reinit::rng_stream;
using onnx_reinit::tensor_info;

class scaled_normal : public onnx_reinit::basic_strategy<scaled_normal> {
 public:
  explicit scaled_normal(const param_values& p)
      : std_(p.boolean("scale_by_depth")
                 ? p.number("std") / std::sqrt(2.0 * static_cast<double>(p.integer("depth")))
                 : p.number("std")) {}

  template <class T>
  void fill_values(const tensor_info&, const rng_stream& rng, std::uint64_t first,
                   std::span<T> out) const {
    rng.normal(out, first, 0.0, std_);
  }

 private:
  double std_;
};

class fixup : public onnx_reinit::basic_strategy<fixup> {
 public:
  explicit fixup(const param_values& p)
      : zero_(p.boolean("zero")),
        scale_(std::pow(static_cast<double>(p.integer("num_layers")),
                        -1.0 / (2.0 * static_cast<double>(p.integer("branch_layers")) - 2.0))) {}

  template <class T>
  void fill_values(const tensor_info& t, const rng_stream& rng, std::uint64_t first,
                   std::span<T> out) const {
    if (zero_) {
      for (T& x : out) x = T{};
      return;
    }
    if (!(t.fan_in > 0)) throw std::invalid_argument("fixup needs a positive fan_in");
    // He normal with the gain of the activation that follows the tensor.
    rng.normal(out, first, 0.0, scale_ * t.gain / std::sqrt(t.fan_in));
  }

 private:
  bool zero_;
  double scale_;
};

constexpr onnx_reinit_param_schema scaled_normal_params[] = {
    onnx_reinit::param::positive("std", 0.02, "standard deviation before depth scaling"),
    onnx_reinit::param::integer("depth", 1, "number of residual layers", 1, 1e6),
    onnx_reinit::param::boolean("scale_by_depth", true, "divide std by sqrt(2 * depth)"),
};

constexpr onnx_reinit_param_schema fixup_params[] = {
    onnx_reinit::param::integer("num_layers", 1, "number of residual branches L", 1, 1e6),
    onnx_reinit::param::integer("branch_layers", 2, "layers per branch m", 2, 100),
    onnx_reinit::param::boolean("zero", false, "the branch's last layer: all zeros"),
};

const onnx_reinit_strategy_desc strategies[] = {
    onnx_reinit::describe_strategy<scaled_normal>(
        "scaled_normal", "normal with GPT-2 style depth scaling",
        "N(0, s^2), s = std / sqrt(2 * depth) if scale_by_depth else std", scaled_normal_params,
        ONNX_REINIT_STRATEGY_ELEMENTWISE),
    onnx_reinit::describe_strategy<fixup>(
        "fixup", "Fixup residual-branch init (He normal scaled by depth, or zeros)",
        "N(0, s^2), s = gain / sqrt(fan_in) * L^(-1 / (2m - 2)); 0 if zero", fixup_params,
        ONNX_REINIT_STRATEGY_ELEMENTWISE),
};

}  // namespace

ONNX_REINIT_PLUGIN("example.scaled_init", "1.0.0", strategies)
