// The swift policy. Owner: policy component (swift). Stateless; rebalance() is const and
// thread-safe (each call has its own workspace).
//
// 1. Start: the current placement, or without one the deepseek-global placement of the load.
// 2. Per layer with load whose imbalance exceeds the threshold: a LayerSearch trajectory
//    (swift_search.h), each step strictly lowering the layer's maximum rank load, preferring
//    the cheapest move that brings the busiest rank halfway to the mean.
// 3. Choice per layer (swift_budget.h): under a budget, hull segments of all layers in order
//    of imbalance drop per transfer while they fit, then the leftover on the best points that
//    still fit; without one, each layer's hull while a transfer buys kMinGainPerTransfer.
// 4. Materialise: replay the chosen prefix of moves, then put every expert that stayed on a
//    rank back into its old slot (arrivals fill the freed slots in slot order). A final check
//    against core/metrics keeps the old layer if rounding ever made it look worse.
#include "swiftbalancer/policy/swift.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/policy/deepseek.h"
#include "swiftbalancer/policy/internal/swift_budget.h"

namespace swiftbalancer {
namespace {

// The search goes on until a layer is within 0.2% of perfect balance (PolicyOptions::target
// overrides it); without a budget, the whole-model result then keeps, per layer, only the
// steps that buy at least kMinGainPerTransfer of imbalance per transfer. At 3e-4 a layer at
// 1.004 takes a transfer only for 0.03% of its step time; measured on the DeepSeek-V3 traces
// this keeps the 16 x 17 row at 1.002 and stops 32 x 9 near 1.003, well below a fifth of
// FlashLB's transfers on both (docs/swift-policy.md).
constexpr double kDefaultTarget = 1.002;
constexpr double kMinGainPerTransfer = 3e-4;
// A move is good enough when it brings the busiest rank halfway down to the mean: then the
// cheapest such move wins. Measured against 0.3 and 0.7: 0.5 gives the best budget curve at
// 1000 transfers for half the search time of 0.7 (docs/swift-policy.md).
constexpr double kGoalRatio = 0.5;

// Puts every expert that stayed on a rank back into its old slot; arrivals fill the other
// slots in the order in which they appear in `layer`. Each rank's set of experts is unchanged.
void keep_slots(std::span<const ExpertId> old_layer, std::span<ExpertId> layer, int S,
                std::vector<ExpertId>& arrivals, std::vector<char>& stays) {
  const int R = static_cast<int>(layer.size()) / S;
  stays.resize(static_cast<std::size_t>(S));
  for (int r = 0; r < R; ++r) {
    ExpertId* cur = layer.data() + static_cast<std::size_t>(r) * S;
    const ExpertId* old = old_layer.data() + static_cast<std::size_t>(r) * S;
    arrivals.clear();
    for (int k = 0; k < S; ++k) {
      if (std::find(old, old + S, cur[k]) == old + S) arrivals.push_back(cur[k]);
      stays[k] = std::find(cur, cur + S, old[k]) != cur + S;
    }
    std::size_t next = 0;
    for (int k = 0; k < S; ++k) cur[k] = stays[k] ? old[k] : arrivals[next++];
  }
}

class SwiftPolicy final : public Policy {
 public:
  std::string_view name() const override { return "swift"; }

  Placement rebalance(const PolicyInput& in) const override {
    throw_if_error(check_policy_input(in));
    const Topology& topo = in.topology;
    const int experts = in.load.experts();
    const int layers = in.load.layers();
    if (topo.slots_per_rank > experts)
      throw InputError("slots per rank (" + std::to_string(topo.slots_per_rank) + ") exceed the " +
                       std::to_string(experts) +
                       " experts: a rank would have to hold two replicas of one expert");
    Placement start;
    std::int64_t budget = in.options.max_transfers;
    if (in.current != nullptr) {
      start = *in.current;
    } else {
      // No placement in service: DeepSeek's from-scratch placement, then the local search
      // polishes it; transfers are counted from it, so the budget does not apply.
      PolicyInput seed{in.topology, in.load, nullptr, in.options};
      seed.options.num_groups = 0;
      start = make_deepseek_policy(DeepSeekMode::kGlobal)->rebalance(seed);
      budget = -1;
    }
    Placement out = start;
    if (budget == 0) return out;

    std::vector<swift::Trajectory> traj(static_cast<std::size_t>(layers));
    std::vector<double> before(static_cast<std::size_t>(layers));  // imbalance of the start
    std::vector<int> searched;  // layers worth a search, in layer order
    for (int l = 0; l < layers; ++l) {
      const LayerBalance b = layer_balance(start.layer(l), in.load.row(l), topo);
      before[l] = b.imbalance;
      if (!b.has_load || b.imbalance <= in.options.threshold) {
        traj[l].step_end.assign(1, 0);
        traj[l].transfers.assign(1, 0);
        traj[l].imbalance.assign(1, b.imbalance);
        continue;
      }
      searched.push_back(l);
    }
    // Each layer's search depends only on its own start and load, so the layers may run on
    // the caller's executor in any order: the trajectories, and so the result, are the same.
    swift::SearchLimits limits;
    limits.target = in.options.target > 0.0 ? in.options.target : kDefaultTarget;
    limits.goal_ratio = kGoalRatio;
    InlineExecutor inline_executor;
    TaskExecutor& exec = in.executor != nullptr ? *in.executor : inline_executor;
    // One workspace per worker, made by the first task that needs it.
    std::vector<std::unique_ptr<swift::LayerSearch>> search(
        static_cast<std::size_t>(exec.workers()));
    exec.run(static_cast<int>(searched.size()), [&](int task, int worker) {
      auto& s = search.at(static_cast<std::size_t>(worker));
      if (!s) s = std::make_unique<swift::LayerSearch>(topo, experts);
      const int l = searched[static_cast<std::size_t>(task)];
      s->run(start.layer(l), in.load.row(l), limits, traj[l]);
    });
    const std::vector<int> chosen = budget < 0 ? swift::choose_unlimited(traj, kMinGainPerTransfer)
                                               : swift::allocate_budget(traj, budget);

    std::vector<ExpertId> arrivals;
    std::vector<char> stays;
    for (int l = 0; l < layers; ++l) {
      if (chosen[l] == 0) continue;
      std::span<ExpertId> dst = out.layer(l);
      const swift::Trajectory& t = traj[l];
      for (int i = 0; i < t.step_end[chosen[l]]; ++i) dst[t.writes[i].slot] = t.writes[i].expert;
      keep_slots(start.layer(l), dst, topo.slots_per_rank, arrivals, stays);
      // Guard against rounding: never return a layer that measures worse than it was.
      const double after = layer_balance(dst, in.load.row(l), topo).imbalance;
      if (after > before[l]) std::copy(start.layer(l).begin(), start.layer(l).end(), dst.begin());
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<Policy> make_swift_policy() {
  return std::make_unique<SwiftPolicy>();
}

}  // namespace swiftbalancer
