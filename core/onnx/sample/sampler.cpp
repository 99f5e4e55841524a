// The sampler: one configured strategy per distinct call; each rewritten
// tensor gets a source that fills it in chunks from its own Philox stream
// (in parallel where the strategy is element-wise), checks and encodes it to
// its stored dtype. Sources generate on demand, the same bytes every time:
// inline tensors are generated when the sample is applied, external ones
// while save_model streams them, a window of chunks at a time.
#include "onnx_reinit/rewrite.h"

#include <fmt/format.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <span>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/random.h"
#include "onnx_reinit/sdk/tensor_info.h"
#include "parallel_for.h"
#include "requantize.h"

namespace onnx_reinit {
namespace {

using format_detail::not_known;

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
    if (plan.action != plan_action::rewrite || !plan.requantized_from.empty()) continue;
    const std::string key = plan.call.to_string();
    if (!cache.contains(key)) cache.emplace(key, create_for(plan, strategies));
  }
  return cache;
}

// Everything needed to produce one tensor's bytes; owned by its source.
struct tensor_job {
  configured_strategy strategy;
  tensor_info info;
  std::string stream;
  std::uint64_t seed = 0;
  std::vector<host_adjustment> adjustments;  // the plan's, written after the strategy
  onnx_reinit_rng rng{};
  std::uint64_t count = 0;
  std::uint64_t chunk = 1;
  std::size_t element_bytes = 4;
  int threads = 0;  // 0: the caller's arena
};

// The host parameters' values over their elements, in the chunk of
// `values` that starts at element `first`.
template <class T>
void apply_adjustments(const tensor_job& job, std::uint64_t first, std::span<T> values) {
  const auto begin_at = static_cast<std::int64_t>(first);
  const auto end_at = static_cast<std::int64_t>(first + values.size());
  for (const host_adjustment& a : job.adjustments)
    for (const auto& [begin, end] : a.elements)
      for (std::int64_t i = std::max(begin, begin_at); i < std::min(end, end_at); ++i)
        values[static_cast<std::size_t>(i - begin_at)] = static_cast<T>(a.value);
}

[[noreturn]] void throw_non_finite(const tensor_job& job, double value, std::uint64_t index) {
  throw strategy_error(
      fmt::format("strategy '{}' of plugin '{}' ({}) wrote a non-finite value ({}) at element {}",
                  job.strategy.name(), job.strategy.plugin_id(), job.strategy.plugin_path(), value,
                  index),
      job.info.name);
}

// Values stored as they are (float32, float64), in the hot path: x - x is 0
// for a finite x and NaN otherwise, in any precision, so eight independent
// sums of it in T (no branch per element; the loop pipelines and
// vectorises) are finite exactly when every value is, and only then is the
// culprit looked for.
template <class T>
void check_finite(const tensor_job& job, std::uint64_t first, std::span<const T> values) {
  constexpr std::size_t lanes = 8;
  T probe[lanes] = {};
  const std::size_t n = values.size(), whole = n - n % lanes;
  for (std::size_t i = 0; i < whole; i += lanes)
    for (std::size_t k = 0; k < lanes; ++k) probe[k] += values[i + k] - values[i + k];
  for (std::size_t i = whole; i < n; ++i) probe[0] += values[i] - values[i];
  T all = 0;
  for (T p : probe) all += p;
  if (std::isfinite(all)) return;
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(values[i])) throw_non_finite(job, static_cast<double>(values[i]), first + i);
}

// Checks and encodes values[0..n) (element `first` onwards) into `out` in
// the tensor's stored dtype; a value that 16-bit rounding makes infinite is
// refused too.
template <class T>
void encode(const tensor_job& job, std::uint64_t first, std::span<const T> values, std::byte* out) {
  switch (job.info.dtype) {
    case element_type::float16:
    case element_type::bfloat16: {
      const bool half = job.info.dtype == element_type::float16;
      for (std::size_t i = 0; i < values.size(); ++i) {
        const float f = static_cast<float>(values[i]);
        const std::uint16_t bits = half ? float_to_half_bits(f) : float_to_bfloat16_bits(f);
        if (!std::isfinite(half ? half_bits_to_float(bits) : bfloat16_bits_to_float(bits)))
          throw_non_finite(job, static_cast<double>(values[i]), first + i);
        std::memcpy(out + 2 * i, &bits, 2);
      }
      return;
    }
    case element_type::float32:
    case element_type::float64:
      if (static_cast<const void*>(values.data()) != out)
        std::memcpy(out, values.data(), values.size_bytes());
      check_finite(job, first, values);
      return;
  }
}

