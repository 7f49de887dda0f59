// The demo engine end to end, in process: tokens are dispatched through the routing tables,
// computed with the weights in the slots and checked bit for bit against the canonical weights,
// in every mode and with every injected fault.
#include <gtest/gtest.h>

#include <vector>

#include "demo/small_demo.h"
#include "swiftbalancer/demo/demo_engine.h"
#include "swiftbalancer/demo/token_dispatcher.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

using namespace std::chrono_literals;

DemoOptions small(BalancerMode mode) {
  return testing::small_demo(mode, 100ms);
}

TEST(DemoEngine, EveryModeServesCorrectTokens) {
  for (BalancerMode mode : {BalancerMode::kAsync, BalancerMode::kSync, BalancerMode::kOff}) {
    const DemoResult r = run_demo_inprocess(small(mode));
    EXPECT_EQ(r.mismatches, 0) << balancer_mode_name(mode);
    EXPECT_EQ(r.verified, 60 * 3 * 16 * 3);
    ASSERT_EQ(r.steps.size(), 60u);
    if (mode == BalancerMode::kOff) {
      EXPECT_EQ(r.counters.rebalances, 0);
    } else {
      EXPECT_GE(r.counters.rebalances, 2) << balancer_mode_name(mode);
      // Balancing lowers the measured token imbalance.
      EXPECT_LT(r.steps.back().imbalance, r.steps.front().imbalance);
      // Staging of any rank stays within the layers in flight.
      EXPECT_GT(r.peak_staging_bytes, 0);
      EXPECT_LE(r.peak_staging_bytes, r.staging_bound_bytes);
      EXPECT_EQ(
          r.staging_bound_bytes,
          2 * 4 * static_cast<std::int64_t>(CanonicalExperts({8, 16}, 1, 1, 0).expert_bytes()));
    }
    // Every step, every rank's tokens add up to all the (token, k) assignments.
    for (const DemoStep& s : r.steps) {
      std::int64_t sum = 0;
      for (auto v : s.rank_tokens) sum += v;
      EXPECT_EQ(sum, 3 * 16 * 2 * 3);
    }
  }
}

TEST(DemoEngine, InjectedFaultsLeaveOutputsCorrect) {
  for (auto kind : {FaultInjection::Kind::kTransferTimeout, FaultInjection::Kind::kWorkerException,
                    FaultInjection::Kind::kBadPlacement}) {
    for (BalancerMode mode : {BalancerMode::kAsync, BalancerMode::kSync}) {
      DemoOptions o = small(mode);
      o.balancer.fault = {kind, /*rank=*/2, /*cycle=*/1};
      const DemoResult r = run_demo_inprocess(o);
      EXPECT_EQ(r.mismatches, 0) << fault_kind_name(kind);
      EXPECT_GE(r.counters.errors + 0, 1)
          << fault_kind_name(kind) << " " << balancer_mode_name(mode);
      EXPECT_GE(r.counters.rebalances, 2) << fault_kind_name(kind);
    }
  }
}

TEST(DemoEngine, EmulatedLinkMakesTheSyncRebalanceStepStall) {
  // Sync moves every changed layer at once while serving waits: the step that commits them takes
  // at least the busiest rank's bytes over the link (>= total bytes / ranks). Async moves one
  // layer per step with the same link and still serves every token correctly.
  for (BalancerMode mode : {BalancerMode::kSync, BalancerMode::kAsync}) {
    DemoOptions o = small(mode);
    o.link_gbps = 0.001;  // 125 kB/s: one 1120-byte expert takes 9 ms
    o.balancer.transfer_timeout = 2000ms;
    const DemoResult r = run_demo_inprocess(o);
    EXPECT_EQ(r.mismatches, 0) << balancer_mode_name(mode);
    EXPECT_GE(r.counters.rebalances, 2) << balancer_mode_name(mode);
    EXPECT_EQ(r.counters.errors, 0) << r.counters.last_error;
    if (mode != BalancerMode::kSync) continue;
    int checked = 0;
    for (const DemoStep& s : r.steps) {
      if (s.layers_committed == 0 || s.bytes_moved == 0) continue;
      const double floor_ms = static_cast<double>(s.bytes_moved) / 3 / 125e3 * 1e3;
      EXPECT_GE(s.wall_ms, floor_ms) << s.bytes_moved << " bytes";
      ++checked;
    }
    EXPECT_GE(checked, 1);
  }
}

TEST(TokenDispatcher, RoundTripReturnsEachAssignmentsRow) {
  testing::run_ranks(3, [](int rank, Transport& t) {
    const int H = 4, T = 5;
    TokenDispatcher d(t, H, 1, 2000ms);
    std::vector<float> x(T * H);
    for (int i = 0; i < T * H; ++i) x[i] = static_cast<float>(rank * 100 + i);
    // Token i goes to rank (i + rank) % 3, slot i % 2, twice (k = 2).
    std::vector<TokenDispatcher::Assignment> a;
    for (int i = 0; i < T; ++i)
      for (int k = 0; k < 2; ++k) a.push_back({i, (i + rank + k) % 3, i % 2});
    d.dispatch(a, x);
    std::vector<std::int64_t> counts(2);
    d.slot_counts(counts);
    EXPECT_EQ(counts[0] + counts[1], d.received());
    // "Compute": negate the row and add the slot.
    const auto rows = d.received_rows();
    auto res = d.results();
    for (int i = 0; i < d.received(); ++i)
      for (int h = 0; h < H; ++h) res[i * H + h] = -rows[i * H + h] + d.received_slots()[i];
    std::vector<float> out(a.size() * H);
    d.combine(out);
    for (std::size_t j = 0; j < a.size(); ++j)
      for (int h = 0; h < H; ++h) ASSERT_EQ(out[j * H + h], -x[a[j].token * H + h] + a[j].dst_slot);
  });
}

}  // namespace
}  // namespace swiftbalancer
