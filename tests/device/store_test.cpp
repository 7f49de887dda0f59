// DeviceExpertStore: copies ordered on the side stream and seen by the engine's stream after the
// fence; host memory refused; staging parked (kept allocated, never handed out again) when a
// failed transfer cannot be cancelled.
#include "swiftbalancer/device/device_expert_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

#include "device/device_support.h"
#include "swiftbalancer/runtime/internal/layer_mover.h"

namespace swiftbalancer::device {
namespace {

using namespace std::chrono_literals;
using swiftbalancer::testing::DeviceBytes;
using swiftbalancer::testing::Stream;

std::vector<std::byte> filled(std::size_t n, int seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((seed * 31 + i * 7) & 0xFF);
  return v;
}

TEST(DeviceExpertStore, StagedExpertInstalledIsSeenByTheEngineStream) {
  SKIP_WITHOUT_DEVICE();
  Stream engine;
  DeviceExpertStore store(1, 3, engine.s);
  const std::size_t sizes[2] = {4096, 64};  // weights and scales move together
  std::vector<std::unique_ptr<DeviceBytes>> mem;
  for (int s = 0; s < 3; ++s) {
    std::vector<std::span<std::byte>> tensors;
    for (int k = 0; k < 2; ++k) {
      mem.push_back(std::make_unique<DeviceBytes>(sizes[k]));
      mem.back()->upload(filled(sizes[k], s * 2 + k).data());
      tensors.push_back(mem.back()->span());
    }
    store.register_expert(0, s, tensors);
  }
  ASSERT_TRUE(store.ready().ok());
  EXPECT_EQ(store.expert_bytes(0), sizes[0] + sizes[1]);
  auto staging = store.allocate_staging(store.expert_bytes(0));
  EXPECT_EQ(staging->memory_kind(), MemoryKind::kDevice);
  store.stage(0, 0, staging->bytes());
  store.install(staging->bytes(), 0, 2);
  const std::uint64_t f = store.fence();
  // The engine stream waits on the fence: a read queued there now sees slot 0's bytes in slot 2.
  std::vector<std::byte> got(sizes[0]);
  ASSERT_EQ(cudaMemcpyAsync(got.data(), mem[4]->ptr, sizes[0], cudaMemcpyDeviceToHost, engine.s),
            cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(engine.s), cudaSuccess);
  EXPECT_EQ(got, filled(sizes[0], 0));
  EXPECT_TRUE(store.wait_fence(f, Clock::now() + 10s).ok());
  EXPECT_TRUE(store.fence_done(f));
  EXPECT_EQ(mem[5]->download(), filled(sizes[1], 1));
  EXPECT_EQ(mem[0]->download(), filled(sizes[0], 0));  // the source is untouched
  // Many fences (more than the event ring): old ones read as done once a later one is.
  std::uint64_t last = 0;
  for (int i = 0; i < 200; ++i) last = store.fence();
  EXPECT_TRUE(store.wait_fence(last, Clock::now() + 10s).ok());
  EXPECT_TRUE(store.fence_done(f + 1));
  EXPECT_EQ(store.wait_fence(last + 1, Clock::now() + 10ms).code(), StatusCode::kInvalidInput);
}

TEST(DeviceExpertStore, RefusesHostMemoryAndMissingExperts) {
  SKIP_WITHOUT_DEVICE();
  Stream engine;
  DeviceExpertStore store(1, 2, engine.s);
  std::vector<std::byte> host(64);
  EXPECT_THROW(store.register_expert(0, 0, {std::span<std::byte>(host)}), InputError);
  EXPECT_THROW(store.register_expert(1, 0, {}), InputError);
  DeviceBytes d(64);
  store.register_expert(0, 0, {d.span()});
  const Status s = store.ready();
  EXPECT_EQ(s.code(), StatusCode::kInvalidInput);
  EXPECT_NE(s.message().find("layer 0 slot 1"), std::string::npos) << s.message();
}

// A batch that never completes and cannot be cancelled (an NCCL communicator after an abort).
class StuckBatch final : public TransferBatch {
 public:
  State poll() override { return State::kPending; }
  Status wait(Clock::time_point deadline) override {
    std::this_thread::sleep_until(deadline);
    return Status::Timeout("stuck");
  }
  Status cancel() override { return Status::TransportError("communicator aborted"); }
};

// Two device ranks seen from rank 0; collectives answer as if rank 1 agreed.
class StuckTransport final : public Transport {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string name() const override { return "stuck"; }
  bool broken() const override { return false; }
  bool can_move(MemoryKind kind) const override { return kind == MemoryKind::kDevice; }
  Status all_gather(std::span<const std::int64_t> mine, std::span<std::int64_t> out,
                    Millis) override {
    std::copy(mine.begin(), mine.end(), out.begin());
    std::copy(mine.begin(), mine.end(), out.begin() + static_cast<std::ptrdiff_t>(mine.size()));
    return Status::Ok();
  }
  Status all_reduce(std::span<std::int64_t>, ReduceOp, Millis) override { return Status::Ok(); }
  std::unique_ptr<TransferBatch> post(std::span<const P2POp> ops) override {
    if (Status s = check_p2p_ops(ops, *this); !s.ok()) return failed_batch(s);
    last_ops.assign(ops.begin(), ops.end());
    return std::make_unique<StuckBatch>();
  }
  std::vector<P2POp> last_ops;
};

TEST(DeviceExpertStore, StagingIsParkedWhenACancelFails) {
  SKIP_WITHOUT_DEVICE();
  const Topology topo = Topology::make(2, 2);
  Placement initial(1, 4, 4), target(1, 4, 4);
  const ExpertId old_row[] = {0, 1, 2, 3}, new_row[] = {2, 1, 0, 3};  // rank 0 gets expert 2
  std::copy(std::begin(old_row), std::end(old_row), initial.layer(0).begin());
  std::copy(std::begin(new_row), std::end(new_row), target.layer(0).begin());
  const std::size_t bytes = 1 << 16;
  Stream engine;
  DeviceExpertStore store(1, 2, engine.s);
  std::vector<std::unique_ptr<DeviceBytes>> mem;
  for (int s = 0; s < 2; ++s) {
    mem.push_back(std::make_unique<DeviceBytes>(bytes));
    mem.back()->upload(std::vector<std::byte>(bytes, std::byte(s)).data());
    store.register_expert(0, s, {mem.back()->span()});
  }
  ASSERT_TRUE(store.ready().ok());
  ServingState state(initial);
  LoadAccounting accounting(topo, initial, 1, 0.0);
  Reporter reporter(0, [](LogSeverity, const std::string&) {});
  BalancerConfig cfg;
  cfg.transfer_timeout = 30ms;
  StagingPool pool(store, 2);
  StuckTransport t;
  {
    LayerMover mover(0, 1, t, store, pool, state, accounting, cfg, reporter);
    const std::vector<std::size_t> eb = {bytes};
    auto plan = std::make_unique<CyclePlan>(plan_cycle(initial, target, topo, 0, {}, eb));
    ASSERT_TRUE(pool.reserve(plan->staging_region_bytes, Clock::now() + 1s).ok());
    mover.begin(std::move(plan));
    StepStats st;
    mover.post(1, st);
    std::byte* recv_into = nullptr;
    for (const P2POp& op : t.last_ops) {
      EXPECT_EQ(op.memory, MemoryKind::kDevice);
      if (op.kind == P2POp::Kind::kRecv) recv_into = op.data;
    }
    ASSERT_NE(recv_into, nullptr);
    mover.finish(st, 1);
    EXPECT_TRUE(mover.voting());  // the failure is agreed at the next step's vote read
    EXPECT_EQ(st.layers_failed, 0);
    mover.finish(st, 2);
    EXPECT_EQ(st.layers_failed, 1);
    EXPECT_FALSE(mover.moving());
    EXPECT_EQ(state.placement(), initial);
    EXPECT_EQ(mem[0]->download(), std::vector<std::byte>(bytes, std::byte{0}));  // not installed
    EXPECT_EQ(pool.parked_bytes(), static_cast<std::int64_t>(bytes));
    EXPECT_EQ(reporter.snapshot().parked_staging_bytes, static_cast<std::int64_t>(bytes));
    // The parked region is still device memory that a late write may land in...
    cudaPointerAttributes attr{};
    ASSERT_EQ(cudaPointerGetAttributes(&attr, recv_into), cudaSuccess);
    EXPECT_EQ(attr.type, cudaMemoryTypeDevice);
    EXPECT_EQ(cudaMemset(recv_into, 0x5A, bytes), cudaSuccess);
    // ...and never handed out again.
    ASSERT_TRUE(pool.reserve(bytes, Clock::now() + 1s).ok());
    for (int i = 0; i < pool.regions(); ++i) {
      auto lease = pool.acquire();
      ASSERT_TRUE(lease.has_value());
      EXPECT_NE(lease->bytes.data(), recv_into);
    }
  }
}

}  // namespace
}  // namespace swiftbalancer::device
