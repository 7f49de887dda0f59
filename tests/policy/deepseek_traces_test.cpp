// DeepSeek policies on real DeepSeek-V3/R1 loads, against the reference implementation's
// figures measured on this machine (ANCHORS.md). Skips when the shared traces are absent.
#include <gtest/gtest.h>

#include "support/traces.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/policy/deepseek.h"

namespace swiftbalancer {
namespace {

using testing::deepseek_trace;

TEST(DeepSeekTraces, GlobalAndHierarchicalMatchTheReferenceOnDecode1000) {
  const auto load = deepseek_trace("decode_in1000out1000");
  if (!load) GTEST_SKIP() << "shared traces absent: " << testing::traces_dir();
  ASSERT_EQ(load->layers(), 58);
  ASSERT_EQ(load->experts(), 256);
  const Topology topo = Topology::make(32, 9, 8);  // 4 nodes
  PolicyInput in{topo, *load};
  in.options.num_groups = 8;

  const Placement global = make_deepseek_policy(DeepSeekMode::kGlobal)->rebalance(in);
  ASSERT_TRUE(validate_placement(global, topo).ok());
  EXPECT_NEAR(balance_summary(global, *load, topo).mean_imbalance, 1.007, 0.003);

  const Placement hier = make_deepseek_policy(DeepSeekMode::kHierarchical)->rebalance(in);
  ASSERT_TRUE(validate_placement(hier, topo).ok());
  EXPECT_NEAR(balance_summary(hier, *load, topo).mean_imbalance, 1.317, 0.02);

  // The unbalanced contiguous layout is the 2-3x the field reports.
  const Topology plain = Topology::make(32, 8, 8);
  const double off =
      balance_summary(contiguous_placement(plain, 58, 256), *load, plain).mean_imbalance;
  EXPECT_GT(off, 2.0);
  EXPECT_LT(off, 3.2);
}

TEST(DeepSeekTraces, AnchorTopologiesGiveValidPlacementsEverywhere) {
  struct Row {
    const char* workload;
    int ranks, slots, ranks_per_node;
  };
  for (const Row& r : {Row{"prefill_in1024", 32, 9, 8}, Row{"prefill_in2048", 64, 5, 8},
                       Row{"decode_in500out1500", 16, 17, 8}}) {
    const auto load = deepseek_trace(r.workload);
    if (!load) GTEST_SKIP() << "shared traces absent: " << testing::traces_dir();
    const Topology topo = Topology::make(r.ranks, r.slots, r.ranks_per_node);
    PolicyInput in{topo, *load};
    in.options.num_groups = 8;
    for (auto mode : {DeepSeekMode::kGlobal, DeepSeekMode::kHierarchical}) {
      const Placement p = make_deepseek_policy(mode)->rebalance(in);
      const Status s = validate_placement(p, topo);
      EXPECT_TRUE(s.ok()) << r.workload << ": " << s.message();
      EXPECT_LT(balance_summary(p, *load, topo).mean_imbalance, 2.0) << r.workload;
    }
  }
}

}  // namespace
}  // namespace swiftbalancer
