// Placeholder until the real policy lands; replaced by its implementation.
#include "swiftbalancer/policy/vllm_ascend_swap.h"

namespace swiftbalancer {

std::unique_ptr<Policy> make_vllm_ascend_swap_policy() { throw InputError("policy not built yet"); }

}  // namespace swiftbalancer
