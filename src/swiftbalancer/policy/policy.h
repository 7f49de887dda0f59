// Policy: decides a placement from the load and, optionally, the placement in service.
//
// A policy is a pure function of its input: no clocks, threads, randomness or unordered
// iteration in its result, so every rank computes the same placement from the same gathered
// load and no placement is ever broadcast. Policy objects hold no mutable state; rebalance() is
// const and safe to call from several threads at once. A policy never starts a thread: work it
// can spread goes to the executor its caller hands it (PolicyInput::executor).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/task_executor.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer {

struct PolicyOptions {
  // Expert groups for hierarchical packing (DeepSeek's num_groups); 0 or 1 means no groups.
  int num_groups = 0;
  // Whole-model budget of cross-rank expert copies; negative means unlimited. Policies that
  // start from the current placement (swift) honour it; from-scratch policies ignore it.
  std::int64_t max_transfers = -1;
  // A layer whose current imbalance (max/mean rank load) is at most this is left untouched.
  // Only for policies that start from the current placement.
  double threshold = 1.0;
  // Swift only: a layer is improved until its imbalance is at most this (the last fraction of
  // a percent costs many transfers); 0 means the policy's default, 1.002.
  double target = 0.0;
};

struct PolicyInput {
  const Topology& topology;
  const LoadMatrix& load;
  const Placement* current = nullptr;  // the placement in service, if any (not owned)
  PolicyOptions options{};
  // Where a policy may run work that is independent per layer (not owned; nullptr: on the
  // calling thread). The result never depends on it (core/task_executor.h).
  TaskExecutor* executor = nullptr;
};

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;
  // Returns a valid placement with load.layers() layers. Throws InputError on input it cannot
  // serve (call check_policy_input first to get a Status instead).
  virtual Placement rebalance(const PolicyInput& input) const = 0;
};

// Validates everything a policy relies on: topology against the expert count, finite
// non-negative load, the current placement's shape and validity, the group count.
Status check_policy_input(const PolicyInput& input);

// Registry by name. Names: "deepseek" (hierarchical when groups divide evenly over nodes, else
// global), "deepseek-global", "deepseek-hierarchical", "swift", "vllm-ascend-swap".
// Throws InputError naming the known policies on an unknown name.
std::unique_ptr<Policy> make_policy(std::string_view name);
std::vector<std::string> policy_names();

}  // namespace swiftbalancer
