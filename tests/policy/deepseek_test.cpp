#include <gtest/gtest.h>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/policy/deepseek.h"

namespace swiftbalancer {
namespace {

// deepseek-ai/EPLB README: 2 layers x 12 experts, 16 physical slots, 4 groups, 2 nodes, 8 ranks.
LoadMatrix readme_load() {
  return LoadMatrix(2, 12, {90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86,
                            20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27});
}

TEST(DeepSeekPolicy, ReproducesReadmeExample) {
  const Topology topo = Topology::make(8, 2, 4);
  const LoadMatrix load = readme_load();
  PolicyInput in{topo, load};
  in.options.num_groups = 4;
  const Placement got = make_deepseek_policy(DeepSeekMode::kAuto)->rebalance(in);
  const std::vector<ExpertId> want0 = {5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1};
  const std::vector<ExpertId> want1 = {7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1};
  EXPECT_EQ(std::vector<ExpertId>(got.layer(0).begin(), got.layer(0).end()), want0);
  EXPECT_EQ(std::vector<ExpertId>(got.layer(1).begin(), got.layer(1).end()), want1);
  EXPECT_TRUE(validate_placement(got, topo).ok());
}

TEST(DeepSeekPolicy, AutoPicksHierarchicalOnlyWhenGroupsDivideNodes) {
  const Topology topo = Topology::make(8, 2, 4);
  const LoadMatrix load = readme_load();
  PolicyInput in{topo, load};
  in.options.num_groups = 4;
  const auto hier = make_deepseek_policy(DeepSeekMode::kHierarchical)->rebalance(in);
  EXPECT_EQ(make_deepseek_policy(DeepSeekMode::kAuto)->rebalance(in), hier);
  in.options.num_groups = 3;  // 3 groups over 2 nodes: global
  const auto global = make_deepseek_policy(DeepSeekMode::kGlobal)->rebalance(in);
  EXPECT_EQ(make_deepseek_policy(DeepSeekMode::kAuto)->rebalance(in), global);
  EXPECT_THROW(make_deepseek_policy(DeepSeekMode::kHierarchical)->rebalance(in), InputError);
}

}  // namespace
}  // namespace swiftbalancer
