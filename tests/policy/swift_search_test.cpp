// The per-layer search of the swift policy: every prefix of its trajectory is a valid layer
// whose recorded transfers and imbalance match core/metrics, and the imbalance never rises.
#include "swiftbalancer/policy/swift_search.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "swiftbalancer/core/metrics.h"

namespace swiftbalancer {
namespace {

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
      std::vector<ExpertId> layer;
      do {
        layer.assign(static_cast<std::size_t>(topo.num_slots()), 0);
        for (int p = 0; p < topo.num_slots(); ++p)
          layer[p] = p < experts ? p : static_cast<ExpertId>(rng() % experts);
        std::shuffle(layer.begin(), layer.end(), rng);
      } while (!validate_layer(layer, topo, experts, 0).ok());

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

}  // namespace
}  // namespace swiftbalancer
