// The swift policy. Owner: policy component (swift). Stateless; rebalance() is const and
// thread-safe (each call has its own workspace).
//
// 1. Start: the current placement, or without one the deepseek-global placement of the load.
// 2. Per layer with load whose imbalance exceeds the threshold: a LayerSearch trajectory
//    (swift_search.h), each step strictly lowering the layer's maximum rank load.
// 3. Budget: each trajectory is reduced to the lower convex hull of its (transfers, imbalance)
//    points; hull segments of all layers are taken in order of imbalance drop per transfer
//    (ties: lower layer) while they fit in the whole-model budget, a layer's segments in order.
//    Leftover budget then buys, layer by layer, the best trajectory point that still fits.
//    With no budget every layer takes its whole trajectory.
// 4. Materialise: replay the chosen prefix of moves, then put every expert that stayed on a
//    rank back into its old slot (arrivals fill the freed slots in slot order). A final check
//    against core/metrics keeps the old layer if rounding ever made it look worse.
#include "swiftbalancer/policy/swift.h"

#include <algorithm>
#include <queue>
#include <string>
#include <vector>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/policy/deepseek.h"
#include "swiftbalancer/policy/swift_search.h"

namespace swiftbalancer {
namespace {

// A layer within 1% of perfect balance is done: going further costs about as many transfers
// again as reaching it (measured on the DeepSeek-V3 traces) for well under 1% of step time.
constexpr double kDefaultTarget = 1.01;

struct HullPoint {
  int step;
  std::int32_t transfers;
  double imbalance;
};

// Lower convex hull of the trajectory points, from the start (transfers 0) towards more
// transfers and lower imbalance. Points with equal transfers keep the lowest imbalance.
std::vector<HullPoint> lower_hull(const swift::Trajectory& t) {
  std::vector<HullPoint> pts;
  pts.reserve(t.transfers.size());
  for (int k = 0; k <= t.steps(); ++k) pts.push_back({k, t.transfers[k], t.imbalance[k]});
  std::stable_sort(pts.begin(), pts.end(), [](const HullPoint& a, const HullPoint& b) {
    if (a.transfers != b.transfers) return a.transfers < b.transfers;
    if (a.imbalance != b.imbalance) return a.imbalance < b.imbalance;
    return a.step < b.step;
  });
  std::vector<HullPoint> hull;
  for (const HullPoint& p : pts) {
    if (!hull.empty() && p.transfers == hull.back().transfers) continue;  // worse duplicate
    if (!hull.empty() && p.imbalance >= hull.back().imbalance) continue;  // not an improvement
    while (hull.size() >= 2) {
      const HullPoint& a = hull[hull.size() - 2];
      const HullPoint& b = hull.back();
      // b is above the segment a-p (or on it): drop it.
      const double cross = (b.transfers - a.transfers) * (p.imbalance - a.imbalance) -
                           (b.imbalance - a.imbalance) * (p.transfers - a.transfers);
      if (cross <= 0.0)
        hull.pop_back();
      else
        break;
    }
    hull.push_back(p);
  }
  return hull;
}

// Chooses a step per layer under the whole-model budget. chosen[l] starts at 0.
void allocate_budget(const std::vector<swift::Trajectory>& traj, std::int64_t budget,
                     std::vector<int>& chosen) {
  const int layers = static_cast<int>(traj.size());
  std::vector<std::vector<HullPoint>> hulls(layers);
  std::vector<int> at(layers, 0);  // index into the hull of the point taken
  struct Seg {
    double rate;  // imbalance drop per transfer
    int layer;
    bool operator<(const Seg& o) const {  // max-heap on rate, ties: lower layer first
      if (rate != o.rate) return rate < o.rate;
      return layer > o.layer;
    }
  };
  std::priority_queue<Seg> queue;
  auto push_next = [&](int l) {
    const auto& h = hulls[l];
    if (at[l] + 1 >= static_cast<int>(h.size())) return;
    const HullPoint &a = h[at[l]], &b = h[at[l] + 1];
    queue.push({(a.imbalance - b.imbalance) / (b.transfers - a.transfers), l});
  };
  for (int l = 0; l < layers; ++l) {
    if (traj[l].steps() == 0) continue;
    hulls[l] = lower_hull(traj[l]);
    push_next(l);
  }
  std::int64_t left = budget;
  std::vector<char> blocked(layers, 0);
  while (!queue.empty()) {
    const Seg s = queue.top();
    queue.pop();
    const auto& h = hulls[s.layer];
    const std::int64_t cost = h[at[s.layer] + 1].transfers - h[at[s.layer]].transfers;
    if (cost > left) {
      blocked[s.layer] = 1;  // later segments of this layer need this one first
      continue;
    }
    left -= cost;
    ++at[s.layer];
    push_next(s.layer);
  }
  for (int l = 0; l < layers; ++l)
    if (!hulls[l].empty()) chosen[l] = hulls[l][at[l]].step;
  // Leftover: for each blocked layer (in order of the gain available), the best point of the
  // whole trajectory within its current transfers plus what is left.
  while (left > 0) {
    int best_l = -1, best_k = -1;
    double best_gain = 0.0;
    for (int l = 0; l < layers; ++l) {
      if (!blocked[l]) continue;
      const auto& t = traj[l];
      const std::int32_t cur_t = t.transfers[chosen[l]];
      const double cur_f = t.imbalance[chosen[l]];
      for (int k = 0; k <= t.steps(); ++k) {
        if (t.transfers[k] - cur_t > left) continue;
        const double gain = cur_f - t.imbalance[k];
        if (gain > best_gain) {
          best_gain = gain;
          best_l = l;
          best_k = k;
        }
      }
    }
    if (best_l < 0) break;
    left -= traj[best_l].transfers[best_k] - traj[best_l].transfers[chosen[best_l]];
    chosen[best_l] = best_k;
  }
}

// Puts every expert that stayed on a rank back into its old slot; arrivals fill the other
// slots in the order in which they appear in `layer`. Each rank's set of experts is unchanged.
void keep_slots(std::span<const ExpertId> old_layer, std::span<ExpertId> layer, int S,
                std::vector<ExpertId>& arrivals, std::vector<char>& stays) {
  const int R = static_cast<int>(layer.size()) / S;
  stays.resize(static_cast<std::size_t>(S));
  for (int r = 0; r < R; ++r) {
    ExpertId* cur = layer.data() + static_cast<std::size_t>(r) * S;
    const ExpertId* old = old_layer.data() + static_cast<std::size_t>(r) * S;
    arrivals.clear();
    for (int k = 0; k < S; ++k) {
      if (std::find(old, old + S, cur[k]) == old + S) arrivals.push_back(cur[k]);
      stays[k] = std::find(cur, cur + S, old[k]) != cur + S;
    }
    std::size_t next = 0;
    for (int k = 0; k < S; ++k) cur[k] = stays[k] ? old[k] : arrivals[next++];
  }
}

class SwiftPolicy final : public Policy {
 public:
  std::string_view name() const override { return "swift"; }

