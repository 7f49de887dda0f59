// The runtime with N ranks as threads of one process (in-process transport). Every step every
// rank checks the invariants the engine relies on: each local slot's bytes are those of the
// expert its routing table names (weights first, then the table), and all ranks serve the same
// tables at the same step.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/runtime/balancer.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

using namespace std::chrono_literals;

constexpr int kRanks = 4, kSlots = 3, kExperts = 8, kLayers = 3;
const std::size_t kTensorBytes[2] = {96, 24};  // "weights" and "scales": they move together

std::byte pattern(int layer, int expert, int tensor, std::size_t i) {
  return static_cast<std::byte>((layer * 37 + expert * 11 + tensor * 101 + i) & 0xFF);
}

// Skewed load: in layer l, expert l is 6x as hot as the others.
double expert_load(int layer, int expert) {
  return expert == layer ? 600.0 : 100.0;
}

LoadMatrix full_load() {
  LoadMatrix m(kLayers, kExperts);
  for (int l = 0; l < kLayers; ++l)
    for (int e = 0; e < kExperts; ++e) m.at(l, e) = expert_load(l, e);
  return m;
}

std::int64_t table_hash(const RoutingTable& t) {
  std::uint64_t h = 17;  // unsigned: the hash is meant to wrap
  for (ExpertId e : t.phy2log()) h = h * 131 + static_cast<std::uint64_t>(e);
  return static_cast<std::int64_t>(h);
}

struct RankResult {
  BalancerCounters counters;
  Placement final_placement;
  std::vector<StepStats> steps;
  std::vector<bool> commit_foreseen;  // may_commit_next() before each step's after_forward
  std::vector<std::string> logs;
  int bad_slots = 0;
};

struct Cluster {
  BalancerConfig cfg;
  int steps = 60;
  int records_per_layer = 1;
  std::string policy_name = "deepseek-global";
  std::chrono::microseconds forward_time{500};
  // Called on each rank before after_forward of `step` (1-based): lets a test stall a rank.
  std::function<void(int rank, int step)> hook;

  std::vector<RankResult> results = std::vector<RankResult>(kRanks);
  std::vector<std::vector<std::int64_t>> hashes;  // [step][rank * kLayers + layer]

  void run() {
    hashes.assign(static_cast<std::size_t>(steps), std::vector<std::int64_t>(kRanks * kLayers));
    const Topology topo = Topology::make(kRanks, kSlots);
    const Placement initial = contiguous_placement(topo, kLayers, kExperts);
    std::shared_ptr<const Policy> policy = make_policy(policy_name);
    testing::run_ranks(kRanks, [&](int rank, Transport& t) {
      RankResult& res = results[static_cast<std::size_t>(rank)];
      std::mutex log_mu;
      BalancerConfig c = cfg;
      c.log = [&](LogSeverity, const std::string& line) {
        std::lock_guard lock(log_mu);
        res.logs.push_back(line);
      };
      // The engine's expert buffers: [layer][slot][tensor].
      std::vector<std::vector<std::vector<std::vector<std::byte>>>> mem(kLayers);
      Balancer b(topo, rank, t, policy, initial, c);
      for (int l = 0; l < kLayers; ++l) {
        mem[l].resize(kSlots);
        for (int s = 0; s < kSlots; ++s) {
          const int e = initial.at(l, topo.slot_id(rank, s));
          std::vector<std::span<std::byte>> spans;
          for (int k = 0; k < 2; ++k) {
            auto& buf = mem[l][s].emplace_back(kTensorBytes[k]);
            for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = pattern(l, e, k, i);
          }
          for (auto& buf : mem[l][s]) spans.emplace_back(buf);
          b.register_expert(l, s, spans);
        }
      }
      for (int step = 1; step <= steps; ++step) {
        // The engine's dispatch is collective: ranks run in step with each other.
        std::vector<std::int64_t> barrier = {1};
        ASSERT_TRUE(t.all_reduce(barrier, ReduceOp::kSum, 5000ms).ok());
        b.before_forward();
        for (int l = 0; l < kLayers; ++l) {
          const RoutingTable& table = b.routing(l);
          hashes[step - 1][rank * kLayers + l] = table_hash(table);
          const auto reps = replica_counts(table.phy2log(), kExperts);
          std::vector<std::int64_t> counts(kSlots);
          for (int s = 0; s < kSlots; ++s) {
            const int e = table.expert_at(topo.slot_id(rank, s));
            for (int k = 0; k < 2; ++k)
              for (std::size_t i = 0; i < kTensorBytes[k]; ++i)
                if (mem[l][s][k][i] != pattern(l, e, k, i)) {
                  ++res.bad_slots;
                  break;
                }
            counts[s] = static_cast<std::int64_t>(expert_load(l, e) / reps[e]) / records_per_layer;
          }
          for (int r = 0; r < records_per_layer; ++r) b.record(l, counts);
        }
        std::this_thread::sleep_for(forward_time);  // the forward pass: the worker runs meanwhile
        if (hook) hook(rank, step);
        res.commit_foreseen.push_back(b.may_commit_next());
        res.steps.push_back(b.after_forward());
      }
      res.counters = b.counters();
      res.final_placement = b.placement();
    });
  }

