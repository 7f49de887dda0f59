// Liveness (issue 21): a worker that stops answering must not go unnoticed. The policy here
// blocks until the test releases it; every cycle then times out on the worker deadline and is
// dropped, and after stall_intervals intervals without an agreed cycle every rank warns once
// (log, stall_warnings counter, the stalled gauge in the Prometheus text), naming the reason.
// Once the worker answers again a cycle is agreed and the gauge goes back to 0.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/gated_policy.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/runtime/balancer.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

using namespace std::chrono_literals;

constexpr int kRanks = 2, kSlots = 3, kExperts = 4, kLayers = 2, kBytes = 32;

struct RankRun {
  BalancerCounters at_stall, at_end;
  std::string metrics_at_stall, metrics_at_end;
  std::vector<std::string> warnings;
};

TEST(Liveness, AStalledWorkerIsReportedAndTheGaugeClearsWhenItAnswers) {
  constexpr int kStallSteps = 60, kSteps = 140, kInterval = 5, kStallIntervals = 3;
  const Topology topo = Topology::make(kRanks, kSlots);
  const Placement initial = contiguous_placement(topo, kLayers, kExperts);
  std::atomic<bool> open{false};  // the worker stalls until step kStallSteps
  auto policy = std::make_shared<testing::GatedPolicy>(open);
  std::vector<RankRun> runs(kRanks);
  testing::run_ranks(kRanks, [&](int rank, Transport& t) {
    RankRun& run = runs[static_cast<std::size_t>(rank)];
    BalancerConfig c;
    c.interval_steps = kInterval;
    c.window_intervals = 1;
    c.decision_poll_steps = 1;
    c.worker_timeout = 5ms;  // dropped within a few 2 ms steps
    c.collective_timeout = 5000ms;
    c.background_worker = false;
    c.stall_intervals = kStallIntervals;
    std::mutex mu;
    c.log = [&](LogSeverity sev, const std::string& line) {
      std::lock_guard lock(mu);
      if (sev == LogSeverity::kWarning) run.warnings.push_back(line);
    };
    std::vector<std::vector<std::byte>> mem(kLayers * kSlots, std::vector<std::byte>(kBytes));
    Balancer b(topo, rank, t, policy, initial, c);
    for (int l = 0; l < kLayers; ++l)
      for (int s = 0; s < kSlots; ++s)
        b.register_expert(l, s,
                          {std::span<std::byte>(mem[static_cast<std::size_t>(l * kSlots + s)])});
    for (int step = 1; step <= kSteps; ++step) {
      // Ranks in step, like an engine's collective dispatch.
      std::vector<std::int64_t> barrier = {1};
      ASSERT_TRUE(t.all_reduce(barrier, ReduceOp::kSum, 5000ms).ok());
      b.before_forward();
      for (int l = 0; l < kLayers; ++l) {
        std::vector<std::int64_t> counts(kSlots, 10);
        if (rank == 0) counts[0] = 400;
        b.record(l, counts);
      }
      std::this_thread::sleep_for(2ms);
      b.after_forward();
      if (step == kStallSteps) {
        run.at_stall = b.counters();
        run.metrics_at_stall = b.metrics_text();
        // Both ranks have looked before the worker is released.
        std::vector<std::int64_t> sync = {1};
        ASSERT_TRUE(t.all_reduce(sync, ReduceOp::kSum, 5000ms).ok());
        if (rank == 0) open = true;
        ASSERT_TRUE(t.all_reduce(sync, ReduceOp::kSum, 5000ms).ok());
      }
    }
    run.at_end = b.counters();
    run.metrics_at_end = b.metrics_text();
  });
  for (int r = 0; r < kRanks; ++r) {
    const RankRun& run = runs[static_cast<std::size_t>(r)];
    const std::string rank = "{rank=\"" + std::to_string(r) + "\"}";
    SCOPED_TRACE("rank " + std::to_string(r));
    // Stalled: no cycle agreed since the start, every one dropped on the worker deadline.
    EXPECT_EQ(run.at_stall.cycles_agreed, 0);
    EXPECT_GT(run.at_stall.cycles_dropped, 0);
    EXPECT_EQ(run.at_stall.stalled, 1);
    EXPECT_EQ(run.at_stall.stall_warnings, 1);  // once, not every step
    EXPECT_EQ(run.at_stall.steps_since_progress, kStallSteps);
    EXPECT_NE(run.at_stall.stall_reason.find("every cycle was dropped"), std::string::npos)
        << run.at_stall.stall_reason;
    // The last cycle's error: this rank's own deadline, or (when the other rank's worker missed
    // its deadline first) the other's, named as such.
    EXPECT_NE(run.at_stall.stall_reason.find("worker did not finish within"), std::string::npos)
        << run.at_stall.stall_reason;
    EXPECT_NE(run.metrics_at_stall.find("swiftbalancer_stalled" + rank + " 1\n"),
              std::string::npos);
    EXPECT_NE(run.metrics_at_stall.find("swiftbalancer_stall_warnings_total" + rank + " 1\n"),
              std::string::npos);
    EXPECT_NE(run.metrics_at_stall.find("swiftbalancer_steps_since_progress" + rank + " 60\n"),
              std::string::npos);
    ASSERT_FALSE(run.warnings.empty());
    EXPECT_NE(run.warnings[0].find("balancing has stalled: no cycle agreed for " +
                                   std::to_string(kInterval * kStallIntervals) + " steps"),
              std::string::npos)
        << run.warnings[0];
    // Released: a cycle is agreed, the gauge clears, and the recovery is logged.
    EXPECT_GT(run.at_end.cycles_agreed, 0);
    EXPECT_EQ(run.at_end.stalled, 0);
    EXPECT_LT(run.at_end.steps_since_progress, kSteps - kStallSteps);
    EXPECT_NE(run.metrics_at_end.find("swiftbalancer_stalled" + rank + " 0\n"), std::string::npos);
    bool resumed = false;
    for (const std::string& w : run.warnings)
      resumed = resumed || w.find("balancing resumed") != std::string::npos;
    EXPECT_TRUE(resumed);
  }
  bool named_here = false;  // at least one rank's worker missed its own deadline
  for (const RankRun& run : runs)
    named_here = named_here || run.at_stall.stall_reason.find(
                                   "worker did not finish within 5 ms;") != std::string::npos;
  EXPECT_TRUE(named_here) << runs[0].at_stall.stall_reason << "\n" << runs[1].at_stall.stall_reason;
}

