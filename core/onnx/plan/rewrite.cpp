// The sampler: one configured strategy per distinct call; each tensor filled
// in chunks from its own Philox stream (in parallel where the strategy is
// element-wise), checked, measured and encoded to its stored dtype in one
// pass. Inline tensors are stored at once; external ones are produced while
// save_model streams them, a window of chunks at a time.
#include "onnx_reinit/rewrite.h"

#include <fmt/format.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <span>

#include "onnx_reinit/errors.h"
#include "onnx_reinit/model_tensors.h"
#include "onnx_reinit/random.h"
#include "parallel_for.h"

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
    if (plan.action != plan_action::rewrite) continue;
    const std::string key = plan.call.to_string();
    if (!cache.contains(key)) cache.emplace(key, create_for(plan, strategies));
  }
  return cache;
}

// Mean and sum of squared deviations of a run of values, mergeable in a
// fixed order (Chan et al.), so the figures never depend on threads.
// Sums are taken around the run's first value to avoid cancellation.
struct running_stats {
  double count = 0.0;
  double mean = 0.0;
  double m2 = 0.0;

  void merge(const running_stats& o) {
    if (o.count == 0.0) return;
    if (count == 0.0) {
      *this = o;
      return;
    }
    const double n = count + o.count;
    const double delta = o.mean - mean;
    mean += delta * o.count / n;
    m2 += o.m2 + delta * delta * count * o.count / n;
    count = n;
  }
};

class shifted_sums {
 public:
  void add(double x) {
    if (n_ == 0) shift_ = x;
    const double d = x - shift_;
    sum_ += d;
    squares_ += d * d;
    ++n_;
  }
  running_stats stats() const {
    running_stats s;
    if (n_ == 0) return s;
    s.count = static_cast<double>(n_);
    s.mean = shift_ + sum_ / s.count;
    s.m2 = std::max(0.0, squares_ - sum_ * sum_ / s.count);
    return s;
  }

 private:
  double shift_ = 0.0, sum_ = 0.0, squares_ = 0.0;
  std::uint64_t n_ = 0;
};

// Everything needed to produce one tensor's bytes; copied into producers
// that run later, during save_model.
struct tensor_job {
  configured_strategy strategy;
  tensor_info info;
  std::vector<std::pair<std::int64_t, std::int64_t>> forget_ranges;
  double forget_value = 0.0;
  onnx_reinit_rng rng{};
  std::uint64_t count = 0;
  std::uint64_t chunk = 1;
  std::size_t element_bytes = 4;
};

std::size_t stored_size(element_type t) {
  return t == element_type::float64 ? 8 : (t == element_type::float32 ? 4 : 2);
}

template <class T>
void apply_forget_bias(const tensor_job& job, std::uint64_t first, std::span<T> values) {
  const auto begin_at = static_cast<std::int64_t>(first);
  const auto end_at = static_cast<std::int64_t>(first + values.size());
  for (const auto& [begin, end] : job.forget_ranges)
    for (std::int64_t i = std::max(begin, begin_at); i < std::min(end, end_at); ++i)
      values[static_cast<std::size_t>(i - begin_at)] = static_cast<T>(job.forget_value);
}

[[noreturn]] void throw_non_finite(const tensor_job& job, double value, std::uint64_t index) {
  throw strategy_error(
      fmt::format("strategy '{}' of plugin '{}' ({}) wrote a non-finite value ({}) at element {}",
                  job.strategy.name(), job.strategy.plugin_id(), job.strategy.plugin_path(), value,
                  index),
      job.info.name);
}

