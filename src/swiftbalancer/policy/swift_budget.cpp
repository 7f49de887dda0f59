// Whole-model budget allocation of the swift policy (swift_budget.h). The greedy over merged
// convex curves is the classic one for a multiple-choice knapsack: optimal at every breakpoint
// of the merged curve, and budget never goes to a layer whose next transfers buy less than
// another layer's. Every tie is broken by layer and step, so the result is deterministic.
#include "swiftbalancer/policy/internal/swift_budget.h"

#include <algorithm>
#include <queue>

namespace swiftbalancer::swift {
namespace {

struct HullPoint {
  int step;
  std::int32_t transfers;
  double imbalance;
};

// Lower convex hull of a trajectory's points, from the start (transfers 0) towards more
// transfers and lower imbalance. Of points with equal transfers only the lowest can be on it.
std::vector<HullPoint> lower_hull(const Trajectory& t) {
  std::vector<HullPoint> pts;
  pts.reserve(t.transfers.size());
  for (int k = 0; k <= t.steps(); ++k) pts.push_back({k, t.transfers[k], t.imbalance[k]});
  std::stable_sort(pts.begin(), pts.end(), [](const HullPoint& a, const HullPoint& b) {
    if (a.transfers != b.transfers) return a.transfers < b.transfers;
    return a.imbalance < b.imbalance;  // stable: equal points keep step order
  });
  std::vector<HullPoint> hull;
  for (const HullPoint& p : pts) {
    if (!hull.empty() && p.transfers == hull.back().transfers) continue;  // worse duplicate
    if (!hull.empty() && p.imbalance >= hull.back().imbalance) continue;  // not an improvement
    while (hull.size() >= 2) {
      const HullPoint& a = hull[hull.size() - 2];
      const HullPoint& b = hull.back();
      // b on or above the segment a-p: drop it.
      const double cross = (b.transfers - a.transfers) * (p.imbalance - a.imbalance) -
                           (b.imbalance - a.imbalance) * (p.transfers - a.transfers);
      if (cross > 0.0) break;
      hull.pop_back();
    }
    hull.push_back(p);
  }
  return hull;
}

struct Segment {
  double rate;  // imbalance drop per transfer
  int layer;
  bool operator<(const Segment& o) const {  // max-heap on rate, ties: lower layer first
    if (rate != o.rate) return rate < o.rate;
    return layer > o.layer;
  }
};

// Spends `left` on the best single jump among the `blocked` layers' trajectory points, largest
// drop first, until nothing more fits.
void spend_leftover(const std::vector<Trajectory>& traj, const std::vector<char>& blocked,
                    std::int64_t left, std::vector<int>& chosen) {
  const int layers = static_cast<int>(traj.size());
  while (left > 0) {
    int best_l = -1, best_k = -1;
    double best_gain = 0.0;
    for (int l = 0; l < layers; ++l) {
      if (!blocked[l]) continue;
      const Trajectory& t = traj[l];
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
    if (best_l < 0) return;
    left -= traj[best_l].transfers[best_k] - traj[best_l].transfers[chosen[best_l]];
    chosen[best_l] = best_k;
  }
}

}  // namespace

std::vector<int> allocate_budget(const std::vector<Trajectory>& traj, std::int64_t budget) {
  const int layers = static_cast<int>(traj.size());
  std::vector<std::vector<HullPoint>> hulls(layers);
  std::vector<int> at(layers, 0);  // index into the hull of the point taken
  std::priority_queue<Segment> queue;
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
    const Segment s = queue.top();
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
  std::vector<int> chosen(layers, 0);
  for (int l = 0; l < layers; ++l)
    if (!hulls[l].empty()) chosen[l] = hulls[l][at[l]].step;
  spend_leftover(traj, blocked, left, chosen);
  return chosen;
}

std::vector<int> choose_unlimited(const std::vector<Trajectory>& traj, double min_rate) {
  std::vector<int> chosen(traj.size(), 0);
  for (std::size_t l = 0; l < traj.size(); ++l) {
    if (traj[l].steps() == 0) continue;
    const std::vector<HullPoint> hull = lower_hull(traj[l]);
    std::size_t k = 0;
    while (k + 1 < hull.size() && hull[k].imbalance - hull[k + 1].imbalance >=
                                      min_rate * (hull[k + 1].transfers - hull[k].transfers))
      ++k;
    chosen[l] = hull[k].step;
  }
  return chosen;
}

}  // namespace swiftbalancer::swift
