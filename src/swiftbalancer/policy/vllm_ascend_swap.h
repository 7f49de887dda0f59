// A C++ rendering of vllm-ascend's swap-based dynamic EPLB policy (its "policy 2"), kept as the
// baseline that the swift policy is measured against: it swaps or re-points a few experts per
// layer starting from the placement in service.
#pragma once

#include <memory>

#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer {

std::unique_ptr<Policy> make_vllm_ascend_swap_policy();

}  // namespace swiftbalancer
