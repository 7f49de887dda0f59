// The swift policy ("swift" in the registry): starts from the placement in service and changes
// only what pays. Per layer a search on the busiest rank (swaps, re-pointed redundant slots;
// the cheapest move that halves its excess first; swift_search.h) records a trajectory; a
// whole-model budget (PolicyOptions::max_transfers) is spent on the trajectory segments that
// buy the most imbalance per transfer (swift_budget.h); without a budget a layer keeps the
// steps that buy at least 3e-4 imbalance per transfer. PolicyOptions::threshold: layers within
// it are untouched; PolicyOptions::target: a layer is searched until within it (default 1.002).
// Without a current placement it polishes deepseek-global's. Stateless: rebalance() is const
// and thread-safe. Algorithm, guarantees and complexity: docs/swift-policy.md.
#pragma once

#include <memory>

#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer {

std::unique_ptr<Policy> make_swift_policy();

}  // namespace swiftbalancer
