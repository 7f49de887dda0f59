#include <gtest/gtest.h>

#include "swiftbalancer/core/topology.h"

namespace swiftbalancer {
namespace {

TEST(Topology, SlotAndNodeArithmetic) {
  const Topology t = Topology::make(8, 3, 4);
  EXPECT_EQ(t.num_slots(), 24);
  EXPECT_EQ(t.nodes(), 2);
  EXPECT_EQ(t.rank_of_slot(0), 0);
  EXPECT_EQ(t.rank_of_slot(2), 0);
  EXPECT_EQ(t.rank_of_slot(3), 1);
  EXPECT_EQ(t.rank_of_slot(23), 7);
  EXPECT_EQ(t.node_of_rank(3), 0);
  EXPECT_EQ(t.node_of_rank(4), 1);
  EXPECT_EQ(t.slot_id(5, 2), 17);
}

TEST(Topology, DefaultRanksPerNodeIsOneNode) {
  const Topology t = Topology::make(6, 2);
  EXPECT_EQ(t.ranks_per_node, 6);
  EXPECT_EQ(t.nodes(), 1);
}

TEST(Topology, RejectsImpossibleShapes) {
  EXPECT_THROW(Topology::make(0, 4), InputError);
  EXPECT_THROW(Topology::make(4, 0), InputError);
  try {
    Topology::make(6, 2, 4);
    FAIL() << "ranks not divisible by ranks per node must throw";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("divisible by ranks per node"), std::string::npos);
  }
}

TEST(Topology, ValidateNeedsRoomForEveryExpert) {
  const Topology t = Topology::make(4, 2);
  EXPECT_TRUE(t.validate(8).ok());
  const Status s = t.validate(9);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("smaller than the 9 experts"), std::string::npos) << s.message();
  EXPECT_FALSE(t.validate(0).ok());
  EXPECT_NE(Topology::make(2, 5).validate(4).message().find("two replicas"), std::string::npos);
}

}  // namespace
}  // namespace swiftbalancer
