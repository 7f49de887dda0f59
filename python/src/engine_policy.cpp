#include "engine_policy.h"

#include <algorithm>

#include "swiftbalancer/core/metrics.h"

namespace swiftbalancer::python {
namespace {

// Re-lays [L][E][from] rows into [L][E][to] (to >= from), padding with -1.
std::vector<std::int64_t> widen_rows(const std::vector<std::int64_t>& in, std::size_t rows,
                                     int from, int to) {
  std::vector<std::int64_t> out(rows * static_cast<std::size_t>(to), -1);
  for (std::size_t r = 0; r < rows; ++r)
    std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(r * from), from,
                out.begin() + static_cast<std::ptrdiff_t>(r * to));
  return out;
}

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
  DeepSeekResult out;
  if (q.old_map == nullptr) {
    out =
        deepseek_rebalance_experts(weight, q.num_replicas, q.num_groups, q.num_nodes, q.num_ranks);
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
    PolicyInput in{topo, weight, q.old_map, o};
    out.placement = make_policy(q.policy)->rebalance(in);
    replica_ordered_log2phy(out.placement, weight, topo, out.max_replicas, out.log2phy, out.logcnt);
  }
  if (q.log2phy_width > 0) {
    if (q.log2phy_width < out.max_replicas)
      throw InputError("an expert has " + std::to_string(out.max_replicas) +
                       " replicas, more than the log2phy width " + std::to_string(q.log2phy_width));
    const std::size_t rows = static_cast<std::size_t>(weight.layers()) * weight.experts();
    out.log2phy = widen_rows(out.log2phy, rows, out.max_replicas, q.log2phy_width);
    out.max_replicas = q.log2phy_width;
  }
  return out;
}

}  // namespace swiftbalancer::python
