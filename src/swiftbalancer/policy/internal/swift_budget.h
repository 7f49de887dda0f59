// Whole-model transfer budget of the swift policy. Owner: policy component (swift). Pure
// functions, thread-safe.
//
// Every layer offers the points (transfers, imbalance) of its search trajectory, which starts
// from the layer in service (swift_search.h); each point is a valid layer and costs its
// transfers. These functions pick one step per layer (0: the layer as it is).
#pragma once

#include <cstdint>
#include <vector>

#include "swiftbalancer/policy/internal/swift_search.h"

namespace swiftbalancer::swift {

// Budget K >= 0: each trajectory is reduced to the lower convex hull of its points; hull
// segments of all layers are taken in order of imbalance drop per transfer (ties: lower layer)
// while they fit in what is left of K, a layer's segments in order. What is left then buys,
// for layers whose next segment did not fit, the best point that still fits (largest drop
// first, ties: lower layer, then earlier step). The chosen steps never cost more than K.
std::vector<int> allocate_budget(const std::vector<Trajectory>& traj, std::int64_t budget);

// No budget: per layer, the hull is followed from the start while each segment lowers the
// imbalance by at least `min_rate` per transfer (the search itself stopped at its target).
std::vector<int> choose_unlimited(const std::vector<Trajectory>& traj, double min_rate);

}  // namespace swiftbalancer::swift
