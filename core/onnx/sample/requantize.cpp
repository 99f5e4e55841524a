// --quantized requantize: weights drawn in float with their layer's plan,
// quantized back with the axis of their DequantizeLinear; new scales from
// the new values; int32 biases on input scale x weight scale.
#include "requantize.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_tensors.h"

namespace onnx_reinit::detail {
namespace {

using tp = onnx::TensorProto;

// The integer codes and scales of one requantized tensor, computed once
// from its float values when first read (by either source).
class requantized_tensor {
 public:
  struct inputs {
    std::string name;
    int data_type = tp::INT8;
    std::vector<std::int64_t> dims;
    quantized_tensor q;
    std::shared_ptr<const byte_source> floats;  // float32 values
    std::vector<double> zero_points;            // one per scale element
    // Biases: the input scale, and the weight's scales (its current ones,
    // or the requantized weight whose new ones they are).
    float input_scale = 1.0f;
    std::vector<float> weight_scales;
    std::shared_ptr<const requantized_tensor> weight;
  };
  explicit requantized_tensor(inputs in) : in_(std::move(in)) {}

  const std::vector<float>& scales() const {
    compute();
    return scales_;
  }
  const std::vector<std::byte>& codes() const {
    compute();
    return codes_;
  }
  std::size_t element_bytes() const { return in_.data_type == tp::INT32 ? 4 : 1; }
  std::uint64_t count() const { return in_.floats->size() / 4; }
  const std::string& name() const { return in_.name; }
  std::string describe() const { return in_.floats->describe(); }

 private:
  void compute() const {
    std::call_once(once_, [this] {
      std::vector<float> w(static_cast<std::size_t>(count()));
      in_.floats->read(0, std::as_writable_bytes(std::span(w)));
      scales_ = in_.data_type == tp::INT32 ? bias_scales() : weight_scales(w);
      encode(w);
    });
  }

  // Element i's slice along the axis (0 per tensor).
  std::size_t channel_of(std::uint64_t i) const {
    if (in_.q.channels <= 1) return 0;
    std::uint64_t inner = 1;
    for (std::size_t d = static_cast<std::size_t>(in_.q.axis) + 1; d < in_.dims.size(); ++d)
      inner *= static_cast<std::uint64_t>(in_.dims[d]);
    return static_cast<std::size_t>((i / inner) % static_cast<std::uint64_t>(in_.q.channels));
  }

  // The codes written: symmetric int8 in [-127, 127] (ONNX Runtime's
  // symmetric range, so -w is representable whenever w is), otherwise the
  // type's whole range.
  std::pair<double, double> range() const {
    switch (in_.data_type) {
      case tp::INT32:
        return {-2147483648.0, 2147483647.0};
      case tp::UINT8:
        return {0.0, 255.0};
      default:
        return in_.q.symmetric ? std::pair{-127.0, 127.0} : std::pair{-128.0, 127.0};
    }
  }

  std::vector<float> weight_scales(const std::vector<float>& w) const {
    const auto channels = static_cast<std::size_t>(in_.q.channels);
    std::vector<double> lo(channels, 0.0), hi(channels, 0.0);
    for (std::uint64_t i = 0; i < w.size(); ++i) {
      const std::size_t c = channel_of(i);
      lo[c] = std::min(lo[c], static_cast<double>(w[i]));
      hi[c] = std::max(hi[c], static_cast<double>(w[i]));
    }
    std::vector<float> out(channels);
    const auto [qmin, qmax] = range();
    for (std::size_t c = 0; c < channels; ++c) {
      double s = 0.0;
      if (in_.q.symmetric) {
        s = std::max(-lo[c], hi[c]) / qmax;
      } else {
        // The zero point stays; the smallest scale holding both ends.
        const double z = in_.zero_points[c];
        s = std::max(hi[c] / (qmax - z), lo[c] / (qmin - z));
      }
      out[c] = s > 0.0 && std::isfinite(s) ? static_cast<float>(s) : 1.0f;
    }
    return out;
  }

  std::vector<float> bias_scales() const {
    const std::vector<float>& ws = in_.weight ? in_.weight->scales() : in_.weight_scales;
    std::vector<float> out(static_cast<std::size_t>(in_.q.channels));
    for (std::size_t c = 0; c < out.size(); ++c)
      out[c] = in_.input_scale * ws[ws.size() == 1 ? 0 : c];  // float32, as ONNX Runtime forms it
    return out;
  }

  void encode(const std::vector<float>& values) const {
    const std::size_t size = element_bytes();
    codes_.resize(values.size() * size);
    const auto [qmin, qmax] = range();
    for (std::size_t i = 0; i < values.size(); ++i) {
      const std::size_t c = channel_of(i);
      const double s = scales_[c];
      const double z = in_.zero_points.empty() ? 0.0 : in_.zero_points[c];
      // rint: ties to even in the default rounding mode.
      const double q = std::clamp(s > 0.0 ? std::rint(values[i] / s) + z : z, qmin, qmax);
      std::byte* out = codes_.data() + i * size;
      if (in_.data_type == tp::INT32) {
        const auto v = static_cast<std::int32_t>(q);
        std::memcpy(out, &v, 4);
      } else if (in_.data_type == tp::UINT8) {
        out[0] = static_cast<std::byte>(static_cast<std::uint8_t>(q));
      } else {
        out[0] = static_cast<std::byte>(static_cast<std::int8_t>(q));
      }
    }
  }

