// The policy's per-layer work on a thread pool (PolicyInput::executor, exec/thread_pool.h)
// decides exactly what the calling thread alone decides: swift's placements are compared cell
// for cell on random heavy-tailed loads and on the DeepSeek-V3 traces, with and without a budget
// and a current placement.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "support/random_load.h"
#include "support/traces.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/exec/thread_pool.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/runtime/balancer_config.h"

namespace swiftbalancer {
namespace {

Placement decide(const Policy& p, const Topology& topo, const LoadMatrix& load,
                 const Placement* current, std::int64_t budget, TaskExecutor* exec) {
  PolicyOptions o;
  o.max_transfers = budget;
  return p.rebalance(PolicyInput{topo, load, current, o, exec});
}

TEST(PolicyThreads, SwiftDecidesTheSameOnAnyPoolOnRandomLoads) {
  const auto swift = make_policy("swift");
  ThreadPool two(2), five(5);
  std::mt19937 rng(20261129);
  for (int trial = 0; trial < 12; ++trial) {
    const int ranks = 4 + trial % 5 * 3, slots = 2 + trial % 3, layers = 5 + trial;
    const int experts = ranks * slots - (trial % 4) * 2;
    const Topology topo = Topology::make(ranks, slots);
    const LoadMatrix load = testing::heavy_tailed_load(rng, layers, experts);
    const Placement start = contiguous_placement(topo, layers, experts);
    for (std::int64_t budget : {std::int64_t{-1}, std::int64_t{0}, std::int64_t{layers * 2}}) {
      const Placement serial = decide(*swift, topo, load, &start, budget, nullptr);
      EXPECT_EQ(decide(*swift, topo, load, &start, budget, &two), serial)
          << "trial " << trial << " budget " << budget;
      EXPECT_EQ(decide(*swift, topo, load, &start, budget, &five), serial)
          << "trial " << trial << " budget " << budget;
    }
    // Without a current placement: deepseek-global's, polished layer by layer.
    EXPECT_EQ(decide(*swift, topo, load, nullptr, -1, &five),
              decide(*swift, topo, load, nullptr, -1, nullptr))
        << "trial " << trial;
  }
}

TEST(PolicyThreads, SwiftDecidesTheSameOnAnyPoolOnDeepSeekTraces) {
  const auto decode = testing::deepseek_trace_all_layers("decode_in1000out1000");
  if (!decode) GTEST_SKIP() << "shared traces not found under " << testing::traces_dir();
  const auto swift = make_policy("swift");
  const Topology topo = Topology::make(32, 9, 8);
  const Placement start = contiguous_placement(topo, decode->layers(), decode->experts());
  ThreadPool pool(4);
  for (std::int64_t budget : {std::int64_t{-1}, std::int64_t{1000}, std::int64_t{58 * 32}}) {
    const Placement serial = decide(*swift, topo, *decode, &start, budget, nullptr);
    const Placement spread = decide(*swift, topo, *decode, &start, budget, &pool);
    EXPECT_EQ(spread, serial) << "budget " << budget;
    EXPECT_LT(balance_summary(spread, *decode, topo).mean_imbalance,
              balance_summary(start, *decode, topo).mean_imbalance);
  }
}

TEST(PolicyThreads, ConfigRejectsCountsOutsideThePoolLimit) {
  BalancerConfig c;
  for (int bad : {0, -1, 257}) {
    c.policy_threads = bad;
    EXPECT_THROW(validate_config(c), InputError) << bad;
  }
  c.policy_threads = 4;
  EXPECT_NO_THROW(validate_config(c));
}

}  // namespace
}  // namespace swiftbalancer