// Per-thread scratch for chunks that cannot be filled in place (16-bit, or
// an unaligned destination).
template <class T>
using scratch_buffers = tbb::enumerable_thread_specific<std::vector<T>>;

// One chunk: fill (in place when the stored dtype is T), host
// adjustments, encode. `out` points at the chunk's bytes.
template <class T>
void produce_chunk(const tensor_job& job, std::uint64_t first, std::uint64_t n, std::byte* out,
                   scratch_buffers<T>& scratch) {
  std::span<T> values;
  // In place only where `out` is aligned for T: a payload spliced into a
  // serialized model in memory (save_memory.cpp) starts at any byte.
  const bool aligned = reinterpret_cast<std::uintptr_t>(out) % alignof(T) == 0;
  if (job.element_bytes == sizeof(T) && aligned) {
    values = std::span<T>(reinterpret_cast<T*>(out), n);
  } else {
    std::vector<T>& buffer = scratch.local();
    buffer.resize(n);
    values = std::span<T>(buffer.data(), n);
  }
  job.strategy.fill(job.info, job.rng, first, values);
  apply_adjustments(job, first, values);
  encode<T>(job, first, values, out);
}

// Produces elements [first, first + n) into `out`, chunks in parallel.
// Values depend only on the element index, so any split gives the same
// bytes. Non-element-wise strategies fill the whole tensor in one call.
template <class T>
void produce_window(const tensor_job& job, std::uint64_t first, std::uint64_t n, std::byte* out) {
  if (!job.strategy.elementwise()) {
    std::vector<T> whole(n);
    job.strategy.fill(job.info, job.rng, 0, std::span<T>(whole));
    apply_adjustments(job, 0, std::span<T>(whole));
    encode<T>(job, 0, std::span<const T>(whole), out);
    return;
  }
  scratch_buffers<T> scratch;
  const std::uint64_t chunks = (n + job.chunk - 1) / job.chunk;
  onnx_reinit::parallel_for(std::uint64_t{0}, chunks, [&](std::uint64_t c) {
    const std::uint64_t offset = c * job.chunk;
    const std::uint64_t len = std::min(job.chunk, n - offset);
    produce_chunk<T>(job, first + offset, len, out + offset * job.element_bytes, scratch);
  });
}

// A tensor's sampled bytes. Element-wise strategies read any window of
// whole elements; the others generate the whole tensor at once.
class sampled_tensor final : public byte_source {
 public:
  explicit sampled_tensor(tensor_job job) : job_(std::move(job)) {}

  std::uint64_t size() const override { return job_.count * job_.element_bytes; }
  // Two chunks per thread (at least four): every thread busy, and memory
  // while streaming in proportion to the threads, not a fixed multiple.
  std::uint64_t window() const override {
    if (!job_.strategy.elementwise()) return size();
    const int threads = job_.threads != 0 ? job_.threads : tbb::this_task_arena::max_concurrency();
    const auto chunks = static_cast<std::uint64_t>(std::max(4, 2 * threads));
    return std::min(size(), job_.chunk * chunks * job_.element_bytes);
  }
  void read(std::uint64_t offset, std::span<std::byte> out) const override {
    const std::uint64_t first = offset / job_.element_bytes;
    const std::uint64_t n = out.size() / job_.element_bytes;
    const bool whole = offset == 0 && n == job_.count;
    if (offset % job_.element_bytes != 0 || out.size() % job_.element_bytes != 0 ||
        offset + out.size() > size() || (!whole && !job_.strategy.elementwise()))
      throw usage_error(fmt::format("tensor '{}': bytes [{}, {}) cannot be read alone",
                                    job_.info.name, offset, offset + out.size()),
                        job_.info.name);
    auto run = [&] {
      if (job_.info.dtype == element_type::float64)
        produce_window<double>(job_, first, n, out.data());
      else
        produce_window<float>(job_, first, n, out.data());
    };
    // In the caller's arena when that has the thread count asked for (the
    // sample being applied); otherwise in an arena of its own.
    if (job_.threads == 0 || tbb::this_task_arena::max_concurrency() == job_.threads)
      run();
    else
      tbb::task_arena(job_.threads).execute(run);
  }
  std::string describe() const override {
    return fmt::format("{} bytes from {} seed={} stream '{}'", size(), job_.strategy.name(),
                       job_.seed, job_.stream);
  }

