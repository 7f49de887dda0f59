// The swift policy and the vllm-ascend baseline on the real DeepSeek-V3 loads (ANCHORS.md):
// start from deepseek-global on workload A, rebalance for workload B. Skips when the shared
// traces are absent. Each row takes a few tens of milliseconds.
#include <gtest/gtest.h>

#include <ostream>

#include <filesystem>
#include <optional>
#include <string>

#include "support/traces.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer {
namespace {

using testing::deepseek_trace_all_layers;

struct Row {
  int ranks, slots, nodes;
  const char* from;
  const char* to;
};

void PrintTo(const Row& r, std::ostream* os) {
  *os << r.ranks << "x" << r.slots << "_" << r.from << "_to_" << r.to;
}

struct Outcome {
  double imbalance;
  std::int64_t transfers;
};

class SwiftTrace : public ::testing::TestWithParam<Row> {
 protected:
  void SetUp() override {
    const Row& row = GetParam();
    a_ = deepseek_trace_all_layers(row.from);
    b_ = deepseek_trace_all_layers(row.to);
    if (!a_ || !b_) GTEST_SKIP() << "shared traces not found under " << SWIFTBALANCER_TRACES_DIR;
    topo_ = Topology::make(row.ranks, row.slots, row.ranks / row.nodes);
    cur_ = make_policy("deepseek-global")->rebalance(PolicyInput{topo_, *a_});
  }
  Outcome run(const char* policy, std::int64_t max_transfers) {
    PolicyInput in{topo_, *b_, &cur_};
    in.options.max_transfers = max_transfers;
    const Placement out = make_policy(policy)->rebalance(in);
    EXPECT_TRUE(validate_placement(out, topo_).ok());
    return {balance_summary(out, *b_, topo_).mean_imbalance,
            transfer_summary(cur_, out, topo_).total};
  }
  std::optional<LoadMatrix> a_, b_;
  Topology topo_;
  Placement cur_;
};

TEST_P(SwiftTrace, NearDeepSeekBalanceWithAFractionOfItsTransfers) {
  const Outcome ds = run("deepseek-global", -1);
  const Outcome sw = run("swift", -1);
  EXPECT_LE(sw.imbalance, ds.imbalance + 0.01);
  EXPECT_LE(sw.transfers, 0.3 * ds.transfers);
}

TEST_P(SwiftTrace, BeatsVllmAscendWithHalfItsTransfers) {
  const Outcome va = run("vllm-ascend-swap", -1);
  const Outcome sw = run("swift", va.transfers / 2);
  EXPECT_LE(sw.transfers, va.transfers / 2);
  EXPECT_LE(sw.imbalance, va.imbalance);
}

INSTANTIATE_TEST_SUITE_P(
    Anchors, SwiftTrace,
    ::testing::Values(Row{32, 9, 4, "prefill_in1024", "decode_in1000out1000"},
                      Row{64, 5, 8, "decode_in2000out100", "prefill_in2048"},
                      Row{16, 17, 2, "prefill_in4096", "decode_in500out1500"},
                      Row{48, 6, 6, "prefill_in512", "decode_in1800out100"},
                      Row{24, 12, 3, "decode_in500out1500", "prefill_in2000out100"}),
    [](const ::testing::TestParamInfo<Row>& info) { return ::testing::PrintToString(info.param); });

// The headline row: 32 x 9, prefill_in1024 -> decode_in1000out1000.
class SwiftAnchor : public SwiftTrace {};

TEST_P(SwiftAnchor, BudgetOf1500ReachesImbalance105) {
  const Outcome sw = run("swift", 1500);
  EXPECT_LE(sw.transfers, 1500);
  EXPECT_LE(sw.imbalance, 1.05);
}

// The frontier of issue 13 on the headline row (figures in docs/swift-policy.md).
TEST_P(SwiftAnchor, BudgetOf1000ReachesImbalance104) {
  const Outcome sw = run("swift", 1000);
  EXPECT_LE(sw.transfers, 1000);
  EXPECT_LE(sw.imbalance, 1.04);  // measured 1.038 (1.075 before the goal-steered search)
}

TEST_P(SwiftAnchor, BudgetOf2000ReachesImbalance101) {
  const Outcome sw = run("swift", 2000);
  EXPECT_LE(sw.transfers, 2000);
  EXPECT_LE(sw.imbalance, 1.01);  // measured 1.007 (1.016 before)
}

TEST_P(SwiftAnchor, UnlimitedMatchesFlashLbWithAFifthOfItsTransfers) {
  // FlashLB (vllm-ascend policy 3): 1.005 with 13442 transfers (ANCHORS.md).
  const Outcome sw = run("swift", -1);
  EXPECT_LE(sw.imbalance, 1.005);
  EXPECT_LE(sw.transfers, 13442 / 5);
}

TEST_P(SwiftAnchor, VllmAscendBaselineReproducesTheReference) {
  // The Python reference measured 1.116 with 4006 transfers (ANCHORS.md).
  const Outcome va = run("vllm-ascend-swap", -1);
  EXPECT_NEAR(va.imbalance, 1.116, 0.01);
  EXPECT_NEAR(static_cast<double>(va.transfers), 4006.0, 200.0);
}

TEST_P(SwiftAnchor, StaleImbalanceMatchesTheReference) {
  EXPECT_NEAR(balance_summary(cur_, *b_, topo_).mean_imbalance, 1.409, 0.005);
}

INSTANTIATE_TEST_SUITE_P(Headline, SwiftAnchor,
                         ::testing::Values(Row{32, 9, 4, "prefill_in1024", "decode_in1000out1000"}),
                         [](const ::testing::TestParamInfo<Row>& info) {
                           return ::testing::PrintToString(info.param);
                         });

// 16 x 17: FlashLB reaches 1.002 with 12893 transfers (ANCHORS.md).
class SwiftWide : public SwiftTrace {};

TEST_P(SwiftWide, UnlimitedMatchesFlashLbWithAFifthOfItsTransfers) {
  const Outcome sw = run("swift", -1);
  EXPECT_LE(sw.imbalance, 1.002);
  EXPECT_LE(sw.transfers, 12893 / 5);
}

INSTANTIATE_TEST_SUITE_P(FlashLb, SwiftWide,
                         ::testing::Values(Row{16, 17, 2, "prefill_in4096", "decode_in500out1500"}),
                         [](const ::testing::TestParamInfo<Row>& info) {
                           return ::testing::PrintToString(info.param);
                         });

// 32 x 8: no spare slot, so swaps only. Swift reaches the swap baseline's balance with 70% of
// its transfers (measured 1.079 with 1800 of its 2616; the goal of half is not met).
class SwiftSwapsOnly : public SwiftTrace {};

TEST_P(SwiftSwapsOnly, ReachesVllmAscendBalanceWith70PercentOfItsTransfers) {
  const Outcome va = run("vllm-ascend-swap", -1);
  const std::int64_t budget = va.transfers * 7 / 10;
  const Outcome sw = run("swift", budget);
  EXPECT_LE(sw.transfers, budget);
  EXPECT_LE(sw.imbalance, va.imbalance);
}

INSTANTIATE_TEST_SUITE_P(NoSpareSlots, SwiftSwapsOnly,
                         ::testing::Values(Row{32, 8, 4, "prefill_in1024", "decode_in1000out1000"}),
                         [](const ::testing::TestParamInfo<Row>& info) {
                           return ::testing::PrintToString(info.param);
                         });

}  // namespace
}  // namespace swiftbalancer
