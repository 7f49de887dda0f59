// The figures the balancer reports, one row each: the single list from which the fields of
// BalancerCounters and StepStats (runtime/balancer_config.h) are declared and every report is
// generated: the Prometheus text (runtime/metrics_text.cpp), the Python dicts counters() and
// after_forward() (python/src/shared_bindings.h) and the demo report's "totals"
// (demo/demo_report.cpp). Nothing else lists them.
//
// How to add a counter: add one row to SWIFTBALANCER_COUNTER_FIELDS, where its Prometheus family
// should appear, and set it in the runtime. That is the whole change: the struct field (zero to
// start), the Prometheus sample, the Python dict key and (with demo 1) the demo report's key
// follow. tests/runtime/metrics_text_test.cpp checks that every row is in the text, and
// tests/python/test_prometheus.py that every row is in the dict with the text's value. A
// figure that is not a number (last_error), or not one sample (the rebalance-duration
// histogram), stays hand-written in BalancerCounters and in each report. The Python collector
// (python/swiftbalancer/prometheus.py) exports a dict key it does not know as an untyped
// sample, so it needs no change either. The step stats' table below works the same way for
// StepStats and after_forward()'s dict.
//
// Row: X(field, type, kind, family, label, demo, help)
//   field   the member of BalancerCounters and the key of the Python dict and the demo report;
//   type    std::int64_t or double;
//   kind    kCounter or kGauge (MetricKind): the Prometheus TYPE;
//   family  the Prometheus family, after the prefix swiftbalancer_ (counters end in _total).
//           Consecutive rows of one family are one family, told apart by their label; its HELP
//           is the first row's help;
//   label   "" or the label that tells the row apart in its family, e.g. "outcome=\"started\"";
//   demo    1 when the demo's JSON report lists the field in its "totals";
//   help    what it counts (the Prometheus HELP text, and the field's documentation).
#pragma once

