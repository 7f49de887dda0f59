#include "engine_policy.h"

#include <algorithm>

#include "swiftbalancer/core/metrics.h"

namespace swiftbalancer::python {
namespace {

// An old map the policy can start from: the engine's slot count, known ids, every expert present.
void check_old_map(const Placement& old, const LoadMatrix& weight, const Topology& topo) {
  const std::string name = "old_global_expert_indices";
  if (old.layers() != weight.layers() || old.num_slots() != topo.num_slots())
    throw InputError(name + " must be [" + std::to_string(weight.layers()) + ", " +
                     std::to_string(topo.num_slots()) + "] (layers, num_replicas), got [" +
                     std::to_string(old.layers()) + ", " + std::to_string(old.num_slots()) + "]");
  const Status s = validate_placement(old, topo);
  if (!s.ok()) throw InputError(name + ": " + s.message());
}

}  // namespace

DeepSeekResult engine_rebalance(const LoadMatrix& weight, const EngineRequest& q) {
  check_threads(q.threads);
  DeepSeekResult out;
  if (q.old_map == nullptr) {
    out = deepseek_rebalance_experts(weight, q.num_replicas, q.num_groups, q.num_nodes, q.num_ranks,
                                     q.log2phy_width);
  } else {
    // The same argument checks as the DeepSeek path (it throws before doing any work).
    if (q.num_ranks <= 0 || q.num_nodes <= 0 || q.num_ranks % q.num_nodes != 0)
      throw InputError("num_ranks must be a positive multiple of num_nodes");
    if (q.num_replicas <= 0 || q.num_replicas % q.num_ranks != 0)
      throw InputError("num_replicas must be a positive multiple of num_ranks");
    const Topology topo =
        Topology::make(q.num_ranks, q.num_replicas / q.num_ranks, q.num_ranks / q.num_nodes);
    check_old_map(*q.old_map, weight, topo);
    PolicyOptions o;
    o.num_groups = q.num_groups > 1 && weight.experts() % q.num_groups == 0 ? q.num_groups : 0;
    o.max_transfers = q.max_transfers;
    o.threshold = q.threshold;
    o.target = q.target;
    out.placement = rebalance_on_threads(*make_policy(q.policy),
                                         PolicyInput{topo, weight, q.old_map, o}, q.threads);
    replica_ordered_log2phy(out.placement, weight, topo, out.max_replicas, out.log2phy, out.logcnt,
                            q.log2phy_width);
  }
  if (q.log2phy_width > 0 && out.max_replicas > q.log2phy_width)
    throw InputError("an expert has " + std::to_string(out.max_replicas) +
                     " replicas, more than the log2phy width " + std::to_string(q.log2phy_width));
  return out;
}

}  // namespace swiftbalancer::python
