// The serving thread never waits for the device (issue 19, item 7). A store whose fences finish
// some steps after they are taken (what a device store does while the GPU runs behind the
// host) is emulated on the host store: its fence query says "not done" until the test says so,
// and its wait_fence counts every call made from the serving thread. Without the fix,
// StagingPool::acquire waited on such a fence (a host wait for the GPU before every forward);
// now a post whose staging is not drained is deferred, at the same step on every rank, and
// moves the same bytes a step later.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "swiftbalancer/runtime/balancer.h"
#include "swiftbalancer/runtime/host_expert_store.h"
#include "swiftbalancer/runtime/internal/staging_pool.h"
#include "transport/rank_threads.h"

namespace swiftbalancer {
namespace {

using namespace std::chrono_literals;

// A host store whose fences are done only once complete_upto() covered them.
class LaggingFenceStore final : public ExpertStore {
 public:
  LaggingFenceStore(int layers, int slots) : inner_(layers, slots) {}
  HostExpertStore& inner() { return inner_; }
  void set_serving_thread() { serving_ = std::this_thread::get_id(); }
  void complete_upto(std::uint64_t f) {
    if (f > done_upto_.load()) done_upto_.store(f);
  }
  std::uint64_t taken() const { return taken_.load(); }
  int serving_waits() const { return serving_waits_.load(); }

  MemoryKind memory_kind() const override { return inner_.memory_kind(); }
  int layers() const override { return inner_.layers(); }
  int local_slots() const override { return inner_.local_slots(); }
  Status ready() override { return inner_.ready(); }
  std::span<const std::size_t> tensor_sizes(int layer) const override {
    return inner_.tensor_sizes(layer);
  }
  std::span<std::byte> tensor(int layer, int slot, int t) override {
    return inner_.tensor(layer, slot, t);
  }
  std::unique_ptr<StagingBuffer> allocate_staging(std::size_t bytes) override {
    return inner_.allocate_staging(bytes);
  }
  // The copies themselves are done at once (host memory): what lags is only what the fence says,
  // which is all the pool and the mover may look at.
  void stage(int layer, int slot, std::span<std::byte> dst) override {
    inner_.stage(layer, slot, dst);
  }
  void install(std::span<const std::byte> src, int layer, int slot) override {
    inner_.install(src, layer, slot);
  }
  std::uint64_t fence() override { return ++taken_; }
  bool fence_done(std::uint64_t f) override { return f <= done_upto_.load(); }
  Status wait_fence(std::uint64_t f, Clock::time_point deadline) override {
    if (std::this_thread::get_id() == serving_) ++serving_waits_;
    while (!fence_done(f)) {
      if (Clock::now() >= deadline) return Status::Timeout("fence not done");
      std::this_thread::sleep_for(100us);
    }
    return Status::Ok();
  }

