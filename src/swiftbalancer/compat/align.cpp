#include "swiftbalancer/compat/align.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace swiftbalancer::compat {

void align_to_current(const Placement& current, Placement& next, const Topology& topo) {
  if (current.layers() != next.layers() || current.num_slots() != next.num_slots())
    throw InputError("align_to_current: current is " + std::to_string(current.layers()) + " x " +
                     std::to_string(current.num_slots()) + ", next is " +
                     std::to_string(next.layers()) + " x " + std::to_string(next.num_slots()) +
                     " (layers x slots)");
  if (next.num_slots() != topo.num_slots())
    throw InputError("align_to_current: placements have " + std::to_string(next.num_slots()) +
                     " slots per layer, the topology " + std::to_string(topo.num_slots()));
  const int S = topo.slots_per_rank;
  // by_id: the rank's new slots sorted by (id, slot), so the slots of one id form a run in slot
  // order; used[run start] counts the run's slots already matched (always a prefix of the run,
  // which makes the match the same as taking the first unmatched slot: O(S log S) per rank).
  std::vector<std::pair<ExpertId, int>> by_id(S);
  std::vector<int> used(S);
  std::vector<char> kept(S), taken(S);
  std::vector<ExpertId> merged(S);
  for (int l = 0; l < next.layers(); ++l) {
    const auto old_layer = current.layer(l);
    auto new_layer = next.layer(l);
    for (int r = 0; r < topo.ranks; ++r) {
      const ExpertId* o = old_layer.data() + static_cast<std::size_t>(r) * S;
      ExpertId* n = new_layer.data() + static_cast<std::size_t>(r) * S;
      for (int k = 0; k < S; ++k) by_id[k] = {n[k], k};
      std::sort(by_id.begin(), by_id.end());
      std::fill(used.begin(), used.end(), 0);
      std::fill(kept.begin(), kept.end(), 0);
      std::fill(taken.begin(), taken.end(), 0);
      for (int s = 0; s < S; ++s) {  // experts that stay keep their slot
        const auto run =
            std::lower_bound(by_id.begin(), by_id.end(), std::pair<ExpertId, int>{o[s], -1});
        const auto start = static_cast<std::size_t>(run - by_id.begin());
        if (start == by_id.size()) continue;  // o[s] is above every new id: it leaves
        const std::size_t i = start + static_cast<std::size_t>(used[start]);
        if (i >= by_id.size() || by_id[i].first != o[s]) continue;
        ++used[start];
        merged[s] = o[s];
        kept[s] = 1;
        taken[by_id[i].second] = 1;
      }
      int k = 0;
      for (int s = 0; s < S; ++s) {  // newcomers fill the freed slots in their order
        if (kept[s]) continue;
        while (taken[k]) ++k;  // as many untaken new slots as freed old ones: k stays < S
        merged[s] = n[k];
        taken[k] = 1;
      }
      std::copy(merged.begin(), merged.end(), n);
    }
  }
}

}  // namespace swiftbalancer::compat
