// compat::deepseek_rebalance_experts and replica_ordered_maps: deepseek-ai/EPLB's README example
// exactly (the figures tests/python/test_dropin_deepseek.py checks), the reference's fallback
// rule, argument errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "swiftbalancer/compat/deepseek_eplb.h"
#include "swiftbalancer/compat/logical_maps.h"

namespace swiftbalancer::compat {
namespace {

// deepseek-ai/EPLB README: 2 layers x 12 experts, 16 replicas, 4 groups, 2 nodes, 8 GPUs.
LoadMatrix readme_weight() {
  return LoadMatrix(2, 12, {90, 132, 40,  61, 104, 165, 39,  4,   73,  56, 183, 86,
                            20, 107, 104, 64, 19,  197, 187, 157, 172, 86, 16,  27});
}
const std::vector<ExpertId> kReadmePhy2Log = {5, 6,  5, 7, 8, 4,  3, 4, 10, 9, 10, 2, 0, 1, 11, 1,
                                              7, 10, 6, 8, 6, 11, 8, 9, 2,  4, 5,  1, 5, 0, 3,  1};
// The reference's log2phy (replica order: creation order) and logcnt.
const std::vector<std::int64_t> kReadmeLog2Phy = {
    12, -1, 15, 13, 11, -1, 6,  -1, 7, 5,  0,  2,  1, -1, 3, -1, 4, -1, 9, -1, 8, 10, 14, -1,
    13, -1, 15, 11, 8,  -1, 14, -1, 9, -1, 10, 12, 2, 4,  0, -1, 6, 3,  7, -1, 1, -1, 5,  -1};
const std::vector<std::int64_t> kReadmeLogCnt = {1, 2, 1, 1, 2, 2, 1, 1, 1, 1, 2, 1,
                                                 1, 2, 1, 1, 1, 2, 2, 1, 2, 1, 1, 1};

TEST(DeepSeekEplb, ReadmeExampleExactly) {
  const EngineMaps r = deepseek_rebalance_experts(readme_weight(), 16, 4, 2, 8);
  EXPECT_EQ(r.placement.data(), kReadmePhy2Log);
  EXPECT_EQ(r.placement.layers(), 2);
  EXPECT_EQ(r.placement.experts(), 12);
  EXPECT_EQ(r.logical.max_replicas, 2);
  EXPECT_EQ(r.logical.log2phy, kReadmeLog2Phy);
  EXPECT_EQ(r.logical.logcnt, kReadmeLogCnt);
}

// vLLM's width (num_replicas - experts + 1 = 5): the same rows, padded with -1; without logical
// maps only phy2log comes back.
TEST(DeepSeekEplb, WidthAndPlacementOnly) {
  const EngineMaps r = deepseek_rebalance_experts(readme_weight(), 16, 4, 2, 8, 5);
  ASSERT_EQ(r.logical.max_replicas, 5);
  ASSERT_EQ(r.logical.log2phy.size(), 2u * 12 * 5);
  for (int row = 0; row < 24; ++row)
    for (int k = 0; k < 5; ++k)
      EXPECT_EQ(r.logical.log2phy[row * 5 + k], k < 2 ? kReadmeLog2Phy[row * 2 + k] : -1);
  const EngineMaps only = deepseek_rebalance_experts(readme_weight(), 16, 4, 2, 8, 0, false);
  EXPECT_EQ(only.placement.data(), kReadmePhy2Log);
  EXPECT_TRUE(only.logical.log2phy.empty());
  EXPECT_TRUE(only.logical.logcnt.empty());
}

// 3 groups over 2 nodes do not divide: one group on one node, as (1 group, 1 node).
TEST(DeepSeekEplb, GlobalWhenGroupsDoNotDivideNodes) {
  const EngineMaps a = deepseek_rebalance_experts(readme_weight(), 16, 3, 2, 8);
  const EngineMaps b = deepseek_rebalance_experts(readme_weight(), 16, 1, 1, 8);
  EXPECT_EQ(a.placement, b.placement);
  EXPECT_EQ(a.logical.log2phy, b.logical.log2phy);
  EXPECT_TRUE(validate_placement(a.placement, Topology::make(8, 2)).ok());
}

void expect_error(int replicas, int groups, int nodes, int gpus, const std::string& words) {
  try {
    deepseek_rebalance_experts(readme_weight(), replicas, groups, nodes, gpus);
    ADD_FAILURE() << "no error for " << words;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

TEST(DeepSeekEplb, BadArgumentsNameTheirFault) {
  expect_error(17, 4, 2, 8, "multiple of num_gpus");
  expect_error(16, 4, 3, 8, "multiple of num_nodes");
  expect_error(8, 4, 2, 8, "smaller than the 12");
  expect_error(16, 8, 2, 8, "must divide the 12");
  expect_error(16, 0, 2, 8, "num_groups must be positive");
  expect_error(16, 4, 0, 8, "num_nodes must be positive");
  expect_error(16, 4, 2, -8, "num_gpus must be positive");
  expect_error(0, 4, 2, 8, "num_replicas must be positive");
}

// Hand-worked replica order: 1 layer, 2 ranks x 2 slots, experts 0 (load 6) and 1 (load 2);
// placement [0, 1 | 1, 0]. Each replica carries half its expert. Expert 0: slot 0 (nothing
// before it on rank 0) then slot 3 (after 1's 1.0 on rank 1); expert 1: slot 2 (0.0 before it)
// then slot 1 (after 0's 3.0). Width 3: -1 padded.
TEST(LogicalMaps, ReplicaOrderByLoadBeforeTheSlot) {
  const Topology topo = Topology::make(2, 2);
  const Placement p(1, 4, 2, {0, 1, 1, 0});
  const LogicalMaps m = replica_ordered_maps(p, LoadMatrix(1, 2, {6, 2}), topo, 3);
  EXPECT_EQ(m.max_replicas, 3);
  EXPECT_EQ(m.log2phy, (std::vector<std::int64_t>{0, 3, -1, 2, 1, -1}));
  EXPECT_EQ(m.logcnt, (std::vector<std::int64_t>{2, 2}));
  // Equal loads before both slots: slot order.
  const LogicalMaps tie = replica_ordered_maps(p, LoadMatrix(1, 2, {0, 0}), topo);
  EXPECT_EQ(tie.max_replicas, 2);
  EXPECT_EQ(tie.log2phy, (std::vector<std::int64_t>{0, 3, 1, 2}));
}

TEST(LogicalMaps, ShapesAndIdsAreChecked) {
  const Topology topo = Topology::make(2, 2);
  const Placement p(1, 4, 2, {0, 1, 1, 0});
  EXPECT_THROW(replica_ordered_maps(p, LoadMatrix(1, 3), topo), InputError);
  EXPECT_THROW(replica_ordered_maps(p, LoadMatrix(2, 2), topo), InputError);
  EXPECT_THROW(replica_ordered_maps(p, LoadMatrix(1, 2), Topology::make(3, 2)), InputError);
  EXPECT_THROW(replica_ordered_maps(Placement(1, 4, 2, {0, 1, -1, 0}), LoadMatrix(1, 2), topo),
               InputError);
}

}  // namespace
}  // namespace swiftbalancer::compat
