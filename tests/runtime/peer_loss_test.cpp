// A rank that stops answering: its serving thread stops calling the balancer in the middle of a
// cycle. Every other rank's collectives time out; after max_collective_failures in a row the
// balancer falls back to recording only with the placement in service, logs it once, and
// serving goes on without ever waiting on a collective again.
#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "swiftbalancer/runtime/balancer.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

using namespace std::chrono_literals;

constexpr int kRanks = 4, kSlots = 3, kExperts = 8, kLayers = 3, kBytes = 64;
constexpr int kStopAfter = 12;  // rank 3's last step: cycle 1 (gathered at 10) is moving then
constexpr int kSteps = 60;

std::byte pattern(int layer, int expert) {
  return static_cast<std::byte>(layer * 16 + expert);
}

struct RankRun {
  BalancerCounters counters;
  std::vector<StepStats> steps;
  int stop_logs = 0;
  int bad_slots = 0;
  bool placement_valid = false;
};

TEST(Balancer, FallsBackToRecordingOnlyWhenARankStopsAnswering) {
  const Topology topo = Topology::make(kRanks, kSlots);
  const Placement initial = contiguous_placement(topo, kLayers, kExperts);
  std::shared_ptr<const Policy> policy = make_policy("deepseek-global");
  std::vector<RankRun> runs(kRanks);
  testing::run_ranks(kRanks, [&](int rank, Transport& t) {
    RankRun& run = runs[static_cast<std::size_t>(rank)];
    BalancerConfig c;
    c.interval_steps = 5;
    c.window_intervals = 1;
    c.decision_poll_steps = 1;
    c.collective_timeout = 60ms;
    c.transfer_timeout = 60ms;
    c.background_worker = false;
    c.max_collective_failures = 3;
    std::mutex mu;
    c.log = [&](LogSeverity sev, const std::string& line) {
      std::lock_guard lock(mu);
      if (sev == LogSeverity::kError && line.find("balancing stops") != std::string::npos)
        ++run.stop_logs;
    };
    std::vector<std::vector<std::byte>> mem(kLayers * kSlots);
    Balancer b(topo, rank, t, policy, initial, c);
    for (int l = 0; l < kLayers; ++l)
      for (int s = 0; s < kSlots; ++s) {
        auto& m = mem[static_cast<std::size_t>(l * kSlots + s)];
        m.assign(kBytes, pattern(l, initial.at(l, topo.slot_id(rank, s))));
        b.register_expert(l, s, {std::span<std::byte>(m)});
      }
    const int steps = rank == kRanks - 1 ? kStopAfter : kSteps;
    for (int step = 1; step <= steps; ++step) {
      b.before_forward();
      for (int l = 0; l < kLayers; ++l) {
        std::vector<std::int64_t> counts(kSlots, 10);
        if (rank == 0) counts[0] = 500;  // skew: rank 0's first slot is hot
        b.record(l, counts);
        for (int s = 0; s < kSlots; ++s) {
          const int e = b.routing(l).expert_at(topo.slot_id(rank, s));
          if (mem[static_cast<std::size_t>(l * kSlots + s)][0] != pattern(l, e)) ++run.bad_slots;
        }
      }
      std::this_thread::sleep_for(1ms);
      run.steps.push_back(b.after_forward());
    }
    run.counters = b.counters();
    run.placement_valid = validate_placement(b.placement(), topo).ok();
  });
  for (int r = 0; r + 1 < kRanks; ++r) {
    const RankRun& run = runs[static_cast<std::size_t>(r)];
    SCOPED_TRACE("rank " + std::to_string(r));
    EXPECT_EQ(run.counters.balancing_stopped, 1);
    EXPECT_EQ(run.stop_logs, 1);  // logged once
    EXPECT_GE(run.counters.collective_failures, 3);
    EXPECT_EQ(run.counters.steps, kSteps);  // serving went on
    EXPECT_EQ(run.bad_slots, 0);
    EXPECT_TRUE(run.placement_valid);
    // From some step on, no step waits on the other ranks any more.
    std::size_t last_wait = 0;
    for (std::size_t i = 0; i < run.steps.size(); ++i)
      if (run.steps[i].wait_ns > 0 || run.steps[i].gathered) last_wait = i + 1;
    EXPECT_LT(last_wait, static_cast<std::size_t>(kSteps - 20)) << "still waiting at the end";
  }
}

}  // namespace
}  // namespace swiftbalancer
