// Replay: a hand-worked small case with exact figures, cross-checks against core/metrics,
// recovery after a switch, streaming memory, the cost model, the policy list and the pictures.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/replay/cost_model.h"
#include "swiftbalancer/replay/replay.h"
#include "swiftbalancer/replay/runtime_model.h"
#include "swiftbalancer/replay/svg.h"
#include "swiftbalancer/replay/trace.h"

namespace swiftbalancer::replay {
namespace {

// The hand-worked case: 2 layers x 4 experts on 2 ranks x 2 slots, one rank per node.
// Every step has the same counts: layer 0 {6, 2, 2, 0}, layer 1 {4, 3, 2, 1} (10 per layer, so
// the mean rank load is 5).
//   contiguous: rank 0 {0,1}, rank 1 {2,3}: layer 0 max 8 (1.6), layer 1 max 7 (1.4): step 1.5
//   balanced (the unique optimum): rank 0 {0,3}, rank 1 {1,2}: layer 0 max 6 (1.2), layer 1
//     max 5 (1.0): step 1.1; with only layer 0 moved: (1.2 + 1.4) / 2 = 1.3
//   each layer needs 2 cross-rank copies (expert 3 to rank 0, expert 1 to rank 1).
// Cost: token_us 1, layer_us 10 -> compute 35 us contiguous, 31 balanced, 33 half-way.
//   expert 1 MB over 1 GB/s between nodes -> 1 ms per copy; one layer: each rank sends one and
//   receives one -> 1 ms; both layers at once -> 2 ms.
// interval 2, window 2: gathers after steps 1, 3, 5; policy time 0.
std::vector<double> hand_trace(int steps) {
  std::vector<double> v;
  for (int t = 0; t < steps; ++t) v.insert(v.end(), {6, 2, 2, 0, 4, 3, 2, 1});
  return v;
}

ReplayConfig hand_config(const std::string& policies) {
  ReplayConfig c;
  c.topo = Topology::make(2, 2, 1);
  c.policies = parse_policy_list(policies);
  c.interval = 2;
  c.window = 2;
  c.layers_per_step = 1;
  c.policy_ms = 0.0;
  c.policy_steps = 0;
  c.start_static = false;
  c.cost.token_us = 1.0;
  c.cost.layer_us = 10.0;
  c.cost.expert_mb = 1.0;
  c.cost.inter_gbps = 1.0;
  c.cost.intra_gbps = 1.0;
  return c;
}

void expect_series(const std::vector<float>& got, const std::vector<double>& want,
                   const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-6) << what << " step " << i;
}

TEST(ReplayHandWorked, ExactFigures) {
  auto src = memory_trace(2, 4, hand_trace(6));
  const ReplayResult r =
      run_replay(*src, hand_config("off,static,deepseek-global:sync,deepseek-global:async"));
  ASSERT_EQ(r.policies.size(), 4u);
  const PolicyResult &off = r.policies[0], &stat = r.policies[1], &sync = r.policies[2],
                     &async = r.policies[3];

  expect_series(off.imbalance, {1.5, 1.5, 1.5, 1.5, 1.5, 1.5}, "off");
  expect_series(off.step_ms, {0.035, 0.035, 0.035, 0.035, 0.035, 0.035}, "off ms");
  EXPECT_EQ(off.rebalances, 0);

  // Static: the first window's placement from step 0, nothing moved or charged.
  expect_series(stat.imbalance, {1.1, 1.1, 1.1, 1.1, 1.1, 1.1}, "static");
  expect_series(stat.step_ms, {0.031, 0.031, 0.031, 0.031, 0.031, 0.031}, "static ms");
  EXPECT_EQ(stat.transfers, 0);

  // Sync: decided after step 1, both layers installed before step 2; the 2 ms stall is charged
  // on step 1. Later gathers return the same placement: no further rebalance.
  expect_series(sync.imbalance, {1.5, 1.5, 1.1, 1.1, 1.1, 1.1}, "sync");
  expect_series(sync.step_ms, {0.035, 2.035, 0.031, 0.031, 0.031, 0.031}, "sync ms");
  EXPECT_EQ(sync.policy_calls, 3);
  EXPECT_EQ(sync.rebalances, 1);
  EXPECT_EQ(sync.transfers, 4);
  EXPECT_DOUBLE_EQ(sync.bytes, 4e6);
  EXPECT_NEAR(sync.stall_ms, 2.0, 1e-9);
  ASSERT_EQ(sync.events.size(), 1u);
  EXPECT_EQ(sync.events[0].decided, 1);
  EXPECT_EQ(sync.events[0].layers_changed, 2);
  EXPECT_NEAR(sync.events[0].transfer_ms, 2.0, 1e-9);

  // Async: layer 0 moves during step 2 (1 ms against 35 us of compute: 0.965 exposed), its
  // vote is read after step 3 and it is in force from step 4; layer 1 moves during step 3
  // (1 - 0.035, layer 0 not yet in force) and is in force from step 5.
  expect_series(async.imbalance, {1.5, 1.5, 1.5, 1.5, 1.3, 1.1}, "async");
  expect_series(async.step_ms, {0.035, 0.035, 1.0, 1.0, 0.033, 0.031}, "async ms");
  EXPECT_EQ(async.rebalances, 1);
  EXPECT_EQ(async.skipped, 1);  // the gather after step 3 finds layer 1's vote in flight
  EXPECT_EQ(async.transfers, 4);
  EXPECT_NEAR(async.stall_ms, 0.965 + 0.965, 1e-9);
  ASSERT_EQ(async.events.size(), 1u);
  EXPECT_EQ(async.events[0].first_commit, 3);
  EXPECT_EQ(async.events[0].last_commit, 4);
  EXPECT_NEAR(async.mean_imbalance, 8.4 / 6.0, 1e-6);
  // Nearest rank: the 3rd of the sorted 1.1 1.3 1.5 1.5 1.5 1.5.
  EXPECT_NEAR(async.p50_imbalance, 1.5, 1e-6);
  EXPECT_NEAR(async.p99_imbalance, 1.5, 1e-6);
  EXPECT_NEAR(async.max_imbalance, 1.5, 1e-6);
  EXPECT_NEAR(async.mean_step_ms, (0.035 + 0.035 + 1.0 + 1.0 + 0.033 + 0.031) / 6, 1e-6);
}

TEST(ReplayHandWorked, PolicyDelayAndSkippedGathers) {
  // Two steps of policy time: decided after step 1, moving during step 4 (layer 0) and step 5
  // (layer 1), each in force two steps later (its vote is read after the next step); the
  // gathers after steps 3 and 5 find the rebalance in flight and are skipped.
  ReplayConfig c = hand_config("deepseek-global:async");
  c.policy_steps = 2;
  auto src = memory_trace(2, 4, hand_trace(8));
  const ReplayResult r = run_replay(*src, c);
  const PolicyResult& a = r.policies[0];
  expect_series(a.imbalance, {1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.3, 1.1}, "delayed async");
  EXPECT_EQ(a.skipped, 2);
  EXPECT_EQ(a.events[0].policy_steps, 2);
  EXPECT_EQ(a.events[0].first_commit, 5);
  EXPECT_EQ(a.events[0].last_commit, 6);

  // Two layers per step: both move during step 2 and are in force from step 4.
  c.policy_steps = 0;
  c.layers_per_step = 2;
  auto src2 = memory_trace(2, 4, hand_trace(5));
  const ReplayResult r2 = run_replay(*src2, c);
  expect_series(r2.policies[0].imbalance, {1.5, 1.5, 1.5, 1.5, 1.1}, "two layers per step");
  expect_series(r2.policies[0].step_ms, {0.035, 0.035, 2.0, 0.035, 0.031},
                "two layers per step ms");

  // Poll every 3 steps: the result (ready at once) is picked up at the gather step itself.
  c.layers_per_step = 1;
  c.policy_steps = 1;
  c.poll_steps = 3;
  auto src3 = memory_trace(2, 4, hand_trace(9));
  const ReplayResult r3 = run_replay(*src3, c);
  EXPECT_EQ(r3.policies[0].events[0].policy_steps, 3);
  expect_series(r3.policies[0].imbalance, {1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.3, 1.1}, "poll");
}

TEST(ReplayHandWorked, StartStaticSkipsTheWarmUp) {
  ReplayConfig c = hand_config("deepseek-global:sync");
  c.start_static = true;
  auto src = memory_trace(2, 4, hand_trace(4));
  const ReplayResult r = run_replay(*src, c);
  expect_series(r.policies[0].imbalance, {1.1, 1.1, 1.1, 1.1}, "start static");
  EXPECT_EQ(r.policies[0].rebalances, 0);
}

TEST(ReplayHandWorked, DecayedSumRebalancesToo) {
  ReplayConfig c = hand_config("deepseek-global:sync");
  c.decay = 0.5;
  auto src = memory_trace(2, 4, hand_trace(4));
  const ReplayResult r = run_replay(*src, c);
  expect_series(r.policies[0].imbalance, {1.5, 1.5, 1.1, 1.1}, "decay");
}

// On a random trace, each step's imbalance for a fixed placement equals core/metrics' figure,
// and every rebalance's transfers equal transfer_summary between the placements.
TEST(Replay, AgreesWithCoreMetrics) {
  TraceSpec spec;
  spec.steps = 12;
  spec.tokens = 700;
  spec.top_k = 4;
  spec.bases = {synthetic_base(5, 24, 3, 0)};
  const Topology topo = Topology::make(8, 4, 4);
  ReplayConfig c;
  c.topo = topo;
  c.policies = parse_policy_list("off");
  c.interval = 4;
  c.window = 4;
  auto src = generated_trace(spec);
  const ReplayResult r = run_replay(*src, c);
  TraceGenerator gen(spec);
  std::vector<std::int64_t> step(5 * 24);
  const Placement cont = contiguous_placement(topo, 5, 24);
  for (int t = 0; t < 12; ++t) {
    gen.next(step);
    LoadMatrix m(5, 24, std::vector<double>(step.begin(), step.end()));
    EXPECT_NEAR(r.policies[0].imbalance[t], balance_summary(cont, m, topo).mean_imbalance, 1e-5);
  }
  // layer_moves counts what core/metrics counts.
  Placement a = contiguous_placement(topo, 1, 24), b = a;
  std::swap(b.at(0, 0), b.at(0, 31));  // expert 0 <-> expert 7 between ranks 0 and 7
  const auto moves = layer_moves(a.layer(0), b.layer(0), 0, 24, topo, LinkWeights{});
  EXPECT_EQ(static_cast<std::int64_t>(moves.size()), transfer_summary(a, b, topo).total);
}

TEST(CostModel, SenderOnTheSameNodeAndTransferTime) {
  // 4 ranks x 2 slots, 2 per node, 6 experts. Expert 5 lives on rank 0 (node 0) and rank 3
  // (node 1); rank 2 (node 1) needs it. Rank 3 also receives expert 3 from rank 2 (forced, 1
  // unit each); sending 5 from rank 3 (intra, 1) keeps the busiest rank at 2 units, rank 0
  // (inter, 10 at these bandwidths) would make it 11: the plan picks rank 3.
  const Topology topo = Topology::make(4, 2, 2);
  const std::vector<ExpertId> old_layer = {5, 0, 1, 2, 3, 4, 5, 0};
  const std::vector<ExpertId> new_layer = {5, 0, 1, 2, 5, 4, 3, 0};
  CostModel cost;
  cost.expert_mb = 100;
  cost.intra_gbps = 100;  // 1 ms per expert
  cost.inter_gbps = 10;   // 10 ms per expert
  const auto moves = layer_moves(old_layer, new_layer, 0, 6, topo, link_weights(cost));
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_EQ(moves[0].expert, 5);
  EXPECT_EQ(moves[0].dst_rank, 2);
  EXPECT_EQ(moves[0].src_rank, 3);  // same node beats rank 0
  EXPECT_EQ(moves[1].expert, 3);
  EXPECT_EQ(moves[1].dst_rank, 3);
  EXPECT_EQ(moves[1].src_rank, 2);
  TransferTimer timer(topo, cost);
  timer.add(moves);
  EXPECT_NEAR(timer.time_ms(), 1.0, 1e-12);  // ranks 2 and 3 each send one and receive one
  const std::vector<Move> far = {{0, 0, 2}, {1, 1, 2}};
  timer.add(far);  // rank 2 now receives 1 intra + 2 inter
  EXPECT_NEAR(timer.time_ms(), 21.0, 1e-12);
  EXPECT_EQ(timer.moves(), 4);
  cost.inter_gbps = 0;
  EXPECT_THROW(cost.validate(), InputError);
}

TEST(Replay, RecoveryStepsDefinition) {
  std::vector<float> s(40, 1.1f);
  for (int t = 20; t < 27; ++t) s[t] = 2.0f;  // back to 1.1 from step 27
  // Averages over 5 steps: [t, t+5) <= 1.1 * 1.05 first at t = 27.
  EXPECT_EQ(recovery_steps(s, 20, 5, 0.05), 7);
  EXPECT_EQ(recovery_steps(s, 20, 1, 0.0), 7);
  std::vector<float> never(40, 1.1f);
  for (int t = 20; t < 40; ++t) never[t] = 1.5f;
  EXPECT_EQ(recovery_steps(never, 20, 5, 0.05), -1);
  EXPECT_EQ(recovery_steps(s, 0, 5, 0.05), -1);
  // A blended switch: counted from the end of the blend (step 24), against the level before 20.
  EXPECT_EQ(recovery_steps(s, 20, 5, 0.05, 24), 3);
  EXPECT_EQ(recovery_steps(s, 20, 5, 0.05, 40), -1);
}

// The generated trace of the switch tests: 240 steps of 8 layers x 64 experts, top-8, one
// workload, or two with a switch at `switch_at`; and their 16 x 5 replay (interval and window
// 40, one policy step; shift detection: a check every 4 steps, early cycles 8 layers per step).
TraceSpec switch_trace(std::uint64_t seed, std::vector<std::int64_t> switch_at) {
  TraceSpec spec;
  spec.steps = 240;
  spec.tokens = 2048;
  spec.top_k = 8;
  spec.seed = seed;
  spec.bases = {synthetic_base(8, 64, 3, 0)};
  if (!switch_at.empty()) spec.bases.push_back(synthetic_base(8, 64, 3, 1));
  spec.switch_at = std::move(switch_at);
  return spec;
}

ReplayConfig switch_config(const std::string& policies, const TraceSpec& spec) {
  ReplayConfig c;
  c.topo = Topology::make(16, 5, 8);
  c.policies = parse_policy_list(policies);
  c.interval = 40;
  c.window = 40;
  c.policy_steps = 1;
  c.policy_ms = 0.0;
  c.switch_at = spec.switch_at;
  c.recover_window = 10;
  c.shift.check_steps = 4;
  c.shift.layers_per_step = 8;
  return c;
}

// A workload switch on a generated trace: swift:async is back in balance within the interval
// plus the layer pipeline (plus the averaging window), and moves far fewer experts than the
// from-scratch DeepSeek policy.
TEST(Replay, SwiftAsyncRecoversAfterASwitch) {
  const TraceSpec spec = switch_trace(3, {120});
  auto src = generated_trace(spec);
  const ReplayResult r =
      run_replay(*src, switch_config("static,deepseek-global:sync,swift:async", spec));
  const PolicyResult &stat = r.policies[0], &sync = r.policies[1], &swift = r.policies[2];
  ASSERT_EQ(swift.recover_steps.size(), 1u);
  EXPECT_EQ(stat.recover_steps[0], -1);
  // Next gather after 159 (window of the new workload only), 1 policy step, 8 layers.
  EXPECT_GE(swift.recover_steps[0], 0);
  EXPECT_LE(swift.recover_steps[0], 40 + 1 + 8);
  EXPECT_GE(sync.recover_steps[0], 0);
  EXPECT_LE(sync.recover_steps[0], 40);
  EXPECT_LT(swift.transfers, sync.transfers);
  EXPECT_LT(swift.mean_imbalance, stat.mean_imbalance);
  EXPECT_GT(sync.stall_ms, 0.0);
}

// Shift detection: the same switch in the middle of a cycle. swift:shift fires at a check within
// two check periods of the switch, pre-empts the cycle in flight (the fixed interval's cycle
// decided at step 119 on the old workload, moving one layer per step from 121), gathers one
// check period later, and its early cycle moves all 8 layers in one step.
TEST(Replay, ShiftDetectionPreemptsAndRecoversSooner) {
  const TraceSpec spec = switch_trace(3, {123});
  auto src = generated_trace(spec);
  const ReplayResult r = run_replay(*src, switch_config("swift:async,swift:shift", spec));
  const PolicyResult &fixed = r.policies[0], &shift = r.policies[1];
  EXPECT_EQ(fixed.shift_triggers, 0);
  EXPECT_EQ(shift.shift_triggers, 1);
  EXPECT_EQ(shift.preempted, 1);
  int preempted_layers = 0;
  for (const RebalanceEvent& e : shift.events) preempted_layers += e.layers_preempted;
  EXPECT_GT(preempted_layers, 0);
  // Detection within 2 check periods, the gather 1 later, 1 policy step, 1 step of moves.
  ASSERT_EQ(shift.recover_steps.size(), 1u);
  EXPECT_GE(shift.recover_steps[0], 0);
  EXPECT_LE(shift.recover_steps[0], 2 * 4 + 4 + 1 + 1);
  EXPECT_GT(fixed.recover_steps[0], 40 - 3);  // the next fixed gather is at step 159
  // Before the switch both followed the same schedule (the layers in another order: worst first).
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(shift.events[i].decided, fixed.events[i].decided);
    EXPECT_EQ(shift.events[i].layers_changed, fixed.events[i].layers_changed);
  }
}

