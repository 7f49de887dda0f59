// Balance and movement metrics. Pure functions.
//
// Imbalance of a layer = max rank load / mean rank load, with each expert's load split evenly
// over its replicas. 1.0 is perfect. A layer with no load has no imbalance and is left out of
// the mean and max (DeepSeek's dense layers).
//
// Transfers = (layer, expert, rank) triples present in the new placement and not in the old:
// expert copies that cross ranks. A move between two slots of one rank is not a transfer.
//
// Recovery after a workload switch (replay and the demo share it, so their figures mean the
// same): see recovery_steps below.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer {

// Per-rank load of one layer (size topo.ranks), even split over replicas. `out` is resized.
void rank_loads(std::span<const ExpertId> phy2log, std::span<const double> load,
                const Topology& topo, std::vector<double>& out);

struct LayerBalance {
  bool has_load = false;
  double max_rank_load = 0.0;
  double mean_rank_load = 0.0;
  double imbalance = 0.0;  // max / mean; 0 when the layer has no load
};
LayerBalance layer_balance(std::span<const ExpertId> phy2log, std::span<const double> load,
                           const Topology& topo);

struct BalanceSummary {
  std::vector<LayerBalance> layers;
  int layers_with_load = 0;
  double mean_imbalance = 0.0;  // over layers with load; 1.0 when none has load
  double max_imbalance = 0.0;   // over layers with load; 1.0 when none has load
};
// Requires placement.layers() == load.layers() and matching experts (throws InputError).
BalanceSummary balance_summary(const Placement& placement, const LoadMatrix& load,
                               const Topology& topo);

// Cross-rank copies needed to go from `old_layer` to `new_layer` in one layer.
std::int64_t layer_transfers(std::span<const ExpertId> old_layer,
                             std::span<const ExpertId> new_layer, const Topology& topo,
                             int experts);
struct TransferSummary {
  std::vector<std::int64_t> per_layer;
  std::int64_t total = 0;
};
// Shapes must match (throws InputError).
TransferSummary transfer_summary(const Placement& old_placement, const Placement& new_placement,
                                 const Topology& topo);

// Recovery of a per-step imbalance series after a workload switch at index s (the first step of
// the new load; indices are 0-based steps): the steps from `from` (the end of the switch: s, or
// s + blend; -1 or anything below s means s) until the average over [t, t + w) (cut short at the
// end of the series) first falls to at most (1 + tol) x the average over [s - w, s), the last
// steps before the switch began; -1 if never, or when s <= 0 or from is past the end.
std::int64_t recovery_steps(std::span<const float> series, std::int64_t s, int w, double tol,
                            std::int64_t from = -1);
std::int64_t recovery_steps(std::span<const double> series, std::int64_t s, int w, double tol,
                            std::int64_t from = -1);

// The q-quantile (q in [0, 1]) of `values`, in any order; 0 when empty. The one percentile of
// the reports, by one of the two rules they have always used (so their figures stay the same):
//   kRoundedIndex: the sorted value at index round(q x (n - 1)) (the demo's step and balancer
//                  times);
//   kNearestRank:  the ceil(q x n)-th smallest, at least the first (replay's imbalance p50/p99).
// q = 1 is the largest value under both, q = 0 the smallest.
enum class QuantileRule { kRoundedIndex, kNearestRank };
double percentile(std::span<const double> values, double q,
                  QuantileRule rule = QuantileRule::kRoundedIndex);

}  // namespace swiftbalancer