 private:
  HostExpertStore inner_;
  std::thread::id serving_;
  std::atomic<std::uint64_t> taken_{0}, done_upto_{0};
  std::atomic<int> serving_waits_{0};
};

// A rank that receives nothing reserves no memory; its regions still count as ready, or the
// minimum over ranks would defer every post for ever (seen with the torch store: a rank with
// only sends in a cycle).
TEST(StagingPool, ARankThatStagesNothingHasEveryRegionReady) {
  LaggingFenceStore store(1, 1);
  std::vector<std::byte> mem(8);
  store.inner().register_expert(0, 0, {std::span<std::byte>(mem)});
  ASSERT_TRUE(store.ready().ok());
  StagingPool pool(store, 3);
  ASSERT_TRUE(pool.reserve(0, Clock::now() + 1s).ok());
  EXPECT_EQ(pool.ready_regions(), 3);
  ASSERT_TRUE(pool.reserve(64, Clock::now() + 1s).ok());
  EXPECT_EQ(pool.ready_regions(), 3);
}

TEST(StagingPool, AcquireNeverWaitsForAPendingFence) {
  LaggingFenceStore store(1, 1);
  std::vector<std::byte> mem(8);
  store.inner().register_expert(0, 0, {std::span<std::byte>(mem)});
  ASSERT_TRUE(store.ready().ok());
  store.set_serving_thread();
  StagingPool pool(store, 2);
  ASSERT_TRUE(pool.reserve(64, Clock::now() + 1s).ok());
  EXPECT_EQ(pool.ready_regions(), 2);
  auto a = pool.acquire();
  auto b = pool.acquire();
  ASSERT_TRUE(a && b);
  const std::uint64_t fa = store.fence(), fb = store.fence();
  pool.release(a->region, fa);
  pool.release(b->region, fb);
  // Both regions are still being drained: no region, at once, and no wait for the fence.
  const auto t0 = Clock::now();
  EXPECT_FALSE(pool.acquire().has_value());
  EXPECT_EQ(pool.ready_regions(), 0);
  EXPECT_LT(Clock::now() - t0, 100ms);
  EXPECT_EQ(store.serving_waits(), 0);
  // Once the first fence is done, its region (the same memory) is handed out again.
  store.complete_upto(fa);
  EXPECT_EQ(pool.ready_regions(), 1);
  auto c = pool.acquire();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->region, a->region);
  EXPECT_EQ(c->bytes.data(), a->bytes.data());
  EXPECT_FALSE(pool.acquire().has_value());
  EXPECT_EQ(store.serving_waits(), 0);
  // The worker's reserve() is where a host wait may happen: bounded, it reports the fence.
  pool.release(c->region, store.fence());
  EXPECT_EQ(pool.reserve(64, Clock::now() + 5ms).code(), StatusCode::kTimeout);
  store.complete_upto(store.taken());
  EXPECT_TRUE(pool.reserve(64, Clock::now() + 1s).ok());
  EXPECT_EQ(pool.ready_regions(), 2);
}

constexpr int kRanks = 2, kSlots = 3, kExperts = 5, kLayers = 6, kBytes = 48, kSteps = 200;
// A fence taken during step s is done from the start of step s + kLag: the device runs about
// three steps behind the host: a post finds the staging of two steps ago still draining.
constexpr int kLag = 3;

std::byte expert_byte(int layer, int expert, int i) {
  return static_cast<std::byte>(layer * 16 + expert + 7 * i);
}

struct RankRun {
  BalancerCounters counters;
  int serving_waits = -1;
  int wrong_bytes = -1;
  std::vector<std::int64_t> deferred_by_step;
};

TEST(DeferredPost, TheServingThreadNeverWaitsAndDeferredLayersMoveTheSameBytesLater) {
  const Topology topo = Topology::make(kRanks, kSlots);
  const Placement initial = contiguous_placement(topo, kLayers, kExperts);
  std::shared_ptr<const Policy> policy = make_policy("deepseek-global");
  std::vector<RankRun> runs(kRanks);
  testing::run_ranks(kRanks, [&](int rank, Transport& t) {
    RankRun& out = runs[static_cast<std::size_t>(rank)];
    LaggingFenceStore store(kLayers, kSlots);
    store.set_serving_thread();
    BalancerConfig c;
    c.mode = BalancerMode::kAsync;
    c.interval_steps = 10;
    c.window_intervals = 1;
    c.decision_poll_steps = 1;
    c.layers_per_step = 1;
    c.collective_timeout = 2s;
    c.transfer_timeout = 2s;
    c.background_worker = false;  // a niced worker may starve on a loaded machine
    c.log = [](LogSeverity, const std::string&) {};
    std::vector<std::vector<std::byte>> mem(kLayers * kSlots);
    for (int l = 0; l < kLayers; ++l)
      for (int s = 0; s < kSlots; ++s) {
        auto& m = mem[static_cast<std::size_t>(l * kSlots + s)];
        m.resize(kBytes);
        for (int i = 0; i < kBytes; ++i)
          m[static_cast<std::size_t>(i)] = expert_byte(l, initial.at(l, topo.slot_id(rank, s)), i);
        store.inner().register_expert(l, s, {std::span<std::byte>(m)});
      }
    Balancer b(topo, rank, t, policy, initial, store, c);
    std::map<int, std::uint64_t> taken_by_end;  // fences taken by the end of each step
    for (int step = 1; step <= kSteps; ++step) {
      if (auto it = taken_by_end.find(step - kLag); it != taken_by_end.end())
        store.complete_upto(it->second);
      b.before_forward();
      for (int l = 0; l < kLayers; ++l) {
        std::vector<std::int64_t> counts(kSlots, 10);
        if (rank == 0) counts[static_cast<std::size_t>(l % kSlots)] = 400;  // skewed: it moves
        b.record(l, counts);
      }
      std::this_thread::sleep_for(1ms);  // a forward: the decision worker gets to run
      b.after_forward();
      taken_by_end[step] = store.taken();
      out.deferred_by_step.push_back(b.counters().posts_deferred);
    }
    out.counters = b.counters();
    out.serving_waits = store.serving_waits();
    // Every slot holds, byte for byte, the expert the committed placement says.
    out.wrong_bytes = 0;
    for (int l = 0; l < kLayers; ++l)
      for (int s = 0; s < kSlots; ++s) {
        const int e = b.placement().at(l, topo.slot_id(rank, s));
        const auto& m = mem[static_cast<std::size_t>(l * kSlots + s)];
        for (int i = 0; i < kBytes; ++i)
          out.wrong_bytes += m[static_cast<std::size_t>(i)] != expert_byte(l, e, i) ? 1 : 0;
      }
  });
  for (int r = 0; r < kRanks; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    const RankRun& run = runs[static_cast<std::size_t>(r)];
    EXPECT_EQ(run.serving_waits, 0) << "the serving thread waited for a fence";
    EXPECT_GT(run.counters.posts_deferred, 0) << "no post was deferred: the test shows nothing";
    EXPECT_GT(run.counters.layers_committed, 0) << run.counters.last_error;
    EXPECT_EQ(run.counters.layers_failed, 0);
    EXPECT_EQ(run.counters.collective_failures, 0);
    EXPECT_EQ(run.wrong_bytes, 0);
    // Deferred at the same steps on every rank: their posts still pair up.
    EXPECT_EQ(run.deferred_by_step, runs[0].deferred_by_step);
    EXPECT_EQ(run.counters.layers_committed, runs[0].counters.layers_committed);
  }
}

}  // namespace
}  // namespace swiftbalancer
