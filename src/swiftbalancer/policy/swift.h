// The swift policy: starts from the placement in service and changes only what pays.
// (Implemented in swift.cpp; see docs/swift-policy.md for the algorithm and its complexity.)
#pragma once

#include <memory>

#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer {

std::unique_ptr<Policy> make_swift_policy();

}  // namespace swiftbalancer