 private:
  tensor_job job_;
};

tensor_sample describe(const configured_strategy& strategy, const tensor_plan& plan) {
  tensor_sample sample;
  sample.ref = plan.tensor.ref;
  sample.action = plan_action::rewrite;
  sample.strategy = strategy.description();
  sample.params = strategy.params();
  sample.target_mean = not_known;
  sample.target_std = not_known;
  if (auto m = strategy.target_moments(plan.tensor.info)) {
    sample.target_mean = m->mean;
    sample.target_std = m->std;
  }
  return sample;
}

tensor_sample kept_sample(const tensor_plan& plan) {
  tensor_sample sample;
  sample.ref = plan.tensor.ref;
  sample.action = plan.action;
  sample.target_mean = sample.target_std = not_known;
  return sample;
}

// More threads than TBB's default concurrency cannot run anyway, and asking
// for them makes TBB warn on stderr; the output never depends on the thread
// count, so clamp.
int clamp_threads(unsigned requested) {
  if (requested == 0) return 0;
  return static_cast<int>(
      std::min<unsigned>(requested, static_cast<unsigned>(tbb::info::default_concurrency())));
}

tensor_job make_job(const tensor_plan& plan, const configured_strategy& strategy,
                    const rewrite_options& options) {
  tensor_job job;
  job.strategy = strategy;
  job.info = plan.tensor.info;
  job.stream = stream_name(plan.tensor.ref);
  job.seed = options.seed;
  job.adjustments = plan.adjustments;
  job.rng = make_tensor_rng(options.seed, job.stream);
  job.count = static_cast<std::uint64_t>(plan.tensor.info.element_count());
  job.chunk = std::max<std::uint64_t>(options.chunk_elements, 1);
  job.element_bytes = element_size(plan.tensor.info.dtype);
  job.threads = clamp_threads(options.threads);
  return job;
}

