// The per-layer search of the swift policy: every prefix of its trajectory is a valid layer
// whose recorded transfers and imbalance match core/metrics, and the imbalance never rises.
#include "swiftbalancer/policy/internal/swift_search.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "swiftbalancer/core/metrics.h"

namespace swiftbalancer {
namespace {

// A random valid layer: every expert once, the spare slots random replicas, shuffled (drawn
// again until no rank holds an expert twice).
std::vector<ExpertId> random_layer(std::mt19937& rng, const Topology& topo, int experts) {
  std::vector<ExpertId> layer;
  do {
    layer.assign(static_cast<std::size_t>(topo.num_slots()), 0);
    for (int p = 0; p < topo.num_slots(); ++p)
      layer[p] = p < experts ? p : static_cast<ExpertId>(rng() % experts);
    std::shuffle(layer.begin(), layer.end(), rng);
  } while (!validate_layer(layer, topo, experts, 0).ok());
  return layer;
}

TEST(SwiftSearch, TrajectoryPrefixesAreValidAndMatchMetrics) {
  std::mt19937 rng(31337);
  std::lognormal_distribution<double> skew(0.0, 1.3);
  const Topology topos[] = {Topology::make(8, 5, 4), Topology::make(16, 4, 4),
                            Topology::make(5, 9, 0)};
  for (const Topology& topo : topos) {
    swift::LayerSearch search(topo, topo.num_slots() - topo.ranks);
    const int experts = topo.num_slots() - topo.ranks;
    for (int trial = 0; trial < 10; ++trial) {
      std::vector<double> load(static_cast<std::size_t>(experts));
      for (double& v : load) v = std::round(50.0 * skew(rng));
      const std::vector<ExpertId> layer = random_layer(rng, topo, experts);

      swift::Trajectory t;
      swift::SearchLimits limits;  // target 1.0: search until no move helps
      search.run(layer, load, limits, t);
      ASSERT_EQ(t.step_end.size(), t.transfers.size());
      ASSERT_EQ(t.imbalance.size(), t.transfers.size());
      std::vector<ExpertId> cur = layer;
      for (int k = 0; k <= t.steps(); ++k) {
        if (k > 0) {
          for (int i = t.step_end[k - 1]; i < t.step_end[k]; ++i)
            cur[t.writes[i].slot] = t.writes[i].expert;
          EXPECT_LE(t.imbalance[k], t.imbalance[k - 1]) << "step " << k;
        }
        ASSERT_TRUE(validate_layer(cur, topo, experts, 0).ok()) << "step " << k;
        EXPECT_EQ(t.transfers[k], layer_transfers(layer, cur, topo, experts)) << "step " << k;
        EXPECT_NEAR(t.imbalance[k], layer_balance(cur, load, topo).imbalance, 1e-9);
      }
      // The final layer is a local optimum: well below the start on these skewed loads.
      EXPECT_LT(t.imbalance.back(), t.imbalance.front() + 1e-12);
    }
  }
}

TEST(SwiftSearch, StopsAtTargetAndTransferCap) {
  const Topology topo = Topology::make(4, 3, 2);
  // Expert 0 is hot; replicas of 1, 2 and 3 sit on ranks 1, 2 and 3.
  const std::vector<double> load = {40, 1, 1, 1, 1, 1, 1, 1, 1};
  const std::vector<ExpertId> layer = {0, 1, 2, 3, 4, 1, 5, 6, 2, 7, 8, 3};
  swift::LayerSearch search(topo, 9);
  swift::Trajectory full, capped, early;
  search.run(layer, load, {}, full);
  ASSERT_GE(full.transfers.back(), 2);
  swift::SearchLimits cap;
  cap.max_transfers = 1;
  search.run(layer, load, cap, capped);
  EXPECT_LE(capped.transfers.back(), 1);
  swift::SearchLimits target;
  target.target = 10.0;  // already within: no step
  search.run(layer, load, target, early);
  EXPECT_EQ(early.steps(), 0);
}

TEST(SwiftSearch, GoalPrefersTheCheapMoveThatHalvesTheExcess) {
  // Loads sum to 55 over 3 ranks: mean 55/3. Rank 0 holds {1, 2, 4} = 7 + 11 + 9 = 27
  // (1.4727); rank 1 {6, 5, 0} = 2.5 + 3 + 12 = 17.5; rank 2 {5, 3, 6} = 3 + 5 + 2.5 = 10.5.
  const Topology topo = Topology::make(3, 3, 3);
  const std::vector<double> load = {12, 7, 11, 5, 9, 6, 5};
  const std::vector<ExpertId> layer = {1, 2, 4, 6, 5, 0, 5, 3, 6};
  swift::LayerSearch search(topo, 7);
  swift::SearchLimits steepest, goal;
  steepest.max_steps = goal.max_steps = 1;
  goal.goal_ratio = 0.5;
  swift::Trajectory a, b;
  // Steepest descent: swap expert 2 (slot 1) with rank 2's replica of 6 (slot 8): rank 0 at
  // 7 + 2.5 + 9 = 18.5, rank 2 at 3 + 5 + 11 = 19; 2 transfers. (Swapping it with rank 2's
  // replica of 5 ties at 19; partners are tried by share, lowest first.)
  search.run(layer, load, steepest, a);
  ASSERT_EQ(a.steps(), 1);
  EXPECT_EQ(a.transfers[1], 2);
  EXPECT_NEAR(a.imbalance[1], 19.0 / (55.0 / 3), 1e-12);
  ASSERT_EQ(a.writes.size(), 2u);
  EXPECT_EQ(a.writes[0].slot, 1);
  EXPECT_EQ(a.writes[0].expert, 6);
  EXPECT_EQ(a.writes[1].slot, 8);
  EXPECT_EQ(a.writes[1].expert, 2);
  // With the goal mean + 0.5 (27 - mean) = 22.67: re-pointing slot 6 to expert 2 (its second
  // replica) leaves rank 0 at 7 + 5.5 + 9 = 21.5 and rank 1 at 2.5 + 6 + 12 = 20.5, within the
  // goal for 1 transfer, so it wins over the swap.
  search.run(layer, load, goal, b);
  ASSERT_EQ(b.steps(), 1);
  EXPECT_EQ(b.transfers[1], 1);
  EXPECT_NEAR(b.imbalance[1], 21.5 / (55.0 / 3), 1e-12);
  ASSERT_EQ(b.writes.size(), 1u);
  EXPECT_EQ(b.writes[0].slot, 6);
  EXPECT_EQ(b.writes[0].expert, 2);
}

TEST(SwiftSearch, GoalTrajectoriesStayValidAndNeverRise) {
  // The trajectory invariants of the first test, with the goal on.
  std::mt19937 rng(4242);
  std::lognormal_distribution<double> skew(0.0, 1.3);
  const Topology topo = Topology::make(12, 5, 4);
  const int experts = 48;
  swift::LayerSearch search(topo, experts);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<double> load(static_cast<std::size_t>(experts));
    for (double& v : load) v = std::round(50.0 * skew(rng));
    const std::vector<ExpertId> layer = random_layer(rng, topo, experts);
    swift::SearchLimits limits;
    limits.goal_ratio = 0.5;
    swift::Trajectory t;
    search.run(layer, load, limits, t);
    std::vector<ExpertId> cur = layer;
    for (int k = 1; k <= t.steps(); ++k) {
      for (int i = t.step_end[k - 1]; i < t.step_end[k]; ++i)
        cur[t.writes[i].slot] = t.writes[i].expert;
      ASSERT_TRUE(validate_layer(cur, topo, experts, 0).ok()) << "step " << k;
      EXPECT_LE(t.imbalance[k], t.imbalance[k - 1]) << "step " << k;
      EXPECT_EQ(t.transfers[k], layer_transfers(layer, cur, topo, experts)) << "step " << k;
      EXPECT_NEAR(t.imbalance[k], layer_balance(cur, load, topo).imbalance, 1e-9);
    }
  }
}

}  // namespace
}  // namespace swiftbalancer
