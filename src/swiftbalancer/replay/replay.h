// Trace-driven replay: no weights move; for every step and layer the placement in force at that
// step meets that step's counts, under the runtime's scheduling rules, for several policies and
// modes at once (the trace is read once; every policy sees the same steps).
//
// Time line (steps t = 0, 1, ...; "gather" happens after step t when (t + 1) % interval == 0):
//   - statistics: the runtime's LoadWindow (runtime_model.h): each gather pushes the interval's
//     counts; a sliding window of the last window / interval intervals, or a decayed sum
//     (sum = decay * sum + interval counts) when decay > 0; shared by all policies (counts are
//     logical, independent of placement);
//   - off: contiguous_placement, never changed;
//   - static: one placement from the first window (steps [0, window), or [0, interval) with a
//     decayed sum), in force from step 0
//     (an offline profile; its transfers are not counted), never changed;
//   - sync and async start from contiguous_placement, or (start_static) from the deepseek-global
//     placement of the first window, as a deployment that starts from a profiled static EPLB;
//   - sync: at a gather the policy runs and every changed layer is installed before step t + 1;
//     the stall (policy time + transfer time of all changed layers moved as one batch) is added
//     to step t's time;
//   - transfers: the runtime's plan (make_layer_plan) of every changed layer picks the senders;
//     cost_model.h times them;
//   - async: at a gather the policy runs on a worker for P steps (policy_steps, or the policy
//     time divided by step t's modelled time, rounded up; then rounded up to a multiple of
//     poll_steps, the runtime's ready-flag agreement period); then the changed layers move
//     `layers_per_step` per step, in increasing layer order: batch j moves during step
//     t + 1 + P + j (only the part of its transfer time beyond that step's compute is exposed)
//     and is committed after it, so it is in force from step t + 2 + P + j. A gather that finds
//     the previous rebalance still in flight is skipped (and counted).
// Imbalance of a step = mean over layers with load of max rank load / mean rank load, each
// expert's count split evenly over its replicas (core/metrics.h conventions).
//
// Ownership: run_replay reads the source to its end; results are plain values. Not thread-safe.
#pragma once

#include "swiftbalancer/stats/shift_detector.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/replay/cost_model.h"
#include "swiftbalancer/replay/trace.h"

