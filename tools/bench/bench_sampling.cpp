// onnx-reinit-bench-sampling: raw float32 and float64 sampling throughput of
// the host RNG, normal, uniform and truncated normal (+-2 std), on one thread
// and on all threads, through the stable stream API (make_tensor_rng +
// rng_stream) that strategies use, so it measures what a plugin gets. Google
// Benchmark reports items_per_second; tools/bench/run.sh puts it beside
// numpy's figures and each truncated normal beside the normal of its type.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "onnx_reinit/random.h"
#include "onnx_reinit/sdk/rng.h"

namespace ori = onnx_reinit;

namespace {

// 64 MB of either type: well past the caches, like a real weight matrix, and
// large enough that starting threads per iteration costs nothing measurable.
constexpr std::size_t buffer_bytes = std::size_t{64} << 20;

enum class distribution { normal, uniform, truncated_normal };

template <class T>
void fill(const ori::rng_stream& rng, distribution dist, std::span<T> out, std::uint64_t first) {
  if (dist == distribution::normal)
    rng.normal(out, first, 0.0, 1.0);
  else if (dist == distribution::uniform)
    rng.uniform(out, first, -1.0, 1.0);
  else
    rng.truncated_normal(out, first, 0.0, 1.0, -2.0, 2.0);
}

// Fills the buffer split into one chunk per thread, as the rewrite does for
// a large tensor. Chunks start on multiples of 4 elements (a Philox block of
// floats, two of doubles) so no block is computed twice.
template <class T>
void bench_fill(benchmark::State& state, distribution dist, unsigned threads) {
  constexpr std::size_t buffer_elements = buffer_bytes / sizeof(T);
  const ori::rng_stream rng(ori::make_tensor_rng(0, "bench.weight"));
  std::vector<T> buffer(buffer_elements);
  const std::size_t chunk = (buffer_elements / threads + 3) / 4 * 4;
  for (auto _ : state) {
    if (threads == 1) {
      fill<T>(rng, dist, buffer, 0);
    } else {
      std::vector<std::thread> workers;
      for (std::size_t begin = 0; begin < buffer_elements; begin += chunk) {
        const std::size_t count = std::min(chunk, buffer_elements - begin);
        workers.emplace_back([&, begin, count] {
          fill<T>(rng, dist, std::span(buffer).subspan(begin, count), begin);
        });
      }
      for (auto& w : workers) w.join();
    }
    benchmark::DoNotOptimize(buffer.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(buffer_elements));
  state.counters["threads_used"] = threads;
}

template <class T>
void register_fills(const char* suffix, unsigned threads) {
  for (const auto& entry :
       {std::pair{"normal", distribution::normal}, std::pair{"uniform", distribution::uniform},
        std::pair{"truncated_normal", distribution::truncated_normal}}) {
    const distribution dist = entry.second;
    benchmark::RegisterBenchmark(
        (std::string(entry.first) + suffix + (threads == 1 ? "/1_thread" : "/all_threads")).c_str(),
        [dist, threads](benchmark::State& s) { bench_fill<T>(s, dist, threads); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned all = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned threads : {1u, all}) {
    if (threads == all && all == 1) continue;
    register_fills<float>("_f32", threads);
    register_fills<double>("_f64", threads);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
