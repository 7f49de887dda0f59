// The demo's analysis: the figures `swiftbalancer demo` prints and writes in its JSON report,
// from a DemoResult (demo_engine.h): imbalance before and after rebalancing, step and balancer
// time percentiles, the slowest weight-moving step, and per workload switch the recovery. Pure:
// the CLI parses the options, runs the engine, and prints these.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "swiftbalancer/demo/demo_engine.h"

namespace swiftbalancer {

struct DemoSummary {
  double imbalance_initial = 0, imbalance_after = 0, imbalance_last = 0;
  double step_median_ms = 0, step_p99_ms = 0, step_max_ms = 0;
  double balancer_action_max_ms = 0;  // the slowest step in which the balancer gathered/committed
  double commit_max_ms = 0;           // the slowest step that committed layers (moved weights)
  int commit_max_step = 0;
  std::int64_t commit_max_bytes = 0;  // expert bytes moved in that step, all ranks
  double balancer_p50_us = 0, balancer_p99_us = 0, balancer_max_us = 0;
  double wait_p99_us = 0, wait_max_us = 0;
  double copy_p99_us = 0, copy_max_us = 0, with_copy_p99_us = 0;
  std::int64_t bytes = 0;
  int first_rebalance_step = 0;
  // Per workload switch: the recovery figure (DemoResult::recover_steps) and what it is made of.
  struct Switch {
    int step = 0;               // first step on the new load (1-based)
    double before = 0;          // mean imbalance over the recover window before it
    double peak = 0;            // highest per-step imbalance from the switch to the next (or end)
    std::int64_t recover = -1;  // steps until recovered; -1 never
    std::vector<double> means;  // mean imbalance of consecutive recover windows from the switch
  };
  std::vector<Switch> switches;
};

// At most this many window means after each switch (the JSON has the steps).
inline constexpr int kDemoSwitchWindows = 8;

// The figures of one mode's run under the options it ran with.
DemoSummary summarize_demo(const DemoResult& r, const DemoOptions& opt);

// Achieved bandwidth of the slowest weight-moving step: its bytes over its time beyond the
// median step (for sync, the stop-the-world copy); 0 when it took no extra time.
double demo_transfer_gbps(const DemoSummary& s);

// One mode's entry of the JSON report's "runs": mode, switches, seconds, totals (the summary and
// the counters the table marks for the demo, runtime/report_fields.h) and every step.
nlohmann::json demo_run_json(const DemoResult& r, const DemoSummary& s);

}  // namespace swiftbalancer
