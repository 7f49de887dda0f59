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
// An engine whose experts live elsewhere (device memory) hands its own ExpertStore instead.
//
// The parts, one file each, along the flow (docs/runtime.md):
//   LoadAccounting (record, gather, fold, window) -> DecisionCycle (worker thread, agreement)
//   -> LayerMover (stage, post, wait, install, commit) over an ExpertStore and a StagingPool;
//   ServingState holds the placement in service and its routing tables; Reporter the counters.
//   CycleSchedule (pure) says what to do at each step and holds the cycle's phase; the facade
//   only does what it says and reports the results back.
//
// What happens behind the calls (see docs/runtime.md):
//   - every `interval_steps` steps after_forward() all-gathers the per-slot counts (each rank
//     sends only its own slots), folds them onto logical experts and into a sliding window, and
//     hands (window, placement) to the worker thread, which runs the policy and the transfer plan;
//   - serving never waits for the worker: every `decision_poll_steps` steps the ranks all-reduce
//     a ready flag (and a hash of the result); all start moving at the same step, or all drop the
//     cycle (a rank failed, or its worker ran past worker_timeout);
//   - then `layers_per_step` layers per step: before_forward() stages local copies and posts the
//     receives and sends into staging (a pool of layers_per_step + 1 layer regions, reused layer
//     after layer); after_forward() waits (transfer_timeout), the ranks
//     agree per layer, and each layer that arrived everywhere is installed (only slots whose
//     expert changes are written) and its routing table swapped in. A layer that failed anywhere
//     stays on its old placement on every rank. Weights first, then the table.
//   - mode kSync moves every layer at the gather step while serving waits (stop the world, for
//     comparison; staged layers_per_step + 1 layers at a time); kOff only records.
//
// Failures (transfer error or timeout, worker exception, invalid policy output, a rank that does
// not answer a collective) are logged, counted in counters(), and serving goes on. Every wait is
// bounded. Bad arguments throw InputError.
//
// Threading: all methods except counters() and routing() must be called from one thread (the
// serving thread).
// routing() may also be called from other threads; the reference it returns stays valid until
// the second commit of that layer after it was obtained (tables are immutable and retired one
// commit late). counters() may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/plan/routing_table.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/runtime/balancer_config.h"
#include "swiftbalancer/runtime/cycle_plan.h"
#include "swiftbalancer/runtime/cycle_schedule.h"
#include "swiftbalancer/runtime/expert_store.h"
#include "swiftbalancer/runtime/serving_state.h"
#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer {

class Balancer {
 public:
  // `transport` must outlive the balancer and has size() == topo.ranks. `initial` must be a valid
  // placement for topo. Experts are registered with register_expert() (host memory). Throws
  // InputError on bad arguments.
  Balancer(const Topology& topo, int rank, Transport& transport,
           std::shared_ptr<const Policy> policy, Placement initial, BalancerConfig config = {});
  // Same, with the engine's own store of expert weights (it must outlive the balancer, and so
  // must the transport, which must be able to move the store's memory kind).
  Balancer(const Topology& topo, int rank, Transport& transport,
           std::shared_ptr<const Policy> policy, Placement initial, ExpertStore& store,
           BalancerConfig config = {});
  ~Balancer();  // stops the worker (waits for a running policy to finish)
  Balancer(const Balancer&) = delete;
  Balancer& operator=(const Balancer&) = delete;

  // The buffers of the expert in (layer, local slot), in host memory. Every slot of a layer must
  // have the same number of tensors and the same sizes (on every rank). Required before the
  // first step unless the mode is kOff. The buffers stay owned by the engine and must outlive
  // the balancer. Only for a balancer built without an ExpertStore (else InputError).
  void register_expert(int layer, int local_slot, std::vector<std::span<std::byte>> tensors);

  // Hot path: adds this rank's per-slot counts of `layer` (size slots_per_rank). Allocation-free.
  // Layer and size are checked in debug builds only.
  void record(int layer, std::span<const std::int64_t> slot_counts);

  const RoutingTable& routing(int layer) const { return state_->routing(layer); }

  // Whether the coming after_forward() may read the counts recorded so far (a gather or a shift
  // check falls on it). An engine that accumulates counts elsewhere (on its device) must hand
  // them over with record() before such a step; on other steps it may keep them.
  bool reads_counts_next() const;
  // Whether the coming after_forward() may commit a layer's new placement (async: a vote on
  // posted layers is read at it; sync: a gather or a cycle in progress falls on it). A commit
  // credits the counts recorded until then to the old placement and later ones to the new: an
  // engine that accumulates counts elsewhere must hand them over with record() before such a
  // step too, or they are folded onto the wrong experts.
  bool may_commit_next() const;

  void before_forward();
  StepStats after_forward();

  // The placement in service (serving thread).
  const Placement& placement() const { return state_->placement(); }
  std::int64_t step() const { return step_; }
  const BalancerConfig& config() const { return cfg_; }
  BalancerCounters counters() const;
  // counters() in Prometheus text exposition, labelled with this rank (metrics_text.h). Any
  // thread.
  std::string metrics_text() const;

 private:
  struct Parts;
  void start_next_collectives();
  CycleSchedule::Event run(const CycleSchedule::Action& a, StepStats& stats);
  CycleSchedule::Event poll(const CycleSchedule::Action& a, StepStats& stats);
  CycleSchedule::Event check_shift(StepStats& stats);
  CycleSchedule::Event gather(StepStats& stats);
  void stop(CycleSchedule::StopReason why);
  std::unique_ptr<CyclePlan> order_plan(std::unique_ptr<CyclePlan> plan);

  BalancerConfig cfg_;
  std::unique_ptr<ServingState> state_;
  std::unique_ptr<Parts> parts_;
  std::int64_t step_ = 0;
};

}  // namespace swiftbalancer
