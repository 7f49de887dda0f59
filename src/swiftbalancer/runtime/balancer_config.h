// The balancer's configuration and the figures it reports: plain structs shared by its parts
// (load accounting, decision cycle, layer mover) and its users (engines, the demo, bindings).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/runtime/report_fields.h"
#include "swiftbalancer/stats/shift_detector.h"
#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer {

enum class BalancerMode { kAsync, kSync, kOff };
const char* balancer_mode_name(BalancerMode mode);
BalancerMode parse_balancer_mode(const std::string& name);  // "async", "sync", "off"

// Deliberate misbehaviour, for tests and the demo. One rank misbehaves in one decision cycle.
struct FaultInjection {
  enum class Kind { kNone, kTransferTimeout, kWorkerException, kBadPlacement };
  Kind kind = Kind::kNone;
  int rank = 0;   // the rank that misbehaves
  int cycle = 1;  // the decision cycle (0-based) in which it does; -1 means every cycle
  //   kTransferTimeout: the rank withholds its sends of the first moved layer in which it sends
  //   (in that cycle or, when it sends nothing there, a later one);
  //   kWorkerException: its worker throws; kBadPlacement: its policy result is corrupted.
  // Random faults (soak runs): when random_rate > 0, kind, rank and cycle above are ignored and
  // every decision cycle draws, from (random_seed, cycle) alone so that every rank draws the
  // same, whether a fault happens (probability random_rate), of which kind and on which rank.
  double random_rate = 0.0;
  std::uint64_t random_seed = 1;

  // The fault of decision cycle `c` in a world of `ranks` ranks: its kind (kNone for none) and,
  // through `at_rank`, the rank it hits.
  Kind in_cycle(std::int64_t c, int ranks, int* at_rank) const;
  bool hits(Kind k, int r, std::int64_t c, int ranks) const {
    int at = -1;
    return k != Kind::kNone && in_cycle(c, ranks, &at) == k && at == r;
  }
};
FaultInjection::Kind parse_fault_kind(const std::string& name);  // "none", "transfer-timeout", ...
const char* fault_kind_name(FaultInjection::Kind kind);

