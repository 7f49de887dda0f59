// Balancer: the asynchronous expert-parallel load balancer, one object per rank.
//
// How an engine drives it, every step, on its serving thread:
//
//   balancer.before_forward();                  // post this step's weight moves (non-blocking)
//   for (layer : moe_layers) {
//     const RoutingTable& t = balancer.routing(layer);   // lock-free, consistent snapshot
//     counts = dispatch(tokens, t);              // tokens -> slots
//     balancer.record(layer, counts);            // this rank's per-slot counts: one add each
//     apply_mlp(...); combine(...);
//   }
//   StepStats s = balancer.after_forward();      // bounded wait, install weights, commit tables
//
// Setup, once: construct with the topology, this rank, a transport, a policy, the initial
// placement and a config; then register_expert() for every (layer, local slot) with the byte
// buffers that make up the expert in that slot (weights, scales, biases: they move together).
//
// What happens behind the calls (see docs/runtime.md):
//   - every `interval_steps` steps after_forward() all-gathers the per-slot counts (each rank
//     sends only its own slots), folds them onto logical experts and into a sliding window, and
//     hands (window, placement) to the worker thread, which runs the policy and the transfer plan;
//   - serving never waits for the worker: every `decision_poll_steps` steps the ranks all-reduce
//     a ready flag (and a hash of the result); all start moving at the same step, or all drop the
//     cycle (a rank failed, or its worker ran past worker_timeout);
//   - then `layers_per_step` layers per step: before_forward() stages local copies and posts the
//     receives and sends into staging buffers; after_forward() waits (transfer_timeout), the ranks
//     agree per layer, and each layer that arrived everywhere is installed (only slots whose
//     expert changes are written) and its routing table swapped in. A layer that failed anywhere
//     stays on its old placement on every rank. Weights first, then the table.
//   - mode kSync moves every layer at the gather step while serving waits (stop the world, for
//     comparison); kOff only records.
//
// Failures (transfer error or timeout, worker exception, invalid policy output, a rank that does
// not answer a collective) are logged, counted in counters(), and serving goes on. Every wait is
// bounded. Bad arguments throw InputError.
//
// Threading: all methods except counters() must be called from one thread (the serving thread).
// routing() may also be called from other threads; the reference it returns stays valid until
// the second commit of that layer after it was obtained (tables are immutable and retired one
// commit late). counters() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/plan/routing_table.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/policy/policy.h"
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
  // Run the worker at the lowest CPU priority (Linux: nice 19 for that thread), so that the
  // policy takes CPU time the serving threads leave, instead of preempting them.
  bool background_worker = true;
  PolicyOptions policy_options{};
  LinkWeights link_weights{};
  // Tags [tag_base, Transport::kMaxTag) are the balancer's; the engine uses the ones below.
  int tag_base = Transport::kMaxTag / 2;
  // Log sink for errors and rebalances, with each line's severity; default: warnings and errors
  // as one line on stderr. Called from the serving thread and (rarely) the worker thread.
  std::function<void(LogSeverity, const std::string&)> log;
  FaultInjection fault{};
};

// What one step did, returned by after_forward().
struct StepStats {
  std::int64_t step = 0;  // 1-based index of the step just finished
  // Time in balancer calls on the serving thread, excluding waits and weight copies.
  std::int64_t serving_ns = 0;
  // Weight copies on the serving thread: staging local copies and installing staged experts
  // into their slots (device-to-device copies on a stream in a GPU engine).
  std::int64_t copy_ns = 0;
  std::int64_t wait_ns = 0;     // time blocked on transfers and collectives
  std::int64_t bytes_sent = 0;  // by this rank, in transfers completed this step
  std::int64_t bytes_received = 0;
  int layers_committed = 0;
  int layers_failed = 0;
  bool gathered = false;            // counts were all-gathered at this step
  bool cycle_agreed = false;        // a new placement was agreed at this step
  bool rebalance_finished = false;  // the last layer of a cycle was handled at this step
  int errors = 0;                   // failures reported at this step
};

struct BalancerCounters {
  std::int64_t steps = 0;
  std::int64_t gathers = 0;
  std::int64_t cycles_started = 0;
  std::int64_t cycles_agreed = 0;
  std::int64_t cycles_dropped = 0;
  std::int64_t rebalances = 0;  // cycles that committed at least one layer
  std::int64_t layers_committed = 0;
  std::int64_t layers_failed = 0;
  std::int64_t transfer_failures = 0;
  std::int64_t worker_failures = 0;
  std::int64_t invalid_placements = 0;
  std::int64_t collective_failures = 0;
  std::int64_t bytes_sent = 0;
  std::int64_t bytes_received = 0;
  std::int64_t errors = 0;
  std::string last_error;
};

class Balancer {
 public:
  // `transport` must outlive the balancer and has size() == topo.ranks. `initial` must be a valid
  // placement for topo. Throws InputError on bad arguments.
  Balancer(const Topology& topo, int rank, Transport& transport,
           std::shared_ptr<const Policy> policy, Placement initial, BalancerConfig config = {});
  ~Balancer();  // stops the worker (waits for a running policy to finish)
  Balancer(const Balancer&) = delete;
  Balancer& operator=(const Balancer&) = delete;

  // The buffers of the expert in (layer, local slot). Every slot of a layer must have the same
  // number of tensors and the same sizes (on every rank). Required before the first step unless
  // the mode is kOff. The buffers stay owned by the engine and must outlive the balancer.
  void register_expert(int layer, int local_slot, std::vector<std::span<std::byte>> tensors);

  // Hot path: adds this rank's per-slot counts of `layer` (size slots_per_rank). Allocation-free.
  void record(int layer, std::span<const std::int64_t> slot_counts);

  const RoutingTable& routing(int layer) const {
    return *tables_[static_cast<std::size_t>(layer)].load(std::memory_order_acquire);
  }

  void before_forward();
  StepStats after_forward();

  // The placement in service (serving thread).
  const Placement& placement() const { return placement_; }
  std::int64_t step() const { return step_; }
  const BalancerConfig& config() const { return cfg_; }
  BalancerCounters counters() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::vector<std::atomic<const RoutingTable*>> tables_;
  Placement placement_;
  std::int64_t step_ = 0;
  BalancerConfig cfg_;
};

}  // namespace swiftbalancer