  inputs in_;
  mutable std::once_flag once_;
  mutable std::vector<float> scales_;
  mutable std::vector<std::byte> codes_;
};

class codes_source final : public byte_source {
 public:
  explicit codes_source(std::shared_ptr<const requantized_tensor> t) : t_(std::move(t)) {}
  std::uint64_t size() const override { return t_->count() * t_->element_bytes(); }
  void read(std::uint64_t offset, std::span<std::byte> out) const override {
    const std::vector<std::byte>& codes = t_->codes();
    std::memcpy(out.data(), codes.data() + offset, out.size());
  }
  std::string describe() const override {
    return fmt::format("{} bytes requantized from {}", size(), t_->describe());
  }

 private:
  std::shared_ptr<const requantized_tensor> t_;
};

class scale_source final : public byte_source {
 public:
  scale_source(std::shared_ptr<const requantized_tensor> t, std::uint64_t count)
      : t_(std::move(t)), count_(count) {}
  std::uint64_t size() const override { return count_ * 4; }
  void read(std::uint64_t offset, std::span<std::byte> out) const override {
    const std::vector<float>& scales = t_->scales();
    std::memcpy(out.data(), reinterpret_cast<const std::byte*>(scales.data()) + offset, out.size());
  }
  std::string describe() const override {
    return fmt::format("{} bytes: the new scales of '{}'", size(), t_->name());
  }

 private:
  std::shared_ptr<const requantized_tensor> t_;
  std::uint64_t count_;
};

struct model_lookup {
  std::vector<const_model_tensor> tensors;
  const onnx::TensorProto* find(const std::string& graph, const std::string& name) const {
    for (const const_model_tensor& t : tensors)
      if (t.ref.graph_path == graph && t.ref.name == name) return t.proto;
    throw usage_error(fmt::format("requantize: no tensor '{}' in the model", name), name);
  }
};

std::vector<float> float_values(const loaded_model& model, const onnx::TensorProto& t) {
  return read_tensor_values<float>(model, t);
}

}  // namespace

tensor_sample requantized_scale_sample(const tensor_plan& plan) {
  tensor_sample sample;
  sample.ref = plan.tensor.ref;
  sample.action = plan_action::rewrite;
  sample.strategy = "requantize";
  sample.target_mean = sample.target_std = std::numeric_limits<double>::quiet_NaN();
  return sample;
}

void requantize_sources(const loaded_model& model, const std::vector<tensor_plan>& plans,
                        model_sample& sample) {
  const model_lookup lookup{collect_model_tensors(model.proto())};
  std::map<std::string, std::shared_ptr<const requantized_tensor>> by_name;
  // Weights first: a bias's scale is made from its weight's new scale.
  for (const bool biases : {false, true}) {
    for (std::size_t i = 0; i < plans.size(); ++i) {
      const tensor_plan& p = plans[i];
      if (p.action != plan_action::rewrite || !p.tensor.quantized) continue;
      if ((p.tensor.info.role == tensor_role::bias) != biases) continue;
      const quantized_tensor& q = *p.tensor.quantized;
      const std::string& graph = p.tensor.ref.graph_path;
      const onnx::TensorProto& proto = *lookup.tensors[i].proto;
      requantized_tensor::inputs in;
      in.name = p.tensor.info.name;
      in.data_type = proto.data_type();
      in.dims = p.tensor.info.shape;
      in.q = q;
      in.floats = sample.tensors[i].source;
      in.zero_points.assign(static_cast<std::size_t>(q.channels), 0.0);
      if (!q.zero_point.empty())
        in.zero_points = decode_tensor_values(*lookup.find(graph, q.zero_point), &model,
                                              static_cast<std::size_t>(q.channels))
                             .value_or(in.zero_points);
      if (biases) {
        in.input_scale = float_values(model, *lookup.find(graph, q.input_scale)).at(0);
        if (auto w = by_name.find(q.weight); w != by_name.end())
          in.weight = w->second;
        else
          in.weight_scales = float_values(model, *lookup.find(graph, q.weight_scale));
      }
      auto t = std::make_shared<const requantized_tensor>(std::move(in));
      by_name.emplace(p.tensor.info.name, t);
      sample.tensors[i].source = std::make_shared<codes_source>(t);
      for (std::size_t k = 0; k < plans.size(); ++k)
        if (plans[k].requantized_from == p.tensor.info.name &&
            plans[k].tensor.ref.graph_path == graph)
          sample.tensors[k].source =
              std::make_shared<scale_source>(t, static_cast<std::uint64_t>(q.channels));
    }
  }
}

}  // namespace onnx_reinit::detail
