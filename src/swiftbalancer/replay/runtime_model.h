// What the runtime computes, as replay uses it: one source of truth for the statistics and the
// transfer plan, so that a replay cannot disagree with the balancer it models.
//
// StepWindow: the runtime's load statistics fed one step of logical counts at a time. Steps add
// into the current interval's load; gather() closes the interval and pushes it into a
// stats/window.h LoadWindow of window_steps / interval intervals (or, with a decay, a decayed sum
// over intervals: sum = decay * sum + interval load), exactly as Balancer does after its
// all-gather. Replay's counts are already logical (per expert), so the runtime's fold of slot
// counts (fold_slot_counts) is the identity here: folding counts split over replicas gives the
// logical counts back (test RuntimeModel.WindowMatchesTheRuntimesFold).
//
// layer_moves: the cross-rank copies of plan/transfer_plan.h's make_layer_plan (its remote ops,
// in its order), with link weights taken from the cost model (intra-node 1, inter-node
// intra_gbps / inter_gbps: each copy charged its time over the link).
//
// StepWindow is not thread-safe (one owner); the functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/replay/cost_model.h"
#include "swiftbalancer/stats/window.h"

namespace swiftbalancer::replay {

class StepWindow {
 public:
  // decay == 0: a sliding window of window_steps, which must be a whole number of intervals
  // (the runtime's window holds whole intervals); decay in (0, 1): window_steps is ignored.
  // Throws InputError otherwise.
  StepWindow(int layers, int experts, int interval, int window_steps, double decay);

  void add_step(std::span<const double> counts);  // [layers][experts], row-major
  void gather();                                  // closes the interval (LoadWindow::push)
  // Forgets the window and the open interval (the runtime's LoadAccounting::drop_interval).
  void drop();
  const LoadMatrix& sum() const { return window_.sum(); }
  int intervals() const { return window_.size(); }
  // Bytes held: the window's ring and sum plus the open interval's load.
  std::int64_t bytes() const;

 private:
  double decay_;
  LoadMatrix interval_load_;
  LoadWindow window_;
};

// Link weights for make_layer_plan that match the cost model's link times.
LinkWeights link_weights(const CostModel& cost);

// Cross-rank copies that turn old_layer into new_layer (both valid for topo): the remote ops of
// make_layer_plan, in its order (by destination rank, then slot). Their number equals
// layer_transfers() of core/metrics.h.
std::vector<Move> layer_moves(std::span<const ExpertId> old_layer,
                              std::span<const ExpertId> new_layer, int layer_index, int experts,
                              const Topology& topo, const LinkWeights& weights);

}  // namespace swiftbalancer::replay
