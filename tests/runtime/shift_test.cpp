// Shift detection in the Balancer, with 4 ranks as threads (in-process transport). Sync mode
// where every cycle must land at its gather step; async (with a forward pass of a few ms, so
// the worker keeps up) for pre-emption. The load: in layer l one expert is `hot` tokens, the
// others 100; at `switch_step` the hot expert moves (l -> l + 4).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/runtime/balancer.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

using namespace std::chrono_literals;

constexpr int kRanks = 4, kSlots = 3, kExperts = 8;
constexpr std::size_t kBytes = 16;

int hot_expert(int layer, bool switched) {
  return switched ? (layer + 4) % kExperts : layer;
}

LoadMatrix load_of(bool switched, int layers, double hot) {
  LoadMatrix m(layers, kExperts);
  for (int l = 0; l < layers; ++l)
    for (int e = 0; e < kExperts; ++e) m.at(l, e) = e == hot_expert(l, switched) ? hot : 100.0;
  return m;
}

struct ShiftRun {
  BalancerCounters counters;
  std::vector<double> imbalance;  // [step - 1]: the step's load under the placement it met
  int most_layers_in_a_step = 0;  // committed after one forward pass
};

struct LoadSpec {
  int layers = 3;
  double hot_before = 600.0, hot_after = 600.0;
  std::chrono::milliseconds forward{0};
};

// Runs `steps` steps; returns rank 0's counters and series (every rank checks it agrees).
ShiftRun run(BalancerConfig cfg, int steps, int switch_step, LoadSpec spec = {}) {
  const int kLayers = spec.layers;
  const Topology topo = Topology::make(kRanks, kSlots);
  const Placement initial = contiguous_placement(topo, kLayers, kExperts);
  std::shared_ptr<const Policy> policy = make_policy("deepseek-global");
  std::vector<ShiftRun> runs(kRanks);
  std::vector<std::vector<Placement>> served(kRanks);
  cfg.log = [](LogSeverity, const std::string&) {};
  testing::run_ranks(kRanks, [&](int rank, Transport& t) {
    std::vector<std::vector<std::byte>> mem(static_cast<std::size_t>(kLayers * kSlots),
                                            std::vector<std::byte>(kBytes));
    Balancer b(topo, rank, t, policy, initial, cfg);
    for (int l = 0; l < kLayers; ++l)
      for (int s = 0; s < kSlots; ++s) b.register_expert(l, s, {mem[l * kSlots + s]});
    for (int step = 1; step <= steps; ++step) {
      const bool switched = step > switch_step;
      const LoadMatrix load =
          load_of(switched, kLayers, switched ? spec.hot_after : spec.hot_before);
      b.before_forward();
      for (int l = 0; l < kLayers; ++l) {
        const RoutingTable& table = b.routing(l);
        const auto reps = replica_counts(table.phy2log(), kExperts);
        std::vector<std::int64_t> counts(kSlots);
        for (int s = 0; s < kSlots; ++s) {
          const int e = table.expert_at(topo.slot_id(rank, s));
          counts[s] = static_cast<std::int64_t>(load.at(l, e) / reps[e]);
        }
        b.record(l, counts);
      }
      runs[rank].imbalance.push_back(balance_summary(b.placement(), load, topo).mean_imbalance);
      if (spec.forward.count() > 0) std::this_thread::sleep_for(spec.forward);
      const StepStats st = b.after_forward();
      runs[rank].most_layers_in_a_step =
          std::max(runs[rank].most_layers_in_a_step, st.layers_committed);
    }
    runs[rank].counters = b.counters();
  });
  for (int r = 1; r < kRanks; ++r) {
    EXPECT_EQ(runs[r].imbalance, runs[0].imbalance) << "rank " << r;
    EXPECT_EQ(runs[r].counters.shift_triggers, runs[0].counters.shift_triggers);
    EXPECT_EQ(runs[r].counters.shift_preemptions, runs[0].counters.shift_preemptions);
    EXPECT_EQ(runs[r].counters.shift_layers_preempted, runs[0].counters.shift_layers_preempted);
  }
  return runs[0];
}