struct BalancerConfig {
  BalancerMode mode = BalancerMode::kAsync;
  int interval_steps = 50;      // gather counts (and start a cycle when idle) every this many
  int window_intervals = 4;     // load window, in intervals
  double window_decay = 0.0;    // 0: sliding window; in (0, 1): decayed sum instead
  int layers_per_step = 1;      // layers committed per step while moving (async)
  int decision_poll_steps = 2;  // steps between ready-flag agreements
  Millis worker_timeout{5000};  // a cycle whose worker is not done by then is dropped
  Millis transfer_timeout{1000};
  Millis collective_timeout{5000};
  // Run the worker at the lowest CPU priority (Linux: SCHED_BATCH and nice 19 for that thread,
  // exec/thread_priority.h), so that the policy takes CPU time the serving threads leave,
  // instead of preempting them.
  bool background_worker = true;
  // How the worker learns of a decision to make (async mode). 0: the serving thread wakes it (a
  // condition variable's notify when a cycle starts). Positive: the serving thread wakes no one;
  // the worker looks for a job this often (a decision starts up to this much later; the worker
  // wakes this often while idle). For hosts where the serving threads outnumber the cores: there
  // a wake-up can cost the waking serving thread its core for milliseconds, while a timer wakes
  // the worker off the serving path. Less than worker_timeout.
  Millis worker_poll{0};
  // Threads the policy may spread its per-layer work over, the worker included (swift's
  // searches; 1: the worker alone). The extra threads run at the worker's priority. The
  // decision is the same for any count, so ranks may differ in it.
  int policy_threads = 1;
  PolicyOptions policy_options{};
  LinkWeights link_weights{};
  // Tags [tag_base, Transport::kMaxTag) are the balancer's; the engine uses the ones below.
  int tag_base = Transport::kMaxTag / 2;
  // After this many collectives in a row fail (a rank that stopped answering), or as soon as the
  // transport reports broken(), the balancer stops balancing: it records only, keeps the
  // placement in service, logs it once, and serving never waits on a collective again.
  int max_collective_failures = 3;
  // Liveness (docs/runtime.md "Liveness"): when no cycle has been agreed for this many intervals
  // (interval_steps each), the balancer warns once, with the reason (the worker busy past its
  // deadline, every cycle dropped and why, balancing stopped), counts it in stall_warnings and
  // sets the stalled gauge until a cycle is agreed again. 0: no warning. Off mode never warns.
  int stall_intervals = 10;
  // Log sink for errors and rebalances, with each line's severity; default: warnings and errors
  // as one line on stderr. Called from the serving thread and (rarely) the worker thread.
  std::function<void(LogSeverity, const std::string&)> log;
  FaultInjection fault{};
  // Shift detection (docs/runtime.md "Shift detection"). shift.check_steps 0: off, exactly the
  // fixed interval. Else every shift.check_steps steps the ranks all-gather their per-layer token
  // totals since the last check (one int64 per layer each) and a ShiftDetector
  // (stats/shift_detector.h) watches the imbalance under the placement in service: when it rises
  // past shift.trigger_ratio x the level the last cycle reached, the balancer drops the window
  // and gathers one check period later (the new load only), and starts a cycle; a cycle in
  // flight is pre-empted first (it was decided on the load that went away: the layers it has not
  // committed stay old, counted as pre-empted, not failed). The gather schedule restarts from
  // there. shift.rearm_ratio (hysteresis) and shift.min_gap_steps keep it from flapping. With
  // detection on, every cycle moves its layers worst first by the last check's signal and skips
  // those under shift.skip_below (0: none); a cycle a shift started commits
  // shift.layers_per_step layers per step (0: layers_per_step; the staging pool holds
  // max(layers_per_step, shift.layers_per_step) + 1 layer regions). The step schedule itself is
  // runtime/cycle_schedule.h.
  ShiftConfig shift{};
};

// Staging regions the balancer's pool holds for `config`: the most layers one step posts, plus
// the one being installed.
int staging_regions(const BalancerConfig& config);

// Throws InputError naming the first field out of range.
void validate_config(const BalancerConfig& config);

// What one step did, returned by after_forward(); its fields are the rows of
// SWIFTBALANCER_STEP_FIELDS (runtime/report_fields.h), each zero (false) to start.
struct StepStats {
#define SWIFTBALANCER_DECLARE_FIELD(field, type, help) type field{};
  SWIFTBALANCER_STEP_FIELDS(SWIFTBALANCER_DECLARE_FIELD)
#undef SWIFTBALANCER_DECLARE_FIELD
};

// What the balancer has done since it started. Its numeric fields are the rows of
// SWIFTBALANCER_COUNTER_FIELDS (runtime/report_fields.h: add a counter there, nowhere else);
// the rest are the figures no single sample can carry.
struct BalancerCounters {
#define SWIFTBALANCER_DECLARE_FIELD(field, type, kind, family, label, demo, help) type field{};
  SWIFTBALANCER_COUNTER_FIELDS(SWIFTBALANCER_DECLARE_FIELD)
#undef SWIFTBALANCER_DECLARE_FIELD
  // Rebalances (cycles that moved at least one layer), from the gather that started them to
  // their last layer: a histogram with upper bounds kRebalanceSecondsBounds (and +Inf).
  static constexpr std::array<double, 9> kRebalanceSecondsBounds = {0.01, 0.05, 0.1, 0.5, 1,
                                                                    5,    10,   30,  60};
  std::array<std::int64_t, 10> rebalance_seconds_buckets{};  // not cumulative; last is +Inf
  double rebalance_seconds_sum = 0.0;
  std::string last_error;    // the last failure's message
  std::string stall_reason;  // why the last stall warning was given
};

}  // namespace swiftbalancer
