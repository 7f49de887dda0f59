// Routing tables: replica selection spreads tokens evenly over an expert's replicas.
#include "swiftbalancer/plan/routing_table.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace swiftbalancer {
namespace {

// 4 ranks x 3 slots, 8 experts: expert 0 has 3 replicas, expert 1 has 2, the rest 1.
const std::vector<ExpertId> kLayer = {0, 2, 3, 1, 0, 4, 5, 0, 6, 7, 1, 2};

TEST(RoutingTable, Log2PhyAndPhy2Log) {
  const RoutingTable t(kLayer, 8);
  EXPECT_EQ(t.experts(), 8);
  EXPECT_EQ(t.num_slots(), 12);
  const auto r0 = t.replicas(0);
  EXPECT_EQ(std::vector<std::int32_t>(r0.begin(), r0.end()), (std::vector<std::int32_t>{0, 4, 7}));
  const auto r1 = t.replicas(1);
  EXPECT_EQ(std::vector<std::int32_t>(r1.begin(), r1.end()), (std::vector<std::int32_t>{3, 10}));
  for (int p = 0; p < 12; ++p) EXPECT_EQ(t.expert_at(p), kLayer[p]);
  // Every selected slot holds the expert.
  for (ExpertId e = 0; e < 8; ++e)
    for (int rank = 0; rank < 4; ++rank)
      for (int i = 0; i < 7; ++i) EXPECT_EQ(t.expert_at(t.select(e, i, rank)), e);
}

TEST(RoutingTable, OneRanksTokensSpreadEvenly) {
  const RoutingTable t(kLayer, 8);
  for (int rank = 0; rank < 4; ++rank) {
    for (int n_tokens : {1, 2, 3, 5, 7, 30, 31}) {
      std::map<int, int> hits;
      for (int i = 0; i < n_tokens; ++i) ++hits[t.select(0, i, rank)];
      // Over n tokens each of the 3 replicas gets floor(n/3) or ceil(n/3).
      int lo = n_tokens, hi = 0;
      for (std::int32_t p : t.replicas(0)) {
        lo = std::min(lo, hits[p]);
        hi = std::max(hi, hits[p]);
      }
      EXPECT_LE(hi - lo, 1) << "rank " << rank << ", " << n_tokens << " tokens";
      EXPECT_EQ(hi, (n_tokens + 2) / 3);
    }
  }
}

TEST(RoutingTable, DifferentRanksStartOnDifferentReplicas) {
  const RoutingTable t(kLayer, 8);
  // One token from each of 3 ranks: three different replicas of expert 0.
  std::map<int, int> hits;
  for (int rank = 0; rank < 3; ++rank) ++hits[t.select(0, 0, rank)];
  EXPECT_EQ(hits.size(), 3u);
  // All 4 ranks sending 1 token each to expert 1 (2 replicas): 2 tokens per replica.
  std::map<int, int> hits1;
  for (int rank = 0; rank < 4; ++rank) ++hits1[t.select(1, 0, rank)];
  ASSERT_EQ(hits1.size(), 2u);
  for (const auto& [slot, n] : hits1) EXPECT_EQ(n, 2) << "slot " << slot;
  // Every rank sending a short batch of 2 tokens to expert 0: 8 tokens over 3 replicas.
  std::map<int, int> hits2;
  for (int rank = 0; rank < 4; ++rank)
    for (int i = 0; i < 2; ++i) ++hits2[t.select(0, i, rank)];
  for (const auto& [slot, n] : hits2) EXPECT_GE(n, 2) << "slot " << slot;
  for (const auto& [slot, n] : hits2) EXPECT_LE(n, 3) << "slot " << slot;
}

TEST(RoutingTable, SingleReplicaAlwaysSameSlot) {
  const RoutingTable t(kLayer, 8);
  for (int rank = 0; rank < 4; ++rank)
    for (int i = 0; i < 10; ++i) EXPECT_EQ(t.select(5, i, rank), 6);
}

}  // namespace
}  // namespace swiftbalancer