namespace swiftbalancer::replay {

enum class Mode { kOff, kStatic, kSync, kAsync };
const char* mode_name(Mode m);

struct PolicySpec {
  std::string label;   // as the user wrote it, e.g. "swift:async"
  std::string policy;  // registry name; empty for off
  Mode mode = Mode::kAsync;
  // "NAME:shift": async with shift detection (an early gather when the imbalance under the
  // placement in force rises past the detector's level; the runtime's shift_check_steps).
  bool shift = false;
};

// Parses "off,static,deepseek-global:sync,swift:async". "NAME" alone means NAME:async; "static"
// alone means deepseek-global:static; "off" is contiguous. Checks names against the registry and
// rejects duplicates (throws InputError).
std::vector<PolicySpec> parse_policy_list(const std::string& list);

struct ReplayConfig {
  Topology topo;
  std::vector<PolicySpec> policies;
  int interval = 100;       // steps between gathers
  int window = 100;         // sliding-window length (steps, whole intervals), when decay == 0
  double decay = 0.0;       // in (0, 1): decayed sum (per interval) instead of a window
  int layers_per_step = 1;  // async commit rate
  int poll_steps = 1;       // async: the worker's result is picked up every this many steps
  double policy_ms = -1.0;  // policy time; negative: the measured wall time of each call
  // Where the policy calls run their per-layer work (not owned; nullptr: the calling thread).
  // The placements do not depend on it; the measured policy time is that of a worker with this
  // executor's threads.
  TaskExecutor* executor = nullptr;
  int policy_steps = -1;     // async delay in steps; negative: from policy time and step time
  bool start_static = true;  // sync/async start from the static placement (else contiguous)
  PolicyOptions options{};
  CostModel cost{};
  std::vector<std::int64_t> switch_at;  // workload switches, for the recovery figure
  std::int64_t switch_blend = 0;  // steps each switch blends over; recovery counts from its end
  int recover_window = 20;        // steps averaged on both sides of the recovery test
  double recover_tol = 0.05;      // recovered: average <= (1 + tol) * average before the switch
  int heatmap_bins = 200;         // time bins of the rank-load heatmap
  // Shift detection, for NAME:shift entries (the runtime's BalancerConfig::shift): a check every
  // shift.check_steps steps (an all-gather of one int64 per layer per rank, charged
  // cost.check_us; 4 here), the detector's levels, the skip threshold of the worst-first layer
  // order, and the layers per step of a cycle a shift started (0: layers_per_step). A shift that
  // fires while a cycle is in flight pre-empts it: the layers not yet committed stay old.
  ShiftConfig shift = [] {
    ShiftConfig s;
    s.check_steps = 4;
    return s;
  }();
  // Called with (steps done, steps total) after every step (may be empty).
  std::function<void(std::int64_t, std::int64_t)> progress;
  void validate() const;  // throws InputError
};

struct RebalanceEvent {
  std::int64_t decided = 0;       // the gather step
  std::int64_t first_commit = 0;  // step after which the first changed layer is in force
  std::int64_t last_commit = 0;   // step after which the whole placement is in force
  int layers_changed = 0;
  std::int64_t transfers = 0;  // of the layers committed (sync: all changed layers)
  double transfer_ms = 0.0;    // all changed layers as one batch
  double policy_ms = 0.0;      // wall time of the policy call (or the configured time)
  int policy_steps = 0;        // async delay used
  bool shift = false;          // started early by shift detection
  // Layers left out because a shift pre-empted the cycle (their transfers are not counted).
  int layers_preempted = 0;
  // The new placement's mean imbalance on the window it was computed from, and over the steps
  // it served (after its last commit until the next placement's first commit; -1 when none).
  double window_imbalance = 0.0;
  double future_imbalance = -1.0;
};

struct PolicyResult {
  PolicySpec spec;
  std::vector<float> imbalance;  // per step
  std::vector<float> step_ms;    // per step: compute + exposed transfer + stall
  double mean_imbalance = 0, p50_imbalance = 0, p99_imbalance = 0, max_imbalance = 0;
  double mean_step_ms = 0, mean_compute_ms = 0;
  std::int64_t policy_calls = 0, rebalances = 0, skipped = 0;
  std::int64_t transfers = 0;
  double bytes = 0;
  double stall_ms = 0;                      // sync stalls + exposed async transfer time
  double policy_wall_ms = 0;                // summed measured wall time of policy calls
  std::vector<std::int64_t> recover_steps;  // per switch point; -1 never
  // Means over rebalances (those that served at least one step): the placement's imbalance on
  // its window, and the one it met afterwards (RebalanceEvent). 0 without rebalances.
  double window_imbalance = 0.0, future_imbalance = 0.0;
  std::int64_t shift_checks = 0, shift_triggers = 0, preempted = 0;
  std::vector<RebalanceEvent> events;
  // Rank-load heatmap: bins x ranks, each cell the mean over its steps and loaded layers of
  // rank load / mean rank load.
  int heat_bins = 0;
  std::vector<float> heat;
};

struct ReplayResult {
  std::int64_t steps = 0;
  int layers = 0, experts = 0;
  ReplayConfig config;
  std::vector<PolicyResult> policies;
  double wall_s = 0.0;
  std::int64_t peak_window_bytes = 0;  // memory held for the trace (window + prefetch + step)
};

ReplayResult run_replay(TraceSource& source, ReplayConfig config);

// Plain-text table, one row per policy.
std::string format_table(const ReplayResult& r);
// JSON text: config, per-policy summary, events and per-step series.
std::string to_json_text(const ReplayResult& r);

// The recovery figure (steps after a switch until the imbalance is back within recover_tol of
// its level before it) is core/metrics.h's recovery_steps, shared with the demo.
using swiftbalancer::recovery_steps;

}  // namespace swiftbalancer::replay
