// The runtime aligns every decided placement to the one in service before planning
// (DecisionCycle, compat/align.h): an expert that stays on a rank keeps its slot, so the plan
// never copies it within the rank. A hand-worked case with exact figures, and invariants on
// random cases decided by a from-scratch policy (deepseek-global).
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "support/random_load.h"
#include "swiftbalancer/compat/align.h"
#include "swiftbalancer/runtime/cycle_plan.h"
#include "swiftbalancer/runtime/host_expert_store.h"
#include "swiftbalancer/runtime/internal/decision_cycle.h"
#include "swiftbalancer/runtime/internal/staging_pool.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

// A policy that returns a fixed placement, whatever the load (a from-scratch decision).
class FixedPolicy final : public Policy {
 public:
  explicit FixedPolicy(Placement p) : p_(std::move(p)) {}
  std::string_view name() const override { return "fixed"; }
  Placement rebalance(const PolicyInput&) const override { return p_; }

 private:
  Placement p_;
};

// Runs one decision cycle (sync) on every rank of topo and returns each rank's agreed plan.
std::vector<std::unique_ptr<CyclePlan>> decide_on_every_rank(const Topology& topo,
                                                             std::shared_ptr<const Policy> policy,
                                                             const LoadMatrix& load,
                                                             const Placement& current,
                                                             std::size_t expert_bytes) {
  std::vector<std::unique_ptr<CyclePlan>> plans(static_cast<std::size_t>(topo.ranks));
  testing::run_ranks(topo.ranks, [&](int rank, Transport& t) {
    BalancerConfig cfg;
    cfg.mode = BalancerMode::kSync;
    cfg.background_worker = false;
    Reporter rep(rank, [](LogSeverity, const std::string&) {});
    HostExpertStore store(current.layers(), topo.slots_per_rank);
    StagingPool pool(store, 2);
    DecisionCycle d(topo, rank, policy, cfg, rep, pool);
    d.start(load, current,
            std::vector<std::size_t>(static_cast<std::size_t>(current.layers()), expert_bytes));
    ASSERT_EQ(d.agree(t, /*final_poll=*/true), DecisionCycle::Outcome::kAgreed) << "rank " << rank;
    plans[static_cast<std::size_t>(rank)] = d.take_plan();
  });
  return plans;
}

// 2 ranks x 3 slots, 5 experts, one layer, 8-byte experts.
//   in service:        rank 0 = [0, 1, 2]   rank 1 = [3, 4, 0]
//   policy (scratch):  rank 0 = [2, 3, 0]   rank 1 = [1, 4, 0]
// Rank 0 keeps 0 and 2 and swaps 1 for 3; rank 1 keeps 4 and 0 and swaps 3 for 1. Planned as
// returned, rank 0 would copy 2 into slot 0 and 0 into slot 2 (two local copies, 3 installs,
// 24 staging bytes). Aligned: rank 0 = [0, 3, 2], rank 1 = [1, 4, 0]; each rank receives one
// expert into the slot its old expert frees and sends one: rank 0 gets 3 from rank 1 slot 0
// into slot 1 and sends 1 from its slot 1; rank 1 gets 1 into slot 0 and sends 3 from slot 0.
// Experts 0 and 2 on rank 0, 4 and 0 on rank 1: no operation at all.
TEST(AlignInService, FromScratchPlacementMovesNothingThatStays) {
  const Topology topo = Topology::make(2, 3);
  const Placement current(1, 6, 5, {0, 1, 2, 3, 4, 0});
  const Placement scratch(1, 6, 5, {2, 3, 0, 1, 4, 0});
  const LoadMatrix load(1, 5, {5, 4, 3, 2, 1});
  const auto plans =
      decide_on_every_rank(topo, std::make_shared<FixedPolicy>(scratch), load, current, 8);
  const std::vector<ExpertId> aligned = {0, 3, 2, 1, 4, 0};
  for (int r = 0; r < 2; ++r) {
    const CyclePlan& p = *plans[static_cast<std::size_t>(r)];
    EXPECT_EQ(p.hash, placement_hash(Placement(1, 6, 5, aligned)));
    ASSERT_EQ(p.layers.size(), 1u);
    const LayerMove& m = p.layers[0];
    EXPECT_EQ(m.new_row, aligned);
    ASSERT_EQ(m.installs.size(), 1u) << "rank " << r;
    ASSERT_EQ(m.sends.size(), 1u) << "rank " << r;
    EXPECT_EQ(m.installs[0].src_rank, 1 - r);
    EXPECT_EQ(m.installs[0].src_slot, r == 0 ? 0 : 1);
    EXPECT_EQ(m.installs[0].dst_slot, r == 0 ? 1 : 0);
    EXPECT_EQ(m.sends[0].dst_rank, 1 - r);
    EXPECT_EQ(m.sends[0].src_slot, r == 0 ? 1 : 0);
    EXPECT_EQ(m.bytes_in, 8);
    EXPECT_EQ(m.bytes_out, 8);
    EXPECT_EQ(p.staging_region_bytes, 8u);
  }
  // The same decision planned as the policy returned it: rank 0 would install 3 slots.
  const CyclePlan raw =
      plan_cycle(current, scratch, topo, 0, LinkWeights{}, std::vector<std::size_t>{8});
  ASSERT_EQ(raw.layers.size(), 1u);
  EXPECT_EQ(raw.layers[0].installs.size(), 3u);
  EXPECT_EQ(raw.staging_region_bytes, 24u);
  EXPECT_EQ(raw.layers[0].bytes_in, 8);
}

