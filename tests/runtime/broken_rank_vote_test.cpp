// One rank's transport breaks while its collectives keep working (what an NCCL abort does: the
// weights' communicator is gone, the counts and votes go on over the host transport), or one
// rank's expert store fails. Every rank must learn it at the same step, through the layer vote,
// and stop moving there; nobody waits for a collective the broken rank no longer joins
// (issue 19, items 1 and 9). Without the vote, the broken rank stopped alone and every other
// rank's next collectives timed out.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/delegating_transport.h"
#include "swiftbalancer/runtime/balancer.h"
#include "swiftbalancer/runtime/host_expert_store.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

using namespace std::chrono_literals;

constexpr int kRanks = 3, kSlots = 3, kExperts = 8, kLayers = 4, kBytes = 64, kSteps = 60;

// Delegates to the rank's transport; once armed, its posts fail and it says broken(), while its
// collectives keep working.
class BreakingTransport final : public test_support::DelegatingTransport {
 public:
  BreakingTransport(Transport& inner, bool breaks) : DelegatingTransport(inner), breaks_(breaks) {}
  std::string name() const override { return "breaking"; }
  bool broken() const override { return broken_; }
  std::unique_ptr<TransferBatch> post(std::span<const P2POp> ops) override {
    if (breaks_ && ++posts_ >= 2) broken_ = true;  // the second layer it posts breaks it
    if (broken_) return failed_batch(Status::TransportError("communicator aborted"));
    return inner_.post(ops);
  }

 private:
  bool breaks_;
  int posts_ = 0;
  bool broken_ = false;
};

// A host store whose failure() turns non-Ok once the balancer has used it for a move (staging
// reserved, a slot read for a send, a copy): a kept device error.
class FailingStore final : public ExpertStore {
 public:
  FailingStore(int layers, int slots, bool fails) : inner_(layers, slots), fails_(fails) {}
  HostExpertStore& inner() { return inner_; }
  MemoryKind memory_kind() const override { return inner_.memory_kind(); }
  int layers() const override { return inner_.layers(); }
  int local_slots() const override { return inner_.local_slots(); }
  Status ready() override {
    inner_ready_ = true;
    return inner_.ready();
  }
  std::span<const std::size_t> tensor_sizes(int layer) const override {
    return inner_.tensor_sizes(layer);
  }
  std::span<std::byte> tensor(int layer, int slot, int t) override {
    if (fails_ && inner_ready_) failed_ = true;
    return inner_.tensor(layer, slot, t);
  }
  std::unique_ptr<StagingBuffer> allocate_staging(std::size_t bytes) override {
    if (fails_) failed_ = true;  // the worker reserves staging for the first cycle
    return inner_.allocate_staging(bytes);
  }
  void stage(int layer, int slot, std::span<std::byte> dst) override {
    inner_.stage(layer, slot, dst);
    if (fails_) failed_ = true;
  }
  void install(std::span<const std::byte> src, int layer, int slot) override {
    inner_.install(src, layer, slot);
    if (fails_) failed_ = true;
  }
  std::uint64_t fence() override { return inner_.fence(); }
  bool fence_done(std::uint64_t f) override { return inner_.fence_done(f); }
  Status wait_fence(std::uint64_t f, Clock::time_point d) override {
    return inner_.wait_fence(f, d);
  }
  Status failure() override {
    return failed_ ? Status::TransportError("kept device error") : Status::Ok();
  }

 private:
  HostExpertStore inner_;
  bool fails_;
  bool inner_ready_ = false;
  std::atomic<bool> failed_{false};  // set by the worker too
};

struct RankRun {
  BalancerCounters counters;
  std::int64_t stopped_at = -1;  // the step after which balancing_stopped turned 1
  std::int64_t last_commit = -1;
};

enum class Breaks { kTransport, kStore };

std::vector<RankRun> run(Breaks what) {
  const Topology topo = Topology::make(kRanks, kSlots);
  const Placement initial = contiguous_placement(topo, kLayers, kExperts);
  std::shared_ptr<const Policy> policy = make_policy("deepseek-global");
  std::vector<RankRun> runs(kRanks);
  testing::run_ranks(kRanks, [&](int rank, Transport& inner) {
    RankRun& out = runs[static_cast<std::size_t>(rank)];
    BreakingTransport t(inner, what == Breaks::kTransport && rank == 1);
    FailingStore store(kLayers, kSlots, what == Breaks::kStore && rank == 0);
    BalancerConfig c;
    c.interval_steps = 5;
    c.window_intervals = 1;
    c.decision_poll_steps = 1;
    c.layers_per_step = 1;
    c.collective_timeout = 200ms;
    c.transfer_timeout = 200ms;
    c.background_worker = false;
    c.max_collective_failures = 3;
    c.log = [](LogSeverity, const std::string&) {};
    std::vector<std::vector<std::byte>> mem(kLayers * kSlots);
    for (int l = 0; l < kLayers; ++l)
      for (int s = 0; s < kSlots; ++s) {
        auto& m = mem[static_cast<std::size_t>(l * kSlots + s)];
        m.assign(kBytes, static_cast<std::byte>(l * 16 + initial.at(l, topo.slot_id(rank, s))));
        store.inner().register_expert(l, s, {std::span<std::byte>(m)});
      }
    Balancer b(topo, rank, t, policy, initial, store, c);
    for (int step = 1; step <= kSteps; ++step) {
      b.before_forward();
      for (int l = 0; l < kLayers; ++l) {
        std::vector<std::int64_t> counts(kSlots, 10);
        if (rank == 0) counts[0] = 500;  // rank 0's first slot is hot: cycles move layers
        b.record(l, counts);
      }
      std::this_thread::sleep_for(1ms);  // a forward: the decision worker gets to run
      const StepStats st = b.after_forward();
      if (st.layers_committed > 0) out.last_commit = st.step;
      if (out.stopped_at < 0 && b.counters().balancing_stopped > 0) out.stopped_at = st.step;
    }
    out.counters = b.counters();
  });
  return runs;
}

void expect_same_stop(const std::vector<RankRun>& runs) {
  ASSERT_GE(runs[0].stopped_at, 0) << "balancing never stopped";
  for (int r = 0; r < kRanks; ++r) {
    const RankRun& run = runs[static_cast<std::size_t>(r)];
    SCOPED_TRACE("rank " + std::to_string(r));
    EXPECT_EQ(run.counters.balancing_stopped, 1);
    EXPECT_EQ(run.stopped_at, runs[0].stopped_at) << "the ranks stopped at different steps";
    EXPECT_EQ(run.last_commit, runs[0].last_commit) << "the ranks stopped moving apart";
    // Nobody waited for a collective the broken rank no longer joined.
    EXPECT_EQ(run.counters.collective_failures, 0);
    EXPECT_EQ(run.counters.steps, kSteps);
  }
}

TEST(BrokenRank, ABrokenTransportStopsEveryRankAtTheSameStep) {
  expect_same_stop(run(Breaks::kTransport));
}

TEST(BrokenRank, AFailedStoreStopsEveryRankAtTheSameStep) {
  expect_same_stop(run(Breaks::kStore));
}

}  // namespace
}  // namespace swiftbalancer
