// Replay computes with the runtime's own statistics and planner: its window equals a LoadWindow
// fed with the runtime's fold of per-slot counts, its copies are make_layer_plan's remote ops,
// and a whole replay's rebalance is what the runtime's pieces give for the same steps.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/core/splitmix.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/replay/replay.h"
#include "swiftbalancer/replay/runtime_model.h"
#include "swiftbalancer/replay/trace.h"
#include "swiftbalancer/stats/window.h"

namespace swiftbalancer::replay {
namespace {

constexpr int kL = 2, kE = 4;

// 2 ranks x 3 slots on one node; experts 0 and 1 (layer 0), 2 and 1 (layer 1) have two replicas.
Placement replicated_placement(const Topology& topo) {
  Placement p(kL, topo.num_slots(), kE);
  const std::vector<ExpertId> rows[kL] = {{0, 1, 2, 3, 0, 1}, {0, 1, 2, 3, 2, 1}};
  for (int l = 0; l < kL; ++l)
    for (int s = 0; s < topo.num_slots(); ++s) p.at(l, s) = rows[l][static_cast<std::size_t>(s)];
  return p;
}

// Even counts, so that splitting them over two replicas stays exact.
std::vector<double> step_counts(int t) {
  std::vector<double> c(static_cast<std::size_t>(kL) * kE);
  for (int l = 0; l < kL; ++l)
    for (int e = 0; e < kE; ++e)
      c[static_cast<std::size_t>(l) * kE + e] = 2.0 * ((t * 7 + l * 3 + e * 5) % 9);
  return c;
}

// What the runtime gathers for one step: every rank's [layers][slots] counts, rank-major, each
// expert's tokens split evenly over its replicas (as routing spreads them).
std::vector<std::int64_t> slot_counts(const std::vector<double>& counts, const Placement& p,
                                      const Topology& topo) {
  const int S = topo.slots_per_rank;
  std::vector<std::int64_t> out(static_cast<std::size_t>(topo.ranks) * kL * S);
  for (int l = 0; l < kL; ++l) {
    const std::vector<int> rc = replica_counts(p.layer(l), kE);
    for (int r = 0; r < topo.ranks; ++r)
      for (int s = 0; s < S; ++s) {
        const ExpertId e = p.at(l, topo.slot_id(r, s));
        out[(static_cast<std::size_t>(r) * kL + l) * S + s] = static_cast<std::int64_t>(
            counts[static_cast<std::size_t>(l) * kE + e] / rc[static_cast<std::size_t>(e)]);
      }
  }
  return out;
}

void expect_same(const LoadMatrix& got, const LoadMatrix& want, const char* what, int gather) {
  ASSERT_EQ(got.layers(), want.layers());
  ASSERT_EQ(got.experts(), want.experts());
  for (int l = 0; l < want.layers(); ++l)
    for (int e = 0; e < want.experts(); ++e)
      EXPECT_EQ(got.at(l, e), want.at(l, e))
          << what << " gather " << gather << " " << l << "," << e;
}

// Interval 2 steps, window 4 steps = 2 intervals; six steps, three gathers. The runtime side:
// per-slot counts recorded over the interval, folded onto the placement, pushed into LoadWindow.
TEST(RuntimeModel, WindowMatchesTheRuntimesFold) {
  const Topology topo = Topology::make(2, 3, 2);
  const Placement p = replicated_placement(topo);
  StepWindow replay_window(kL, kE, /*interval=*/2, /*window_steps=*/4, 0.0);
  StepWindow replay_decayed(kL, kE, 2, 0, 0.5);
  LoadWindow runtime_window(kL, kE, 2), runtime_decayed(kL, kE, 1, 0.5);
  EXPECT_EQ(replay_window.intervals(), 2);
  std::vector<std::int64_t> recorded(static_cast<std::size_t>(topo.num_slots()) * kL, 0);
  for (int t = 0; t < 6; ++t) {
    const std::vector<double> c = step_counts(t);
    replay_window.add_step(c);
    replay_decayed.add_step(c);
    const std::vector<std::int64_t> slots = slot_counts(c, p, topo);
    for (std::size_t i = 0; i < slots.size(); ++i) recorded[i] += slots[i];
    if ((t + 1) % 2 != 0) continue;
    replay_window.gather();
    replay_decayed.gather();
    const LoadMatrix interval = fold_slot_counts(recorded, p, topo);
    std::fill(recorded.begin(), recorded.end(), 0);
    runtime_window.push(interval);
    runtime_decayed.push(interval);
    expect_same(replay_window.sum(), runtime_window.sum(), "window", t / 2);
    expect_same(replay_decayed.sum(), runtime_decayed.sum(), "decayed", t / 2);
  }
  // By hand, layer 0 expert 0 (2 * (7t % 9)): steps 0..5 give 0, 14, 10, 6, 2, 16. The window
  // after the third gather holds steps 2..5: 34; the decayed sum is
  // 0.25 * 14 + 0.5 * 16 + 18 = 29.5.
  EXPECT_EQ(replay_window.sum().at(0, 0), 34.0);
  EXPECT_EQ(replay_decayed.sum().at(0, 0), 29.5);
  // Layer 1 expert 3 (2 * ((7t + 18) % 9)): 0, 14, 10, 6, 2, 16 as well.
  EXPECT_EQ(replay_window.sum().at(1, 3), 34.0);
  // Matrices held: two interval loads + their sum + the open interval; decayed: sum + open one.
  EXPECT_EQ(replay_window.bytes(), static_cast<std::int64_t>(4 * kL * kE * sizeof(double)));
  EXPECT_EQ(replay_decayed.bytes(), static_cast<std::int64_t>(2 * kL * kE * sizeof(double)));
  // The runtime's window holds whole intervals.
  EXPECT_THROW(StepWindow(kL, kE, 2, 3, 0.0), InputError);
  EXPECT_THROW(StepWindow(kL, kE, 2, 0, 0.0), InputError);
  EXPECT_THROW(StepWindow(kL, kE, 2, 4, 1.0), InputError);
  EXPECT_THROW(replay_window.add_step(std::vector<double>(3)), InputError);
}

// 4 ranks x 2 slots, 2 ranks per node, equal link speeds. Rank 0 needs expert 0, held by rank 1
// (its node) and rank 2 (the other node); rank 1 needs expert 1 from rank 0 (forced). Rank 1 would
// then carry a send and a receive; rank 2 carries nothing: the plan sends from rank 2. (The
// replay's former rule, "a holder on the same node first", took rank 1.)
TEST(RuntimeModel, MovesAreTheRuntimesPlan) {
  const Topology topo = Topology::make(4, 2, 2);
  const std::vector<ExpertId> old_layer = {1, 2, 0, 3, 0, 4, 5, 6};
  const std::vector<ExpertId> new_layer = {0, 2, 1, 3, 0, 4, 5, 6};
  CostModel equal;
  equal.intra_gbps = equal.inter_gbps = 100.0;
  const LinkWeights w = link_weights(equal);
  EXPECT_EQ(w.intra_node, 1.0);
  EXPECT_EQ(w.inter_node, 1.0);
  const auto moves = layer_moves(old_layer, new_layer, 0, 7, topo, w);
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_EQ(moves[0].expert, 0);
  EXPECT_EQ(moves[0].src_rank, 2);
  EXPECT_EQ(moves[0].dst_rank, 0);
  EXPECT_EQ(moves[1].expert, 1);
  EXPECT_EQ(moves[1].src_rank, 0);
  EXPECT_EQ(moves[1].dst_rank, 1);
  EXPECT_EQ(link_weights(CostModel{}).inter_node, 5.0);  // 200 GB/s within, 40 across nodes

  // Random placements: the copies are exactly the plan's remote ops, as many as metrics counts.
  const Topology big = Topology::make(8, 4, 4);
  const int E = 24;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    std::uint64_t rng = seed;
    Placement a = contiguous_placement(big, 1, E), b = a;
    // Spare slots (32 - 24) get random replicas; then shuffle whole ranks' contents by swaps
    // that keep the layer valid (checked; invalid draws are skipped).
    for (int k = 0; k < 40; ++k) {
      const int x = static_cast<int>(splitmix64_next(rng) % 32),
                y = static_cast<int>(splitmix64_next(rng) % 32);
      Placement c = b;
      std::swap(c.at(0, x), c.at(0, y));
      if (validate_placement(c, big).ok()) b = c;
    }
    for (int s = E; s < 32; ++s) {
      Placement c = b;
      c.at(0, s) = static_cast<ExpertId>(splitmix64_next(rng) % E);
      if (validate_placement(c, big).ok()) b = c;
    }
    const LinkWeights lw = link_weights(CostModel{});
    const LayerPlan plan = make_layer_plan(a.layer(0), b.layer(0), 0, E, big, lw);
    const auto got = layer_moves(a.layer(0), b.layer(0), 0, E, big, lw);
    std::vector<Move> want;
    for (const TransferOp& op : plan.ops)
      if (!op.is_local()) want.push_back({op.expert, op.src_rank, op.dst_rank});
    ASSERT_EQ(got.size(), want.size()) << "seed " << seed;
    for (std::size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got[i].expert, want[i].expert) << "seed " << seed;
      EXPECT_EQ(got[i].src_rank, want[i].src_rank) << "seed " << seed;
      EXPECT_EQ(got[i].dst_rank, want[i].dst_rank) << "seed " << seed;
    }
    EXPECT_EQ(static_cast<std::int64_t>(got.size()), transfer_summary(a, b, big).total);
  }
}

