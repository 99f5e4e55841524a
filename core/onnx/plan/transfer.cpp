// Transfer: matching pretrained tensors by mapped name, dtype and shape,
// marking their plans, and a byte source that copies the pretrained bytes
// (a mapped view for external data) into the model, window by window.
#include "onnx_reinit/transfer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_tensors.h"

namespace onnx_reinit {
namespace {

// Bytes handed to the writer per call: bounds the copy's working set.
constexpr std::size_t copy_window = std::size_t{16} << 20;

std::string dtype_text(int type) {
  std::string name =
      onnx::TensorProto::DataType_IsValid(type)
          ? onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(type))
          : fmt::format("type {}", type);
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

std::vector<std::int64_t> dims_of(const onnx::TensorProto& t) {
  return {t.dims().begin(), t.dims().end()};
}

std::string mapped_name(const std::string& name, const std::vector<prefix_map>& maps) {
  for (const prefix_map& m : maps)
    if (name.starts_with(m.from)) return m.to + name.substr(m.from.size());
  return name;
}

bool selected(const plan_options& options, const std::string& name) {
  auto any = [&](const std::vector<std::string>& globs) {
    return std::any_of(globs.begin(), globs.end(),
                       [&](const std::string& g) { return glob_matches(g, name); });
  };
  return (options.only.empty() || any(options.only)) && !any(options.skip);
}

// "--map 'a.=b.'", or "its own name" for a tensor no map renames.
std::string map_text(const std::string& name, const std::vector<prefix_map>& maps) {
  for (const prefix_map& m : maps)
    if (name.starts_with(m.from)) return fmt::format("--map '{}={}'", m.from, m.to);
  return "its own name";
}

// The pretrained main-graph tensors by their name in the model. Two
// different pretrained tensors landing on one name is a usage error: which
// one is copied would depend on file order.
std::unordered_map<std::string, const onnx::TensorProto*> pretrained_by_name(
    const loaded_model& pretrained, const std::vector<prefix_map>& maps,
    std::unordered_map<std::string, std::string>& source_names) {
  std::unordered_map<std::string, const onnx::TensorProto*> out;
  for (const auto& t : collect_model_tensors(pretrained.proto())) {
    if (!t.ref.graph_path.empty()) continue;
    const std::string name = mapped_name(t.ref.name, maps);
    if (out.emplace(name, t.proto).second) {
      source_names.emplace(name, t.ref.name);
      continue;
    }
    const std::string& first = source_names.at(name);
    if (first != t.ref.name)
      throw usage_error(
          fmt::format("pretrained tensors '{}' (by {}) and '{}' (by {}) would both be copied "
                      "into '{}'; make the --map prefixes distinct",
                      first, map_text(first, maps), t.ref.name, map_text(t.ref.name, maps), name),
          "command line");
  }
  return out;
}

// The bytes of one pretrained tensor, read window by window at save so an
// external tensor is never whole in memory. `pretrained` must outlive the
// save.
class pretrained_source final : public byte_source {
 public:
  pretrained_source(const loaded_model& pretrained, const onnx::TensorProto& tensor)
      : pretrained_(pretrained), tensor_(tensor), size_(tensor_bytes(pretrained, tensor).size()) {}
  std::uint64_t size() const override { return size_; }
  std::uint64_t window() const override { return std::min<std::uint64_t>(copy_window, size_); }
  void read(std::uint64_t offset, std::span<std::byte> out) const override {
    const tensor_bytes_view view = tensor_bytes(pretrained_, tensor_);
    const std::span<const std::byte> bytes = view.bytes().subspan(offset, out.size());
    std::copy(bytes.begin(), bytes.end(), out.begin());
  }
  std::string describe() const override {
    return fmt::format("copy of '{}' from {}", tensor_.name(), pretrained_.path().string());
  }

