// Placeholder until the transfer planner lands; replaced by its implementation.
#include "swiftbalancer/plan/transfer_plan.h"

namespace swiftbalancer {

TransferPlan make_transfer_plan(const Placement&, const Placement&, const Topology&,
                                const LinkWeights&) {
  throw InputError("transfer planner not built yet");
}
LayerPlan make_layer_plan(std::span<const ExpertId>, std::span<const ExpertId>, int, int,
                          const Topology&, const LinkWeights&) {
  throw InputError("transfer planner not built yet");
}
std::vector<ExpertId> apply_layer_plan(std::span<const ExpertId>, const LayerPlan&,
                                       const Topology&) {
  throw InputError("transfer planner not built yet");
}

}  // namespace swiftbalancer