// Without a switch the detector never fires: the same gathers and cycles.
TEST(Replay, ShiftDetectionChangesNothingOnAStationaryTrace) {
  const TraceSpec spec = switch_trace(5, {});
  auto src = generated_trace(spec);
  const ReplayResult r = run_replay(*src, switch_config("swift:async,swift:shift", spec));
  const PolicyResult &fixed = r.policies[0], &shift = r.policies[1];
  EXPECT_EQ(shift.shift_triggers, 0);
  // A check every 4 steps; each cycle's end restarts the count (at most one check lost).
  EXPECT_LE(shift.shift_checks, 240 / 4);
  EXPECT_GE(shift.shift_checks, 240 / 4 - shift.rebalances);
  EXPECT_EQ(shift.rebalances, fixed.rebalances);
  ASSERT_EQ(shift.events.size(), fixed.events.size());
  for (std::size_t i = 0; i < shift.events.size(); ++i) {
    EXPECT_EQ(shift.events[i].decided, fixed.events[i].decided);
    EXPECT_EQ(shift.events[i].last_commit, fixed.events[i].last_commit);
  }
  // The layers move worst first, so the series differs while a cycle moves, never between.
  EXPECT_EQ(shift.imbalance.front(), fixed.imbalance.front());
  EXPECT_NEAR(shift.mean_imbalance, fixed.mean_imbalance, 0.01);
}

