#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "support/random_load.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/policy/deepseek.h"

namespace swiftbalancer {
namespace {

// deepseek-ai/EPLB README: 2 layers x 12 experts, 16 physical slots, 4 groups, 2 nodes, 8 ranks.
LoadMatrix readme_load() {
  return LoadMatrix(2, 12, {90, 132, 40,  61, 104, 165, 39,  4,   73,  56, 183, 86,
                            20, 107, 104, 64, 19,  197, 187, 157, 172, 86, 16,  27});
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

namespace swiftbalancer {
namespace {

using testing::heavy_tailed_load;

TEST(DeepSeekPolicy, RandomInputsGiveValidPlacementsWithoutDuplicatesOnARank) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 60; ++trial) {
    const int nodes = 1 + static_cast<int>(rng() % 4);
    const int ranks_per_node = 1 + static_cast<int>(rng() % 4);
    const int ranks = nodes * ranks_per_node;
    const int groups = nodes * (1 + static_cast<int>(rng() % 3));
    const int group_size = 1 + static_cast<int>(rng() % 6);
    const int experts = groups * group_size;
    const int experts_per_node = experts / nodes;
    const int min_slots = (experts + ranks - 1) / ranks;
    if (min_slots > experts_per_node) continue;
    const int slots = min_slots + static_cast<int>(rng() % (experts_per_node - min_slots + 1));
    const Topology topo = Topology::make(ranks, slots, ranks_per_node);
    const LoadMatrix load = heavy_tailed_load(rng, 3, experts);
    for (DeepSeekMode mode :
         {DeepSeekMode::kGlobal, DeepSeekMode::kHierarchical, DeepSeekMode::kAuto}) {
      PolicyInput in{topo, load};
      in.options.num_groups = groups;
      const auto policy = make_deepseek_policy(mode);
      const Placement p = policy->rebalance(in);
      const Status s = validate_placement(p, topo);
      ASSERT_TRUE(s.ok()) << policy->name() << " " << ranks << "x" << slots << " groups " << groups
                          << ": " << s.message();
      // Deterministic: a second call gives the same placement.
      EXPECT_EQ(policy->rebalance(in), p);
      // Balance never worse than no balancing at all, for the global mode.
      if (mode == DeepSeekMode::kGlobal) {
        const auto before = balance_summary(contiguous_placement(topo, 3, experts), load, topo);
        const auto after = balance_summary(p, load, topo);
        EXPECT_LE(after.mean_imbalance, before.mean_imbalance + 1e-9);
      }
    }
  }
}

TEST(DeepSeekPolicy, HierarchicalKeepsEachGroupOnOneNode) {
  const Topology topo = Topology::make(8, 3, 4);  // 2 nodes, 24 slots
  std::mt19937 rng(3);
  const LoadMatrix load = heavy_tailed_load(rng, 4, 16);
  PolicyInput in{topo, load};
  in.options.num_groups = 4;  // groups of 4 experts, 2 per node
  const Placement p = make_deepseek_policy(DeepSeekMode::kHierarchical)->rebalance(in);
  for (int l = 0; l < 4; ++l)
    for (int s = 0; s < topo.num_slots(); ++s)
      for (int t = 0; t < topo.num_slots(); ++t) {
        if (p.at(l, s) / 4 != p.at(l, t) / 4) continue;
        EXPECT_EQ(topo.node_of_rank(topo.rank_of_slot(s)), topo.node_of_rank(topo.rank_of_slot(t)));
      }
}

TEST(DeepSeekPolicy, RejectsImpossibleInputs) {
  const Topology topo = Topology::make(4, 2, 2);
  LoadMatrix load(1, 8);
  PolicyInput in{topo, load};
  in.options.num_groups = 3;  // does not divide 8 experts
  EXPECT_THROW(make_deepseek_policy(DeepSeekMode::kGlobal)->rebalance(in), InputError);
  in.options.num_groups = 0;
  load.at(0, 3) = -1;
  EXPECT_THROW(make_deepseek_policy(DeepSeekMode::kGlobal)->rebalance(in), InputError);
  const LoadMatrix big(1, 9);  // 9 experts > 8 slots
  PolicyInput in2{topo, big};
  EXPECT_THROW(make_deepseek_policy(DeepSeekMode::kGlobal)->rebalance(in2), InputError);
}

}  // namespace
}  // namespace swiftbalancer