// A whole replay (deepseek-global:sync from contiguous, interval 4, window 8 = 2 intervals):
// every rebalance's transfers and transfer time are those of the runtime's pieces — LoadWindow
// over the interval loads, the policy, make_layer_plan — applied by hand to the same steps.
TEST(RuntimeModel, ReplayRebalancesAsTheRuntimesPiecesDo) {
  TraceSpec spec;
  spec.steps = 12;
  spec.tokens = 700;
  spec.top_k = 4;
  spec.seed = 5;
  spec.bases = {synthetic_base(5, 24, 3, 0)};
  const Topology topo = Topology::make(8, 4, 4);
  ReplayConfig c;
  c.topo = topo;
  c.policies = parse_policy_list("deepseek-global:sync");
  c.interval = 4;
  c.window = 8;
  c.start_static = false;
  c.policy_ms = 0.0;
  auto src = generated_trace(spec);
  const ReplayResult r = run_replay(*src, c);
  const PolicyResult& got = r.policies[0];

  TraceGenerator gen(spec);
  std::vector<std::int64_t> step(5 * 24);
  LoadWindow window(5, 24, 2);
  LoadMatrix interval(5, 24);
  Placement cur = contiguous_placement(topo, 5, 24);
  const auto policy = make_policy("deepseek-global");
  const LinkWeights lw = link_weights(c.cost);
  std::size_t event = 0;
  for (int t = 0; t < 12; ++t) {
    gen.next(step);
    for (int l = 0; l < 5; ++l)
      for (int e = 0; e < 24; ++e) interval.at(l, e) += static_cast<double>(step[l * 24 + e]);
    if ((t + 1) % 4 != 0) continue;
    window.push(interval);
    interval = LoadMatrix(5, 24);
    const Placement next = policy->rebalance(PolicyInput{topo, window.sum(), &cur, c.options});
    TransferTimer timer(topo, c.cost);
    std::int64_t transfers = 0;
    for (int l = 0; l < 5; ++l) {
      const LayerPlan plan = make_layer_plan(cur.layer(l), next.layer(l), l, 24, topo, lw);
      std::vector<Move> moves;
      for (const TransferOp& op : plan.ops)
        if (!op.is_local()) moves.push_back({op.expert, op.src_rank, op.dst_rank});
      timer.add(moves);
      transfers += plan.remote_ops;
    }
    if (transfers == 0 && next.data() == cur.data()) continue;  // no rebalance at this gather
    ASSERT_LT(event, got.events.size()) << "gather after step " << t;
    EXPECT_EQ(got.events[event].decided, t);
    EXPECT_EQ(got.events[event].transfers, transfers);
    EXPECT_DOUBLE_EQ(got.events[event].transfer_ms, timer.time_ms());
    ++event;
    cur = next;
  }
  EXPECT_GE(event, 1u);
  EXPECT_EQ(event, got.events.size());
}

}  // namespace
}  // namespace swiftbalancer::replay
