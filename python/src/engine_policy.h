// The policy hook of vLLM and SGLang (DeepSeek's rebalance_experts signature, plus vLLM's old
// map), in plain C++ so that the binding only converts arrays. Owner: the Python module
// (python/). Pure and thread-safe; errors throw InputError naming the argument at fault (the
// Python names: weight, num_replicas, old_global_expert_indices, ...).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dropin.h"

namespace swiftbalancer::python {

struct EngineRequest {
  int num_replicas = 0;  // physical slots per layer
  int num_groups = 1;
  int num_nodes = 1;
  int num_ranks = 1;
  // Without an old map: DeepSeek's policy (hierarchical when num_groups % num_nodes == 0). With
  // one: `policy` from that placement, under max_transfers cross-rank copies (negative: none)
  // counted from the old map: the start's own arrivals (engine_start_placement) take their
  // share of the budget first, and the policy gets what is left.
  // The old map may be any map vLLM hands over (engine_start_placement): another width than
  // num_replicas (elastic EP), -1 in empty slots, two replicas of one expert on one rank.
  const Placement* old_map = nullptr;
  std::string policy = "swift";
  std::int64_t max_transfers = -1;
  double threshold = 1.0;
  // Swift's per-layer goal (PolicyOptions::target; 0: the policy's default).
  double target = 0.0;
  // Threads the policy may spread its per-layer searches over, the caller's included (1: the
  // calling thread only; rebalance_on_threads). The result does not depend on it.
  int threads = 1;
  // The last dimension of log2phy: the engines allocate num_replicas - experts + 1 (the most
  // replicas an expert can have); 0 means the largest replica count of the result.
  int log2phy_width = 0;
  // False: phy2log only (vLLM's phy2log contract); log2phy and logcnt stay empty.
  bool logical_maps = true;
};

// The valid placement of `num_ranks x num_replicas / num_ranks` slots the policy starts from,
// made from an engine's old map [layers][any width]: slot p of the old map is slot p of rank
// p / slots_per_rank (slots past the new width belong to ranks that leave). An expert that a
// rank keeps stays in its first slot there; a -1 slot, a second replica of one expert on one
// rank, and every slot past the old width are holes. Experts no kept rank holds go into holes,
// heaviest first, each on the lightest rank with a hole (with no hole left: in place of the
// least loaded redundant replica); the holes left hold the replica that lowers the heaviest
// per-replica load most (ties: the lower expert id). Deterministic. Every id must be -1 or in
// [0, experts); InputError naming old_global_expert_indices otherwise. `arrivals`: the
// cross-rank copies this start costs from the old map (every filled hole is one); 0 when the
// old map was already a valid placement of this topology (the result then equals it).
Placement engine_start_placement(const Placement& old, const LoadMatrix& weight,
                                 const Topology& topo, std::int64_t* arrivals = nullptr);

// Same fields as DeepSeekResult; max_replicas is the width of log2phy.
DeepSeekResult engine_rebalance(const LoadMatrix& weight, const EngineRequest& request);

}  // namespace swiftbalancer::python
