// A policy run on a pool made for the call, for engines that fork their workers (a pool made
// before a fork has no threads in the child). Owner: compat component. Thread-safe.
#pragma once

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer::compat {

// policy.rebalance(in) with its per-layer work spread over `threads` threads, the caller's
// included (at most one per layer; in.executor is replaced). The pool is made for the call and
// joined before it returns. The result does not depend on `threads`. InputError naming
// `threads` unless it is 1 .. limits::kMaxPoolThreads.
Placement rebalance_on_threads(const Policy& policy, PolicyInput in, int threads);
// The check of rebalance_on_threads, for calls that skip it.
void check_threads(int threads);

}  // namespace swiftbalancer::compat
