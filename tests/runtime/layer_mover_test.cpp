// LayerMover on its own: staging bounded by the layers in flight, bytes and tables committed
// together, and staging parked (never freed or reused) when a failed transfer cannot be
// cancelled.
#include "swiftbalancer/runtime/internal/layer_mover.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <numeric>
#include <vector>

#include "swiftbalancer/runtime/host_expert_store.h"
#include "swiftbalancer/transport/inprocess_transport.h"

namespace swiftbalancer {
namespace {

using namespace std::chrono_literals;

// Host expert memory of one rank: [layer][slot] one tensor of `bytes`, filled with the expert id.
struct Memory {
  Memory(int layers, int slots, std::size_t bytes, const Placement& p, int rank, int S)
      : store(layers, slots) {
    buf.resize(static_cast<std::size_t>(layers * slots));
    for (int l = 0; l < layers; ++l)
      for (int s = 0; s < slots; ++s) {
        auto& b = buf[static_cast<std::size_t>(l * slots + s)];
        b.assign(bytes, static_cast<std::byte>(p.at(l, rank * S + s)));
        store.register_expert(l, s, {std::span<std::byte>(b)});
      }
    EXPECT_TRUE(store.ready().ok());
  }
  std::byte at(int layer, int slot, int slots) const {
    return buf[static_cast<std::size_t>(layer * slots + slot)][0];
  }
  HostExpertStore store;
  std::vector<std::vector<std::byte>> buf;
};

struct Harness {
  Harness(const Topology& t, const Placement& initial, int rank, Transport& tr, int lps,
          std::size_t bytes)
      : topo(t),
        mem(initial.layers(), t.slots_per_rank, bytes, initial, rank, t.slots_per_rank),
        state(initial),
        accounting(t, initial, 1, 0.0),
        reporter(rank, [](LogSeverity, const std::string&) {}),
        pool(mem.store, lps + 1) {
    cfg.layers_per_step = lps;
    cfg.transfer_timeout = 30ms;
    cfg.collective_timeout = 2000ms;
    mover = std::make_unique<LayerMover>(rank, initial.layers(), tr, mem.store, pool, state,
                                         accounting, cfg, reporter);
  }
  Topology topo;
  Memory mem;
  ServingState state;
  LoadAccounting accounting;
  Reporter reporter;
  BalancerConfig cfg;
  StagingPool pool;
  std::unique_ptr<LayerMover> mover;
};

// One rank, four slots, six layers, every layer's experts rotated: every slot gets a local copy.
TEST(LayerMover, StagesOnlyTheLayersInFlight) {
  const Topology topo = Topology::make(1, 4);
  const int L = 6;
  Placement initial(L, 4, 4), target(L, 4, 4);
  for (int l = 0; l < L; ++l)
    for (int s = 0; s < 4; ++s) {
      initial.at(l, s) = s;
      target.at(l, s) = (s + 1) % 4;
    }
  InProcessWorld world(1);
  auto t = world.transport(0);
  const std::size_t bytes = 64;
  for (int lps : {1, 2}) {
    Harness h(topo, initial, 0, *t, lps, bytes);
    std::vector<std::size_t> eb(L, bytes);
    auto plan = std::make_unique<CyclePlan>(plan_cycle(initial, target, topo, 0, {}, eb));
    ASSERT_EQ(plan->layers.size(), static_cast<std::size_t>(L));
    EXPECT_EQ(plan->staging_region_bytes, 4 * bytes);
    ASSERT_TRUE(h.pool.reserve(plan->staging_region_bytes, Clock::now() + 1s).ok());
    h.mover->begin(std::move(plan));
    int steps = 0;
    while (h.mover->moving()) {
      StepStats st;
      h.mover->post(static_cast<std::size_t>(lps), st);
      h.mover->finish(st, ++steps);
      EXPECT_LE(st.layers_committed, lps);
    }
    EXPECT_EQ(steps, (L + lps - 1) / lps);
    EXPECT_EQ(h.state.placement(), target);
    for (int l = 0; l < L; ++l)
      for (int s = 0; s < 4; ++s)
        EXPECT_EQ(h.mem.at(l, s, 4), static_cast<std::byte>(target.at(l, s)));
    // (lps + 1) regions of one layer's four experts, never all six layers at once.
    const auto peak = h.reporter.snapshot().peak_staging_bytes;
    EXPECT_EQ(peak, static_cast<std::int64_t>((lps + 1) * 4 * bytes));
  }
}

// A batch that never completes and cannot be cancelled: the transport may still write into it.
class StuckBatch final : public TransferBatch {
 public:
  explicit StuckBatch(std::vector<P2POp> ops) : ops(std::move(ops)) {}
  State poll() override { return State::kPending; }
  Status wait(Clock::time_point deadline) override {
    std::this_thread::sleep_until(deadline);
    return Status::Timeout("stuck");
  }
  Status cancel() override { return Status::TransportError("cannot cancel a started transfer"); }
  std::vector<P2POp> ops;
};

// Two ranks seen from rank 0; collectives answer as if rank 1 agreed; transfers never finish.
class StuckTransport final : public Transport {
 public:
  int rank() const override { return 0; }
  int size() const override { return 2; }
  std::string name() const override { return "stuck"; }
  bool broken() const override { return false; }
  Status all_gather(std::span<const std::int64_t> mine, std::span<std::int64_t> out,
                    Millis) override {
    std::copy(mine.begin(), mine.end(), out.begin());
    std::copy(mine.begin(), mine.end(), out.begin() + static_cast<std::ptrdiff_t>(mine.size()));
    return Status::Ok();
  }
  Status all_reduce(std::span<std::int64_t>, ReduceOp, Millis) override { return Status::Ok(); }
  std::unique_ptr<TransferBatch> post(std::span<const P2POp> ops) override {
    auto b = std::make_unique<StuckBatch>(std::vector<P2POp>(ops.begin(), ops.end()));
    last_ops = b->ops;
    return b;
  }
  std::vector<P2POp> last_ops;
};

TEST(LayerMover, ParksStagingWhenATransferCannotBeCancelled) {
  const Topology topo = Topology::make(2, 2);
  Placement initial(1, 2 * 2, 4), target(1, 2 * 2, 4);
  const ExpertId old_row[] = {0, 1, 2, 3}, new_row[] = {2, 1, 0, 3};  // rank 0 gets 2, rank 1 0
  std::copy(std::begin(old_row), std::end(old_row), initial.layer(0).begin());
  std::copy(std::begin(new_row), std::end(new_row), target.layer(0).begin());
  StuckTransport t;
  const std::size_t bytes = 32;
  Harness h(topo, initial, 0, t, 1, bytes);
  const std::vector<std::size_t> eb = {bytes};
  auto plan = std::make_unique<CyclePlan>(plan_cycle(initial, target, topo, 0, {}, eb));
  ASSERT_TRUE(h.pool.reserve(plan->staging_region_bytes, Clock::now() + 1s).ok());
  h.mover->begin(std::move(plan));
  StepStats st;
  h.mover->post(1, st);
  std::byte* recv_into = nullptr;
  for (const P2POp& op : t.last_ops)
    if (op.kind == P2POp::Kind::kRecv) recv_into = op.data;
  ASSERT_NE(recv_into, nullptr);
  h.mover->finish(st, 1);
  EXPECT_EQ(st.layers_failed, 1);
  EXPECT_FALSE(h.mover->moving());
  // The layer stays on its old placement, bytes and table.
  EXPECT_EQ(h.state.placement(), initial);
  EXPECT_EQ(h.mem.at(0, 0, 2), std::byte{0});
  // The staging the transport may still write is parked, not freed and not handed out again.
  const auto c = h.reporter.snapshot();
  EXPECT_EQ(c.parked_staging_bytes, static_cast<std::int64_t>(bytes));
  EXPECT_EQ(h.pool.parked_bytes(), static_cast<std::int64_t>(bytes));
  std::memset(recv_into, 0x5A, bytes);  // a late write lands in kept memory (ASan would tell)
  ASSERT_TRUE(h.pool.reserve(bytes, Clock::now() + 1s).ok());
  for (int i = 0; i < h.pool.regions(); ++i) {
    auto lease = h.pool.acquire();
    ASSERT_TRUE(lease.has_value());
    EXPECT_NE(lease->bytes.data(), recv_into);
  }
}

}  // namespace
}  // namespace swiftbalancer
