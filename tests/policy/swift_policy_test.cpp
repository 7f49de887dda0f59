// The swift policy: exact small cases and invariants after every call on random inputs.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/policy/swift.h"

namespace swiftbalancer {
namespace {

Placement rebalance(const Topology& topo, const LoadMatrix& load, const Placement* cur,
                    std::int64_t max_transfers = -1, double threshold = 1.0, double target = 0.0) {
  PolicyInput in{topo, load, cur};
  in.options.max_transfers = max_transfers;
  in.options.threshold = threshold;
  in.options.target = target;
  return make_swift_policy()->rebalance(in);
}

TEST(SwiftPolicy, ReplicatesHotExpertWithOneTransfer) {
  // Rank 0 {0, 1}, rank 1 {2, 0}; expert 1 is hot. Re-pointing rank 1's replica of 0 to
  // expert 1 balances exactly: both ranks carry 1 + 5.
  const Topology topo = Topology::make(2, 2, 0);
  const LoadMatrix load(1, 3, {1.0, 10.0, 1.0});
  const Placement cur(1, 4, 3, {0, 1, 2, 0});
  const Placement out = rebalance(topo, load, &cur);
  EXPECT_EQ(out.data(), (std::vector<ExpertId>{0, 1, 2, 1}));
  EXPECT_EQ(transfer_summary(cur, out, topo).total, 1);
  EXPECT_DOUBLE_EQ(balance_summary(out, load, topo).mean_imbalance, 1.0);
}

TEST(SwiftPolicy, SwapsToBalance) {
  // Rank 0 {0, 1} carries 7, rank 1 {2, 3} carries 3. Swapping 0 and 2 gives 5 and 5 (the
  // first of the two perfect swaps found); experts that stay keep their slots.
  const Topology topo = Topology::make(2, 2, 0);
  const LoadMatrix load(1, 4, {4.0, 3.0, 2.0, 1.0});
  const Placement cur(1, 4, 4, {0, 1, 2, 3});
  const Placement out = rebalance(topo, load, &cur);
  EXPECT_EQ(out.data(), (std::vector<ExpertId>{2, 1, 0, 3}));
  EXPECT_EQ(transfer_summary(cur, out, topo).total, 2);
  EXPECT_DOUBLE_EQ(balance_summary(out, load, topo).mean_imbalance, 1.0);
}

TEST(SwiftPolicy, ZeroBudgetOrHighThresholdChangesNothing) {
  const Topology topo = Topology::make(2, 2, 0);
  const LoadMatrix load(1, 3, {1.0, 10.0, 1.0});
  const Placement cur(1, 4, 3, {0, 1, 2, 0});
  EXPECT_EQ(rebalance(topo, load, &cur, 0), cur);
  EXPECT_EQ(rebalance(topo, load, &cur, -1, 1.75), cur);  // imbalance is exactly 1.75
  EXPECT_NE(rebalance(topo, load, &cur, -1, 1.74), cur);
}

TEST(SwiftPolicy, BudgetGoesToTheLayerThatGainsMost) {
  // Layer 0 as in ReplicatesHotExpertWithOneTransfer (1.75 -> 1.0 for one transfer); layer 1
  // is milder (one transfer buys less). With one transfer only layer 0 changes.
  const Topology topo = Topology::make(2, 2, 0);
  const LoadMatrix load(2, 3, {1.0, 10.0, 1.0, 2.0, 5.0, 2.0});
  const Placement cur(2, 4, 3, {0, 1, 2, 0, 0, 1, 2, 0});
  const Placement out = rebalance(topo, load, &cur, 1);
  EXPECT_EQ(transfer_summary(cur, out, topo).total, 1);
  EXPECT_NE(std::vector<ExpertId>(out.layer(0).begin(), out.layer(0).end()),
            std::vector<ExpertId>(cur.layer(0).begin(), cur.layer(0).end()));
  EXPECT_EQ(std::vector<ExpertId>(out.layer(1).begin(), out.layer(1).end()),
            std::vector<ExpertId>(cur.layer(1).begin(), cur.layer(1).end()));
}

TEST(SwiftPolicy, LayerWithinThresholdUntouchedOthersImproved) {
  const Topology topo = Topology::make(2, 2, 0);
  // Layer 0 is balanced (2 and 2), layer 1 is not (1.75).
  const LoadMatrix load(2, 3, {2.0, 1.0, 1.0, 1.0, 10.0, 1.0});
  const Placement cur(2, 4, 3, {0, 1, 2, 0, 0, 1, 2, 0});
  const Placement out = rebalance(topo, load, &cur, -1, 1.05);
  EXPECT_EQ(std::vector<ExpertId>(out.layer(0).begin(), out.layer(0).end()),
            std::vector<ExpertId>(cur.layer(0).begin(), cur.layer(0).end()));
  EXPECT_EQ(transfer_summary(cur, out, topo).per_layer[0], 0);
  EXPECT_LT(balance_summary(out, load, topo).layers[1].imbalance, 1.75);
}

TEST(SwiftPolicy, WithoutCurrentPlacementStartsFromDeepSeek) {
  const Topology topo = Topology::make(4, 3, 2);
  std::mt19937 rng(5);
  LoadMatrix load(3, 10);
  for (int l = 0; l < 3; ++l)
    for (int e = 0; e < 10; ++e) load.at(l, e) = static_cast<double>(rng() % 1000);
  const Placement out = rebalance(topo, load, nullptr, 5);
  EXPECT_TRUE(validate_placement(out, topo).ok());
  PolicyInput in{topo, load, nullptr};
  const Placement ds = make_policy("deepseek-global")->rebalance(in);
  const auto a = balance_summary(out, load, topo), b = balance_summary(ds, load, topo);
  for (int l = 0; l < 3; ++l) EXPECT_LE(a.layers[l].imbalance, b.layers[l].imbalance + 1e-12);
}

TEST(SwiftPolicy, RejectsBadInput) {
  const Topology topo = Topology::make(2, 2, 0);
  const LoadMatrix load(1, 3, {1.0, 10.0, 1.0});
  const Placement wrong(1, 4, 3, {0, 0, 1, 1});  // expert 2 missing, two 0s on rank 0
  EXPECT_THROW(rebalance(topo, load, &wrong), InputError);
  const LoadMatrix bad(1, 3, {1.0, -1.0, 1.0});
  EXPECT_THROW(rebalance(topo, bad, nullptr), InputError);
}

// A random valid placement: every expert once, extra slots replicas on ranks lacking them.
Placement random_placement(const Topology& topo, int layers, int experts, std::mt19937& rng) {
  Placement p(layers, topo.num_slots(), experts);
  for (int l = 0; l < layers; ++l) {
    for (;;) {
      std::vector<ExpertId> slots(static_cast<std::size_t>(topo.num_slots()));
      for (int s = 0; s < topo.num_slots(); ++s)
        slots[s] = s < experts ? s : static_cast<ExpertId>(rng() % experts);
      std::shuffle(slots.begin(), slots.end(), rng);
      if (validate_layer(slots, topo, experts, l).ok()) {
        std::copy(slots.begin(), slots.end(), p.layer(l).begin());
        break;
      }
    }
  }
  return p;
}

LoadMatrix random_load(int layers, int experts, std::mt19937& rng) {
  LoadMatrix load(layers, experts);
  std::lognormal_distribution<double> skew(0.0, 1.2);
  for (int l = 0; l < layers; ++l)
    for (int e = 0; e < experts; ++e) {
      // Some zero experts and an occasional all-zero layer.
      const bool zero = rng() % 13 == 0 || l == layers - 1;
      load.at(l, e) = zero ? 0.0 : std::round(100.0 * skew(rng));
    }
  return load;
}

TEST(SwiftPolicy, InvariantsOnRandomInputs) {
  std::mt19937 rng(2024);
  const Topology topos[] = {Topology::make(4, 3, 2), Topology::make(8, 5, 4),
                            Topology::make(16, 3, 4), Topology::make(6, 4, 0),
                            Topology::make(3, 7, 0)};
  const auto policy = make_swift_policy();
  for (const Topology& topo : topos) {
    for (int trial = 0; trial < 30; ++trial) {
      const int experts = topo.num_slots() - static_cast<int>(rng() % (topo.ranks + 1));
      const int layers = 4;
      const LoadMatrix load = random_load(layers, experts, rng);
      const Placement cur = random_placement(topo, layers, experts, rng);
      PolicyInput in{topo, load, &cur};
      in.options.max_transfers = trial % 3 == 0 ? -1 : static_cast<std::int64_t>(rng() % 12);
      in.options.threshold = trial % 4 == 0 ? 1.1 : 1.0;
      in.options.target = trial % 5 == 0 ? 1.05 : 0.0;
      const Placement out = policy->rebalance(in);
      SCOPED_TRACE("ranks " + std::to_string(topo.ranks) + ", trial " + std::to_string(trial));
      ASSERT_TRUE(validate_placement(out, topo).ok()) << validate_placement(out, topo).message();
      ASSERT_EQ(out.layers(), layers);
      // Deterministic.
      EXPECT_EQ(policy->rebalance(in), out);
      // Budget.
      const auto moved = transfer_summary(cur, out, topo);
      if (in.options.max_transfers >= 0) {
        EXPECT_LE(moved.total, in.options.max_transfers);
      }
      // Never worse per layer; layers within the threshold untouched.
      const auto before = balance_summary(cur, load, topo),
                 after = balance_summary(out, load, topo);
      for (int l = 0; l < layers; ++l) {
        EXPECT_LE(after.layers[l].imbalance, before.layers[l].imbalance) << "layer " << l;
        if (!before.layers[l].has_load || before.layers[l].imbalance <= in.options.threshold) {
          EXPECT_EQ(moved.per_layer[l], 0) << "layer " << l;
        }
      }
      // An expert that stays on a rank keeps its slot.
      const int S = topo.slots_per_rank;
      for (int l = 0; l < layers; ++l)
        for (int r = 0; r < topo.ranks; ++r)
          for (int k = 0; k < S; ++k) {
            const ExpertId e = cur.at(l, r * S + k);
            bool still_on_rank = false;
            for (int j = 0; j < S; ++j) still_on_rank |= out.at(l, r * S + j) == e;
            if (still_on_rank) {
              EXPECT_EQ(out.at(l, r * S + k), e);
            }
          }
    }
  }
}

TEST(SwiftPolicy, BudgetCurveIsMonotone) {
  std::mt19937 rng(77);
  const Topology topo = Topology::make(8, 5, 4);
  const int experts = 36;
  const LoadMatrix load = random_load(6, experts, rng);
  const Placement cur = random_placement(topo, 6, experts, rng);
  double prev = balance_summary(cur, load, topo).mean_imbalance;
  for (std::int64_t k : {1, 2, 4, 8, 16, 32, -1}) {
    const Placement out = rebalance(topo, load, &cur, k);
    const double imb = balance_summary(out, load, topo).mean_imbalance;
    EXPECT_LE(imb, prev + 1e-12) << "budget " << k;
    prev = imb;
  }
}

}  // namespace
}  // namespace swiftbalancer