// Figures of values stored as they are (float32, float64), in the hot
// path: four independent sums around the first value (no branch per element,
// so the loop pipelines); a non-finite value makes a sum non-finite, and
// only then is it looked for.
template <class T>
running_stats measure_stored(const tensor_job& job, std::uint64_t first,
                             std::span<const T> values) {
  running_stats stats;
  if (values.empty()) return stats;
  const double shift = static_cast<double>(values[0]);
  double sum[4] = {0, 0, 0, 0}, squares[4] = {0, 0, 0, 0};
  const std::size_t n = values.size(), whole = n - n % 4;
  for (std::size_t i = 0; i < whole; i += 4)
    for (std::size_t k = 0; k < 4; ++k) {
      const double d = static_cast<double>(values[i + k]) - shift;
      sum[k] += d;
      squares[k] += d * d;
    }
  for (std::size_t i = whole; i < n; ++i) {
    const double d = static_cast<double>(values[i]) - shift;
    sum[0] += d;
    squares[0] += d * d;
  }
  const double total = (sum[0] + sum[1]) + (sum[2] + sum[3]);
  const double total_squares = (squares[0] + squares[1]) + (squares[2] + squares[3]);
  if (!std::isfinite(total) || !std::isfinite(total_squares))
    for (std::size_t i = 0; i < n; ++i)
      if (!std::isfinite(values[i]))
        throw_non_finite(job, static_cast<double>(values[i]), first + i);
  stats.count = static_cast<double>(n);
  stats.mean = shift + total / stats.count;
  stats.m2 = std::max(0.0, total_squares - total * total / stats.count);
  return stats;
}

// Checks, measures and encodes values[0..n) (element `first` onwards) into
// `out` in the tensor's stored dtype. Statistics are of the stored values,
// after 16-bit rounding.
template <class T>
running_stats encode(const tensor_job& job, std::uint64_t first, std::span<const T> values,
                     std::byte* out) {
  shifted_sums sums;
  auto stored = [&](std::size_t i, double v) {
    if (!std::isfinite(v)) throw_non_finite(job, static_cast<double>(values[i]), first + i);
    sums.add(v);
  };
  switch (job.info.dtype) {
    case element_type::float16:
    case element_type::bfloat16: {
      const bool half = job.info.dtype == element_type::float16;
      for (std::size_t i = 0; i < values.size(); ++i) {
        const float f = static_cast<float>(values[i]);
        const std::uint16_t bits = half ? float_to_half_bits(f) : float_to_bfloat16_bits(f);
        stored(i, half ? half_bits_to_float(bits) : bfloat16_bits_to_float(bits));
        std::memcpy(out + 2 * i, &bits, 2);
      }
      break;
    }
    case element_type::float32:
    case element_type::float64:
      if (static_cast<const void*>(values.data()) != out)
        std::memcpy(out, values.data(), values.size_bytes());
      return measure_stored(job, first, values);
  }
  return sums.stats();
}

// Per-thread scratch for chunks that cannot be filled in place (16-bit).
template <class T>
using scratch_buffers = tbb::enumerable_thread_specific<std::vector<T>>;

// One chunk: fill (in place when the stored dtype is T), forget bias,
// encode. `out` points at the chunk's bytes.
template <class T>
running_stats produce_chunk(const tensor_job& job, std::uint64_t first, std::uint64_t n,
                            std::byte* out, scratch_buffers<T>& scratch) {
  std::span<T> values;
  if (job.element_bytes == sizeof(T)) {
    values = std::span<T>(reinterpret_cast<T*>(out), n);
  } else {
    std::vector<T>& buffer = scratch.local();
    buffer.resize(n);
    values = std::span<T>(buffer.data(), n);
  }
  job.strategy.fill(job.info, job.rng, first, values);
  apply_forget_bias(job, first, values);
  return encode<T>(job, first, values, out);
}

// Produces elements [first, first + n) into `out`, chunks in parallel on
// chunk-aligned boundaries, and merges each chunk's figures into `total` in
// chunk order: the same sequence whether the tensor is produced in one
// window or many, so streamed and in-memory figures agree to the bit.
// Non-element-wise strategies fill the whole tensor in one call.
template <class T>
void produce_window(const tensor_job& job, std::uint64_t first, std::uint64_t n, std::byte* out,
                    scratch_buffers<T>& scratch, running_stats& total) {
  if (!job.strategy.elementwise()) {
    std::vector<T> whole(n);
    job.strategy.fill(job.info, job.rng, 0, std::span<T>(whole));
    apply_forget_bias(job, 0, std::span<T>(whole));
    total.merge(encode<T>(job, 0, std::span<const T>(whole), out));
    return;
  }
  const std::uint64_t chunks = (n + job.chunk - 1) / job.chunk;
  std::vector<running_stats> parts(chunks);
  onnx_reinit::parallel_for(std::uint64_t{0}, chunks, [&](std::uint64_t c) {
    const std::uint64_t offset = c * job.chunk;
    const std::uint64_t len = std::min(job.chunk, n - offset);
    parts[c] =
        produce_chunk<T>(job, first + offset, len, out + offset * job.element_bytes, scratch);
  });
  for (const running_stats& p : parts) total.merge(p);
}

