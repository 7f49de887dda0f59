// compat::rebalance_on_threads: the thread count is checked and changes nothing in the result.
#include <gtest/gtest.h>

#include <random>

#include "support/random_load.h"
#include "swiftbalancer/compat/policy_threads.h"
#include "swiftbalancer/core/limits.h"

namespace swiftbalancer::compat {
namespace {

TEST(PolicyThreads, CheckedAndWithoutEffectOnTheResult) {
  EXPECT_THROW(check_threads(0), InputError);
  EXPECT_THROW(check_threads(limits::kMaxPoolThreads + 1), InputError);
  EXPECT_NO_THROW(check_threads(1));
  std::mt19937 rng(3);
  const Topology topo = Topology::make(8, 5, 4);
  const LoadMatrix load = testing::heavy_tailed_load(rng, 6, 32);
  const Placement cur = contiguous_placement(topo, 6, 32);
  const auto policy = make_policy("swift");
  const Placement one = rebalance_on_threads(*policy, PolicyInput{topo, load, &cur}, 1);
  EXPECT_EQ(rebalance_on_threads(*policy, PolicyInput{topo, load, &cur}, 4), one);
  EXPECT_THROW(rebalance_on_threads(*policy, PolicyInput{topo, load, &cur}, 0), InputError);
}

}  // namespace
}  // namespace swiftbalancer::compat
