// Transfer plans of real transitions (DeepSeek-V3 loads, ANCHORS.md rows): the swift policy's
// moves from deepseek-global on workload A to workload B. Skips without the shared traces.
#include <gtest/gtest.h>

#include <ostream>

#include <filesystem>
#include <optional>
#include <set>
#include <string>

#include "support/traces.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/io/load_io.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer {
namespace {

using testing::deepseek_trace_all_layers;

struct Row {
  int ranks, slots, nodes;
  const char* from;
  const char* to;
  std::int64_t budget;
};

void PrintTo(const Row& r, std::ostream* os) {
  *os << r.ranks << "x" << r.slots << "_" << r.from << "_to_" << r.to << "_budget"
      << (r.budget < 0 ? std::string("unlimited") : std::to_string(r.budget));
}

class PlanTrace : public ::testing::TestWithParam<Row> {};

TEST_P(PlanTrace, MakespanNearBoundAndExact) {
  const Row& row = GetParam();
  const auto a = deepseek_trace_all_layers(row.from), b = deepseek_trace_all_layers(row.to);
  if (!a || !b) GTEST_SKIP() << "shared traces not found under " << SWIFTBALANCER_TRACES_DIR;
  const Topology topo = Topology::make(row.ranks, row.slots, row.ranks / row.nodes);
  const Placement cur = make_policy("deepseek-global")->rebalance(PolicyInput{topo, *a});
  PolicyInput in{topo, *b, &cur};
  in.options.max_transfers = row.budget;
  const Placement next = make_policy("swift")->rebalance(in);
  const TransferPlan plan = make_transfer_plan(cur, next, topo);
  EXPECT_EQ(plan.remote_ops, transfer_summary(cur, next, topo).total);
  double makespan = 0.0, bound = 0.0;
  for (const LayerPlan& lp : plan.layers) {
    EXPECT_LE(lp.lower_bound, lp.makespan + 1e-9);
    // Per layer 1.2: where the branch and bound runs out of nodes the static bound stays
    // (64 x 5 unlimited, layer 27: makespan 20 against 17; 20 is optimal, proven offline with a
    // node cap of 2e7). The model-wide sum below keeps 1.1.
    EXPECT_LE(lp.makespan, 1.2 * lp.lower_bound + 1e-9) << "layer " << lp.layer;
    makespan += lp.makespan;
    bound += lp.lower_bound;
    const auto applied = apply_layer_plan(cur.layer(lp.layer), lp, topo);
    ASSERT_TRUE(std::equal(applied.begin(), applied.end(), next.layer(lp.layer).begin()));
    std::set<std::pair<int, int>> received;
    for (const TransferOp& op : lp.ops)
      if (!op.is_local()) {
        EXPECT_TRUE(received.insert({op.expert, op.dst_rank}).second);
      }
  }
  EXPECT_LE(makespan, 1.1 * bound);
}

INSTANTIATE_TEST_SUITE_P(
    Anchors, PlanTrace,
    ::testing::Values(Row{32, 9, 4, "prefill_in1024", "decode_in1000out1000", 1500},
                      Row{32, 9, 4, "prefill_in1024", "decode_in1000out1000", -1},
                      Row{64, 5, 8, "decode_in2000out100", "prefill_in2048", 1800},
                      Row{64, 5, 8, "decode_in2000out100", "prefill_in2048", -1},
                      Row{16, 17, 2, "prefill_in4096", "decode_in500out1500", -1}),
    [](const ::testing::TestParamInfo<Row>& info) { return ::testing::PrintToString(info.param); });

}  // namespace
}  // namespace swiftbalancer
