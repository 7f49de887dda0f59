#include "dropin.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <string>

#include "swiftbalancer/core/limits.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/exec/thread_pool.h"
#include "swiftbalancer/policy/deepseek.h"

namespace swiftbalancer::python {
namespace {

std::string str(long long v) {
  return std::to_string(v);
}

void require_positive(const char* name, int v) {
  if (v <= 0) throw InputError(std::string(name) + " must be positive, got " + str(v));
}

}  // namespace

DeepSeekResult deepseek_rebalance_experts(const LoadMatrix& weight, int num_replicas,
                                          int num_groups, int num_nodes, int num_gpus,
                                          int log2phy_width, bool logical_maps) {
  require_positive("num_replicas", num_replicas);
  require_positive("num_groups", num_groups);
  require_positive("num_nodes", num_nodes);
  require_positive("num_gpus", num_gpus);
  if (num_gpus % num_nodes != 0)
    throw InputError("num_gpus (" + str(num_gpus) + ") must be a multiple of num_nodes (" +
                     str(num_nodes) + ")");
  if (num_replicas % num_gpus != 0)
    throw InputError("num_replicas (" + str(num_replicas) + ") must be a multiple of num_gpus (" +
                     str(num_gpus) + ")");
  if (num_replicas < weight.experts())
    throw InputError("num_replicas (" + str(num_replicas) + ") is smaller than the " +
                     str(weight.experts()) + " logical experts");
  // The reference's rule: hierarchical when the groups divide evenly over the nodes; otherwise
  // one group on one node (global), whatever num_groups says.
  const bool hierarchical = num_groups % num_nodes == 0;
  if (hierarchical && weight.experts() % num_groups != 0)
    throw InputError("num_groups (" + str(num_groups) + ") must divide the " +
                     str(weight.experts()) + " logical experts");
  const Topology topo = Topology::make(num_gpus, num_replicas / num_gpus, num_gpus / num_nodes);
  PolicyInput in{topo, weight};
  in.options.num_groups = hierarchical ? num_groups : 0;
  DeepSeekResult out;
  out.placement = make_deepseek_policy(DeepSeekMode::kAuto)->rebalance(in);
  if (logical_maps)
    replica_ordered_log2phy(out.placement, weight, topo, out.max_replicas, out.log2phy, out.logcnt,
                          log2phy_width);
  return out;
}

void replica_ordered_log2phy(const Placement& placement, const LoadMatrix& weight,
                             const Topology& topo, int& max_replicas,
                             std::vector<std::int64_t>& log2phy, std::vector<std::int64_t>& logcnt,
                             int min_width) {
  const int layers = placement.layers(), experts = placement.experts();
  const int slots = placement.num_slots(), per_rank = topo.slots_per_rank;
  if (weight.layers() != layers || weight.experts() != experts)
    throw InputError("placement and load shapes differ");
  logcnt.assign(static_cast<std::size_t>(layers) * experts, 0);
  max_replicas = 0;
  for (int l = 0; l < layers; ++l) {
    for (ExpertId e : placement.layer(l)) {
      if (e < 0 || e >= experts) throw InputError("placement holds an invalid expert id");
      const auto c = ++logcnt[static_cast<std::size_t>(l) * experts + e];
      max_replicas = std::max(max_replicas, static_cast<int>(c));
    }
  }
  max_replicas = std::max(max_replicas, min_width);
  log2phy.assign(static_cast<std::size_t>(layers) * experts * max_replicas, -1);
  std::vector<double> before(slots);  // load of the slot's rank in its lower slots
  std::vector<std::int32_t> order;
  for (int l = 0; l < layers; ++l) {
    const auto phy = placement.layer(l);
    const auto w = weight.row(l);
    const std::int64_t* cnt = logcnt.data() + static_cast<std::size_t>(l) * experts;
    // Same additions in the same order as the packing made them, so ties compare alike.
    for (int r = 0; r < topo.ranks; ++r) {
      double acc = 0.0;
      for (int s = 0; s < per_rank; ++s) {
        const int p = r * per_rank + s;
        before[p] = acc;
        acc += w[phy[p]] / static_cast<double>(cnt[phy[p]]);
      }
    }
    const Log2Phy csr = build_log2phy(phy, experts);  // slots of each expert in slot order
    for (int e = 0; e < experts; ++e) {
      const auto reps = csr.replicas(e);
      order.assign(reps.begin(), reps.end());
      std::stable_sort(order.begin(), order.end(),
                       [&](std::int32_t a, std::int32_t b) { return before[a] < before[b]; });
      std::int64_t* row =
          log2phy.data() + (static_cast<std::size_t>(l) * experts + e) * max_replicas;
      for (std::size_t k = 0; k < order.size(); ++k) row[k] = order[k];
    }
  }
}

void align_to_current(const Placement& current, Placement& next, const Topology& topo) {
  const int S = topo.slots_per_rank;
  std::vector<ExpertId> merged(S);
  std::vector<char> taken(S);
  for (int l = 0; l < next.layers(); ++l) {
    const auto old_layer = current.layer(l);
    auto new_layer = next.layer(l);
    for (int r = 0; r < topo.ranks; ++r) {
      const ExpertId* o = old_layer.data() + r * S;
      ExpertId* n = new_layer.data() + r * S;
      std::fill(merged.begin(), merged.end(), -1);
      std::fill(taken.begin(), taken.end(), 0);
      for (int s = 0; s < S; ++s)  // experts that stay keep their slot
        for (int k = 0; k < S; ++k)
          if (!taken[k] && n[k] == o[s]) {
            merged[s] = o[s];
            taken[k] = 1;
            break;
          }
      int k = 0;
      for (int s = 0; s < S; ++s) {  // newcomers fill the freed slots in their order
        if (merged[s] != -1) continue;
        while (taken[k]) ++k;
        merged[s] = n[k];
        taken[k] = 1;
      }
      std::copy(merged.begin(), merged.end(), n);
    }
  }
}

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

}  // namespace swiftbalancer::python
