#include "swiftbalancer/compat/engine_hook.h"

#include <algorithm>
#include <string>

#include "swiftbalancer/compat/deepseek_eplb.h"
#include "swiftbalancer/compat/engine_start.h"
#include "swiftbalancer/compat/policy_threads.h"
#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer::compat {

EngineMaps engine_rebalance(const LoadMatrix& weight, const EngineRequest& q) {
  check_threads(q.threads);
  EngineMaps out;
  if (q.old_map == nullptr) {
    out = deepseek_rebalance_experts(weight, q.num_replicas, q.num_groups, q.num_nodes, q.num_ranks,
                                     q.log2phy_width, q.logical_maps);
  } else {
    // The same argument checks as the DeepSeek path (it throws before doing any work).
    if (q.num_ranks <= 0 || q.num_nodes <= 0 || q.num_ranks % q.num_nodes != 0)
      throw InputError("num_ranks must be a positive multiple of num_nodes");
    if (q.num_replicas <= 0 || q.num_replicas % q.num_ranks != 0)
      throw InputError("num_replicas must be a positive multiple of num_ranks");
    if (q.num_replicas < weight.experts())
      throw InputError("num_replicas (" + std::to_string(q.num_replicas) +
                       ") is smaller than the " + std::to_string(weight.experts()) +
                       " logical experts");
    const Topology topo =
        Topology::make(q.num_ranks, q.num_replicas / q.num_ranks, q.num_ranks / q.num_nodes);
    std::int64_t repair = 0;
    const Placement start = engine_start_placement(*q.old_map, weight, topo, &repair);
    PolicyOptions o;
    o.num_groups = q.num_groups > 1 && weight.experts() % q.num_groups == 0 ? q.num_groups : 0;
    o.max_transfers =
        q.max_transfers < 0 ? -1 : std::max<std::int64_t>(0, q.max_transfers - repair);
    o.threshold = q.threshold;
    o.target = q.target;
    out.placement = rebalance_on_threads(*make_policy(q.policy),
                                         PolicyInput{topo, weight, &start, o}, q.threads);
    if (q.logical_maps)
      out.logical = replica_ordered_maps(out.placement, weight, topo, q.log2phy_width);
  }
  if (q.logical_maps && q.log2phy_width > 0 && out.logical.max_replicas > q.log2phy_width)
    throw InputError("an expert has " + std::to_string(out.logical.max_replicas) +
                     " replicas, more than the log2phy width " + std::to_string(q.log2phy_width));
  return out;
}

}  // namespace swiftbalancer::compat
