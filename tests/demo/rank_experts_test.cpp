// The engine's RankExperts seam (what `demo --device cuda` plugs its GPU experts into), run on
// the CPU: experts in a HostExpertStore of their own, weights and tokens on separate transports.
// It serves exactly what the built-in host path serves, and a compute() that is off by one ulp
// in one row is caught by the demo's bit-exact check.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "demo/small_demo.h"
#include "swiftbalancer/demo/demo_engine.h"
#include "swiftbalancer/runtime/host_expert_store.h"
#include "swiftbalancer/transport/inprocess_transport.h"

namespace swiftbalancer {
namespace {

using namespace std::chrono_literals;

DemoOptions small(BalancerMode mode) {
  return testing::small_demo(mode, 5000ms);
}

// Host memory of its own, apply_mlp row by row; `corrupt`: row 0 of every call one ulp off.
class HostRankExperts final : public RankExperts {
 public:
  HostRankExperts(const DemoOptions& o, bool corrupt)
      : o_(o), corrupt_(corrupt), store_(o.workload.layers, o.slots_per_rank) {}

  void load(const CanonicalExperts& canonical, const Topology& topo, const Placement& initial,
            int rank) override {
    const int L = o_.workload.layers, S = o_.slots_per_rank;
    mem_.resize(static_cast<std::size_t>(L) * S * 3);  // never resized again: spans stay valid
    for (int l = 0; l < L; ++l)
      for (int s = 0; s < S; ++s) {
        std::vector<std::span<std::byte>> spans;
        for (int t = 0; t < 3; ++t) {
          const auto src = canonical.tensor(l, initial.at(l, topo.slot_id(rank, s)), t);
          auto& buf = mem_[(static_cast<std::size_t>(l) * S + s) * 3 + t];
          buf.assign(src.begin(), src.end());
          spans.emplace_back(buf);
        }
        store_.register_expert(l, s, std::move(spans));
      }
  }
  ExpertStore& store() override { return store_; }
  void compute(int layer, std::span<const float> rows, std::span<const std::int32_t> slots,
               std::span<float> out) override {
    const int H = o_.mlp.hidden, S = o_.slots_per_rank;
    std::vector<float> scratch(static_cast<std::size_t>(o_.mlp.ffn));
    for (std::size_t i = 0; i < slots.size(); ++i) {
      const std::size_t at = (static_cast<std::size_t>(layer) * S + slots[i]) * 3;
      apply_mlp(o_.mlp, mem_[at], mem_[at + 1], mem_[at + 2], rows.data() + i * H, 1,
                out.data() + i * H, scratch.data());
    }
    if (corrupt_ && !slots.empty()) out[0] = std::nextafter(out[0], 1e9f);
  }

 private:
  DemoOptions o_;
  bool corrupt_;
  HostExpertStore store_;
  std::vector<std::vector<std::byte>> mem_;  // [layer][slot][tensor]
};

DemoResult run_with_seam(const DemoOptions& o, bool corrupt) {
  InProcessWorld tokens(o.ranks), weights(o.ranks);
  const CanonicalExperts canonical(o.mlp, o.workload.layers, o.workload.experts, o.workload.seed);
  std::vector<std::unique_ptr<Transport>> tt, wt;
  for (int r = 0; r < o.ranks; ++r) {
    tt.push_back(tokens.transport(r));
    wt.push_back(weights.transport(r));
  }
  return run_ranks_as_threads(o.ranks, [&](int r) {
    HostRankExperts experts(o, corrupt);
    return run_demo_rank(o, *tt[static_cast<std::size_t>(r)], *wt[static_cast<std::size_t>(r)],
                         experts, canonical);
  });
}

TEST(RankExperts, ServesWhatTheHostPathServes) {
  for (BalancerMode mode : {BalancerMode::kAsync, BalancerMode::kSync}) {
    const DemoOptions o = small(mode);
    const DemoResult seam = run_with_seam(o, false);
    const DemoResult host = run_demo_inprocess(o);
    EXPECT_EQ(seam.mismatches, 0) << balancer_mode_name(mode);
    EXPECT_EQ(seam.verified, 60 * 3 * 16 * 3);
    EXPECT_GE(seam.counters.rebalances, 1) << balancer_mode_name(mode);
    EXPECT_EQ(seam.counters.errors, 0) << seam.counters.last_error;
    // In async mode the step at which a decision arrives depends on the worker's speed, so only
    // the stop-the-world mode is reproducible step for step.
    if (mode != BalancerMode::kSync) continue;
    // Same decisions at the same steps: the same tokens per rank, step by step.
    EXPECT_EQ(seam.counters.layers_committed, host.counters.layers_committed);
    ASSERT_EQ(seam.steps.size(), host.steps.size());
    for (std::size_t i = 0; i < seam.steps.size(); ++i)
      EXPECT_EQ(seam.steps[i].rank_tokens, host.steps[i].rank_tokens) << "step " << i + 1;
  }
}

TEST(RankExperts, AnOutputOneUlpOffIsAMismatch) {
  const DemoResult r = run_with_seam(small(BalancerMode::kOff), true);
  // Row 0 of every (rank, layer) call feeds one token's output on some rank.
  EXPECT_GT(r.mismatches, 0);
  EXPECT_LE(r.mismatches, static_cast<std::int64_t>(60) * 3 * 3);
}

}  // namespace
}  // namespace swiftbalancer