TEST(Liveness, ABalancedRunNeverWarnsAndOffModeNeverDoes) {
  for (BalancerMode mode : {BalancerMode::kAsync, BalancerMode::kOff}) {
    const Topology topo = Topology::make(kRanks, kSlots);
    const Placement initial = contiguous_placement(topo, kLayers, kExperts);
    std::shared_ptr<const Policy> policy = make_policy("deepseek-global");
    std::vector<BalancerCounters> out(kRanks);
    testing::run_ranks(kRanks, [&](int rank, Transport& t) {
      BalancerConfig c;
      c.mode = mode;
      c.interval_steps = 5;
      c.window_intervals = 1;
      c.decision_poll_steps = 1;
      c.background_worker = false;
      // 30 steps of at least 5 ms: a warning here would mean a worker 150 ms late on a 2x4 load.
      c.stall_intervals = 6;
      c.log = [](LogSeverity, const std::string&) {};
      std::vector<std::vector<std::byte>> mem(kLayers * kSlots, std::vector<std::byte>(kBytes));
      Balancer b(topo, rank, t, policy, initial, c);
      for (int l = 0; l < kLayers; ++l)
        for (int s = 0; s < kSlots; ++s)
          b.register_expert(l, s,
                            {std::span<std::byte>(mem[static_cast<std::size_t>(l * kSlots + s)])});
      for (int step = 1; step <= 60; ++step) {
        std::vector<std::int64_t> barrier = {1};
        ASSERT_TRUE(t.all_reduce(barrier, ReduceOp::kSum, 5000ms).ok());
        b.before_forward();
        for (int l = 0; l < kLayers; ++l) b.record(l, std::vector<std::int64_t>(kSlots, 10));
        std::this_thread::sleep_for(5ms);
        b.after_forward();
      }
      out[static_cast<std::size_t>(rank)] = b.counters();
    });
    for (const BalancerCounters& c : out) {
      EXPECT_EQ(c.stall_warnings, 0) << balancer_mode_name(mode) << ": " << c.stall_reason;
      EXPECT_EQ(c.stalled, 0);
    }
  }
}

}  // namespace
}  // namespace swiftbalancer
