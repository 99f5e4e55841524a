// The sampler: one configured strategy per distinct call, tensors filled in
// parallel chunks from their own Philox streams, values checked and stored.
#include "onnx_reinit/rewrite.h"

#include <fmt/format.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <span>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/random.h"

namespace onnx_reinit {
namespace {

constexpr double not_known = std::numeric_limits<double>::quiet_NaN();

using strategy_cache = std::map<std::string, configured_strategy>;

std::string rule_location(const tensor_plan& plan) {
  return fmt::format("rule '{}' from {}", plan.rule, plan.rule_origin);
}

// Creates the strategy of `plan`, re-throwing registry errors with the rule
// that asked for it as the place to look.
configured_strategy create_for(const tensor_plan& plan, const registry& strategies) {
  try {
    return strategies.create(plan.call.strategy, plan.call.params);
  } catch (const unknown_strategy_error& e) {
    throw unknown_strategy_error(e.what(), rule_location(plan));
  } catch (const param_error& e) {
    throw param_error(e.what(), rule_location(plan));
  } catch (const strategy_error& e) {
    throw strategy_error(e.what(), rule_location(plan));
  }
}

strategy_cache create_all(const std::vector<tensor_plan>& plans, const registry& strategies) {
  strategy_cache cache;
  for (const tensor_plan& plan : plans) {
    if (plan.action != plan_action::rewrite) continue;
    const std::string key = plan.call.to_string();
    if (!cache.contains(key)) cache.emplace(key, create_for(plan, strategies));
  }
  return cache;
}

template <class T>
void fill_values(const configured_strategy& strategy, const tensor_plan& plan,
                 const onnx_reinit_rng& rng, const rewrite_options& options,
                 std::span<T> values) {
  const tensor_info& info = plan.tensor.info;
  const std::uint64_t chunk = std::max<std::uint64_t>(options.chunk_elements, 1);
  if (!strategy.elementwise() || values.size() <= chunk) {
    strategy.fill(info, rng, 0, values);
    return;
  }
  const std::uint64_t chunks = (values.size() + chunk - 1) / chunk;
  tbb::parallel_for(std::uint64_t{0}, chunks, [&](std::uint64_t c) {
    const std::uint64_t first = c * chunk;
    const std::uint64_t count = std::min<std::uint64_t>(chunk, values.size() - first);
    strategy.fill(info, rng, first, values.subspan(first, count));
  });
}

template <class T>
void apply_forget_bias(const tensor_plan& plan, std::span<T> values) {
  if (!plan.forget_bias) return;
  for (const auto& [begin, end] : plan.tensor.forget_gate_ranges)
    for (std::int64_t i = std::max<std::int64_t>(begin, 0);
         i < std::min<std::int64_t>(end, static_cast<std::int64_t>(values.size())); ++i)
      values[i] = static_cast<T>(*plan.forget_bias);
}

template <class T>
void check_finite(const configured_strategy& strategy, const tensor_plan& plan,
                  std::span<const T> values) {
  auto bad = std::find_if(values.begin(), values.end(), [](T v) { return !std::isfinite(v); });
  if (bad == values.end()) return;
  throw strategy_error(
      fmt::format("strategy '{}' of plugin '{}' ({}) wrote a non-finite value ({}) at element {}",
                  strategy.name(), strategy.plugin_id(), strategy.plugin_path(),
                  static_cast<double>(*bad), bad - values.begin()),
      plan.tensor.info.name);
}

template <class T>
void measure(std::span<const T> values, tensor_outcome& outcome) {
  if (values.empty()) return;
  double sum = 0.0;
  for (T v : values) sum += static_cast<double>(v);
  const double mean = sum / static_cast<double>(values.size());
  double squares = 0.0;
  for (T v : values) squares += (static_cast<double>(v) - mean) * (static_cast<double>(v) - mean);
  outcome.achieved_mean = mean;
  outcome.achieved_std = std::sqrt(squares / static_cast<double>(values.size()));
}

template <class T>
tensor_outcome rewrite_tensor(loaded_model& model, const model_tensor& target,
                              const tensor_plan& plan, const configured_strategy& strategy,
                              const rewrite_options& options) {
  tensor_outcome outcome;
  outcome.rewritten = true;
  outcome.strategy = strategy.description();
  outcome.params = strategy.params();
  outcome.target_mean = not_known;
  outcome.target_std = not_known;
  if (auto m = strategy.target_moments(plan.tensor.info)) {
    outcome.target_mean = m->mean;
    outcome.target_std = m->std;
  }
  std::vector<T> values(static_cast<std::size_t>(plan.tensor.info.element_count()));
  const onnx_reinit_rng rng = make_tensor_rng(options.seed, stream_name(plan.tensor.ref));
  fill_values<T>(strategy, plan, rng, options, values);
  apply_forget_bias<T>(plan, values);
  check_finite<T>(strategy, plan, values);
  write_tensor_values<T>(model, *target.proto, values);
  const element_type dtype = plan.tensor.info.dtype;
  if (dtype == element_type::float16 || dtype == element_type::bfloat16)
    values = read_tensor_values<T>(model, *target.proto);  // statistics of what was stored
  measure<T>(values, outcome);
  return outcome;
}

void check_alignment(const std::vector<model_tensor>& tensors,
                     const std::vector<tensor_plan>& plans) {
  if (tensors.size() != plans.size())
    throw usage_error(fmt::format("plan has {} tensors but the model has {}", plans.size(),
                                  tensors.size()),
                      "rewrite_model");
  for (std::size_t i = 0; i < plans.size(); ++i)
    if (!(tensors[i].ref == plans[i].tensor.ref))
      throw usage_error("plan does not belong to this model", plans[i].tensor.info.name);
}

}  // namespace

std::string stream_name(const tensor_ref& ref) {
  return ref.graph_path.empty() ? ref.name : ref.graph_path + "/" + ref.name;
}

void validate_plan(const std::vector<tensor_plan>& plans, const registry& strategies) {
  (void)create_all(plans, strategies);
}

std::vector<tensor_outcome> rewrite_model(loaded_model& model,
                                          const std::vector<tensor_plan>& plans,
                                          const registry& strategies,
                                          const rewrite_options& options) {
  const std::vector<model_tensor> tensors = collect_model_tensors(model.proto());
  check_alignment(tensors, plans);
  const strategy_cache cache = create_all(plans, strategies);
  std::uint64_t total = 0, done = 0;
  for (const tensor_plan& plan : plans)
    if (plan.action == plan_action::rewrite) total += plan.tensor.info.element_count();

  // More threads than TBB's default concurrency cannot run anyway, and asking
  // for them makes TBB print a warning on stderr; the output never depends on
  // the thread count, so clamp.
  const int threads = static_cast<int>(
      std::min<unsigned>(options.threads, static_cast<unsigned>(tbb::info::default_concurrency())));
  tbb::task_arena arena(options.threads == 0 ? tbb::task_arena::automatic : threads);
  std::vector<tensor_outcome> outcomes(plans.size());
  arena.execute([&] {
    for (std::size_t i = 0; i < plans.size(); ++i) {
      const tensor_plan& plan = plans[i];
      if (plan.action != plan_action::rewrite) continue;
      const configured_strategy& strategy = cache.at(plan.call.to_string());
      outcomes[i] = plan.tensor.info.dtype == element_type::float64
                        ? rewrite_tensor<double>(model, tensors[i], plan, strategy, options)
                        : rewrite_tensor<float>(model, tensors[i], plan, strategy, options);
      done += plan.tensor.info.element_count();
      if (options.progress) options.progress(done, total);
    }
  });
  return outcomes;
}

}  // namespace onnx_reinit