void finish_outcome(tensor_outcome& outcome, const running_stats& stats) {
  outcome.achieved_mean = stats.count > 0 ? stats.mean : not_known;
  outcome.achieved_std = stats.count > 0 ? std::sqrt(stats.m2 / stats.count) : not_known;
}

// Shared by producers that outlive rewrite_model: progress and thread count.
// The callback is called under a mutex: callers (the CLI printing a line)
// need not be thread-safe, and `done` reaches them in increasing order.
struct run_state {
  std::mutex progress_mutex;
  std::uint64_t done = 0;  // guarded by progress_mutex
  std::uint64_t total = 0;
  std::function<void(std::uint64_t, std::uint64_t)> progress;
  int threads = 0;  // 0: automatic

  void advance(std::uint64_t elements) {
    if (!progress) return;
    const std::lock_guard lock(progress_mutex);
    done += elements;
    progress(done, total);
  }
  tbb::task_arena arena() const {
    return tbb::task_arena(threads == 0 ? tbb::task_arena::automatic : threads);
  }
};

template <class T>
void rewrite_inline(loaded_model& model, onnx::TensorProto& proto, const tensor_job& job,
                    tensor_outcome& outcome, run_state& run) {
  scratch_buffers<T> scratch;
  running_stats stats;
  fill_tensor_bytes(model, proto, [&](std::span<std::byte> bytes) {
    produce_window<T>(job, 0, job.count, bytes.data(), scratch, stats);
  });
  finish_outcome(outcome, stats);
  run.advance(job.count);
}

// Registers a producer that samples the tensor window by window while
// save_model writes it: memory stays at one window per tensor.
template <class T>
void rewrite_streamed(loaded_model& model, onnx::TensorProto& proto, tensor_job job,
                      std::shared_ptr<std::vector<tensor_outcome>> outcomes, std::size_t index,
                      std::shared_ptr<run_state> run) {
  write_tensor_data(
      model, proto, [job = std::move(job), outcomes, index, run](const byte_sink& sink) {
        const std::uint64_t window =
            job.strategy.elementwise() ? job.chunk * 16 : std::max<std::uint64_t>(job.count, 1);
        auto buffer = std::make_unique_for_overwrite<std::byte[]>(
            std::min(window, job.count) * job.element_bytes + 1);
        scratch_buffers<T> scratch;
        running_stats total;
        tbb::task_arena arena = run->arena();
        for (std::uint64_t first = 0; first < job.count; first += window) {
          const std::uint64_t n = std::min(window, job.count - first);
          arena.execute([&] { produce_window<T>(job, first, n, buffer.get(), scratch, total); });
          sink(std::span<const std::byte>(buffer.get(), n * job.element_bytes));
          run->advance(n);
        }
        finish_outcome((*outcomes)[index], total);
      });
}

tensor_outcome describe(const configured_strategy& strategy, const tensor_plan& plan) {
  tensor_outcome outcome;
  outcome.rewritten = true;
  outcome.strategy = strategy.description();
  outcome.params = strategy.params();
  outcome.target_mean = not_known;
  outcome.target_std = not_known;
  outcome.achieved_mean = not_known;
  outcome.achieved_std = not_known;
  if (auto m = strategy.target_moments(plan.tensor.info)) {
    outcome.target_mean = m->mean;
    outcome.target_std = m->std;
  }
  return outcome;
}

tensor_job make_job(const tensor_plan& plan, const configured_strategy& strategy,
                    const rewrite_options& options) {
  tensor_job job;
  job.strategy = strategy;
  job.info = plan.tensor.info;
  if (plan.forget_bias) {
    job.forget_ranges = plan.tensor.forget_gate_ranges;
    job.forget_value = *plan.forget_bias;
  }
  job.rng = make_tensor_rng(options.seed, stream_name(plan.tensor.ref));
  job.count = static_cast<std::uint64_t>(plan.tensor.info.element_count());
  job.chunk = std::max<std::uint64_t>(options.chunk_elements, 1);
  job.element_bytes = stored_size(plan.tensor.info.dtype);
  return job;
}