  void expect_consistent() const {
    if (::testing::Test::HasFailure() || getenv("SB_TEST_LOGS"))
      for (const auto& line : results[0].logs) std::printf("%s\n", line.c_str());
    for (std::size_t s = 0; s < hashes.size(); ++s)
      for (int r = 1; r < kRanks; ++r)
        for (int l = 0; l < kLayers; ++l)
          ASSERT_EQ(hashes[s][r * kLayers + l], hashes[s][l])
              << "rank " << r << " serves another table for layer " << l << " at step " << s + 1;
    for (const RankResult& r : results) {
      EXPECT_EQ(r.bad_slots, 0);
      EXPECT_EQ(r.final_placement, results[0].final_placement);
      EXPECT_EQ(r.counters.layers_committed, results[0].counters.layers_committed);
      EXPECT_EQ(r.counters.layers_failed, results[0].counters.layers_failed);
      EXPECT_EQ(r.counters.cycles_dropped, results[0].counters.cycles_dropped);
      EXPECT_EQ(r.counters.rebalances, results[0].counters.rebalances);
    }
  }
};

BalancerConfig fast_config(BalancerMode mode) {
  BalancerConfig c;
  c.mode = mode;
  c.interval_steps = 5;
  c.window_intervals = 2;
  c.decision_poll_steps = 1;
  c.transfer_timeout = 2000ms;
  c.collective_timeout = 5000ms;
  c.worker_timeout = 5000ms;
  c.background_worker = false;  // a nice-19 worker can starve on a busy 2-core test machine
  return c;
}

double mean_imbalance(const Placement& p) {
  return balance_summary(p, full_load(), Topology::make(kRanks, kSlots)).mean_imbalance;
}

TEST(Balancer, AsyncRebalancesLayerByLayerOnEveryRankAtOnce) {
  Cluster c;
  c.cfg = fast_config(BalancerMode::kAsync);
  c.run();
  c.expect_consistent();
  const RankResult& r = c.results[0];
  EXPECT_GE(r.counters.rebalances, 1);
  EXPECT_EQ(r.counters.errors, 0) << r.counters.last_error;
  EXPECT_GT(r.counters.bytes_sent + r.counters.bytes_received, 0);
  const Placement initial = contiguous_placement(Topology::make(kRanks, kSlots), kLayers, kExperts);
  EXPECT_LT(mean_imbalance(r.final_placement), mean_imbalance(initial));
  EXPECT_LT(mean_imbalance(r.final_placement), 1.1);
  // At most layers_per_step layers are committed in any one step.
  for (const StepStats& s : r.steps) EXPECT_LE(s.layers_committed, 1);
}

