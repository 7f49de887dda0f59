#include "swiftbalancer/runtime/cycle_plan.h"

#include <algorithm>
#include <utility>

namespace swiftbalancer {
namespace {

LayerMove plan_layer_move(std::span<const ExpertId> old_row, std::span<const ExpertId> new_row,
                          int layer, int experts, const Topology& topo, int rank,
                          const LinkWeights& weights, std::size_t expert_bytes) {
  const LayerPlan plan = make_layer_plan(old_row, new_row, layer, experts, topo, weights);
  LayerMove m;
  m.layer = layer;
  m.new_row.assign(new_row.begin(), new_row.end());
  m.table = std::make_unique<RoutingTable>(new_row, experts);
  m.expert_bytes = expert_bytes;
  const auto bytes = static_cast<std::int64_t>(expert_bytes);
  for (const TransferOp& op : plan.ops) {
    if (op.dst_rank == rank) {
      m.installs.push_back({op.src_rank, op.src_slot, op.dst_slot});
      if (!op.is_local()) m.bytes_in += bytes;
    }
    if (op.src_rank == rank && !op.is_local()) {
      m.sends.push_back({op.dst_rank, op.src_slot});
      m.bytes_out += bytes;
    }
  }
  return m;
}

}  // namespace

CyclePlan plan_cycle(const Placement& current, const Placement& target, const Topology& topo,
                     int rank, const LinkWeights& weights,
                     std::span<const std::size_t> expert_bytes) {
  CyclePlan out;
  for (int l = 0; l < current.layers(); ++l) {
    const std::span<const ExpertId> old_row = current.layer(l);
    const std::span<const ExpertId> new_row = target.layer(l);
    if (std::equal(old_row.begin(), old_row.end(), new_row.begin())) continue;
    LayerMove m = plan_layer_move(old_row, new_row, l, current.experts(), topo, rank, weights,
                                  expert_bytes[static_cast<std::size_t>(l)]);
    out.staging_region_bytes =
        std::max(out.staging_region_bytes, m.installs.size() * m.expert_bytes);
    out.layers.push_back(std::move(m));
  }
  out.hash = placement_hash(target);
  return out;
}

std::int64_t placement_hash(const Placement& p) {
  std::uint64_t h = 1469598103934665603ull;
  for (ExpertId e : p.data()) {
    h ^= static_cast<std::uint64_t>(static_cast<std::uint32_t>(e));
    h *= 1099511628211ull;
  }
  return static_cast<std::int64_t>(h >> 2);
}

}  // namespace swiftbalancer
