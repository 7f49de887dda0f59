// The balancer's smaller parts on their own: the host expert store, the staging pool, the cycle
// plan, load accounting and the decision cycle.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/gated_policy.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/runtime/cycle_plan.h"
#include "swiftbalancer/runtime/host_expert_store.h"
#include "swiftbalancer/runtime/internal/decision_cycle.h"
#include "swiftbalancer/runtime/internal/load_accounting.h"
#include "swiftbalancer/runtime/internal/staging_pool.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

using namespace std::chrono_literals;

TEST(HostExpertStore, PacksAnExpertsTensorsBackToBack) {
  HostExpertStore store(1, 2);
  std::vector<std::byte> w0(3, std::byte{1}), s0(2, std::byte{2}), w1(3), s1(2);
  store.register_expert(0, 0, {w0, s0});
  EXPECT_EQ(store.ready().code(), StatusCode::kInvalidInput);  // slot 1 missing
  store.register_expert(0, 1, {w1, s1});
  ASSERT_TRUE(store.ready().ok());
  EXPECT_EQ(store.expert_bytes(0), 5u);
  EXPECT_THROW(store.register_expert(0, 1, {w1, s1}), InputError);  // frozen
  std::vector<std::byte> staged(5);
  store.stage(0, 0, staged);
  const std::vector<std::byte> expect = {std::byte{1}, std::byte{1}, std::byte{1}, std::byte{2},
                                         std::byte{2}};
  EXPECT_EQ(staged, expect);
  store.install(staged, 0, 1);
  EXPECT_EQ(w1, w0);
  EXPECT_EQ(s1, s0);
  EXPECT_TRUE(store.fence_done(store.fence()));
}

TEST(HostExpertStore, RejectsSlotsOfDifferentShapes) {
  HostExpertStore store(1, 2);
  std::vector<std::byte> a(4), b(5);
  store.register_expert(0, 0, {a});
  store.register_expert(0, 1, {b});
  const Status s = store.ready();
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("layer 0 slot 1"), std::string::npos) << s.message();
  EXPECT_THROW(store.register_expert(1, 0, {a}), InputError);
  EXPECT_THROW(HostExpertStore(0, 1), InputError);
}

TEST(StagingPool, ReusesRegionsAndGrowsOnlyWhenAsked) {
  HostExpertStore store(1, 1);
  StagingPool pool(store, 2);
  EXPECT_EQ(pool.allocated_bytes(), 0);
  ASSERT_TRUE(pool.reserve(100, Clock::now() + 1s).ok());
  EXPECT_EQ(pool.allocated_bytes(), 200);
  auto a = pool.acquire();
  auto b = pool.acquire();
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->bytes.data(), b->bytes.data());
  EXPECT_FALSE(pool.acquire().has_value());                                       // both in use
  EXPECT_EQ(pool.reserve(200, Clock::now() + 1s).code(), StatusCode::kInternal);  // in use
  pool.release(a->region, store.fence());
  auto c = pool.acquire();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->bytes.data(), a->bytes.data());  // the same memory, reused
  pool.release(b->region, 0);
  pool.release(c->region, 0);
  ASSERT_TRUE(pool.reserve(50, Clock::now() + 1s).ok());  // smaller: kept as is
  EXPECT_EQ(pool.allocated_bytes(), 200);
  ASSERT_TRUE(pool.reserve(300, Clock::now() + 1s).ok());
  EXPECT_EQ(pool.allocated_bytes(), 600);
  pool.park(0);
  EXPECT_EQ(pool.parked_bytes(), 300);
  EXPECT_EQ(pool.allocated_bytes(), 600);
}

