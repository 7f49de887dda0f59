// The swift policy, the vllm-ascend baseline and the transfer planner on the full DeepSeek-V3
// model (61 layers, 58 with load, 256 experts), one thread (BM_SwiftThreads: a thread pool). The
// current placement is deepseek-global on workload A; the policies rebalance for workload B
// (ANCHORS.md rows). Targets: swift under 10 ms, its transfer plan under 2 ms. Run with
// --benchmark_repetitions=N --benchmark_report_aggregates_only=true for medians.
// Skips (with a message) when the shared traces are absent.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/exec/thread_pool.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer {
namespace {

struct Case {
  Topology topo;
  LoadMatrix load_b;
  Placement current;
};

struct RowSpec {
  int ranks, slots, nodes;
  const char* from;
  const char* to;
};
constexpr RowSpec kRows[] = {
    {32, 9, 4, "prefill_in1024", "decode_in1000out1000"},
    {64, 5, 8, "decode_in2000out100", "prefill_in2048"},
    {16, 17, 2, "prefill_in4096", "decode_in500out1500"},
};

// Loaded once per row; nullptr when the traces are absent.
const Case* get_case(int row) {
  static std::map<int, std::unique_ptr<Case>> cache;
  auto it = cache.find(row);
  if (it != cache.end()) return it->second.get();
  const RowSpec& r = kRows[row];
  const std::string dir = std::string(SWIFTBALANCER_TRACES_DIR) + "/deepseek_v3r1/";
  std::unique_ptr<Case> c;
  if (std::filesystem::exists(dir + r.from + ".json") &&
      std::filesystem::exists(dir + r.to + ".json")) {
    const Topology topo = Topology::make(r.ranks, r.slots, r.ranks / r.nodes);
    const LoadMatrix a = read_load(dir + r.from + ".json");
    Placement cur = make_policy("deepseek-global")->rebalance(PolicyInput{topo, a});
    c = std::make_unique<Case>(Case{topo, read_load(dir + r.to + ".json"), std::move(cur)});
  }
  return (cache[row] = std::move(c)).get();
}

void label(benchmark::State& state, int row) {
  const RowSpec& r = kRows[row];
  state.SetLabel(std::to_string(r.ranks) + "x" + std::to_string(r.slots) + " " + r.from + "->" +
                 r.to);
}

// The benchmark's row, or nullptr after marking it skipped (no shared traces).
const Case* case_or_skip(benchmark::State& state, int row) {
  const Case* c = get_case(row);
  if (c == nullptr) state.SkipWithError("shared traces not found");
  return c;
}

// The timed loop of the policy benchmarks; the last placement's figures become counters.
void time_policy(benchmark::State& state, int row, const Case& c, const Policy& policy,
                 const PolicyInput& in) {
  Placement out;
  for (auto _ : state) {
    out = policy.rebalance(in);
    benchmark::DoNotOptimize(out);
  }
  state.counters["imbalance"] = balance_summary(out, c.load_b, c.topo).mean_imbalance;
  state.counters["transfers"] = static_cast<double>(transfer_summary(c.current, out, c.topo).total);
  label(state, row);
}

// Args: row, budget (-1 unlimited).
void BM_Policy(benchmark::State& state, const char* name) {
  const int row = static_cast<int>(state.range(0));
  const Case* c = case_or_skip(state, row);
  if (c == nullptr) return;
  PolicyInput in{c->topo, c->load_b, &c->current};
  in.options.max_transfers = state.range(1);
  time_policy(state, row, *c, *make_policy(name), in);
}

// Args: row, threads. Swift without a budget, its per-layer searches on a ThreadPool of that
// many threads (the caller included); wall time, since the work is spread over threads. The
// placement is the same for every count (tests/runtime/policy_threads_test.cpp).
void BM_SwiftThreads(benchmark::State& state) {
  const int row = static_cast<int>(state.range(0));
  const Case* c = case_or_skip(state, row);
  if (c == nullptr) return;
  ThreadPool pool(static_cast<int>(state.range(1)));
  time_policy(state, row, *c, *make_policy("swift"),
              PolicyInput{c->topo, c->load_b, &c->current, {}, &pool});
}

void BM_SwiftPlan(benchmark::State& state) {
  const int row = static_cast<int>(state.range(0));
  const Case* c = case_or_skip(state, row);
  if (c == nullptr) return;
  PolicyInput in{c->topo, c->load_b, &c->current};
  in.options.max_transfers = state.range(1);
  const Placement next = make_policy("swift")->rebalance(in);
  TransferPlan plan;
  for (auto _ : state) {
    plan = make_transfer_plan(c->current, next, c->topo);
    benchmark::DoNotOptimize(plan);
  }
  double makespan = 0.0, bound = 0.0;
  for (const LayerPlan& lp : plan.layers) {
    makespan += lp.makespan;
    bound += lp.lower_bound;
  }
  state.counters["remote_ops"] = static_cast<double>(plan.remote_ops);
  state.counters["makespan_over_bound"] = bound > 0.0 ? makespan / bound : 1.0;
  label(state, row);
}

void rows_and_budgets(benchmark::internal::Benchmark* b) {
  for (int row = 0; row < 3; ++row)
    for (long k : {-1L, 1500L}) b->Args({row, k});
}

BENCHMARK_CAPTURE(BM_Policy, swift, "swift")
    ->Apply(rows_and_budgets)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Policy, vllm_ascend_swap, "vllm-ascend-swap")
    ->Args({0, -1})
    ->Args({1, -1})
    ->Args({2, -1})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Policy, deepseek_global, "deepseek-global")
    ->Args({0, -1})
    ->Args({1, -1})
    ->Args({2, -1})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SwiftThreads)
    ->ArgsProduct({{0, 1, 2}, {1, 2, 4}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SwiftPlan)->Apply(rows_and_budgets)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace swiftbalancer

BENCHMARK_MAIN();
