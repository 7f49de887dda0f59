// Transfer plan: exact small cases, and invariants on random placement pairs.
#include "swiftbalancer/plan/transfer_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <utility>

#include "swiftbalancer/core/metrics.h"

namespace swiftbalancer {
namespace {

// A random valid layer: every expert once, the extra slots replicas on ranks lacking them.
std::vector<ExpertId> random_layer(const Topology& topo, int experts, std::mt19937& rng) {
  for (;;) {
    std::vector<ExpertId> slots(static_cast<std::size_t>(topo.num_slots()));
    for (int p = 0; p < topo.num_slots(); ++p)
      slots[p] = p < experts ? p : static_cast<ExpertId>(rng() % experts);
    std::shuffle(slots.begin(), slots.end(), rng);
    if (validate_layer(slots, topo, experts, 0).ok()) return slots;
  }
}

// The new layer from a few random edits of the old one (swaps and re-pointed replicas),
// repaired to validity by retrying.
std::vector<ExpertId> perturb(std::span<const ExpertId> old, const Topology& topo, int experts,
                              int edits, std::mt19937& rng) {
  std::vector<ExpertId> cur(old.begin(), old.end());
  for (int i = 0; i < edits; ++i) {
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::vector<ExpertId> next = cur;
      const int a = static_cast<int>(rng() % next.size());
      if (rng() % 2) {
        const int b = static_cast<int>(rng() % next.size());
        std::swap(next[a], next[b]);
      } else {
        next[a] = static_cast<ExpertId>(rng() % experts);
      }
      if (validate_layer(next, topo, experts, 0).ok()) {
        cur = std::move(next);
        break;
      }
    }
  }
  return cur;
}

TEST(TransferPlan, HandWorkedSwapAcrossNodes) {
  // 4 ranks x 2 slots, 2 ranks per node, 6 experts; replicas of 0 and 1.
  const Topology topo = Topology::make(4, 2, 2);
  const std::vector<ExpertId> old_layer = {0, 1, 2, 3, 4, 0, 5, 1};
  // Swap 2 (rank 1) and 4 (rank 2): both inter-node; re-point rank 3's replica of 1 to 3.
  const std::vector<ExpertId> new_layer = {0, 1, 4, 3, 2, 0, 5, 3};
  const LayerPlan plan = make_layer_plan(old_layer, new_layer, 7, 6, topo);
  EXPECT_EQ(plan.layer, 7);
  ASSERT_EQ(plan.remote_ops, 3);
  EXPECT_EQ(plan.local_ops, 0);
  const std::vector<TransferOp> expected = {
      {4, 2, 0, 1, 0},  // expert 4 from rank 2 slot 0 to rank 1 slot 0 (inter-node, 4)
      {2, 1, 0, 2, 0},  // expert 2 from rank 1 to rank 2 (inter-node, 4)
      {3, 1, 1, 3, 1},  // expert 3 has one holder: rank 1 (inter-node, 4)
  };
  EXPECT_EQ(plan.ops, expected);
  // Rank 1 sends 2 and 3 and receives 4: 12.
  EXPECT_DOUBLE_EQ(plan.makespan, 12.0);
  EXPECT_DOUBLE_EQ(plan.lower_bound, 12.0);
  EXPECT_EQ(apply_layer_plan(old_layer, plan, topo), new_layer);
}

TEST(TransferPlan, LocalCopyWhenRankAlreadyHoldsExpert) {
  // Rank 0 moves expert 1 from slot 1 to slot 0 and receives expert 2 into slot 1.
  const Topology topo = Topology::make(2, 2, 0);
  const std::vector<ExpertId> old_layer = {0, 1, 2, 3};
  const std::vector<ExpertId> new_layer = {1, 2, 0, 3};
  const LayerPlan plan = make_layer_plan(old_layer, new_layer, 0, 4, topo);
  EXPECT_EQ(plan.remote_ops, 2);
  EXPECT_EQ(plan.local_ops, 1);
  const std::vector<TransferOp> expected = {
      {2, 1, 0, 0, 1},  // remote: 2 from rank 1 slot 0 to rank 0 slot 1
      {0, 0, 0, 1, 0},  // remote: 0 from rank 0 slot 0 to rank 1 slot 0
      {1, 0, 1, 0, 0},  // local: 1 from slot 1 to slot 0 on rank 0
  };
  EXPECT_EQ(plan.ops, expected);
  EXPECT_TRUE(plan.ops[2].is_local());
  EXPECT_DOUBLE_EQ(plan.makespan, 2.0);
  EXPECT_EQ(apply_layer_plan(old_layer, plan, topo), new_layer);
}

TEST(TransferPlan, SenderChoiceSpreadsLoadOverHolders) {
  // Expert 0 held by ranks 0 and 1 (one node of 4 ranks x 2 slots); ranks 2 and 3 both need it.
  const Topology topo = Topology::make(4, 2, 0);
  const std::vector<ExpertId> old_layer = {0, 1, 0, 2, 3, 4, 5, 6};
  // Ranks 2 and 3 give up 3 and 5 for expert 0; ranks 0 and 1 take 3 and 5 instead.
  const std::vector<ExpertId> valid_new = {3, 1, 5, 2, 0, 4, 0, 6};
  const LayerPlan plan = make_layer_plan(old_layer, valid_new, 0, 7, topo);
  // Remote: 3 -> rank 0 (from 2), 5 -> rank 1 (from 3), 0 -> rank 2, 0 -> rank 3.
  ASSERT_EQ(plan.remote_ops, 4);
  // Each rank can be charged exactly 2: the senders of expert 0 must be different ranks.
  EXPECT_DOUBLE_EQ(plan.makespan, 2.0);
  EXPECT_DOUBLE_EQ(plan.lower_bound, 2.0);
  int senders_of_0 = 0;
  std::set<int> distinct;
  for (const TransferOp& op : plan.ops)
    if (op.expert == 0) {
      ++senders_of_0;
      distinct.insert(op.src_rank);
    }
  EXPECT_EQ(senders_of_0, 2);
  EXPECT_EQ(distinct.size(), 2u);
  EXPECT_EQ(apply_layer_plan(old_layer, plan, topo), valid_new);
}

TEST(TransferPlan, PrefersIntraNodeSender) {
  // Expert 0 on rank 0 (node 0) and rank 2 (node 1); rank 3 (node 1) needs it.
  const Topology topo = Topology::make(4, 2, 2);
  const std::vector<ExpertId> old_layer = {0, 1, 2, 3, 0, 4, 5, 6};
  // Rank 2 drops 0, moves 4 to slot 0 (local copy) and gets 6; rank 3 gets 0.
  const std::vector<ExpertId> new_layer = {0, 1, 2, 3, 4, 6, 5, 0};
  const LayerPlan plan = make_layer_plan(old_layer, new_layer, 0, 7, topo);
  bool found = false;
  for (const TransferOp& op : plan.ops)
    if (op.expert == 0 && op.dst_rank == 3) {
      found = true;
      EXPECT_EQ(op.src_rank, 2);  // same node: weight 1 instead of 4
      EXPECT_EQ(op.src_slot, 0);
    }
  EXPECT_TRUE(found);
  EXPECT_EQ(apply_layer_plan(old_layer, plan, topo), new_layer);
}

TEST(TransferPlan, ExactSearchProvesOptimumWhereTheAnalyticBoundIsWeak) {
  // Expert 0 on ranks 0 and 1 must reach ranks 2, 3 and 4 (one node, weight 1): one holder
  // sends twice, so the optimum is 2, while the averaged bound gives only 1.5. The branch and
  // bound proves 2 and reports it as the bound.
  const Topology topo = Topology::make(5, 2, 0);
  const std::vector<ExpertId> old_layer = {0, 1, 0, 2, 3, 1, 4, 2, 5, 3};
  const std::vector<ExpertId> new_layer = {0, 1, 0, 2, 3, 0, 4, 0, 5, 0};
  const LayerPlan plan = make_layer_plan(old_layer, new_layer, 0, 6, topo);
  EXPECT_EQ(plan.remote_ops, 3);
  EXPECT_DOUBLE_EQ(plan.makespan, 2.0);
  EXPECT_DOUBLE_EQ(plan.lower_bound, 2.0);
  EXPECT_EQ(apply_layer_plan(old_layer, plan, topo), new_layer);
}

TEST(TransferPlan, IdenticalPlacementsGiveEmptyPlan) {
  const Topology topo = Topology::make(4, 3, 2);
  std::mt19937 rng(3);
  const auto layer = random_layer(topo, 10, rng);
  const LayerPlan plan = make_layer_plan(layer, layer, 0, 10, topo);
  EXPECT_TRUE(plan.ops.empty());
  EXPECT_EQ(plan.makespan, 0.0);
  EXPECT_EQ(plan.lower_bound, 0.0);
}

TEST(TransferPlan, RejectsBadInput) {
  const Topology topo = Topology::make(2, 2, 0);
  const std::vector<ExpertId> ok = {0, 1, 2, 3};
  const std::vector<ExpertId> dup = {0, 0, 2, 3};  // rank 0 holds 0 twice, 1 missing
  EXPECT_THROW(make_layer_plan(ok, dup, 0, 4, topo), InputError);
  EXPECT_THROW(make_layer_plan(dup, ok, 0, 4, topo), InputError);
  EXPECT_THROW(make_layer_plan(ok, ok, 0, 4, topo, LinkWeights{0.0, 1.0}), InputError);
  const Placement a(1, 4, 4, ok), b(2, 4, 4, {0, 1, 2, 3, 0, 1, 2, 3});
  EXPECT_THROW(make_transfer_plan(a, b, topo), InputError);
}

// Invariants on random pairs, several topologies.
TEST(TransferPlan, RandomInvariants) {
  std::mt19937 rng(12345);
  const Topology topos[] = {Topology::make(4, 3, 2), Topology::make(8, 5, 4),
                            Topology::make(16, 3, 4), Topology::make(6, 4, 0)};
  for (const Topology& topo : topos) {
    const int experts = topo.num_slots() - topo.ranks / 2 - 1;
    for (int trial = 0; trial < 40; ++trial) {
      const auto old_layer = random_layer(topo, experts, rng);
      const auto new_layer = trial % 4 == 0 ? random_layer(topo, experts, rng)
                                            : perturb(old_layer, topo, experts, 1 + trial % 7, rng);
      const LinkWeights w{1.0, 1.0 + trial % 5};
      const LayerPlan plan = make_layer_plan(old_layer, new_layer, trial, experts, topo, w);
      // Applied to the old layer it yields exactly the new one.
      ASSERT_EQ(apply_layer_plan(old_layer, plan, topo), new_layer);
      // Counts agree with the transfer metric.
      EXPECT_EQ(plan.remote_ops, layer_transfers(old_layer, new_layer, topo, experts));
      EXPECT_EQ(plan.remote_ops + plan.local_ops, static_cast<std::int64_t>(plan.ops.size()));
      std::set<std::pair<int, int>> received;
      std::vector<double> cost(static_cast<std::size_t>(topo.ranks), 0.0);
      const int S = topo.slots_per_rank;
      for (std::size_t i = 0; i < plan.ops.size(); ++i) {
        const TransferOp& op = plan.ops[i];
        // Sources hold the expert in the old placement; unchanged slots are never written.
        EXPECT_EQ(old_layer[op.src_rank * S + op.src_slot], op.expert);
        EXPECT_NE(old_layer[op.dst_rank * S + op.dst_slot], op.expert);
        EXPECT_EQ(op.is_local(), static_cast<std::int64_t>(i) >= plan.remote_ops);
        if (!op.is_local()) {
          EXPECT_TRUE(received.insert({op.expert, op.dst_rank}).second);
          // A rank that held the expert copies locally instead.
          for (int k = 0; k < S; ++k) EXPECT_NE(old_layer[op.dst_rank * S + k], op.expert);
          const double lw = topo.node_of_rank(op.src_rank) == topo.node_of_rank(op.dst_rank)
                                ? w.intra_node
                                : w.inter_node;
          cost[op.src_rank] += lw;
          cost[op.dst_rank] += lw;
        }
      }
      double makespan = 0.0;
      for (double c : cost) makespan = std::max(makespan, c);
      EXPECT_DOUBLE_EQ(plan.makespan, makespan);
      EXPECT_LE(plan.lower_bound, plan.makespan + 1e-9);
      // Deterministic.
      EXPECT_EQ(make_layer_plan(old_layer, new_layer, trial, experts, topo, w).ops, plan.ops);
    }
  }
}

TEST(TransferPlan, WholeModelSumsLayers) {
  const Topology topo = Topology::make(8, 3, 4);
  const int experts = 20;
  std::mt19937 rng(7);
  std::vector<ExpertId> a, b;
  for (int l = 0; l < 5; ++l) {
    const auto x = random_layer(topo, experts, rng);
    const auto y = perturb(x, topo, experts, 4, rng);
    a.insert(a.end(), x.begin(), x.end());
    b.insert(b.end(), y.begin(), y.end());
  }
  const Placement pa(5, topo.num_slots(), experts, a), pb(5, topo.num_slots(), experts, b);
  const TransferPlan plan = make_transfer_plan(pa, pb, topo);
  ASSERT_EQ(plan.layers.size(), 5u);
  EXPECT_EQ(plan.remote_ops, transfer_summary(pa, pb, topo).total);
  for (int l = 0; l < 5; ++l) {
    EXPECT_EQ(plan.layers[l].layer, l);
    const auto applied = apply_layer_plan(pa.layer(l), plan.layers[l], topo);
    EXPECT_TRUE(std::equal(applied.begin(), applied.end(), pb.layer(l).begin()));
  }
}

}  // namespace
}  // namespace swiftbalancer
