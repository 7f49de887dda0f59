#include "swiftbalancer/compat/ascend.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "swiftbalancer/compat/align.h"
#include "swiftbalancer/compat/policy_threads.h"
#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/metrics.h"

namespace swiftbalancer::compat {
namespace {

std::string str(long long v) {
  return std::to_string(v);
}

}  // namespace

AscendResult ascend_rebalance(const Placement& current, const std::vector<double>& slot_workload,
                              const Topology& topo, const std::string& policy_name,
                              const PolicyOptions& options, double min_improvement, int threads) {
  const int layers = current.layers(), experts = current.experts(), slots = current.num_slots();
  if (!std::isfinite(min_improvement) || min_improvement < 0.0 || min_improvement >= 1.0)
    throw InputError("min_improvement must be in [0, 1), got " + std::to_string(min_improvement));
  const Status valid = validate_placement(current, topo);
  if (!valid.ok()) throw InputError("current_expert_table: " + valid.message());
  if (slot_workload.size() != static_cast<std::size_t>(layers) * slots)
    throw InputError("expert_workload must have the shape of current_expert_table");
  LoadMatrix load(layers, experts);
  for (int l = 0; l < layers; ++l)
    for (int p = 0; p < slots; ++p) {
      const double v = slot_workload[static_cast<std::size_t>(l) * slots + p];
      if (!std::isfinite(v) || v < 0.0)
        throw InputError("expert_workload[" + str(l) + "][" + str(p / topo.slots_per_rank) + "][" +
                         str(p % topo.slots_per_rank) + "] is " + std::to_string(v) +
                         "; loads must be finite and non-negative");
      load.at(l, current.at(l, p)) += v;
    }

  const auto policy = make_policy(policy_name);
  AscendResult out;
  out.placement =
      rebalance_on_threads(*policy, PolicyInput{topo, load, &current, options}, threads);
  if (out.placement.layers() != layers || out.placement.num_slots() != slots)
    throw InputError("policy '" + policy_name + "' returned a placement of the wrong shape");
  align_to_current(current, out.placement, topo);

  out.max_load_before.resize(layers);
  out.max_load_after.resize(layers);
  std::vector<double> ratio(layers, 1.0);
  double sum_before = 0.0, sum_after = 0.0;
  for (int l = 0; l < layers; ++l) {
    const double before = layer_balance(current.layer(l), load.row(l), topo).max_rank_load;
    double after = layer_balance(out.placement.layer(l), load.row(l), topo).max_rank_load;
    if (!(after < before)) {  // no gain: keep the layer as it is (no transfers)
      std::copy(current.layer(l).begin(), current.layer(l).end(), out.placement.layer(l).begin());
      after = before;
    }
    out.max_load_before[l] = before;
    out.max_load_after[l] = after;
    if (before > 0.0) ratio[l] = after / before;
    sum_before += before;
    sum_after += after;
  }
  out.priority.resize(layers);
  std::iota(out.priority.begin(), out.priority.end(), 0);
  std::stable_sort(out.priority.begin(), out.priority.end(),
                   [&](std::int64_t a, std::int64_t b) { return ratio[a] < ratio[b]; });
  out.changed = !(out.placement == current) && sum_after < (1.0 - min_improvement) * sum_before;
  return out;
}

}  // namespace swiftbalancer::compat