void check_alignment(const std::vector<const_model_tensor>& tensors,
                     const std::vector<tensor_plan>& plans) {
  if (tensors.size() != plans.size())
    throw usage_error(
        fmt::format("plan has {} tensors but the model has {}", plans.size(), tensors.size()),
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

model_sample sample_model(const loaded_model& model, const std::vector<tensor_plan>& plans,
                          const registry& strategies, const rewrite_options& options) {
  check_alignment(collect_model_tensors(model.proto()), plans);
  const strategy_cache cache = create_all(plans, strategies);
  model_sample sample;
  sample.seed = options.seed;
  for (const tensor_plan& plan : plans) {
    if (plan.action != plan_action::rewrite) {
      sample.tensors.push_back(kept_sample(plan));
      continue;
    }
    if (!plan.requantized_from.empty()) {
      sample.tensors.push_back(detail::requantized_scale_sample(plan));
      continue;
    }
    const configured_strategy& strategy = cache.at(plan.call.to_string());
    tensor_sample& t = sample.tensors.emplace_back(describe(strategy, plan));
    // A quantized weight's float values (its info's dtype is float32), which
    // requantize_sources turns into codes.
    t.source = std::make_shared<sampled_tensor>(make_job(plan, strategy, options));
  }
  detail::requantize_sources(model, plans, sample);
  return sample;
}

void apply_sample(loaded_model& model, const model_sample& sample, const rewrite_options& options) {
  const std::vector<model_tensor> tensors = collect_model_tensors(model.proto());
  if (tensors.size() != sample.tensors.size())
    throw usage_error(fmt::format("sample has {} tensors but the model has {}",
                                  sample.tensors.size(), tensors.size()),
                      "apply_sample");
  std::vector<std::size_t> inline_tensors;
  std::uint64_t total = 0;  // bytes
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const tensor_sample& t = sample.tensors[i];
    if (!(tensors[i].ref == t.ref))
      throw usage_error("sample does not belong to this model", t.ref.name);
    if (!t.source) continue;
    if (data_outside_proto(model, *tensors[i].proto)) {
      write_tensor_source(model, *tensors[i].proto, t.source);
    } else {
      inline_tensors.push_back(i);
      total += t.source->size();
    }
  }
  // The callback is called under a mutex: callers (the CLI printing a line)
  // need not be thread-safe, and `done` reaches them in increasing order.
  std::mutex progress_mutex;
  std::uint64_t done = 0;
  // Inline tensors in parallel too, so many small tensors keep every thread
  // busy; each still splits into chunks on fixed boundaries, and each writes
  // only its own tensor, so the bytes never depend on the order.
  const int threads = clamp_threads(options.threads);
  tbb::task_arena(threads == 0 ? tbb::task_arena::automatic : threads).execute([&] {
    onnx_reinit::parallel_for(std::size_t{0}, inline_tensors.size(), [&](std::size_t k) {
      const std::size_t i = inline_tensors[k];
      const byte_source& source = *sample.tensors[i].source;
      fill_tensor_bytes(model, *tensors[i].proto,
                        [&](std::span<std::byte> bytes) { source.read(0, bytes); });
      if (!options.progress) return;
      const std::lock_guard lock(progress_mutex);
      done += source.size();
      options.progress(done, total);
    });
  });
}

model_sample rewrite_model(loaded_model& model, const std::vector<tensor_plan>& plans,
                           const registry& strategies, const rewrite_options& options) {
  model_sample sample = sample_model(model, plans, strategies, options);
  apply_sample(model, sample, options);
  return sample;
}

namespace {

// The written tensors by stream name; throws when one was written that the
// plan keeps, or that is no tensor of the sample.
std::map<std::string, const written_tensor*> written_by_stream(const model_sample& sample,
                                                               const save_result& written) {
  std::map<std::string, const tensor_sample*> planned;
  for (const tensor_sample& t : sample.tensors) planned.emplace(stream_name(t.ref), &t);
  std::map<std::string, const written_tensor*> by_stream;
  for (const written_tensor& w : written.written) {
    const std::string name = stream_name(w.ref);
    auto it = planned.find(name);
    if (it == planned.end())
      throw error("a stage wrote a tensor that is not in the plan; nothing was written", name);
    if (it->second->action == plan_action::keep)
      throw error(
          "a stage changed a tensor that the plan keeps (the plan is law); nothing was written",
          name);
    by_stream.emplace(name, &w);
  }
  return by_stream;
}

}  // namespace

std::vector<tensor_outcome> outcomes_of(const model_sample& sample, const save_result& written) {
  const std::map<std::string, const written_tensor*> by_stream = written_by_stream(sample, written);
  std::vector<tensor_outcome> outcomes;
  outcomes.reserve(sample.tensors.size());
  for (const tensor_sample& t : sample.tensors) {
    tensor_outcome& o = outcomes.emplace_back();
    o.strategy = t.strategy;
    o.params = t.params;
    o.target_mean = t.target_mean;
    o.target_std = t.target_std;
    o.achieved_mean = o.achieved_std = not_known;
    auto it = by_stream.find(stream_name(t.ref));
    if (it == by_stream.end()) continue;
    o.rewritten = t.action == plan_action::rewrite;
    o.transferred = t.action == plan_action::transfer;
    o.achieved_mean = it->second->mean;
    o.achieved_std = it->second->std;
  }
  return outcomes;
}

void check_written_follows_plan(const model_sample& sample, const save_result& written) {
  const std::map<std::string, const written_tensor*> by_stream = written_by_stream(sample, written);
  for (const tensor_sample& t : sample.tensors)
    if (t.action != plan_action::keep && by_stream.count(stream_name(t.ref)) == 0)
      throw error(fmt::format("the plan {} this tensor but nothing wrote it; nothing was written",
                              t.action == plan_action::rewrite ? "rewrites" : "transfers"),
                  stream_name(t.ref));
}

std::vector<tensor_outcome> preview_outcomes(const std::vector<tensor_plan>& plans,
                                             const registry& strategies) {
  const strategy_cache cache = create_all(plans, strategies);
  model_sample sample;
  for (const tensor_plan& plan : plans)
    sample.tensors.push_back(plan.action != plan_action::rewrite ? kept_sample(plan)
                             : !plan.requantized_from.empty()
                                 ? detail::requantized_scale_sample(plan)
                                 : describe(cache.at(plan.call.to_string()), plan));
  return outcomes_of(sample, {});
}

}  // namespace onnx_reinit
