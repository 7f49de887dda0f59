#include "swiftbalancer/core/metrics.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace swiftbalancer {
namespace {

// One definition for float (replay's series) and double (the demo's).
template <typename T>
std::int64_t recovery_steps_impl(std::span<const T> series, std::int64_t s, int w, double tol,
                                 std::int64_t from) {
  const std::int64_t n = static_cast<std::int64_t>(series.size());
  if (from < s) from = s;
  if (s <= 0 || from >= n || w < 1) return -1;
  const std::int64_t b0 = std::max<std::int64_t>(0, s - w);
  double pre = 0.0;
  for (std::int64_t i = b0; i < s; ++i) pre += series[static_cast<std::size_t>(i)];
  pre /= static_cast<double>(s - b0);
  const double limit = pre * (1.0 + tol);
  // Sliding average over [t, t + w), cut short at the end of the series.
  for (std::int64_t t = from; t < n; ++t) {
    const std::int64_t e = std::min(n, t + w);
    double sum = 0.0;
    for (std::int64_t i = t; i < e; ++i) sum += series[static_cast<std::size_t>(i)];
    if (sum / static_cast<double>(e - t) <= limit) return t - from;
  }
  return -1;
}

}  // namespace

std::int64_t recovery_steps(std::span<const float> series, std::int64_t s, int w, double tol,
                            std::int64_t from) {
  return recovery_steps_impl(series, s, w, tol, from);
}
std::int64_t recovery_steps(std::span<const double> series, std::int64_t s, int w, double tol,
                            std::int64_t from) {
  return recovery_steps_impl(series, s, w, tol, from);
}

void rank_loads(std::span<const ExpertId> phy2log, std::span<const double> load,
                const Topology& topo, std::vector<double>& out) {
  const int experts = static_cast<int>(load.size());
  out.assign(static_cast<std::size_t>(topo.ranks), 0.0);
  // Replica counts on the stack for common sizes would be premature; this is not a hot path.
  std::vector<int> counts = replica_counts(phy2log, experts);
  for (int p = 0; p < static_cast<int>(phy2log.size()); ++p) {
    const ExpertId e = phy2log[p];
    if (e < 0 || e >= experts) continue;
    out[topo.rank_of_slot(p)] += load[e] / counts[e];
  }
}

LayerBalance layer_balance(std::span<const ExpertId> phy2log, std::span<const double> load,
                           const Topology& topo) {
  std::vector<double> loads;
  rank_loads(phy2log, load, topo, loads);
  LayerBalance b;
  double total = 0.0;
  for (double v : loads) {
    total += v;
    b.max_rank_load = std::max(b.max_rank_load, v);
  }
  b.mean_rank_load = total / topo.ranks;
  b.has_load = total > 0.0;
  b.imbalance = b.has_load ? b.max_rank_load / b.mean_rank_load : 0.0;
  return b;
}

BalanceSummary balance_summary(const Placement& placement, const LoadMatrix& load,
                               const Topology& topo) {
  if (placement.layers() != load.layers() || placement.experts() != load.experts())
    throw InputError("placement (" + std::to_string(placement.layers()) + " layers x " +
                     std::to_string(placement.experts()) + " experts) does not match the load (" +
                     std::to_string(load.layers()) + " x " + std::to_string(load.experts()) + ")");
  BalanceSummary s;
  double sum = 0.0;
  for (int l = 0; l < load.layers(); ++l) {
    s.layers.push_back(layer_balance(placement.layer(l), load.row(l), topo));
    const LayerBalance& b = s.layers.back();
    if (!b.has_load) continue;
    ++s.layers_with_load;
    sum += b.imbalance;
    s.max_imbalance = std::max(s.max_imbalance, b.imbalance);
  }
  if (s.layers_with_load == 0) {
    s.mean_imbalance = s.max_imbalance = 1.0;
  } else {
    s.mean_imbalance = sum / s.layers_with_load;
  }
  return s;
}

std::int64_t layer_transfers(std::span<const ExpertId> old_layer,
                             std::span<const ExpertId> new_layer, const Topology& topo,
                             int experts) {
  // Slots of one rank are contiguous: mark the old rank's experts, then count new ones unmarked.
  std::vector<int> held_by(static_cast<std::size_t>(experts), -1);
  std::int64_t n = 0;
  for (int r = 0; r < topo.ranks; ++r) {
    const int begin = r * topo.slots_per_rank, end = begin + topo.slots_per_rank;
    for (int p = begin; p < end; ++p)
      if (old_layer[p] >= 0 && old_layer[p] < experts) held_by[old_layer[p]] = r;
    for (int p = begin; p < end; ++p) {
      const ExpertId e = new_layer[p];
      if (e < 0 || e >= experts) continue;
      if (held_by[e] != r) {
        ++n;
        held_by[e] = r;  // a second copy on the same rank would be one transfer, not two
      }
    }
  }
  return n;
}

TransferSummary transfer_summary(const Placement& old_placement, const Placement& new_placement,
                                 const Topology& topo) {
  if (old_placement.layers() != new_placement.layers() ||
      old_placement.num_slots() != new_placement.num_slots() ||
      old_placement.experts() != new_placement.experts())
    throw InputError("current placement shape (" + std::to_string(old_placement.layers()) +
                     " layers x " + std::to_string(old_placement.num_slots()) +
                     " slots) does not match the new one (" +
                     std::to_string(new_placement.layers()) + " x " +
                     std::to_string(new_placement.num_slots()) + ")");
  TransferSummary s;
  for (int l = 0; l < old_placement.layers(); ++l) {
    s.per_layer.push_back(layer_transfers(old_placement.layer(l), new_placement.layer(l), topo,
                                          old_placement.experts()));
    s.total += s.per_layer.back();
  }
  return s;
}

double percentile(std::span<const double> values, double q, QuantileRule rule) {
  if (values.empty()) return 0.0;
  std::vector<double> v(values.begin(), values.end());
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  std::size_t i = 0;
  if (rule == QuantileRule::kRoundedIndex) {
    i = static_cast<std::size_t>(std::lround(q * static_cast<double>(n - 1)));
  } else {
    const auto k = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
    i = k == 0 ? 0 : k - 1;
  }
  return v[std::min(i, n - 1)];
}

}  // namespace swiftbalancer