TEST(Replay, StreamingMemoryDoesNotGrowWithTheTrace) {
  TraceSpec spec;
  spec.tokens = 256;
  spec.bases = {synthetic_base(4, 32, 1, 0)};
  ReplayConfig c;
  c.topo = Topology::make(8, 5, 4);
  c.policies = parse_policy_list("off,static,deepseek-global");
  c.interval = 10;
  c.window = 10;
  std::vector<std::int64_t> bytes;
  for (std::int64_t steps : {20, 400}) {
    spec.steps = steps;
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("sb_replay_mem_" + std::to_string(::getpid()) + ".npy"))
                                 .string();
    TraceGenerator gen(spec);
    write_trace_npy(path, gen);
    auto src = open_npy_trace(path);
    const ReplayResult r = run_replay(*src, c);
    EXPECT_EQ(r.steps, steps);
    bytes.push_back(r.peak_window_bytes);
    std::remove(path.c_str());
  }
  EXPECT_EQ(bytes[0], bytes[1]);
  // The prefetched first window (10 steps), the runtime's window of one interval (its ring entry,
  // its sum and the open interval) and two steps: 15 matrices of 4 x 32 doubles.
  EXPECT_EQ(bytes[0], static_cast<std::int64_t>(15 * 4 * 32 * sizeof(double)));
}

