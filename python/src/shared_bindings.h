// What the two runtime extensions share (_runtime over in-process ranks, _torch over a torch
// engine's groups): StepStats and BalancerCounters as Python dicts, and the name of the capsule
// that carries a BalancerConfig from one to the other. Header-only on purpose: each module
// compiles it against its own pybind11.
#pragma once

#include <pybind11/pybind11.h>

#include "swiftbalancer/runtime/balancer_config.h"

namespace swiftbalancer::python {

inline constexpr const char* kConfigCapsuleName = "swiftbalancer.BalancerConfig";

inline pybind11::dict stats_dict(const StepStats& s) {
  pybind11::dict d;
  d["step"] = s.step;
  d["serving_ns"] = s.serving_ns;
  d["copy_ns"] = s.copy_ns;
  d["wait_ns"] = s.wait_ns;
  d["bytes_sent"] = s.bytes_sent;
  d["bytes_received"] = s.bytes_received;
  d["layers_committed"] = s.layers_committed;
  d["layers_failed"] = s.layers_failed;
  d["gathered"] = s.gathered;
  d["cycle_agreed"] = s.cycle_agreed;
  d["rebalance_finished"] = s.rebalance_finished;
  d["errors"] = s.errors;
  return d;
}

inline pybind11::dict counters_dict(const BalancerCounters& c) {
  pybind11::dict d;
  d["steps"] = c.steps;
  d["gathers"] = c.gathers;
  d["cycles_started"] = c.cycles_started;
  d["cycles_agreed"] = c.cycles_agreed;
  d["cycles_dropped"] = c.cycles_dropped;
  d["rebalances"] = c.rebalances;
  d["layers_committed"] = c.layers_committed;
  d["layers_failed"] = c.layers_failed;
  d["transfer_failures"] = c.transfer_failures;
  d["worker_failures"] = c.worker_failures;
  d["invalid_placements"] = c.invalid_placements;
  d["collective_failures"] = c.collective_failures;
  d["bytes_sent"] = c.bytes_sent;
  d["bytes_received"] = c.bytes_received;
  d["errors"] = c.errors;
  d["peak_staging_bytes"] = c.peak_staging_bytes;
  d["parked_staging_bytes"] = c.parked_staging_bytes;
  d["balancing_stopped"] = c.balancing_stopped;
  d["steps_since_progress"] = c.steps_since_progress;
  d["stalled"] = c.stalled;
  d["stall_warnings"] = c.stall_warnings;
  d["stall_reason"] = c.stall_reason;
  d["shift_checks"] = c.shift_checks;
  d["shift_triggers"] = c.shift_triggers;
  d["shift_layers_skipped"] = c.shift_layers_skipped;
  d["shift_preemptions"] = c.shift_preemptions;
  d["shift_layers_preempted"] = c.shift_layers_preempted;
  d["rebalance_seconds_sum"] = c.rebalance_seconds_sum;
  d["imbalance_before"] = c.imbalance_before;
  d["imbalance_after"] = c.imbalance_after;
  d["last_error"] = c.last_error;
  return d;
}

}  // namespace swiftbalancer::python
