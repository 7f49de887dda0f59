#include <gtest/gtest.h>

#include <random>

#include "swiftbalancer/core/metrics.h"

namespace swiftbalancer {
namespace {

const Topology kTopo = Topology::make(2, 3);  // 2 ranks x 3 slots

TEST(Metrics, EvenSplitOverReplicasByHand) {
  // 4 experts; expert 0 has replicas on both ranks.
  // rank 0: e0 (100/2), e1 (30), e2 (20) = 100; rank 1: e0 (50), e3 (10), e1? no -> see layer.
  const std::vector<ExpertId> layer = {0, 1, 2, 0, 3, 2};
  const std::vector<double> load = {100, 30, 20, 10};
  std::vector<double> ranks;
  rank_loads(layer, load, kTopo, ranks);
  // rank 0: 50 + 30 + 10 = 90; rank 1: 50 + 10 + 10 = 70.
  EXPECT_DOUBLE_EQ(ranks[0], 90);
  EXPECT_DOUBLE_EQ(ranks[1], 70);
  const LayerBalance b = layer_balance(layer, load, kTopo);
  EXPECT_TRUE(b.has_load);
  EXPECT_DOUBLE_EQ(b.mean_rank_load, 80);
  EXPECT_DOUBLE_EQ(b.imbalance, 90.0 / 80.0);
}

TEST(Metrics, ZeroLoadLayersAreLeftOutOfTheSummary) {
  const Placement p(2, 6, 4, {0, 1, 2, 0, 3, 2, 0, 1, 2, 0, 3, 2});
  const LoadMatrix load(2, 4, {0, 0, 0, 0, 100, 30, 20, 10});
  const BalanceSummary s = balance_summary(p, load, kTopo);
  EXPECT_EQ(s.layers_with_load, 1);
  EXPECT_FALSE(s.layers[0].has_load);
  EXPECT_DOUBLE_EQ(s.mean_imbalance, 90.0 / 80.0);
  EXPECT_DOUBLE_EQ(s.max_imbalance, 90.0 / 80.0);
}

TEST(Metrics, SummaryRejectsMismatchedShapes) {
  const Placement p(1, 6, 4, {0, 1, 2, 0, 3, 2});
  EXPECT_THROW(balance_summary(p, LoadMatrix(2, 4), kTopo), InputError);
}

TEST(Metrics, TransfersCountCrossRankCopiesOnly) {
  const std::vector<ExpertId> old_layer = {0, 1, 2, 3, 4, 5};
  // Rank 0 reorders its own experts (local, free) and takes 3 (one transfer); rank 1 takes 0
  // and 1 (two transfers) and keeps 4.
  const std::vector<ExpertId> new_layer = {2, 0, 3, 0, 1, 4};
  EXPECT_EQ(layer_transfers(old_layer, new_layer, kTopo, 6), 3);
  EXPECT_EQ(layer_transfers(old_layer, old_layer, kTopo, 6), 0);
  const Placement a(1, 6, 6, old_layer), b(1, 6, 6, new_layer);
  const TransferSummary s = transfer_summary(a, b, kTopo);
  EXPECT_EQ(s.total, 3);
  // Back again: rank 0 receives 1, rank 1 receives 3 and 5.
  EXPECT_EQ(transfer_summary(b, a, kTopo).total, 3);
}

TEST(Metrics, TransfersMatchABruteForceCountOnRandomPlacements) {
  const Topology topo = Topology::make(8, 4);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<ExpertId> a(32), b(32);
    for (auto& x : a) x = static_cast<ExpertId>(rng() % 20);
    for (auto& x : b) x = static_cast<ExpertId>(rng() % 20);
    std::int64_t brute = 0;
    for (int r = 0; r < 8; ++r)
      for (int e = 0; e < 20; ++e) {
        bool in_old = false, in_new = false;
        for (int s = 0; s < 4; ++s) {
          in_old |= a[r * 4 + s] == e;
          in_new |= b[r * 4 + s] == e;
        }
        brute += in_new && !in_old;
      }
    EXPECT_EQ(layer_transfers(a, b, topo, 20), brute);
  }
}

}  // namespace
}  // namespace swiftbalancer

namespace swiftbalancer {
namespace {

// The two quantile rules on small exact cases (unsorted input, 0 for none).
TEST(Percentile, RoundedIndexAndNearestRank) {
  const std::vector<double> v = {5, 1, 4, 2, 3};  // sorted 1 2 3 4 5
  EXPECT_EQ(percentile({}, 0.5), 0.0);
  EXPECT_EQ(percentile(v, 0.0), 1.0);
  EXPECT_EQ(percentile(v, 0.5), 3.0);   // index round(0.5 x 4) = 2
  EXPECT_EQ(percentile(v, 0.6), 3.0);   // index round(2.4) = 2
  EXPECT_EQ(percentile(v, 0.65), 4.0);  // index round(2.6) = 3
  EXPECT_EQ(percentile(v, 1.0), 5.0);
  const auto nr = QuantileRule::kNearestRank;
  EXPECT_EQ(percentile(v, 0.0, nr), 1.0);
  EXPECT_EQ(percentile(v, 0.5, nr), 3.0);   // ceil(2.5) = 3rd smallest
  EXPECT_EQ(percentile(v, 0.6, nr), 3.0);   // ceil(3.0) = 3rd
  EXPECT_EQ(percentile(v, 0.61, nr), 4.0);  // ceil(3.05) = 4th
  EXPECT_EQ(percentile(v, 0.99, nr), 5.0);
  const std::vector<double> hundred = [] {
    std::vector<double> h;
    for (int i = 100; i >= 1; --i) h.push_back(i);
    return h;
  }();
  EXPECT_EQ(percentile(hundred, 0.99), 99.0);      // index round(98.01) = 98
  EXPECT_EQ(percentile(hundred, 0.99, nr), 99.0);  // 99th smallest
  EXPECT_EQ(percentile(hundred, 0.995), 100.0);    // index round(98.505) = 99
  EXPECT_EQ(percentile(hundred, 0.995, nr), 100.0);
}

}  // namespace
}  // namespace swiftbalancer