// A placement whose ranks hold the same experts in another order is no change at all.
TEST(AlignInService, PermutedSameSetsPlanNothing) {
  const Topology topo = Topology::make(2, 2);
  const Placement current(1, 4, 3, {0, 1, 2, 0});
  const Placement permuted(1, 4, 3, {1, 0, 0, 2});
  const auto plans = decide_on_every_rank(topo, std::make_shared<FixedPolicy>(permuted),
                                          LoadMatrix(1, 3, {1, 1, 1}), current, 8);
  for (const auto& p : plans) {
    EXPECT_TRUE(p->layers.empty());
    EXPECT_EQ(p->hash, placement_hash(current));
    EXPECT_EQ(p->staging_region_bytes, 0u);
  }
}

// A random valid placement (each expert once, the spare slots random replicas on ranks that
// lack them).
Placement random_placement(std::mt19937& rng, const Topology& topo, int layers, int experts) {
  Placement p(layers, topo.num_slots(), experts);
  for (int l = 0; l < layers; ++l) {
    do {
      auto row = p.layer(l);
      for (int i = 0; i < topo.num_slots(); ++i)
        row[i] = i < experts ? i : static_cast<ExpertId>(rng() % experts);
      std::shuffle(row.begin(), row.end(), rng);
    } while (!validate_layer(p.layer(l), topo, experts, l).ok());
  }
  return p;
}

// Random loads and placements in service, decided by deepseek-global (from scratch): on every
// rank, every expert that rank holds before and after keeps its slot, so the runtime's plan
// holds no local copy; each rank receives the same bytes as the plan of the unaligned
// placement, and the bytes written into slots plus the bytes sent never exceed that plan's.
TEST(AlignInService, InvariantsOnRandomDeepSeekDecisions) {
  const Topology topo = Topology::make(4, 3, 2);
  const int layers = 3, experts = 10;
  const std::size_t bytes = 16;
  const auto policy = std::shared_ptr<const Policy>(make_policy("deepseek-global"));
  std::mt19937 rng(11);
  int raw_local_copies = 0;
  for (int trial = 0; trial < 25; ++trial) {
    const Placement current = random_placement(rng, topo, layers, experts);
    LoadMatrix load = testing::heavy_tailed_load(rng, layers, experts);
    const Placement raw = policy->rebalance(PolicyInput{topo, load, &current});
    const auto plans = decide_on_every_rank(topo, policy, load, current, bytes);
    std::int64_t written = 0, raw_written = 0;
    for (int r = 0; r < topo.ranks; ++r) {
      const CyclePlan& p = *plans[static_cast<std::size_t>(r)];
      const CyclePlan q =
          plan_cycle(current, raw, topo, r, LinkWeights{},
                     std::vector<std::size_t>(static_cast<std::size_t>(layers), bytes));
      std::int64_t in = 0, raw_in = 0;
      for (const LayerMove& m : p.layers) {
        const auto old_row = current.layer(m.layer);
        const auto raw_row = raw.layer(m.layer);
        for (int s = 0; s < topo.slots_per_rank; ++s) {
          const int slot = topo.slot_id(r, s);
          const auto first = raw_row.begin() + topo.slot_id(r, 0);
          const bool stays = std::find(first, first + topo.slots_per_rank, old_row[slot]) !=
                             first + topo.slots_per_rank;
          if (stays) {
            EXPECT_EQ(m.new_row[slot], old_row[slot]) << "trial " << trial;
          }
        }
        for (const LayerMove::Install& i : m.installs)
          EXPECT_NE(i.src_rank, r) << "trial " << trial << ": a local copy";
        in += m.bytes_in;
        written += static_cast<std::int64_t>(m.installs.size() * bytes) + m.bytes_out;
      }
      for (const LayerMove& m : q.layers) {
        raw_in += m.bytes_in;
        raw_written += static_cast<std::int64_t>(m.installs.size() * bytes) + m.bytes_out;
        for (const LayerMove::Install& i : m.installs) raw_local_copies += i.src_rank == r;
      }
      EXPECT_EQ(in, raw_in) << "trial " << trial << " rank " << r;
      EXPECT_LE(p.staging_region_bytes, q.staging_region_bytes) << "trial " << trial;
    }
    EXPECT_LE(written, raw_written) << "trial " << trial;
  }
  // The case the alignment is for did occur: planned as returned, experts were copied within
  // their rank.
  EXPECT_GT(raw_local_copies, 0);
}

// The swift policy starts from the placement in service and puts every expert a rank keeps back
// into its old slot itself (policy/swift.cpp, step 4), so the runtime's alignment leaves its
// decisions as they are: with swift the plans are the ones planned before alignment existed.
TEST(AlignInService, SwiftDecisionsAreAlreadyAligned) {
  const Topology topo = Topology::make(8, 5, 4);
  const int layers = 4, experts = 32;
  const auto policy = make_policy("swift");
  std::mt19937 rng(5);
  int changed = 0;
  for (int trial = 0; trial < 20; ++trial) {
    const Placement current = random_placement(rng, topo, layers, experts);
    const LoadMatrix load = testing::heavy_tailed_load(rng, layers, experts);
    const Placement decided = policy->rebalance(PolicyInput{topo, load, &current});
    Placement aligned = decided;
    compat::align_to_current(current, aligned, topo);
    EXPECT_EQ(aligned, decided) << "trial " << trial;
    changed += !(decided == current);
  }
  EXPECT_GT(changed, 0);  // the policy did move experts
}

}  // namespace
}  // namespace swiftbalancer
