#include "swiftbalancer/compat/logical_maps.h"

#include <algorithm>

namespace swiftbalancer::compat {

LogicalMaps replica_ordered_maps(const Placement& placement, const LoadMatrix& weight,
                                 const Topology& topo, int min_width) {
  const int layers = placement.layers(), experts = placement.experts();
  const int slots = placement.num_slots(), per_rank = topo.slots_per_rank;
  if (weight.layers() != layers || weight.experts() != experts)
    throw InputError("placement and load shapes differ");
  if (slots != topo.num_slots()) throw InputError("placement and topology shapes differ");
  LogicalMaps out;
  auto& logcnt = out.logcnt;
  logcnt.assign(static_cast<std::size_t>(layers) * experts, 0);
  for (int l = 0; l < layers; ++l) {
    for (ExpertId e : placement.layer(l)) {
      if (e < 0 || e >= experts) throw InputError("placement holds an invalid expert id");
      const auto c = ++logcnt[static_cast<std::size_t>(l) * experts + e];
      out.max_replicas = std::max(out.max_replicas, static_cast<int>(c));
    }
  }
  out.max_replicas = std::max(out.max_replicas, min_width);
  const int width = out.max_replicas;
  out.log2phy.assign(static_cast<std::size_t>(layers) * experts * width, -1);
  std::vector<double> before(slots);  // load of the slot's rank in its lower slots
  std::vector<std::int32_t> order;
  for (int l = 0; l < layers; ++l) {
    const auto phy = placement.layer(l);
    const auto w = weight.row(l);
    const std::int64_t* cnt = logcnt.data() + static_cast<std::size_t>(l) * experts;
    // Same additions in the same order as the packing made them, so ties compare alike.
    for (int r = 0; r < topo.ranks; ++r) {
      double acc = 0.0;
      for (int s = 0; s < per_rank; ++s) {
        const int p = r * per_rank + s;
        before[p] = acc;
        acc += w[phy[p]] / static_cast<double>(cnt[phy[p]]);
      }
    }
    const Log2Phy csr = build_log2phy(phy, experts);  // slots of each expert in slot order
    for (int e = 0; e < experts; ++e) {
      const auto reps = csr.replicas(e);
      order.assign(reps.begin(), reps.end());
      std::stable_sort(order.begin(), order.end(),
                       [&](std::int32_t a, std::int32_t b) { return before[a] < before[b]; });
      std::int64_t* row = out.log2phy.data() + (static_cast<std::size_t>(l) * experts + e) * width;
      for (std::size_t k = 0; k < order.size(); ++k) row[k] = order[k];
    }
  }
  return out;
}

}  // namespace swiftbalancer::compat
