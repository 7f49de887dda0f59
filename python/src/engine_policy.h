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
  // one: `policy` from that placement, under max_transfers cross-rank copies (negative: none).
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
};

// Same fields as DeepSeekResult; max_replicas is the width of log2phy.
DeepSeekResult engine_rebalance(const LoadMatrix& weight, const EngineRequest& request);

}  // namespace swiftbalancer::python