  Placement rebalance(const PolicyInput& in) const override {
    throw_if_error(check_policy_input(in));
    const Topology& topo = in.topology;
    const int experts = in.load.experts();
    const int layers = in.load.layers();
    if (topo.slots_per_rank > experts)
      throw InputError("slots per rank (" + std::to_string(topo.slots_per_rank) + ") exceed the " +
                       std::to_string(experts) +
                       " experts: a rank would have to hold two replicas of one expert");
    Placement start;
    std::int64_t budget = in.options.max_transfers;
    if (in.current != nullptr) {
      start = *in.current;
    } else {
      // No placement in service: DeepSeek's from-scratch placement, then the local search
      // polishes it; transfers are counted from it, so the budget does not apply.
      PolicyInput seed{in.topology, in.load, nullptr, in.options};
      seed.options.num_groups = 0;
      start = make_deepseek_policy(DeepSeekMode::kGlobal)->rebalance(seed);
      budget = -1;
    }
    Placement out = start;
    if (budget == 0) return out;

    swift::LayerSearch search(topo, experts);
    std::vector<swift::Trajectory> traj(static_cast<std::size_t>(layers));
    for (int l = 0; l < layers; ++l) {
      const LayerBalance b = layer_balance(start.layer(l), in.load.row(l), topo);
      if (!b.has_load || b.imbalance <= in.options.threshold) {
        traj[l].step_end.assign(1, 0);
        traj[l].transfers.assign(1, 0);
        traj[l].imbalance.assign(1, b.imbalance);
        continue;
      }
      swift::SearchLimits limits;
      limits.target = in.options.target > 0.0 ? in.options.target : kDefaultTarget;
      search.run(start.layer(l), in.load.row(l), limits, traj[l]);
    }

    std::vector<int> chosen(static_cast<std::size_t>(layers), 0);
    if (budget < 0) {
      for (int l = 0; l < layers; ++l) chosen[l] = traj[l].steps();
    } else {
      allocate_budget(traj, budget, chosen);
    }

    std::vector<ExpertId> arrivals;
    std::vector<char> stays;
    for (int l = 0; l < layers; ++l) {
      if (chosen[l] == 0) continue;
      std::span<ExpertId> dst = out.layer(l);
      const auto& t = traj[l];
      for (int i = 0; i < t.step_end[chosen[l]]; ++i) dst[t.writes[i].slot] = t.writes[i].expert;
      keep_slots(start.layer(l), dst, topo.slots_per_rank, arrivals, stays);
      // Guard against rounding: never return a layer that measures worse than it was.
      const double before = layer_balance(start.layer(l), in.load.row(l), topo).imbalance;
      const double after = layer_balance(dst, in.load.row(l), topo).imbalance;
      if (after > before) std::copy(start.layer(l).begin(), start.layer(l).end(), dst.begin());
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<Policy> make_swift_policy() {
  return std::make_unique<SwiftPolicy>();
}

}  // namespace swiftbalancer
