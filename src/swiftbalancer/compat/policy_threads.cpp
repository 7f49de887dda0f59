#include "swiftbalancer/compat/policy_threads.h"

#include <algorithm>
#include <optional>
#include <string>

#include "swiftbalancer/core/limits.h"
#include "swiftbalancer/exec/thread_pool.h"

namespace swiftbalancer::compat {

void check_threads(int threads) {
  if (threads < 1 || threads > limits::kMaxPoolThreads)
    throw InputError("threads must be 1 .. " + std::to_string(limits::kMaxPoolThreads) + ", got " +
                     std::to_string(threads));
}

Placement rebalance_on_threads(const Policy& policy, PolicyInput in, int threads) {
  check_threads(threads);
  std::optional<ThreadPool> pool;
  if (threads > 1 && in.load.layers() > 1) pool.emplace(std::min(threads, in.load.layers()));
  in.executor = pool ? &*pool : nullptr;
  return policy.rebalance(in);
}

}  // namespace swiftbalancer::compat
