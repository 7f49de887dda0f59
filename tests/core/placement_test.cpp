#include <gtest/gtest.h>

#include "swiftbalancer/core/placement.h"

namespace swiftbalancer {
namespace {

// 3 ranks x 2 slots, 5 experts: one spare slot.
const Topology kTopo = Topology::make(3, 2);

std::string message_of(const Placement& p) {
  return validate_placement(p, kTopo).message();
}

TEST(Placement, ValidPlacementPasses) {
  const Placement p(1, 6, 5, {0, 1, 2, 3, 4, 0});
  EXPECT_TRUE(validate_placement(p, kTopo).ok());
}

TEST(Placement, RejectsOutOfRangeIds) {
  EXPECT_NE(message_of(Placement(1, 6, 5, {0, 1, 2, 3, 4, 5})).find("slot 5: expert id 5 is out"),
            std::string::npos);
  EXPECT_NE(message_of(Placement(1, 6, 5, {0, -1, 2, 3, 4, 1})).find("expert id -1"),
            std::string::npos);
}

TEST(Placement, RejectsMissingExpert) {
  EXPECT_NE(message_of(Placement(1, 6, 5, {0, 1, 2, 3, 0, 1})).find("expert 4 has no replica"),
            std::string::npos);
}

TEST(Placement, RejectsTwoReplicasOnOneRank) {
  const std::string m = message_of(Placement(1, 6, 5, {0, 1, 2, 3, 4, 4}));
  EXPECT_NE(m.find("rank 2 holds two replicas of expert 4"), std::string::npos) << m;
}

TEST(Placement, RejectsWrongShape) {
  EXPECT_THROW(Placement(2, 6, 5, {0, 1, 2}), InputError);
  const Placement p(1, 4, 4, {0, 1, 2, 3});
  EXPECT_NE(message_of(p).find("4 slots per layer"), std::string::npos);
}

TEST(Placement, ContiguousIsValidAndWrapsSpareSlots) {
  const Placement p = contiguous_placement(kTopo, 2, 5);
  EXPECT_EQ(std::vector<ExpertId>(p.layer(1).begin(), p.layer(1).end()),
            (std::vector<ExpertId>{0, 1, 2, 3, 4, 0}));
  EXPECT_TRUE(validate_placement(p, kTopo).ok());
}

TEST(Placement, Log2PhyListsSlotsInOrder) {
  const std::vector<ExpertId> layer = {2, 0, 1, 2, 0, 3};
  const Log2Phy csr = build_log2phy(layer, 4);
  EXPECT_EQ(csr.experts(), 4);
  EXPECT_EQ(std::vector<int>(csr.replicas(0).begin(), csr.replicas(0).end()),
            (std::vector<int>{1, 4}));
  EXPECT_EQ(std::vector<int>(csr.replicas(2).begin(), csr.replicas(2).end()),
            (std::vector<int>{0, 3}));
  EXPECT_EQ(csr.replicas(3).size(), 1u);
  EXPECT_EQ(csr.replicas(3)[0], 5);
  EXPECT_EQ(replica_counts(layer, 4), (std::vector<int>{2, 1, 2, 1}));
}

TEST(Placement, DenseLog2PhyPadsWithMinusOne) {
  const Placement p(2, 6, 5,
                    {0, 1, 2, 3, 4, 0,    //
                     4, 4, 4, 1, 2, 3});  // not valid, but dense form still defined
  const DenseLog2Phy d = dense_log2phy(p);
  EXPECT_EQ(d.max_replicas, 3);
  // layer 0, expert 0 -> {0, 5, -1}; layer 1, expert 0 -> none; layer 1, expert 4 -> {0, 1, 2}
  EXPECT_EQ(d.data[0], 0);
  EXPECT_EQ(d.data[1], 5);
  EXPECT_EQ(d.data[2], -1);
  const std::size_t l1 = 1 * 5 * 3;
  EXPECT_EQ(d.data[l1 + 0], -1);
  EXPECT_EQ(d.data[l1 + 4 * 3 + 0], 0);
  EXPECT_EQ(d.data[l1 + 4 * 3 + 2], 2);
}

}  // namespace
}  // namespace swiftbalancer
