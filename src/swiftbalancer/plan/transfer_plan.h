// TransferPlan: the operations that turn the placement in service into a new one, per layer.
// A pure function of (old, new, topology, link weights): every rank computes the same plan.
//
// Rules:
//   - a slot whose expert does not change gets no operation (never written);
//   - each (expert, destination rank) is received over the network at most once; further slots
//     of that rank needing the expert, and slots whose rank already held the expert in another
//     slot, are filled by local copies (src_rank == dst_rank);
//   - when several ranks hold an expert, senders are chosen to minimise the busiest rank's
//     cost (bytes sent plus received, inter-node bytes weighted heavier).
// All sources refer to the OLD placement: an executor must read every source before it writes
// any destination of the same layer (stage, then install).
#pragma once

#include <cstdint>
#include <vector>

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer {

struct TransferOp {
  ExpertId expert = -1;
  int src_rank = -1;
  int src_slot = -1;  // local slot index on src_rank, in the old placement
  int dst_rank = -1;
  int dst_slot = -1;  // local slot index on dst_rank, in the new placement
  bool is_local() const { return src_rank == dst_rank; }
  bool operator==(const TransferOp&) const = default;
};

// Cost of moving one expert over a link, in expert-units; the sender and the receiver are both
// charged. Inter-node is heavier by default (slower links).
struct LinkWeights {
  double intra_node = 1.0;
  double inter_node = 4.0;
};

struct LayerPlan {
  int layer = 0;
  // Remote operations first (ordered by dst_rank, dst_slot), then local ones (same order).
  std::vector<TransferOp> ops;
  std::int64_t remote_ops = 0;
  std::int64_t local_ops = 0;
  double makespan = 0.0;     // the busiest rank's weighted send + receive cost
  double lower_bound = 0.0;  // a bound no choice of senders can beat
};

struct TransferPlan {
  std::vector<LayerPlan> layers;
  std::int64_t remote_ops = 0;
  std::int64_t local_ops = 0;
};

// Throws InputError when shapes differ or either placement is invalid for `topo`.
TransferPlan make_transfer_plan(const Placement& old_placement, const Placement& new_placement,
                                const Topology& topo, const LinkWeights& weights = {});
LayerPlan make_layer_plan(std::span<const ExpertId> old_layer, std::span<const ExpertId> new_layer,
                          int layer_index, int experts, const Topology& topo,
                          const LinkWeights& weights = {});

// Applies a layer plan to a copy of the old layer (every source read before any write), for
// tests and checks: the result must equal the new layer.
std::vector<ExpertId> apply_layer_plan(std::span<const ExpertId> old_layer, const LayerPlan& plan,
                                       const Topology& topo);

}  // namespace swiftbalancer