TEST(Replay, PolicyListParsing) {
  const auto p = parse_policy_list("off, static,deepseek-global:sync,deepseek:static,swift");
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0].mode, Mode::kOff);
  EXPECT_EQ(p[1].mode, Mode::kStatic);
  EXPECT_EQ(p[1].policy, "deepseek-global");
  EXPECT_EQ(p[2].mode, Mode::kSync);
  EXPECT_EQ(p[3].mode, Mode::kStatic);
  EXPECT_EQ(p[3].policy, "deepseek");
  EXPECT_EQ(p[4].mode, Mode::kAsync);
  EXPECT_EQ(p[4].label, "swift");
  EXPECT_THROW(parse_policy_list("nope"), InputError);
  EXPECT_THROW(parse_policy_list("swift:sometimes"), InputError);
  EXPECT_THROW(parse_policy_list("swift,swift:async"), InputError);
  EXPECT_THROW(parse_policy_list(""), InputError);
  EXPECT_THROW(parse_policy_list("off,,swift"), InputError);
  EXPECT_THROW(parse_policy_list("off:sync"), InputError);
}

TEST(Replay, BadConfigAndTopology) {
  auto src = memory_trace(2, 4, hand_trace(2));
  ReplayConfig c = hand_config("off");
  c.interval = 0;
  EXPECT_THROW(run_replay(*src, c), InputError);
  c = hand_config("off");
  c.topo = Topology::make(1, 2, 1);  // 2 slots cannot hold 4 experts
  EXPECT_THROW(run_replay(*src, c), InputError);
  c = hand_config("off");
  c.decay = 1.5;
  EXPECT_THROW(run_replay(*src, c), InputError);
  c = hand_config("off");
  c.window = 3;  // not a whole number of 2-step intervals
  EXPECT_THROW(run_replay(*src, c), InputError);
  EXPECT_THROW(memory_trace(2, 4, {1, 2, 3}), InputError);
}

