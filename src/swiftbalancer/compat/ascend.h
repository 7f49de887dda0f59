// vllm-ascend's policy hook: rebalance_experts(current_expert_table, expert_workload) ->
// (changed, priority, new table). Owner: compat component. Pure and thread-safe; InputError
// names the argument at fault (the hook's names).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer::compat {

struct AscendResult {
  bool changed = false;
  std::vector<std::int64_t> priority;                   // [L]
  Placement placement;                                  // [L][ranks * slots]
  std::vector<double> max_load_before, max_load_after;  // per layer
};

// current: the table [L][ranks][slots] flattened to a placement (must be valid for topo);
// slot_workload: [L][ranks][slots], the tokens each slot processed (finite, non-negative). The
// logical load of an expert is the sum over its slots. The policy `policy_name` decides from
// `current`; its placement is aligned to `current` (align.h). A layer takes the new placement
// only when that lowers its busiest rank (even split over replicas, as the metrics); otherwise
// it keeps `current` (no transfers). changed = the placement differs and the summed
// busiest-rank load over layers drops by more than min_improvement (a fraction in [0, 1);
// vllm-ascend uses 0.05). priority lists layers by ratio new/old busiest-rank load, most
// improved first (stable: ties by layer). threads: as rebalance_on_threads.
AscendResult ascend_rebalance(const Placement& current, const std::vector<double>& slot_workload,
                              const Topology& topo, const std::string& policy_name,
                              const PolicyOptions& options, double min_improvement,
                              int threads = 1);

}  // namespace swiftbalancer::compat