 private:
  const loaded_model& pretrained_;
  const onnx::TensorProto& tensor_;
  std::uint64_t size_;
};

}  // namespace

prefix_map parse_prefix_map(const std::string& text) {
  const std::size_t eq = text.find('=');
  if (eq == std::string::npos || text.size() == 1)
    throw usage_error(
        fmt::format("--map '{}' is not OLD_PREFIX=NEW_PREFIX (one side may be empty)", text),
        "command line");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

void check_prefix_maps(const std::vector<prefix_map>& maps) {
  for (std::size_t i = 0; i < maps.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      if (maps[j].from == maps[i].from && maps[j].to != maps[i].to)
        throw usage_error(
            fmt::format("--map '{}={}' and --map '{}={}' map the prefix '{}' to "
                        "different names; give each OLD_PREFIX once",
                        maps[j].from, maps[j].to, maps[i].from, maps[i].to, maps[i].from),
            "command line");
}

transfer_summary plan_transfer(const loaded_model& pretrained, const std::vector<prefix_map>& maps,
                               const plan_options& options, std::vector<tensor_plan>& plans) {
  transfer_summary summary;
  summary.pretrained = pretrained.path().string();
  std::unordered_map<std::string, std::string> source_names;
  const auto sources = pretrained_by_name(pretrained, maps, source_names);
  std::unordered_set<std::string> used;
  for (tensor_plan& plan : plans) {
    const tensor_analysis& t = plan.tensor;
    if (!t.ref.graph_path.empty() || !t.is_float) continue;
    // A Q/DQ scale or zero point belongs to integer codes, never transferred
    // (and requantized ones set their own scales).
    if (t.quantization_parameter) continue;
    auto it = sources.find(t.info.name);
    if (it == sources.end()) continue;
    const onnx::TensorProto& source = *it->second;
    const std::string& source_name = source_names.at(t.info.name);
    used.insert(source_name);
    const std::string source_dtype = dtype_text(source.data_type());
    if (source_dtype != t.data_type || dims_of(source) != t.info.shape) {
      summary.mismatches.push_back(
          {t.info.name, source_name, t.data_type, source_dtype, t.info.shape, dims_of(source)});
      continue;
    }
    if (!selected(options, t.info.name)) continue;
    // Values that belong to the architecture, not to training, are
    // transferred only when a rule names them (only such a rule can plan a
    // rewrite for them): fixed constants (DFT bases, filterbanks, grids...)
    // and one-value operands of unknown role (an epsilon, an offset). Other
    // tensors of unknown role (a class token, a learned position table) are
    // copied like weights: taking the pretrained values is what --from asks.
    const bool architecture = !t.fixed_constant.empty() ||
                              (t.info.role == tensor_role::unknown && t.info.element_count() <= 1);
    if (architecture && plan.action != plan_action::rewrite) {
      summary.kept.push_back({t.info.name, plan.reason});
      continue;
    }
    plan.action = plan_action::transfer;
    plan.transfer_source = source_name;
    plan.call = {};
    plan.adjustments.clear();
    plan.rule.clear();
    plan.rule_origin = fmt::format("--from {}", summary.pretrained);
    plan.reason = fmt::format("transferred from '{}'", source_name);
    ++summary.transferred;
  }
  for (const auto& t : collect_model_tensors(pretrained.proto()))
    if (t.ref.graph_path.empty() && !used.contains(t.ref.name) && float_element_type(*t.proto))
      summary.unused.push_back(t.ref.name);
  return summary;
}

void copy_transferred(loaded_model& model, const loaded_model& pretrained,
                      const std::vector<tensor_plan>& plans) {
  const std::vector<model_tensor> tensors = collect_model_tensors(model.proto());
  std::unordered_map<std::string, const onnx::TensorProto*> sources;
  for (const auto& t : collect_model_tensors(pretrained.proto()))
    if (t.ref.graph_path.empty()) sources.emplace(t.ref.name, t.proto);
  for (std::size_t i = 0; i < plans.size() && i < tensors.size(); ++i) {
    if (plans[i].action != plan_action::transfer) continue;
    if (!(tensors[i].ref == plans[i].tensor.ref))
      throw usage_error("plan does not belong to this model", plans[i].tensor.info.name);
    auto it = sources.find(plans[i].transfer_source);
    if (it == sources.end())
      throw usage_error(fmt::format("pretrained tensor '{}' is not in {}", plans[i].transfer_source,
                                    pretrained.path().string()),
                        plans[i].tensor.info.name);
    write_tensor_source(model, *tensors[i].proto,
                        std::make_shared<pretrained_source>(pretrained, *it->second));
  }
}

std::string transfer_text(const transfer_summary& summary) {
  std::string out =
      fmt::format("transfer from {}: {} tensors copied\n", summary.pretrained, summary.transferred);
  for (const transfer_mismatch& m : summary.mismatches)
    out += fmt::format("  not transferred: {} {} [{}] <- pretrained {} {} [{}]\n", m.name, m.dtype,
                       fmt::join(m.shape, ","), m.source, m.source_dtype,
                       fmt::join(m.source_shape, ","));
  for (const transfer_kept& k : summary.kept)
    out += fmt::format("  kept, not transferred: {} ({})\n", k.name, k.reason);
  if (!summary.unused.empty())
    out += fmt::format("  pretrained tensors left unused ({}): {}\n", summary.unused.size(),
                       fmt::join(summary.unused, ", "));
  return out;
}

}  // namespace onnx_reinit