TEST(Replay, JsonTableAndPicture) {
  auto src = memory_trace(2, 4, hand_trace(6));
  ReplayConfig c = hand_config("off,deepseek-global:async");
  c.switch_at = {3};
  const ReplayResult r = run_replay(*src, c);
  const auto j = nlohmann::json::parse(to_json_text(r));
  ASSERT_EQ(j["policies"].size(), 2u);
  EXPECT_EQ(j["policies"][1]["label"], "deepseek-global:async");
  EXPECT_EQ(j["policies"][1]["transfers"], 4);
  EXPECT_EQ(j["policies"][1]["series"]["imbalance"].size(), 6u);
  EXPECT_EQ(j["trace"]["layers"], 2);
  const std::string table = format_table(r);
  EXPECT_NE(table.find("deepseek-global:async"), std::string::npos);
  EXPECT_NE(table.find("recover"), std::string::npos);
  const std::string svg = replay_svg(r, "a <title> & more");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("a &lt;title&gt; &amp; more"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_NE(svg.find("deepseek-global:async"), std::string::npos);  // legend
  EXPECT_NE(svg.find("workload switch"), std::string::npos);
  EXPECT_NE(svg.find(">step<"), std::string::npos);  // axis label
  EXPECT_THROW(write_replay_svg("/nonexistent-dir/x.svg", r, "t"), InputError);
}

}  // namespace
}  // namespace swiftbalancer::replay
