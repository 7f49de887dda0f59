// Drop-in entry points for the engines' EPLB policy hooks, in plain C++ (no Python types), so
// that the bindings only convert arrays and the logic stays testable and GIL-free.
// Owner: the Python module (python/). All functions are pure and thread-safe; errors throw
// InputError with a message naming the argument at fault.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer::python {

// deepseek-ai/EPLB's rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
// hierarchical when num_groups % num_nodes == 0, global otherwise, backed by the DeepSeek policy.
struct DeepSeekResult {
  Placement placement;                // phy2log [L][num_replicas]
  int max_replicas = 0;               // the last dimension of log2phy
  std::vector<std::int64_t> log2phy;  // [L][E][max_replicas], -1 padded, in replica order
  std::vector<std::int64_t> logcnt;   // [L][E]
};
// log2phy_width: the last dimension of log2phy when larger than the most replicas of an expert
// (the engines allocate num_replicas - experts + 1); 0: the most replicas. logical_maps false:
// the placement only (log2phy and logcnt stay empty).
DeepSeekResult deepseek_rebalance_experts(const LoadMatrix& weight, int num_replicas,
                                          int num_groups, int num_nodes, int num_gpus,
                                          int log2phy_width = 0, bool logical_maps = true);

// Orders each expert's slots the way DeepSeek's packing placed them (the reference's replica
// rank): packing puts replicas heaviest first on the lightest rank, so among the replicas of one
// expert the earlier one went to the rank that was lighter when it arrived, i.e. whose earlier
// slots (lower local index) held less load; ties go to the lower rank. Exact for placements the
// DeepSeek policy produced; a valid (slot-ordered on ties) order for any other placement.
// Output as DeepSeekResult::log2phy / logcnt; max_replicas (the width of log2phy) is at least
// min_width.
void replica_ordered_log2phy(const Placement& placement, const LoadMatrix& weight,
                             const Topology& topo, int& max_replicas,
                             std::vector<std::int64_t>& log2phy, std::vector<std::int64_t>& logcnt,
                             int min_width = 0);

// Keeps an expert that stays on a rank in the slot it already occupies there (vllm-ascend's
// "local exchange" constraint): in-place updates write only the slots whose expert changes.
// The experts new to a rank fill its freed slots in their order in `next`.
void align_to_current(const Placement& current, Placement& next, const Topology& topo);

// vllm-ascend's policy hook: rebalance_experts(current_expert_table, expert_workload), both
// [L][ranks][slots]; workload is the tokens each slot processed. The logical load of an expert
// is the sum over its slots. A layer takes the policy's new placement only when that lowers its
// busiest rank (even split over replicas, as the metrics); slots are aligned with the current
// placement. changed = the placement differs and the summed busiest-rank load over layers drops
// by more than min_improvement (a fraction; vllm-ascend uses 0.05). priority lists layers by
// ratio new/old busiest-rank load, most improved first (stable: ties by layer).
struct AscendResult {
  bool changed = false;
  std::vector<std::int64_t> priority;                   // [L]
  Placement placement;                                  // [L][ranks * slots]
  std::vector<double> max_load_before, max_load_after;  // per layer
};
AscendResult ascend_rebalance(const Placement& current, const std::vector<double>& slot_workload,
                              const Topology& topo, const std::string& policy_name,
                              const PolicyOptions& options, double min_improvement,
                              int threads = 1);

// policy.rebalance(in) with its per-layer work spread over `threads` threads, the caller's
// included (at most one per layer). The pool is made for the call and joined before it
// returns: engines fork their workers, and a pool made before a fork has no threads in the
// child. InputError naming `threads` unless it is 1 .. limits::kMaxPoolThreads.
Placement rebalance_on_threads(const Policy& policy, PolicyInput in, int threads);
void check_threads(int threads);  // the check of rebalance_on_threads, for calls that skip it

}  // namespace swiftbalancer::python