// Staging is a pool of layers_per_step + 1 layer regions, each at most one layer's experts.
TEST(Balancer, StagingStaysWithinTheLayersInFlight) {
  const std::int64_t expert_bytes = static_cast<std::int64_t>(kTensorBytes[0] + kTensorBytes[1]);
  for (BalancerMode mode : {BalancerMode::kAsync, BalancerMode::kSync}) {
    for (int lps : {1, 2}) {
      Cluster c;
      c.cfg = fast_config(mode);
      c.cfg.layers_per_step = lps;
      c.steps = 30;
      c.run();
      c.expect_consistent();
      for (const RankResult& r : c.results) {
        EXPECT_GE(r.counters.rebalances, 1);
        EXPECT_GT(r.counters.peak_staging_bytes, 0);
        EXPECT_LE(r.counters.peak_staging_bytes, (lps + 1) * kSlots * expert_bytes)
            << balancer_mode_name(mode) << " layers_per_step " << lps;
        EXPECT_EQ(r.counters.parked_staging_bytes, 0);
      }
    }
  }
}

TEST(Balancer, MultipleRecordsPerStepAccumulate) {
  Cluster c;
  c.cfg = fast_config(BalancerMode::kAsync);
  c.records_per_layer = 3;  // a layer that runs three times in a step (MTP / chunked prefill)
  c.steps = 30;
  c.run();
  c.expect_consistent();
  EXPECT_GE(c.results[0].counters.rebalances, 1);
  EXPECT_LT(mean_imbalance(c.results[0].final_placement), 1.1);
}

TEST(Balancer, SyncModeMovesEveryLayerInTheGatherStep) {
  Cluster c;
  c.cfg = fast_config(BalancerMode::kSync);
  c.steps = 12;
  c.run();
  c.expect_consistent();
  const RankResult& r = c.results[0];
  EXPECT_GE(r.counters.rebalances, 1);
  EXPECT_EQ(r.steps[4].layers_committed, kLayers);  // step 5: gather, decide, move, commit
  EXPECT_LT(mean_imbalance(r.final_placement), 1.1);
}

// An engine that keeps its counts on a device hands them over only at the steps the balancer
// names: every step that commits a layer must be one of them (or its counts are folded onto the
// new placement), and in async mode only the few steps that read a layer vote are.
TEST(Balancer, ForeseesEveryStepThatCommits) {
  for (BalancerMode mode : {BalancerMode::kAsync, BalancerMode::kSync}) {
    Cluster c;
    c.cfg = fast_config(mode);
    c.steps = 40;
    c.run();
    c.expect_consistent();
    for (const RankResult& r : c.results) {
      ASSERT_EQ(r.commit_foreseen.size(), r.steps.size());
      int foreseen = 0, committing = 0;
      for (std::size_t s = 0; s < r.steps.size(); ++s) {
        const bool commits = r.steps[s].layers_committed + r.steps[s].layers_failed > 0;
        EXPECT_TRUE(!commits || r.commit_foreseen[s])
            << balancer_mode_name(mode) << ": step " << s + 1 << " committed unforeseen";
        foreseen += r.commit_foreseen[s] ? 1 : 0;
        committing += commits ? 1 : 0;
      }
      EXPECT_GE(committing, 1) << balancer_mode_name(mode);
      if (mode == BalancerMode::kAsync) {
        EXPECT_EQ(foreseen, committing);
      } else {  // sync foresees its gather steps, committing or not (one every interval_steps)
        EXPECT_LE(foreseen, c.steps / 5 + committing);
      }
    }
  }
  Cluster off;
  off.cfg = fast_config(BalancerMode::kOff);
  off.steps = 12;
  off.run();
  for (const RankResult& r : off.results)
    for (bool f : r.commit_foreseen) EXPECT_FALSE(f);
}

TEST(Balancer, OffModeNeverMoves) {
  Cluster c;
  c.cfg = fast_config(BalancerMode::kOff);
  c.steps = 12;
  c.run();
  c.expect_consistent();
  EXPECT_EQ(c.results[0].counters.gathers, 0);
  EXPECT_EQ(c.results[0].final_placement,
            contiguous_placement(Topology::make(kRanks, kSlots), kLayers, kExperts));
}

