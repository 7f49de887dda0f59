// Slot alignment: a placement decided from scratch put onto the slots of the one in service.
// Owner: compat component. Pure and thread-safe.
//
// A policy that builds its placement from scratch (DeepSeek's packing) says which experts each
// rank holds, not in which of the rank's slots: an expert that a rank keeps may come back in
// another slot, and a planner then copies it there (a local copy, and a write to a slot whose
// expert did not have to change, which breaks the pointers a captured CUDA graph holds).
// Aligning keeps every such expert in the slot it already occupies; only the slots whose expert
// really changes are written (vllm-ascend's "local exchange" constraint).
#pragma once

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer::compat {

// Permutes, in each layer, the slots of each rank of `next` (the multiset of ids a rank holds
// is unchanged, so a valid placement stays valid and the set of (expert, rank) pairs, hence
// every cross-rank transfer, is the same):
//   - kept: for old slot s in increasing order, the first not yet matched slot of the rank in
//     `next` holding current's id in s goes to s (so an id held k times by the rank in both
//     keeps min(k_old, k_new) of its slots; -1 is an id like any other);
//   - newcomers: the ids of `next` not matched fill the slots not kept, both in slot order.
// Idempotent; deterministic. Throws InputError when the shapes differ from each other or from
// `topo` (layers, slots per layer).
void align_to_current(const Placement& current, Placement& next, const Topology& topo);

}  // namespace swiftbalancer::compat