BalancerConfig config(int check_steps) {
  BalancerConfig c;
  c.mode = BalancerMode::kSync;
  c.interval_steps = 20;
  c.window_intervals = 1;
  c.collective_timeout = 5000ms;
  c.shift.check_steps = check_steps;
  c.shift.min_gap_steps = 10;
  return c;
}

TEST(ShiftDetection, NoTriggerOnAStationaryLoad) {
  const ShiftRun off = run(config(0), 100, 1000);
  const ShiftRun on = run(config(2), 100, 1000);
  EXPECT_EQ(on.counters.shift_triggers, 0);
  EXPECT_EQ(on.counters.shift_checks, 50);
  EXPECT_EQ(on.counters.gathers, off.counters.gathers);
  EXPECT_EQ(on.counters.rebalances, off.counters.rebalances);
  EXPECT_EQ(on.imbalance, off.imbalance);
}

TEST(ShiftDetection, StepChangeTriggersAnEarlyCycle) {
  // The first gather (step 20) balances load A; the load switches after step 30.
  const ShiftRun off = run(config(0), 60, 30);
  const ShiftRun on = run(config(2), 60, 30);
  EXPECT_EQ(off.counters.shift_triggers, 0);
  EXPECT_EQ(on.counters.shift_triggers, 1);
  const double balanced = on.imbalance[25];  // step 26: balanced for A
  EXPECT_LT(balanced, 1.2);
  // Step 31 is the first under B; the check at step 32 fires, the early gather is at step 34
  // (one check period of B only), and step 35 meets the new placement.
  EXPECT_GT(on.imbalance[31], 1.5 * balanced);
  EXPECT_LT(on.imbalance[34], 1.2);
  // Without detection the old placement serves until the gather at step 40.
  for (int s = 31; s < 40; ++s) EXPECT_GT(off.imbalance[s], 1.5 * balanced) << "step " << s + 1;
}

// Async: the first cycle (gather at step 20, contiguous -> balanced for A, 12 layers at one per
// step) is still moving when the load switches after step 23 to B, whose hot expert is so hot
// that the level under the placement in service rises past 1.3x the first check's. The check at
// step 24 fires: the cycle in flight is pre-empted (its layers not moved stay as they are), the
// early gather (step 26) sees B only, and the early cycle commits 4 layers per step.
TEST(ShiftDetection, AShiftPreemptsTheCycleInFlight) {
  BalancerConfig cfg = config(2);
  cfg.mode = BalancerMode::kAsync;
  cfg.decision_poll_steps = 1;
  cfg.background_worker = false;  // a nice-19 worker can starve on a busy 2-core machine
  cfg.shift.layers_per_step = 4;
  const LoadSpec spec{12, 600.0, 5000.0, std::chrono::milliseconds(3)};
  const ShiftRun on = run(cfg, 60, 23, spec);
  cfg.shift.check_steps = 0;
  const ShiftRun off = run(cfg, 60, 23, spec);

  EXPECT_EQ(on.counters.shift_triggers, 1);
  EXPECT_EQ(on.counters.shift_preemptions, 1);
  EXPECT_GT(on.counters.shift_layers_preempted, 0);
  EXPECT_LT(on.counters.shift_layers_preempted, 12);
  EXPECT_EQ(on.counters.layers_failed, 0);  // pre-empted layers are not failures
  EXPECT_EQ(on.most_layers_in_a_step, 4);   // the early cycle
  EXPECT_EQ(off.counters.shift_preemptions, 0);
  EXPECT_EQ(off.most_layers_in_a_step, 1);
  // Recovered (balanced for B) sooner with detection than without.
  auto recovered_at = [](const ShiftRun& r) {
    for (std::size_t s = 24; s < r.imbalance.size(); ++s)
      if (r.imbalance[s] < 1.2) return static_cast<int>(s) + 1;
    return 1 << 20;
  };
  EXPECT_LT(recovered_at(on), recovered_at(off));
  EXPECT_LT(on.imbalance.back(), 1.2);
}

}  // namespace
}  // namespace swiftbalancer