namespace swiftbalancer {

enum class MetricKind { kCounter, kGauge };

// clang-format off
#define SWIFTBALANCER_COUNTER_FIELDS(X)                                                          \
  X(steps, std::int64_t, kCounter, "steps_total", "", 0,                                         \
    "Serving steps seen by the balancer.")                                                       \
  X(gathers, std::int64_t, kCounter, "gathers_total", "", 0, "Load all-gathers.")                \
  X(rebalances, std::int64_t, kCounter, "rebalances_total", "", 1,                               \
    "Cycles that committed at least one layer.")                                                 \
  X(errors, std::int64_t, kCounter, "errors_total", "", 1, "Failures reported (all kinds).")     \
  X(cycles_started, std::int64_t, kCounter, "cycles_total", "outcome=\"started\"", 1,            \
    "Decision cycles by outcome.")                                                               \
  X(cycles_agreed, std::int64_t, kCounter, "cycles_total", "outcome=\"agreed\"", 0,              \
    "Decision cycles by outcome.")                                                               \
  X(cycles_dropped, std::int64_t, kCounter, "cycles_total", "outcome=\"dropped\"", 1,            \
    "Decision cycles by outcome.")                                                               \
  X(layers_committed, std::int64_t, kCounter, "layers_total", "outcome=\"committed\"", 1,        \
    "Layer moves by outcome.")                                                                   \
  X(layers_failed, std::int64_t, kCounter, "layers_total", "outcome=\"failed\"", 1,              \
    "Layer moves by outcome.")                                                                   \
  /* Failures by kind. A decision failure (worker exception or timeout, invalid placement) is */ \
  /* counted on every rank, whichever rank it happened on. */                                    \
  X(transfer_failures, std::int64_t, kCounter, "failures_total", "kind=\"transfer\"", 1,         \
    "Failures by kind.")                                                                         \
  X(worker_failures, std::int64_t, kCounter, "failures_total", "kind=\"worker\"", 1,             \
    "Failures by kind.")                                                                         \
  X(invalid_placements, std::int64_t, kCounter, "failures_total", "kind=\"invalid_placement\"",  \
    1, "Failures by kind.")                                                                      \
  X(collective_failures, std::int64_t, kCounter, "failures_total", "kind=\"collective\"", 1,     \
    "Failures by kind.")                                                                         \
  X(bytes_sent, std::int64_t, kCounter, "bytes_total", "direction=\"sent\"", 0,                  \
    "Expert bytes moved by this rank.")                                                          \
  X(bytes_received, std::int64_t, kCounter, "bytes_total", "direction=\"received\"", 0,          \
    "Expert bytes moved by this rank.")                                                          \
  /* Shift detection: checks done, early cycles it started, layers it left out (skip_below), */  \
  /* cycles it pre-empted and the layers they left on the old placement. */                     \
  X(shift_checks, std::int64_t, kCounter, "shift_checks_total", "", 1,                           \
    "Shift-detection checks of the imbalance in service.")                                       \
  X(shift_triggers, std::int64_t, kCounter, "shift_triggers_total", "", 1,                       \
    "Cycles started early by shift detection.")                                                  \
  X(shift_layers_skipped, std::int64_t, kCounter, "shift_layers_skipped_total", "", 0,           \
    "Changed layers a cycle left out, their shift signal under shift_skip_below.")               \
  X(shift_preemptions, std::int64_t, kCounter, "shift_preemptions_total", "", 1,                 \
    "Cycles in flight pre-empted by a shift.")                                                   \
  X(shift_layers_preempted, std::int64_t, kCounter, "shift_layers_preempted_total", "", 1,       \
    "Layers a pre-empted cycle left on the old placement.")                                      \
  /* Staging: the most bytes this rank's pool held at once, and the buffers kept out of use */   \
  /* because a transfer could not be cancelled (the transport may still write them). */          \
  X(peak_staging_bytes, std::int64_t, kGauge, "staging_peak_bytes", "", 0,                       \
    "Most staging memory held at once.")                                                         \
  X(parked_staging_bytes, std::int64_t, kGauge, "staging_parked_bytes", "", 1,                   \
    "Staging kept after transfers that could not be cancelled.")                                 \
  X(posts_deferred, std::int64_t, kCounter, "posts_deferred_total", "", 0,                       \
    "Layer posts put off to a later step on every rank: staging still drained by a device.")     \
  X(balancing_stopped, std::int64_t, kGauge, "balancing_stopped", "", 0,                         \
    "1 once the balancer fell back to recording only.")                                          \
  /* Liveness: steps since a cycle was last agreed (or since the start), 1 while stalled (no */  \
  /* cycle agreed for stall_intervals intervals), warnings given (the reason: stall_reason). */  \
  X(steps_since_progress, std::int64_t, kGauge, "steps_since_progress", "", 0,                   \
    "Steps since a decision cycle was last agreed.")                                             \
  X(stalled, std::int64_t, kGauge, "stalled", "", 0,                                             \
    "1 while no cycle has been agreed for stall_intervals intervals (see the log for why).")     \
  X(stall_warnings, std::int64_t, kCounter, "stall_warnings_total", "", 0,                       \
    "Times the balancer warned that balancing had stalled.")                                     \
  /* The window's mean imbalance under the placement in service and under the new one, for */    \
  /* the last rebalance (0 before the first). */                                                 \
  X(imbalance_before, double, kGauge, "imbalance", "placement=\"before\"", 0,                    \
    "Mean over layers of max/mean rank load of the last rebalance's window.")                    \
  X(imbalance_after, double, kGauge, "imbalance", "placement=\"after\"", 0,                      \
    "Mean over layers of max/mean rank load of the last rebalance's window.")

// What one step did (StepStats, returned by after_forward()). Row: X(field, type, help).
#define SWIFTBALANCER_STEP_FIELDS(X)                                                             \
  X(step, std::int64_t, "1-based index of the step just finished")                               \
  X(serving_ns, std::int64_t,                                                                    \
    "time in balancer calls on the serving thread, excluding waits and weight copies")           \
  X(copy_ns, std::int64_t,                                                                       \
    "weight copies on the serving thread: staging local copies and installing staged experts "   \
    "into their slots (queued on a side stream by a device store)")                              \
  X(wait_ns, std::int64_t, "time blocked on transfers and collectives")                          \
  X(bytes_sent, std::int64_t, "by this rank, in transfers completed this step")                  \
  X(bytes_received, std::int64_t, "by this rank, in transfers completed this step")              \
  X(layers_committed, int, "layers committed at this step")                                      \
  X(layers_failed, int, "layers that failed at this step (left on the old placement)")           \
  X(gathered, bool, "counts were all-gathered at this step")                                     \
  X(cycle_agreed, bool, "a new placement was agreed at this step")                               \
  X(rebalance_finished, bool, "the last layer of a cycle was handled at this step")              \
  X(errors, int, "failures reported at this step")
// clang-format on

}  // namespace swiftbalancer
