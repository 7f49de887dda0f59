// deepseek-ai/EPLB's call shape: rebalance_experts(weight, num_replicas, num_groups, num_nodes,
// num_gpus) -> (phy2log, log2phy, logcnt), as SGLang and vLLM's default policy call it.
// Owner: compat component. Pure and thread-safe; InputError names the argument at fault (the
// reference's names).
#pragma once

#include "swiftbalancer/compat/logical_maps.h"
#include "swiftbalancer/core/load_matrix.h"

namespace swiftbalancer::compat {

// Backed by the DeepSeek policy: hierarchical when num_groups % num_nodes == 0 (num_groups must
// then divide the experts), global otherwise, whatever num_groups says (the reference's rule).
// The topology: num_gpus ranks of num_replicas / num_gpus slots, num_gpus / num_nodes per node.
// log2phy_width: the last dimension of log2phy when larger than the most replicas of an expert
// (the engines allocate num_replicas - experts + 1); 0: the most replicas. logical_maps false:
// the placement only (the logical maps stay empty).
EngineMaps deepseek_rebalance_experts(const LoadMatrix& weight, int num_replicas, int num_groups,
                                      int num_nodes, int num_gpus, int log2phy_width = 0,
                                      bool logical_maps = true);

}  // namespace swiftbalancer::compat