// 2 ranks x 2 slots, 3 experts: rank 0 [0 1], rank 1 [2 0] -> rank 0 [0 2], rank 1 [2 1].
TEST(CyclePlan, EachRankGetsItsPartOfTheSamePlan) {
  const Topology topo = Topology::make(2, 2);
  Placement cur(2, 4, 3, {0, 1, 2, 0, /*layer 1 unchanged*/ 0, 1, 2, 0});
  Placement tgt(2, 4, 3, {0, 2, 2, 1, 0, 1, 2, 0});
  const std::vector<std::size_t> eb = {10, 10};
  const CyclePlan p0 = plan_cycle(cur, tgt, topo, 0, {}, eb);
  const CyclePlan p1 = plan_cycle(cur, tgt, topo, 1, {}, eb);
  ASSERT_EQ(p0.layers.size(), 1u);  // layer 1 does not change
  const LayerMove& m0 = p0.layers[0];
  const LayerMove& m1 = p1.layers[0];
  ASSERT_EQ(m0.installs.size(), 1u);
  EXPECT_EQ(m0.installs[0].src_rank, 1);
  EXPECT_EQ(m0.installs[0].src_slot, 0);
  EXPECT_EQ(m0.installs[0].dst_slot, 1);
  ASSERT_EQ(m0.sends.size(), 1u);
  EXPECT_EQ(m0.sends[0].dst_rank, 1);
  EXPECT_EQ(m0.sends[0].src_slot, 1);
  ASSERT_EQ(m1.installs.size(), 1u);
  EXPECT_EQ(m1.installs[0].src_rank, 0);
  EXPECT_EQ(m1.installs[0].dst_slot, 1);
  EXPECT_EQ(m0.bytes_in, 10);
  EXPECT_EQ(m0.bytes_out, 10);
  EXPECT_EQ(p0.staging_region_bytes, 10u);
  EXPECT_EQ(p0.hash, p1.hash);
  EXPECT_EQ(p0.hash, placement_hash(tgt));
  EXPECT_NE(p0.hash, placement_hash(cur));
  EXPECT_EQ(m0.table->expert_at(1), 2);
}

// Two ranks gather; a layer that commits mid-interval keeps its earlier counts on the old
// experts (carry), the later ones go to the new experts.
TEST(LoadAccounting, GathersFoldsAndCarriesCommittedLayers) {
  const Topology topo = Topology::make(2, 1);
  const Placement initial(1, 2, 2, {0, 1});
  const Placement swapped(1, 2, 2, {1, 0});
  std::vector<LoadMatrix> windows(2);
  testing::run_ranks(2, [&](int rank, Transport& t) {
    LoadAccounting acc(topo, initial, 2, 0.0);
    const std::int64_t before[] = {rank == 0 ? 5 : 7};
    acc.record(0, before);
    acc.carry_layer(0);  // the layer commits `swapped` now
    const std::int64_t after[] = {rank == 0 ? 100 : 1000};
    acc.record(0, after);
    ASSERT_TRUE(acc.gather(t, swapped, 2000ms).ok());
    windows[static_cast<std::size_t>(rank)] = acc.window();
  });
  for (const LoadMatrix& w : windows) {
    EXPECT_DOUBLE_EQ(w.at(0, 0), 5 + 1000);  // rank 0 slot: expert 0 before, rank 1 slot after
    EXPECT_DOUBLE_EQ(w.at(0, 1), 7 + 100);
  }
}

TEST(LoadAccountingDeathTest, RecordChecksLayerAndSizeInDebugBuilds) {
#ifdef NDEBUG
  GTEST_SKIP() << "asserts are compiled out of release builds (the Debug CI build runs this)";
#else
  const Topology topo = Topology::make(1, 2);
  LoadAccounting acc(topo, Placement(1, 2, 2, {0, 1}), 1, 0.0);
  const std::int64_t two[] = {1, 2}, three[] = {1, 2, 3};
  acc.record(0, two);
  EXPECT_DEATH(acc.record(1, two), "layer out of range");
  EXPECT_DEATH(acc.record(0, three), "counts size");
#endif
}

