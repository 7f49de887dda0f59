// The swift budget allocation on hand-made trajectories: exact choices under a budget and
// without one.
#include "swiftbalancer/policy/internal/swift_budget.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

namespace swiftbalancer {
namespace {

// A trajectory with the given (transfers, imbalance) points (writes are not needed here).
swift::Trajectory points(const std::vector<std::pair<int, double>>& pts) {
  swift::Trajectory t;
  for (const auto& [tr, imb] : pts) {
    t.step_end.push_back(0);
    t.transfers.push_back(tr);
    t.imbalance.push_back(imb);
  }
  return t;
}

// Layer 0: hull slopes 0.1, 0.05, 0.005, 0.0005 per transfer; step 3 lies above the hull.
// Layer 1: slopes 0.1, 0.01.
std::vector<swift::Trajectory> two_layers() {
  return {points({{0, 1.20}, {1, 1.10}, {2, 1.05}, {3, 1.049}, {4, 1.04}, {5, 1.0395}}),
          points({{0, 1.30}, {2, 1.10}, {3, 1.09}})};
}

TEST(SwiftBudget, SegmentsGoByGainPerTransferTiesToTheLowerLayer) {
  const auto traj = two_layers();
  // 3: layer 0's first segment (0.1, tie with layer 1, lower layer first), then layer 1's (2).
  EXPECT_EQ(swift::allocate_budget(traj, 3), (std::vector<int>{1, 1}));
  // 4: then layer 0's 0.05 segment.
  EXPECT_EQ(swift::allocate_budget(traj, 4), (std::vector<int>{2, 1}));
  // 5: then layer 1's 0.01 segment.
  EXPECT_EQ(swift::allocate_budget(traj, 5), (std::vector<int>{2, 2}));
  // 6: layer 0's next hull segment costs 2; the 1 left buys step 3, off the hull.
  EXPECT_EQ(swift::allocate_budget(traj, 6), (std::vector<int>{3, 2}));
  EXPECT_EQ(swift::allocate_budget(traj, 0), (std::vector<int>{0, 0}));
  EXPECT_EQ(swift::allocate_budget(traj, 100), (std::vector<int>{5, 2}));
}

TEST(SwiftBudget, UnlimitedStopsWhereATransferBuysTooLittle) {
  const auto traj = two_layers();
  // At 0.01 per transfer layer 0 stops after its 0.05 segment, layer 1 takes its 0.01 one.
  EXPECT_EQ(swift::choose_unlimited(traj, 0.01), (std::vector<int>{2, 2}));
  EXPECT_EQ(swift::choose_unlimited(traj, 0.02), (std::vector<int>{2, 1}));
  EXPECT_EQ(swift::choose_unlimited(traj, 0.0), (std::vector<int>{5, 2}));
  // A layer without steps stays as it is.
  EXPECT_EQ(swift::choose_unlimited({points({{0, 1.5}})}, 0.0), (std::vector<int>{0}));
}

}  // namespace
}  // namespace swiftbalancer