// In async mode the step at which a cycle is agreed depends on the worker's speed, so only the
// stop-the-world mode is reproducible step for step.
TEST(Balancer, SyncRunsAreReproducible) {
  Cluster a, b;
  a.cfg = b.cfg = fast_config(BalancerMode::kSync);
  a.steps = b.steps = 30;
  a.run();
  b.run();
  EXPECT_EQ(a.results[0].final_placement, b.results[0].final_placement);
}

// A worker that looks for its job every 2 ms (worker_poll: the serving thread wakes no one)
// decides what a woken one does, and in time: the run lasts some tens of ms and its first cycle
// starts at step 5, so it rebalances only if the worker finds the job at its poll (its idle wait
// is otherwise 100 ms).
TEST(Balancer, PolledWorkerDecidesAsAWokenOne) {
  Cluster woken, polled;
  woken.cfg = polled.cfg = fast_config(BalancerMode::kAsync);
  polled.cfg.worker_poll = 2ms;
  woken.run();
  polled.run();
  polled.expect_consistent();
  const RankResult& r = polled.results[0];
  EXPECT_GE(r.counters.rebalances, 1);
  EXPECT_EQ(r.counters.errors, 0) << r.counters.last_error;
  EXPECT_EQ(r.counters.cycles_dropped, 0);
  EXPECT_EQ(r.final_placement, woken.results[0].final_placement);
}

TEST(Balancer, WorkerPollMustBeUnderTheWorkerTimeout) {
  BalancerConfig c = fast_config(BalancerMode::kAsync);
  for (const Millis bad : {Millis(-1), c.worker_timeout, c.worker_timeout + Millis(1)}) {
    c.worker_poll = bad;
    EXPECT_THROW(validate_config(c), InputError) << bad.count();
  }
  c.worker_poll = c.worker_timeout - Millis(1);
  EXPECT_NO_THROW(validate_config(c));
}

// The policy's threads change nothing a rank serves: swift from the placement in service,
// with 1 and 3 threads per rank, serves the same tables at every step.
TEST(Balancer, PolicyThreadsChangeNoDecision) {
  Cluster a, b;
  a.cfg = b.cfg = fast_config(BalancerMode::kSync);
  a.policy_name = b.policy_name = "swift";
  b.cfg.policy_threads = 3;
  a.steps = b.steps = 30;
  a.run();
  b.run();
  b.expect_consistent();
  EXPECT_EQ(a.hashes, b.hashes);
  EXPECT_GE(b.results[0].counters.rebalances, 1);
  EXPECT_LT(
      mean_imbalance(b.results[0].final_placement),
      mean_imbalance(contiguous_placement(Topology::make(kRanks, kSlots), kLayers, kExperts)));
}

TEST(Balancer, TransferTimeoutKeepsTheLayerOldOnEveryRank) {
  Cluster c;
  c.cfg = fast_config(BalancerMode::kAsync);
  c.cfg.transfer_timeout = 50ms;
  c.cfg.fault = {FaultInjection::Kind::kTransferTimeout, /*rank=*/0, /*cycle=*/0};
  c.run();
  c.expect_consistent();
  for (const RankResult& r : c.results) {
    EXPECT_EQ(r.counters.layers_failed, 1);
    EXPECT_EQ(r.counters.transfer_failures, 1);
    EXPECT_GE(r.counters.rebalances, 1);
  }
  // Later cycles move the failed layer too: serving went on and balance was reached.
  EXPECT_LT(mean_imbalance(c.results[0].final_placement), 1.1);
}

