// Placeholder until the real policy lands; replaced by its implementation.
#include "swiftbalancer/policy/swift.h"

namespace swiftbalancer {

std::unique_ptr<Policy> make_swift_policy() { throw InputError("policy not built yet"); }

}  // namespace swiftbalancer
