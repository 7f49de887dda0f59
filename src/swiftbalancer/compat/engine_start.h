// The engines' old maps made into a placement a policy can start from. Owner: compat component.
// Pure and thread-safe.
//
// vLLM hands its policy the map in service as old_global_expert_indices [layers][width], and
// that map need not be a valid placement of the topology asked for: another width than
// num_replicas (elastic EP: ranks join or leave), -1 in empty slots, two replicas of one expert
// on one rank.
#pragma once

#include <cstdint>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer::compat {

// The valid placement of topo (ranks x slots_per_rank slots) the policy starts from, made from
// `old` [layers][any width]: slot p of the old map is slot p of rank p / slots_per_rank (slots
// past the new width belong to ranks that leave). An expert that a rank keeps stays in its first
// slot there; a -1 slot, a second replica of one expert on one rank, and every slot past the old
// width are holes. Experts no kept rank holds go into holes, heaviest first, each on the
// lightest rank with a hole (with no hole left: in place of the least loaded redundant replica);
// the holes left hold the replica that lowers the heaviest per-replica load most (ties: the
// lower expert id). Deterministic. Every id must be -1 or in [0, experts); InputError naming
// old_global_expert_indices otherwise, or when its layers differ from weight's. `arrivals`: the
// cross-rank copies this start costs from the old map (every filled hole is one); 0 when the old
// map was already a valid placement of this topology (the result then equals it).
Placement engine_start_placement(const Placement& old, const LoadMatrix& weight,
                                 const Topology& topo, std::int64_t* arrivals = nullptr);

}  // namespace swiftbalancer::compat
