// compat::ascend_rebalance: vllm-ascend's hook, the cases of tests/python/test_vllm_ascend.py in
// C++ with their exact figures.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "swiftbalancer/compat/ascend.h"

namespace swiftbalancer::compat {
namespace {

const Topology kTopo = Topology::make(2, 2);

AscendResult run(const std::vector<ExpertId>& table, const std::vector<double>& work,
                 double min_improvement = 0.05, const std::string& policy = "deepseek-global") {
  const int layers = static_cast<int>(table.size() / 4);
  return ascend_rebalance(Placement(layers, 4, 4, table), work, kTopo, policy, PolicyOptions{},
                          min_improvement);
}

// Rank 0 holds the two hot experts (20 tokens), rank 1 the cold ones (2): global packing puts
// one hot expert on each rank; 0 and 3 stay in their slots (aligned), 1 and 2 swap ranks.
TEST(Ascend, HandWorkedLayer) {
  const AscendResult r = run({0, 1, 2, 3}, {10, 10, 1, 1});
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(r.priority, (std::vector<std::int64_t>{0}));
  EXPECT_EQ(r.placement.data(), (std::vector<ExpertId>{0, 2, 1, 3}));
  EXPECT_EQ(r.max_load_before, (std::vector<double>{20.0}));
  EXPECT_EQ(r.max_load_after, (std::vector<double>{11.0}));
}

// Layer 0 balanced (kept), layer 1 20 -> 11 (ratio 0.55), layer 2 14 -> 11 (0.79).
TEST(Ascend, BalancedLayerKeptPriorityByGain) {
  const std::vector<ExpertId> table = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3};
  const AscendResult r = run(table, {5, 5, 5, 5, 10, 10, 1, 1, 10, 4, 1, 1});
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(r.priority, (std::vector<std::int64_t>{1, 2, 0}));
  const auto l0 = r.placement.layer(0);
  EXPECT_EQ(std::vector<ExpertId>(l0.begin(), l0.end()), (std::vector<ExpertId>{0, 1, 2, 3}));
  EXPECT_EQ(r.max_load_after, (std::vector<double>{10.0, 11.0, 11.0}));
}

TEST(Ascend, NothingToGainOrBelowTheGate) {
  const AscendResult flat = run({0, 1, 2, 3}, {1, 1, 1, 1});
  EXPECT_FALSE(flat.changed);
  EXPECT_EQ(flat.placement.data(), (std::vector<ExpertId>{0, 1, 2, 3}));
  EXPECT_EQ(flat.priority, (std::vector<std::int64_t>{0}));
  EXPECT_FALSE(run({0, 1, 2, 3}, {6, 5, 5, 5}).changed);  // 11 -> 11
  // 20 -> 11 is a 45 % drop: below a 50 % requirement, though the placement differs.
  const AscendResult gated = run({0, 1, 2, 3}, {10, 10, 1, 1}, 0.5);
  EXPECT_FALSE(gated.changed);
  EXPECT_EQ(gated.placement.data(), (std::vector<ExpertId>{0, 2, 1, 3}));
}

template <class F>
void expect_error(F&& f, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one with '" << words << "'";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

TEST(Ascend, BadInputNamesTheArgument) {
  expect_error([] { run({0, 1, 2, 3}, {1, -1, 1, 1}); }, "expert_workload[0][0][1] is -1");
  expect_error([] { run({0, 1, 2, 3}, {1, 1, 1}); }, "expert_workload must have the shape");
  expect_error([] { run({0, 1, 2, 2}, {1, 1, 1, 1}); }, "current_expert_table");
  expect_error([] { run({0, 1, 2, 3}, {1, 1, 1, 1}, 1.0); }, "min_improvement");
  expect_error([] { run({0, 1, 2, 3}, {1, 1, 1, 1}, 0.05, "nope"); }, "known: deepseek");
}

}  // namespace
}  // namespace swiftbalancer::compat