TEST(Balancer, WorkerExceptionDropsTheCycleEverywhere) {
  Cluster c;
  c.cfg = fast_config(BalancerMode::kAsync);
  c.cfg.fault = {FaultInjection::Kind::kWorkerException, /*rank=*/2, /*cycle=*/0};
  c.run();
  c.expect_consistent();
  for (const RankResult& r : c.results) {
    // Every rank counts the failure under its kind, not only the rank it happened on.
    EXPECT_EQ(r.counters.worker_failures, 1);
    EXPECT_EQ(r.counters.cycles_dropped, 1);
    EXPECT_GE(r.counters.rebalances, 1);
    // Cycle 0 (gathered at step 5) is never agreed: no agreement before the next gather.
    for (int step = 6; step < 10; ++step)
      EXPECT_FALSE(r.steps[static_cast<std::size_t>(step - 1)].cycle_agreed) << "step " << step;
  }
  bool logged = false;
  for (const auto& line : c.results[2].logs)
    logged = logged || line.find("injected worker exception") != std::string::npos;
  EXPECT_TRUE(logged);
}

TEST(Balancer, InvalidPolicyOutputIsRejected) {
  for (BalancerMode mode : {BalancerMode::kAsync, BalancerMode::kSync}) {
    Cluster c;
    c.cfg = fast_config(mode);
    c.cfg.fault = {FaultInjection::Kind::kBadPlacement, /*rank=*/1, /*cycle=*/0};
    // Cycle 1 (gathered at step 10) must decide and move its layers before the run ends. In
    // async mode that takes a few steps of the worker: 20 steps left too little room under TSan
    // on a loaded 2-core machine, where a step lasts about a millisecond.
    c.steps = 60;
    c.run();
    c.expect_consistent();
    for (const RankResult& r : c.results) {
      EXPECT_EQ(r.counters.invalid_placements, 1);
      EXPECT_EQ(r.counters.cycles_dropped, 1);
      EXPECT_GE(r.counters.rebalances, 1);
    }
  }
}

TEST(Balancer, PeerThatStopsAnsweringDropsTheCycleEverywhere) {
  Cluster c;
  c.cfg = fast_config(BalancerMode::kAsync);
  c.cfg.collective_timeout = 60ms;
  // Rank 3 stalls at step 6, the first decision agreement after the gather at step 5.
  c.hook = [](int rank, int step) {
    if (rank == 3 && step == 6) std::this_thread::sleep_for(250ms);
  };
  c.steps = 45;  // room for cycle 1 (gathered at step 10) to finish even under TSan
  c.run();
  c.expect_consistent();
  for (const RankResult& r : c.results) {
    EXPECT_EQ(r.counters.collective_failures, 1);
    EXPECT_EQ(r.counters.cycles_dropped, 1);
    EXPECT_GE(r.counters.rebalances, 1);
  }
}

TEST(Balancer, RejectsBadSetup) {
  InProcessWorld world(2);
  auto t0 = world.transport(0);
  const Topology topo = Topology::make(2, 2);
  const Placement p = contiguous_placement(topo, 1, 4);
  std::shared_ptr<const Policy> pol = make_policy("deepseek-global");
  EXPECT_THROW(Balancer(topo, 1, *t0, pol, p), InputError);  // rank mismatch
  EXPECT_THROW(Balancer(Topology::make(3, 2), 0, *t0, pol, p), InputError);
  EXPECT_THROW(Balancer(topo, 0, *t0, nullptr, p), InputError);
  Placement bad = p;
  bad.at(0, 0) = 9;
  EXPECT_THROW(Balancer(topo, 0, *t0, pol, bad), InputError);
  Balancer b(topo, 0, *t0, pol, p);
  std::vector<std::byte> buf(8);
  EXPECT_THROW(b.register_expert(0, 2, {std::span<std::byte>(buf)}), InputError);
  EXPECT_THROW(b.register_expert(0, 0, {}), InputError);
  b.register_expert(0, 0, {std::span<std::byte>(buf)});
  EXPECT_THROW(b.before_forward(), InputError);  // slot 1 not registered
  EXPECT_THROW(parse_balancer_mode("fast"), InputError);
  EXPECT_THROW(parse_fault_kind("meteor"), InputError);
  EXPECT_EQ(parse_fault_kind("bad-placement"), FaultInjection::Kind::kBadPlacement);
}

}  // namespace
}  // namespace swiftbalancer
