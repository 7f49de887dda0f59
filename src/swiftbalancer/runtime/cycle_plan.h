// CyclePlan: one rank's part of moving from the placement in service to a new one. A pure
// function of (current, target, topology, rank, link weights, expert sizes): every rank derives
// its part of the same global plan (make_layer_plan) with no message exchanged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/plan/routing_table.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer {

// This rank's part of one layer whose placement changes.
struct LayerMove {
  int layer = 0;
  std::vector<ExpertId> new_row;
  std::unique_ptr<RoutingTable> table;  // built from new_row
  struct Send {
    int dst_rank, src_slot;
  };
  struct Install {
    int src_rank, src_slot, dst_slot;  // src_rank == this rank: a local copy
  };
  std::vector<Send> sends;        // in plan order
  std::vector<Install> installs;  // in plan order; staged back to back, expert i at i * bytes
  std::size_t expert_bytes = 0;
  std::int64_t bytes_in = 0, bytes_out = 0;  // over the transport
};

struct CyclePlan {
  std::int64_t cycle = 0;         // the decision cycle it belongs to (set by the decision)
  std::vector<LayerMove> layers;  // layers whose placement changes, increasing layer order
  // Staging one layer needs at most (installs of the layer x its expert bytes).
  std::size_t staging_region_bytes = 0;
  std::int64_t hash = 0;  // of the target placement (ranks compare it before moving)
  // Set by the decision: the window's mean imbalance under the placement in service and under
  // the target, and when the cycle started (for the rebalance duration).
  double imbalance_before = 0.0, imbalance_after = 0.0;
  Clock::time_point started{};
};

// expert_bytes[l]: bytes of one expert of layer l. Placements must be valid and of one shape.
CyclePlan plan_cycle(const Placement& current, const Placement& target, const Topology& topo,
                     int rank, const LinkWeights& weights,
                     std::span<const std::size_t> expert_bytes);

// FNV-1a over phy2log, shifted to be non-negative (so that -hash never overflows).
std::int64_t placement_hash(const Placement& p);

}  // namespace swiftbalancer
