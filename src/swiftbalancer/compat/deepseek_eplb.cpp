#include "swiftbalancer/compat/deepseek_eplb.h"

#include <string>

#include "swiftbalancer/policy/deepseek.h"

namespace swiftbalancer::compat {
namespace {

std::string str(long long v) {
  return std::to_string(v);
}

void require_positive(const char* name, int v) {
  if (v <= 0) throw InputError(std::string(name) + " must be positive, got " + str(v));
}

}  // namespace

EngineMaps deepseek_rebalance_experts(const LoadMatrix& weight, int num_replicas, int num_groups,
                                      int num_nodes, int num_gpus, int log2phy_width,
                                      bool logical_maps) {
  require_positive("num_replicas", num_replicas);
  require_positive("num_groups", num_groups);
  require_positive("num_nodes", num_nodes);
  require_positive("num_gpus", num_gpus);
  if (num_gpus % num_nodes != 0)
    throw InputError("num_gpus (" + str(num_gpus) + ") must be a multiple of num_nodes (" +
                     str(num_nodes) + ")");
  if (num_replicas % num_gpus != 0)
    throw InputError("num_replicas (" + str(num_replicas) + ") must be a multiple of num_gpus (" +
                     str(num_gpus) + ")");
  if (num_replicas < weight.experts())
    throw InputError("num_replicas (" + str(num_replicas) + ") is smaller than the " +
                     str(weight.experts()) + " logical experts");
  // The reference's rule: hierarchical when the groups divide evenly over the nodes; otherwise
  // one group on one node (global), whatever num_groups says.
  const bool hierarchical = num_groups % num_nodes == 0;
  if (hierarchical && weight.experts() % num_groups != 0)
    throw InputError("num_groups (" + str(num_groups) + ") must divide the " +
                     str(weight.experts()) + " logical experts");
  const Topology topo = Topology::make(num_gpus, num_replicas / num_gpus, num_gpus / num_nodes);
  PolicyInput in{topo, weight};
  in.options.num_groups = hierarchical ? num_groups : 0;
  EngineMaps out;
  out.placement = make_deepseek_policy(DeepSeekMode::kAuto)->rebalance(in);
  if (logical_maps) out.logical = replica_ordered_maps(out.placement, weight, topo, log2phy_width);
  return out;
}

}  // namespace swiftbalancer::compat
