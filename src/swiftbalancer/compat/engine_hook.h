// The policy hook of vLLM and SGLang: DeepSeek's rebalance_experts signature plus vLLM's old
// map. Owner: compat component. Pure and thread-safe; errors throw InputError naming the
// argument at fault (the engines' names: weight, num_replicas, old_global_expert_indices, ...).
#pragma once

#include <cstdint>
#include <string>

#include "swiftbalancer/compat/logical_maps.h"
#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"

namespace swiftbalancer::compat {

struct EngineRequest {
  int num_replicas = 0;  // physical slots per layer
  int num_groups = 1;
  int num_nodes = 1;
  int num_ranks = 1;
  // Without an old map: DeepSeek's policy (deepseek_rebalance_experts). With one: `policy` from
  // that placement, under max_transfers cross-rank copies (negative: none) counted from the old
  // map: the start's own arrivals (engine_start_placement) take their share of the budget first,
  // and the policy gets what is left. The old map may be any map vLLM hands over
  // (engine_start.h): another width than num_replicas, -1 in empty slots, two replicas of one
  // expert on one rank. Not owned.
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
  // replicas an expert can have); 0 means the largest replica count of the result. InputError
  // when an expert of the result has more replicas than a width given.
  int log2phy_width = 0;
  // False: phy2log only (vLLM's phy2log contract); the logical maps stay empty.
  bool logical_maps = true;
};

EngineMaps engine_rebalance(const LoadMatrix& weight, const EngineRequest& request);

}  // namespace swiftbalancer::compat