// Every rank decides; rank 1's policy output is corrupted: every rank drops the cycle and counts
// an invalid placement, whichever rank it happened on.
TEST(DecisionCycle, AgreesOrDropsOnEveryRank) {
  const Topology topo = Topology::make(2, 2);
  const Placement initial(1, 4, 3, {0, 1, 2, 0});
  LoadMatrix load(1, 3);
  load.at(0, 1) = 100;
  for (bool faulty : {false, true}) {
    std::vector<BalancerCounters> counters(2);
    std::vector<int> outcomes(2);
    testing::run_ranks(2, [&](int rank, Transport& t) {
      BalancerConfig cfg;
      cfg.background_worker = false;
      if (faulty) cfg.fault = {FaultInjection::Kind::kBadPlacement, 1, 0};
      Reporter rep(rank, [](LogSeverity, const std::string&) {});
      HostExpertStore store(1, 2);
      StagingPool pool(store, 2);
      DecisionCycle d(topo, rank, make_policy("deepseek-global"), cfg, rep, pool);
      d.start(load, initial, {8});
      auto out = DecisionCycle::Outcome::kPending;
      for (int i = 0; i < 1000 && out == DecisionCycle::Outcome::kPending; ++i) {
        std::this_thread::sleep_for(1ms);
        out = d.agree(t, /*final_poll=*/false);
      }
      outcomes[static_cast<std::size_t>(rank)] = static_cast<int>(out);
      if (out == DecisionCycle::Outcome::kAgreed) {
        auto plan = d.take_plan();
        EXPECT_EQ(plan->cycle, 0);
        EXPECT_EQ(pool.region_bytes(), plan->staging_region_bytes);  // reserved by the worker
      }
      EXPECT_FALSE(d.active());
      counters[static_cast<std::size_t>(rank)] = rep.snapshot();
    });
    for (int r = 0; r < 2; ++r) {
      const auto want = faulty ? DecisionCycle::Outcome::kDropped : DecisionCycle::Outcome::kAgreed;
      EXPECT_EQ(outcomes[static_cast<std::size_t>(r)], static_cast<int>(want)) << "rank " << r;
      EXPECT_EQ(counters[static_cast<std::size_t>(r)].invalid_placements, faulty ? 1 : 0);
      EXPECT_EQ(counters[static_cast<std::size_t>(r)].cycles_dropped, faulty ? 1 : 0);
    }
    if (faulty) {  // the rank that failed says why; the other names the kind it was told
      EXPECT_NE(counters[1].last_error.find("policy returned an invalid placement"),
                std::string::npos)
          << counters[1].last_error;
      EXPECT_NE(counters[0].last_error.find("another rank's policy returned an invalid placement"),
                std::string::npos)
          << counters[0].last_error;
    }
  }
}

// Rank 1's worker misses its 5 ms deadline while rank 0's answers (rank 0's deadline is a
// minute): both drop the cycle as a worker failure, and rank 0 names the deadline too, not only
// "another rank failed".
TEST(DecisionCycle, ARankWhoseWorkerAnsweredNamesTheOthersDeadline) {
  const Topology topo = Topology::make(2, 2);
  const Placement initial(1, 4, 3, {0, 1, 2, 0});
  LoadMatrix load(1, 3);
  load.at(0, 1) = 100;
  std::atomic<bool> open{false};
  std::vector<BalancerCounters> counters(2);
  std::vector<int> outcomes(2);
  testing::run_ranks(2, [&](int rank, Transport& t) {
    BalancerConfig cfg;
    cfg.background_worker = false;
    cfg.worker_timeout = rank == 1 ? 5ms : 60000ms;
    Reporter rep(rank, [](LogSeverity, const std::string&) {});
    HostExpertStore store(1, 2);
    StagingPool pool(store, 2);
    std::shared_ptr<const Policy> policy =
        rank == 1 ? std::shared_ptr<const Policy>(std::make_shared<testing::GatedPolicy>(open))
                  : std::shared_ptr<const Policy>(make_policy("deepseek-global"));
    DecisionCycle d(topo, rank, policy, cfg, rep, pool);
    d.start(load, initial, {8});
    auto out = DecisionCycle::Outcome::kPending;
    for (int i = 0; i < 5000 && out == DecisionCycle::Outcome::kPending; ++i) {
      std::this_thread::sleep_for(1ms);
      out = d.agree(t, /*final_poll=*/false);
    }
    if (rank == 1) open = true;  // lets the cancelled worker return before d is destroyed
    outcomes[static_cast<std::size_t>(rank)] = static_cast<int>(out);
    counters[static_cast<std::size_t>(rank)] = rep.snapshot();
  });
  for (int r = 0; r < 2; ++r) {
    const BalancerCounters& c = counters[static_cast<std::size_t>(r)];
    EXPECT_EQ(outcomes[static_cast<std::size_t>(r)],
              static_cast<int>(DecisionCycle::Outcome::kDropped))
        << "rank " << r;
    EXPECT_EQ(c.worker_failures, 1) << "rank " << r;
    EXPECT_EQ(c.invalid_placements, 0) << "rank " << r;
    EXPECT_EQ(c.cycles_dropped, 1) << "rank " << r;
  }
  EXPECT_NE(
      counters[1].last_error.find("worker did not finish within 5 ms; cycle dropped on every rank"),
      std::string::npos)
      << counters[1].last_error;
  EXPECT_NE(counters[0].last_error.find(
                "another rank's worker did not finish within the worker deadline (60000 ms here)"),
            std::string::npos)
      << counters[0].last_error;
}

}  // namespace
}  // namespace swiftbalancer
