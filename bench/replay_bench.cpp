// Speed of trace generation (one step of DeepSeek-V3 shape) and of a whole replay run at
// production scale (64 ranks x 5 slots, 58 layers x 256 experts, four policies).
#include <benchmark/benchmark.h>

#include <vector>

#include "swiftbalancer/replay/replay.h"
#include "swiftbalancer/replay/trace.h"

namespace sr = swiftbalancer::replay;

// One step: 58 layers x 256 experts, `tokens` tokens x top-8.
static void BM_GenerateStep(benchmark::State& state) {
  sr::TraceSpec spec;
  spec.steps = 1 << 30;
  spec.tokens = state.range(0);
  spec.bases = {sr::synthetic_base(58, 256, 1, 0)};
  sr::TraceGenerator gen(spec);
  std::vector<std::int64_t> step(58 * 256);
  for (auto _ : state) {
    gen.next(step);
    benchmark::DoNotOptimize(step.data());
  }
  state.SetItemsProcessed(state.iterations() * 58);
}
BENCHMARK(BM_GenerateStep)->Arg(512)->Arg(4096)->Arg(16384)->Unit(benchmark::kMicrosecond);

// A whole replay, trace generated on the fly: `steps` steps, switch half way, four policies.
static void BM_Replay(benchmark::State& state) {
  for (auto _ : state) {
    sr::TraceSpec spec;
    spec.steps = state.range(0);
    spec.bases = {sr::synthetic_base(58, 256, 1, 0), sr::synthetic_base(58, 256, 1, 1)};
    auto src = sr::generated_trace(spec);
    sr::ReplayConfig c;
    c.topo = swiftbalancer::Topology::make(64, 5, 8);
    c.policies = sr::parse_policy_list("off,static,deepseek-global:sync,swift:async");
    c.policy_ms = 0.0;
    const sr::ReplayResult r = sr::run_replay(*src, c);
    benchmark::DoNotOptimize(r.policies.data());
  }
}
BENCHMARK(BM_Replay)->Arg(500)->Unit(benchmark::kMillisecond)->Iterations(1);

BENCHMARK_MAIN();
