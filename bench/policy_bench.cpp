// DeepSeek policies on the full DeepSeek-V3 load (58 MoE layers x 256 experts), 32 ranks x 9
// slots, one thread. The Python reference takes 923 ms for deepseek-global here (ANCHORS.md).
// Reports the median over repetitions: run with --benchmark_repetitions=N (default 10 below).
// Skips with a message when the shared traces are absent.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <optional>

#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/policy/deepseek.h"

namespace swiftbalancer {
namespace {

std::optional<LoadMatrix> decode_load() {
  const std::string path =
      std::string(SWIFTBALANCER_TRACES_DIR) + "/deepseek_v3r1/decode_in1000out1000.json";
  if (!std::filesystem::exists(path)) return std::nullopt;
  const LoadMatrix all = read_load(path);
  std::vector<double> data;
  int layers = 0;
  for (int l = 0; l < all.layers(); ++l) {
    if (!all.layer_has_load(l)) continue;  // the three dense layers
    data.insert(data.end(), all.row(l).begin(), all.row(l).end());
    ++layers;
  }
  return LoadMatrix(layers, all.experts(), std::move(data));
}

void run(benchmark::State& state, DeepSeekMode mode) {
  static const std::optional<LoadMatrix> load = decode_load();
  if (!load) {
    state.SkipWithError("shared traces absent (SWIFTBALANCER_TRACES_DIR)");
    return;
  }
  const Topology topo = Topology::make(32, 9, 8);
  PolicyInput in{topo, *load};
  in.options.num_groups = 8;
  const auto policy = make_deepseek_policy(mode);
  for (auto _ : state) benchmark::DoNotOptimize(policy->rebalance(in));
  state.counters["layers"] = load->layers();
}

void BM_DeepSeekGlobal_58x256_32x9(benchmark::State& s) {
  run(s, DeepSeekMode::kGlobal);
}
void BM_DeepSeekHierarchical_58x256_32x9(benchmark::State& s) {
  run(s, DeepSeekMode::kHierarchical);
}
BENCHMARK(BM_DeepSeekGlobal_58x256_32x9)
    ->Unit(benchmark::kMillisecond)
    ->Repetitions(10)
    ->ReportAggregatesOnly(true);
BENCHMARK(BM_DeepSeekHierarchical_58x256_32x9)
    ->Unit(benchmark::kMillisecond)
    ->Repetitions(10)
    ->ReportAggregatesOnly(true);

}  // namespace
}  // namespace swiftbalancer

BENCHMARK_MAIN();