void check_alignment(const std::vector<model_tensor>& tensors,
                     const std::vector<tensor_plan>& plans) {
  if (tensors.size() != plans.size())
    throw usage_error(
        fmt::format("plan has {} tensors but the model has {}", plans.size(), tensors.size()),
        "rewrite_model");
  for (std::size_t i = 0; i < plans.size(); ++i)
    if (!(tensors[i].ref == plans[i].tensor.ref))
      throw usage_error("plan does not belong to this model", plans[i].tensor.info.name);
}

// More threads than TBB's default concurrency cannot run anyway, and asking
// for them makes TBB warn on stderr; the output never depends on the thread
// count, so clamp.
int clamp_threads(unsigned requested) {
  if (requested == 0) return 0;
  return static_cast<int>(
      std::min<unsigned>(requested, static_cast<unsigned>(tbb::info::default_concurrency())));
}

}  // namespace

std::string stream_name(const tensor_ref& ref) {
  return ref.graph_path.empty() ? ref.name : ref.graph_path + "/" + ref.name;
}

void validate_plan(const std::vector<tensor_plan>& plans, const registry& strategies) {
  (void)create_all(plans, strategies);
}

std::vector<tensor_outcome> preview_outcomes(const std::vector<tensor_plan>& plans,
                                             const registry& strategies) {
  const strategy_cache cache = create_all(plans, strategies);
  std::vector<tensor_outcome> outcomes(plans.size());
  for (std::size_t i = 0; i < plans.size(); ++i) {
    tensor_outcome& o = outcomes[i];
    o.target_mean = o.target_std = o.achieved_mean = o.achieved_std = not_known;
    if (plans[i].action != plan_action::rewrite) continue;
    o = describe(cache.at(plans[i].call.to_string()), plans[i]);
    o.rewritten = false;
  }
  return outcomes;
}

rewrite_outcomes rewrite_model(loaded_model& model, const std::vector<tensor_plan>& plans,
                               const registry& strategies, const rewrite_options& options) {
  const std::vector<model_tensor> tensors = collect_model_tensors(model.proto());
  check_alignment(tensors, plans);
  const strategy_cache cache = create_all(plans, strategies);

  auto run = std::make_shared<run_state>();
  run->progress = options.progress;
  run->threads = clamp_threads(options.threads);
  for (const tensor_plan& plan : plans)
    if (plan.action == plan_action::rewrite) run->total += plan.tensor.info.element_count();

  auto outcomes = std::make_shared<std::vector<tensor_outcome>>(plans.size());
  std::vector<std::pair<std::size_t, tensor_job>> inline_jobs;
  for (std::size_t i = 0; i < plans.size(); ++i) {
    const tensor_plan& plan = plans[i];
    if (plan.action != plan_action::rewrite) continue;
    const configured_strategy& strategy = cache.at(plan.call.to_string());
    (*outcomes)[i] = describe(strategy, plan);
    tensor_job job = make_job(plan, strategy, options);
    onnx::TensorProto& proto = *tensors[i].proto;
    if (storage_of(proto) != tensor_storage::external)
      inline_jobs.emplace_back(i, std::move(job));
    else if (job.info.dtype == element_type::float64)
      rewrite_streamed<double>(model, proto, std::move(job), outcomes, i, run);
    else
      rewrite_streamed<float>(model, proto, std::move(job), outcomes, i, run);
  }
  // Inline tensors in parallel too, so many small tensors keep every thread
  // busy; each still splits into chunks on fixed boundaries, and each writes
  // only its own tensor and outcome, so the bytes never depend on the order.
  tbb::task_arena arena = run->arena();
  arena.execute([&] {
    onnx_reinit::parallel_for(std::size_t{0}, inline_jobs.size(), [&](std::size_t k) {
      const auto& [i, job] = inline_jobs[k];
      onnx::TensorProto& proto = *tensors[i].proto;
      if (job.info.dtype == element_type::float64)
        rewrite_inline<double>(model, proto, job, (*outcomes)[i], *run);
      else
        rewrite_inline<float>(model, proto, job, (*outcomes)[i], *run);
    });
  });
  return outcomes;
}

}  // namespace onnx_reinit
