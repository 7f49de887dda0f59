// Size limits (core/limits.h) are checked in 64-bit arithmetic before anything is allocated.
#include <gtest/gtest.h>

#include <string>

#include "swiftbalancer/core/limits.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer {
namespace {

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(Limits, TopologyRejectsSizesThatOverflowInt) {
  // 16777217 x 256 wraps a 32-bit int to 256: the product must be computed in 64 bits.
  EXPECT_EQ(error_of([] { Topology::make(16777217, 256, 1); }),
            "ranks (16777217) exceed the limit of 65536");
  EXPECT_EQ(error_of([] { Topology::make(65536, 256); }),
            "ranks x slots per rank (65536 x 256 = 16777216 slots) exceed the limit of 4194304 "
            "slots per layer");
  EXPECT_EQ(error_of([] { Topology::make(4, 70000); }),
            "slots per rank (70000) exceed the limit of 65536");
  const Topology at_limit = Topology::make(65536, 64);
  EXPECT_EQ(at_limit.num_slots(), limits::kMaxSlots);
  // validate() guards a Topology built by hand the same way.
  const Topology raw{1 << 16, 1 << 16, 1};
  EXPECT_FALSE(raw.validate(256).ok());
}

TEST(Limits, PlacementCellsAreCheckedBeforeAllocating) {
  const Topology topo = Topology::make(1, 16);
  EXPECT_EQ(error_of([&] { contiguous_placement(topo, 1 << 30, 16); }),
            "placement of 1073741824 layers x 16 slots, 16 experts exceeds the limits (1048576 "
            "layers, 4194304 slots, 1048576 experts)");
  EXPECT_EQ(error_of([] { Placement(1 << 20, 1 << 22, 8); }),
            "placement of 1048576 layers x 4194304 slots = 4398046511104 cells exceeds the limit "
            "of 134217728");
  EXPECT_EQ(contiguous_placement(topo, 2, 16).data().size(), 32u);
}

}  // namespace
}  // namespace swiftbalancer
