#include "swiftbalancer/compat/engine_start.h"

#include <algorithm>
#include <string>
#include <vector>

namespace swiftbalancer::compat {

Placement engine_start_placement(const Placement& old, const LoadMatrix& weight,
                                 const Topology& topo, std::int64_t* arrivals) {
  const std::string name = "old_global_expert_indices";
  const int layers = weight.layers(), experts = weight.experts();
  const int P = topo.num_slots(), S = topo.slots_per_rank, R = topo.ranks;
  if (old.layers() != layers)
    throw InputError(name + " has " + std::to_string(old.layers()) + " layers, weight has " +
                     std::to_string(layers));
  if (old.num_slots() <= 0) throw InputError(name + " has no slots");
  const int W = old.num_slots();
  for (int l = 0; l < layers; ++l)
    for (int p = 0; p < W; ++p) {
      const ExpertId e = old.at(l, p);
      if (e < -1 || e >= experts)
        throw InputError(name + "[" + std::to_string(l) + "][" + std::to_string(p) + "] is " +
                         std::to_string(e) + ": ids must be -1 (empty) or in [0, " +
                         std::to_string(experts) + ")");
    }

  Placement out(layers, P, experts);
  std::int64_t filled = 0;
  std::vector<char> held(static_cast<std::size_t>(R) * experts);
  std::vector<int> count(experts);
  std::vector<double> rank_load(R);
  std::vector<int> holes_on_rank(R), missing(experts);
  for (int l = 0; l < layers; ++l) {
    const auto w = weight.row(l);
    auto dst = out.layer(l);
    std::fill(held.begin(), held.end(), 0);
    std::fill(count.begin(), count.end(), 0);
    int holes = 0;
    for (int p = 0; p < P; ++p) {
      const ExpertId e = p < W ? old.at(l, p) : -1;
      char& h = held[static_cast<std::size_t>(p / S) * experts + (e < 0 ? 0 : e)];
      if (e < 0 || h) {  // empty, or the rank's second replica of e
        ++holes;
        continue;
      }
      dst[p] = e;
      h = 1;
      ++count[e];
    }
    // Nothing to repair: no hole and every expert kept somewhere. (A map wider than the
    // topology can lose an expert with no hole left: it then evicts a redundant replica below.)
    if (holes == 0 && std::find(count.begin(), count.end(), 0) == count.end()) continue;
    filled += holes;  // each hole gets an expert its rank does not hold: one copy each
    // Rank loads with an even split over the replicas kept; holes per rank.
    std::fill(rank_load.begin(), rank_load.end(), 0.0);
    std::fill(holes_on_rank.begin(), holes_on_rank.end(), 0);
    for (int p = 0; p < P; ++p) {
      if (dst[p] < 0)
        ++holes_on_rank[p / S];
      else
        rank_load[p / S] += w[dst[p]] / count[dst[p]];
    }
    // Experts no rank keeps: heaviest first (ties: lower id), each on the lightest rank with a
    // hole (ties: lower rank), in its first hole.
    missing.clear();
    for (int e = 0; e < experts; ++e)
      if (count[e] == 0) missing.push_back(e);
    std::stable_sort(missing.begin(), missing.end(), [&](int a, int b) { return w[a] > w[b]; });
    for (int e : missing) {
      int slot = -1;
      if (holes > 0) {
        int best = -1;
        for (int r = 0; r < R; ++r)
          if (holes_on_rank[r] > 0 && (best < 0 || rank_load[r] < rank_load[best])) best = r;
        for (int p = best * S; p < (best + 1) * S; ++p)
          if (dst[p] < 0) {
            slot = p;
            break;
          }
        --holes;
        --holes_on_rank[best];
      } else {
        // Every slot full: the replica that carries the least (an expert with another one).
        for (int p = 0; p < P; ++p) {
          const ExpertId x = dst[p];
          if (count[x] < 2) continue;
          if (slot < 0 || w[x] / count[x] <= w[dst[slot]] / count[dst[slot]]) slot = p;
        }
        const ExpertId x = dst[slot];
        ++filled;  // the evicted slot takes a copy too
        held[static_cast<std::size_t>(slot / S) * experts + x] = 0;
        rank_load[slot / S] -= w[x] / count[x];
        --count[x];
      }
      dst[slot] = e;
      held[static_cast<std::size_t>(slot / S) * experts + e] = 1;
      count[e] = 1;
      rank_load[slot / S] += w[e];
    }
    // The holes left: the replica that lowers the heaviest per-replica load most.
    for (int p = 0; p < P && holes > 0; ++p) {
      if (dst[p] >= 0) continue;
      const char* h = held.data() + static_cast<std::size_t>(p / S) * experts;
      int best = -1;
      for (int e = 0; e < experts; ++e)
        if (!h[e] && (best < 0 || w[e] / (count[e] + 1) > w[best] / (count[best] + 1))) best = e;
      dst[p] = best;
      held[static_cast<std::size_t>(p / S) * experts + best] = 1;
      ++count[best];
      --holes;
    }
  }
  if (arrivals != nullptr) *arrivals = filled;
  return out;
}

}  // namespace swiftbalancer::compat
