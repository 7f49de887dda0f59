#include "swiftbalancer/policy/policy.h"

#include <cmath>
#include <string>

namespace swiftbalancer {

Status check_policy_input(const PolicyInput& input) {
  if (input.load.empty()) return Status::InvalidInput("load is empty");
  Status s = input.topology.validate(input.load.experts());
  if (!s.ok()) return s;
  s = input.load.validate();
  if (!s.ok()) return s;
  const int groups = input.options.num_groups;
  if (groups < 0) return Status::InvalidInput("groups must not be negative");
  // Written so that NaN fails: every comparison with NaN is false.
  if (!(input.options.threshold >= 0.0) || std::isinf(input.options.threshold))
    return Status::InvalidInput("threshold must be finite and not negative");
  if (!(input.options.target >= 0.0) || std::isinf(input.options.target))
    return Status::InvalidInput("target must be finite and not negative (0: the default)");
  if (groups > 1 && input.load.experts() % groups != 0)
    return Status::InvalidInput("groups (" + std::to_string(groups) + ") must divide the " +
                                std::to_string(input.load.experts()) + " experts");
  if (input.current != nullptr) {
    const Placement& cur = *input.current;
    if (cur.layers() != input.load.layers())
      return Status::InvalidInput("current placement has " + std::to_string(cur.layers()) +
                                  " layers, the load has " + std::to_string(input.load.layers()));
    if (cur.experts() != input.load.experts())
      return Status::InvalidInput("current placement is for " + std::to_string(cur.experts()) +
                                  " experts, the load has " + std::to_string(input.load.experts()));
    s = validate_placement(cur, input.topology);
    if (!s.ok()) return Status::InvalidInput("current placement: " + s.message());
  }
  return Status::Ok();
}

}  // namespace swiftbalancer
