// compat::engine_start_placement and engine_rebalance: the vLLM / SGLang hook and the maps it
// accepts (other widths, -1 slots, a rank's second replica), worked by hand.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "swiftbalancer/compat/deepseek_eplb.h"
#include "swiftbalancer/compat/engine_hook.h"
#include "swiftbalancer/compat/engine_start.h"

namespace swiftbalancer::compat {
namespace {

template <class F>
void expect_error(F&& f, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one with '" << words << "'";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

// 2 ranks x 3 slots, 4 experts, loads 8, 4, 2, 1 (tests/python/test_vllm_engine.py). Rank 0
// holds 0, 0, 1 (two replicas of 0); rank 1 holds 2, -1, 1. Expert 3 is on no rank. Rank 0
// keeps 0 and 1 in slots 0 and 2, rank 1 keeps 2 and 1 in slots 3 and 5; holes at 1 and 4.
// Expert 3 goes to the lighter rank with a hole: rank 0 carries 8 + 4/2 = 10, rank 1
// 2 + 4/2 = 4, so slot 4. The hole left (slot 1; rank 0 holds 0 and 1) takes the replica with
// the heaviest share: 2 -> 2/2 = 1 against 3 -> 1/2: expert 2. Two holes filled: 2 arrivals.
TEST(EngineStart, RepairWorkedByHand) {
  const LoadMatrix w(1, 4, {8, 4, 2, 1});
  const Placement old(1, 6, 4, {0, 0, 1, 2, -1, 1});
  std::int64_t arrivals = -1;
  const Placement start = engine_start_placement(old, w, Topology::make(2, 3), &arrivals);
  EXPECT_EQ(start.data(), (std::vector<ExpertId>{0, 2, 1, 2, 3, 1}));
  EXPECT_EQ(arrivals, 2);
  // The vLLM hook with no budget stops at the repair.
  EngineRequest q;
  q.num_replicas = 6;
  q.num_ranks = 2;
  q.old_map = &old;
  q.max_transfers = 0;
  const EngineMaps r = engine_rebalance(w, q);
  EXPECT_EQ(r.placement.data(), (std::vector<ExpertId>{0, 2, 1, 2, 3, 1}));
  EXPECT_EQ(r.logical.logcnt, (std::vector<std::int64_t>{1, 2, 2, 1}));
}

TEST(EngineStart, ValidMapIsKeptWithNoArrivals) {
  const LoadMatrix w(1, 4, {8, 4, 2, 1});
  const Placement old(1, 6, 4, {0, 1, 2, 3, 0, 1});
  std::int64_t arrivals = -1;
  EXPECT_EQ(engine_start_placement(old, w, Topology::make(2, 3), &arrivals), old);
  EXPECT_EQ(arrivals, 0);
}

// Scale-up: the old map is narrower (2 ranks x 2) than the topology (3 x 2): rank 2's slots are
// holes. Slot 4 takes the expert whose share drops most with one more replica: 0 (4 -> 2); slot
// 5 (rank 2 now holds 0) takes 1 (3 -> 1.5).
TEST(EngineStart, NarrowerMapFillsTheNewRanks) {
  const LoadMatrix w(1, 4, {4, 3, 2, 1});
  const Placement old(1, 4, 4, {0, 1, 2, 3});
  std::int64_t arrivals = -1;
  EXPECT_EQ(engine_start_placement(old, w, Topology::make(3, 2), &arrivals).data(),
            (std::vector<ExpertId>{0, 1, 2, 3, 0, 1}));
  EXPECT_EQ(arrivals, 2);
}

// Scale-down with no hole: the old map is 3 ranks x 2 and rank 2 (holding 3 and 1) leaves; the
// kept ranks hold 0, 1 | 2, 0, so expert 3 is on no rank and no slot is free. It replaces the
// least loaded redundant replica: expert 0's two (4/2 = 2 each; ties: the later slot, 3). One
// arrival. (The repair used to stop when a layer had no hole, leaving expert 3 out.)
TEST(EngineStart, WiderMapWithoutHolesStillPlacesEveryExpert) {
  const LoadMatrix w(1, 4, {4, 3, 2, 1});
  const Placement old(1, 6, 4, {0, 1, 2, 0, 3, 1});
  const Topology topo = Topology::make(2, 2);
  std::int64_t arrivals = -1;
  const Placement start = engine_start_placement(old, w, topo, &arrivals);
  EXPECT_EQ(start.data(), (std::vector<ExpertId>{0, 1, 2, 3}));
  EXPECT_EQ(arrivals, 1);
  EXPECT_TRUE(validate_placement(start, topo).ok());
}

TEST(EngineStart, BadMapsNameTheArgument) {
  const LoadMatrix w(2, 4, {8, 4, 2, 1, 1, 2, 4, 8});
  const Topology topo = Topology::make(2, 3);
  const Placement bad_id(2, 6, 5, {0, 1, 2, 3, -1, -1, 0, 1, 2, 3, -1, 4});
  expect_error([&] { engine_start_placement(bad_id, w, topo); },
               "old_global_expert_indices[1][5] is 4");
  const Placement below(2, 6, 4, {0, 1, 2, 3, -2, -1, 0, 1, 2, 3, -1, -1});
  expect_error([&] { engine_start_placement(below, w, topo); }, "[0][4] is -2");
  const Placement one_layer(1, 6, 4, {0, 1, 2, 3, -1, -1});
  expect_error([&] { engine_start_placement(one_layer, w, topo); }, "has 1 layers, weight has 2");
}

LoadMatrix readme_weight() {
  return LoadMatrix(2, 12, {90, 132, 40,  61, 104, 165, 39,  4,   73,  56, 183, 86,
                            20, 107, 104, 64, 19,  197, 187, 157, 172, 86, 16,  27});
}

// Without an old map the hook is deepseek-ai/EPLB's call; log2phy_width pads it.
TEST(EngineRebalance, WithoutOldMapIsDeepSeeksCall) {
  EngineRequest q;
  q.num_replicas = 16;
  q.num_groups = 4;
  q.num_nodes = 2;
  q.num_ranks = 8;
  q.log2phy_width = 5;
  const EngineMaps got = engine_rebalance(readme_weight(), q);
  const EngineMaps want = deepseek_rebalance_experts(readme_weight(), 16, 4, 2, 8, 5);
  EXPECT_EQ(got.placement, want.placement);
  EXPECT_EQ(got.logical.log2phy, want.logical.log2phy);
  EXPECT_EQ(got.logical.max_replicas, 5);
  q.log2phy_width = 1;  // experts with two replicas do not fit
  expect_error([&] { engine_rebalance(readme_weight(), q); },
               "an expert has 2 replicas, more than the log2phy width 1");
  q.log2phy_width = 0;
  q.threads = 0;
  expect_error([&] { engine_rebalance(readme_weight(), q); }, "threads must be 1 ..");
}

TEST(EngineRebalance, OldMapArgumentChecks) {
  const Placement old(2, 16, 12, std::vector<ExpertId>(32, -1));
  EngineRequest q;
  q.old_map = &old;
  q.num_replicas = 16;
  q.num_nodes = 3;
  q.num_ranks = 8;
  expect_error([&] { engine_rebalance(readme_weight(), q); }, "multiple of num_nodes");
  q.num_nodes = 1;
  q.num_replicas = 12 + 1;
  expect_error([&] { engine_rebalance(readme_weight(), q); }, "multiple of num_ranks");
  q.num_replicas = 8;
  expect_error([&] { engine_rebalance(readme_weight(), q); }, "smaller than the 12");
  // An all-empty map is a start like any other: every slot a hole, every expert placed.
  q.num_replicas = 16;
  const EngineMaps r = engine_rebalance(readme_weight(), q);
  EXPECT_TRUE(validate_placement(r.placement, Topology::make(8, 2)).ok());
}

}  // namespace
}  // namespace swiftbalancer::compat
