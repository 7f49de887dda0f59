// Transfer planner. Owner: plan component. Pure functions; thread-safe (no shared state).
//
// Per layer:
//   1. Diff: every slot whose expert changes needs the new expert. If its rank held that expert
//      in the old placement, the slot is filled by a local copy (never a network receive).
//      Otherwise it is a remote request (expert, dst rank); a valid new placement has at most
//      one slot per (expert, rank), so each (expert, dst rank) is received at most once.
//   2. Senders: any rank holding the expert in the OLD placement may send (sources are staged
//      before destinations are written). An op of link weight w charges w to both ends; the
//      makespan is the largest per-rank total. Greedy (forced and heavy requests first, each to
//      the sender that keeps the pair's maximum lowest), then local improvement on the busiest
//      rank until no single re-assignment lowers it (potential: (makespan, ranks at makespan)
//      decreases lexicographically, so it terminates; an iteration cap bounds it anyway).
//      Where that does not meet the bound below, a branch and bound over the requests with a
//      choice (capped at kNodeCap nodes) either improves it or proves it optimal; a proven
//      optimum is reported as the lower bound.
//   3. Lower bound: the largest of
//        - per rank: cheapest possible receives + sends it alone can make (sole holder);
//        - per expert: its holders together must send to all its receivers, so the busiest of
//          them carries at least the average of (cheapest sends + their own unavoidable costs);
//        - total unavoidable cost (2 x sum of cheapest links) spread over all ranks.
#include "swiftbalancer/plan/transfer_plan.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace swiftbalancer {
namespace {

constexpr long kNodeCap = 5000;  // branch-and-bound nodes per layer (bounded time)

void check_weights(const LinkWeights& w) {
  if (!std::isfinite(w.intra_node) || !std::isfinite(w.inter_node) || w.intra_node <= 0.0 ||
      w.inter_node <= 0.0)
    throw InputError("link weights must be positive and finite (intra-node " +
                     std::to_string(w.intra_node) + ", inter-node " + std::to_string(w.inter_node) +
                     ")");
}

struct Request {
  ExpertId expert;
  int dst_rank;
  int dst_slot;
  int sender;     // chosen sender rank
  double weight;  // link weight of the chosen sender
  int n_holders;  // number of ranks holding the expert in the old placement
  double min_w;   // cheapest link weight over the holders
};

// Slots of the old layer holding each expert, as (rank, local slot), in increasing slot order.
struct Holders {
  std::vector<int> offsets;  // experts + 1
  std::vector<int> slots;    // physical slots
};

Holders holders_of(std::span<const ExpertId> layer, int experts) {
  Holders h;
  h.offsets.assign(static_cast<std::size_t>(experts) + 1, 0);
  for (ExpertId e : layer) ++h.offsets[e + 1];
  for (int e = 0; e < experts; ++e) h.offsets[e + 1] += h.offsets[e];
  h.slots.assign(layer.size(), -1);
  std::vector<int> fill(h.offsets.begin(), h.offsets.end() - 1);
  for (int p = 0; p < static_cast<int>(layer.size()); ++p) h.slots[fill[layer[p]]++] = p;
  return h;
}

// Exact sender choice by depth-first branch and bound, for layers where the heuristic does
// not meet the analytic bound. Flexible requests (several holders) are branched on, heaviest
// cheapest link first; forced ones are fixed costs. A path is pruned when some rank's cost
// plus the cheapest receives still ahead of it reaches the incumbent (both only grow along a
// path, so a running maximum suffices). Returns true when the search finished within
// `node_cap` nodes: the incumbent (updated in `best_sender`, `best`) is then optimal.
struct BranchAndBound {
  const std::vector<Request>& reqs;
  const std::vector<int>& flex;  // indices into reqs, in branching order
  const Holders& holders;
  const Topology& topo;
  const LinkWeights& w;
  std::vector<double> cost, pending;
  std::vector<int> sender, best_sender;
  double best;
  long nodes = 0, node_cap;
  double link(int a, int b) const {
    return topo.node_of_rank(a) == topo.node_of_rank(b) ? w.intra_node : w.inter_node;
  }

  BranchAndBound(const std::vector<Request>& r, const std::vector<int>& f, const Holders& h,
                 const Topology& t, const LinkWeights& lw, double incumbent, long cap)
      : reqs(r), flex(f), holders(h), topo(t), w(lw), best(incumbent), node_cap(cap) {}

  // Returns false when the node cap was hit.
  bool search(std::size_t i, double running_max) {
    if (++nodes > node_cap) return false;
    if (i == flex.size()) {
      best = running_max;
      best_sender = sender;
      return true;
    }
    const Request& q = reqs[flex[i]];
    for (int j = holders.offsets[q.expert]; j < holders.offsets[q.expert + 1]; ++j) {
      const int h = topo.rank_of_slot(holders.slots[j]);
      const double lw = link(h, q.dst_rank);
      cost[h] += lw;
      cost[q.dst_rank] += lw;
      pending[q.dst_rank] -= q.min_w;
      const double m =
          std::max({running_max, cost[h] + pending[h], cost[q.dst_rank] + pending[q.dst_rank]});
      bool ok = true;
      if (m < best - 1e-9) {
        sender[i] = h;
        ok = search(i + 1, m);
      }
      cost[h] -= lw;
      cost[q.dst_rank] -= lw;
      pending[q.dst_rank] += q.min_w;
      if (!ok) return false;
    }
    return true;
  }
};

// The steps of one layer's plan, each a member over the shared inputs (see the file comment).
struct LayerPlanner {
  const Topology& topo;
  const LinkWeights& weights;
  const Holders& holders;

  double link(int a, int b) const {
    return topo.node_of_rank(a) == topo.node_of_rank(b) ? weights.intra_node : weights.inter_node;
  }
  // The local slot of expert e on rank r in the old placement, or -1.
  int old_slot_on(ExpertId e, int r) const {
    for (int k = holders.offsets[e]; k < holders.offsets[e + 1]; ++k)
      if (topo.rank_of_slot(holders.slots[k]) == r)
        return holders.slots[k] - r * topo.slots_per_rank;
    return -1;
  }

  // 1. Diff: local copies into `local`, network receives into `reqs` (by dst rank, dst slot).
  void diff(std::span<const ExpertId> old_layer, std::span<const ExpertId> new_layer,
            std::vector<Request>& reqs, std::vector<TransferOp>& local) const {
    const int S = topo.slots_per_rank;
    for (int r = 0; r < topo.ranks; ++r) {
      for (int k = 0; k < S; ++k) {
        const int p = r * S + k;
        const ExpertId e = new_layer[p];
        if (e == old_layer[p]) continue;  // unchanged slot: never written
        const int src = old_slot_on(e, r);
        if (src >= 0) {
          local.push_back({e, r, src, r, k});
          continue;
        }
        Request q{e, r, k, -1, 0.0, holders.offsets[e + 1] - holders.offsets[e], 0.0};
        q.min_w = std::numeric_limits<double>::infinity();
        for (int j = holders.offsets[e]; j < holders.offsets[e + 1]; ++j)
          q.min_w = std::min(q.min_w, link(topo.rank_of_slot(holders.slots[j]), r));
        reqs.push_back(q);
      }
    }
  }

  // 2a. Greedy senders; returns the per-rank cost.
  std::vector<double> greedy(std::vector<Request>& reqs) const {
    // Greedy order: forced requests (one holder) first, then heavier cheapest links, then fewer
    // holders; ties by (expert, dst rank). Stable and total, so deterministic.
    std::vector<int> order(reqs.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      const Request &x = reqs[a], &y = reqs[b];
      if ((x.n_holders == 1) != (y.n_holders == 1)) return x.n_holders == 1;
      if (x.min_w != y.min_w) return x.min_w > y.min_w;
      if (x.n_holders != y.n_holders) return x.n_holders < y.n_holders;
      if (x.expert != y.expert) return x.expert < y.expert;
      return x.dst_rank < y.dst_rank;
    });
    std::vector<double> cost(static_cast<std::size_t>(topo.ranks), 0.0);
    for (int i : order) {
      Request& q = reqs[i];
      int best = -1;
      double best_pair = 0.0, best_w = 0.0, best_load = 0.0;
      for (int j = holders.offsets[q.expert]; j < holders.offsets[q.expert + 1]; ++j) {
        const int h = topo.rank_of_slot(holders.slots[j]);
        const double w = link(h, q.dst_rank);
        const double pair = std::max(cost[h] + w, cost[q.dst_rank] + w);
        const double load = cost[h] + w;
        const bool better =
            best < 0 || pair < best_pair ||
            (pair == best_pair && (w < best_w || (w == best_w && load < best_load)));
        if (better) {
          best = h;
          best_pair = pair;
          best_w = w;
          best_load = load;
        }
      }
      if (best < 0)  // cannot happen: the old placement is validated, every expert has a holder
        throw InputError("internal: expert " + std::to_string(q.expert) + " has no holder");
      q.sender = best;
      q.weight = best_w;
      cost[best] += best_w;
      cost[q.dst_rank] += best_w;
    }
    return cost;
  }

  // 2b. Local improvement on the busiest rank (lowest id among ties).
  void improve(std::vector<Request>& reqs, std::vector<double>& cost) const {
    const int max_iters = 4 * static_cast<int>(reqs.size()) + 16;
    for (int it = 0; it < max_iters; ++it) {
      int m = 0;
      for (int r = 1; r < topo.ranks; ++r)
        if (cost[r] > cost[m]) m = r;
      const double M = cost[m];
      bool improved = false;
      for (std::size_t i = 0; i < reqs.size() && !improved; ++i) {
        Request& q = reqs[i];
        if (q.sender != m && q.dst_rank != m) continue;
        if (q.n_holders < 2) continue;
        for (int j = holders.offsets[q.expert]; j < holders.offsets[q.expert + 1]; ++j) {
          const int h = topo.rank_of_slot(holders.slots[j]);
          if (h == q.sender) continue;
          const double w = link(h, q.dst_rank);
          // Loads after moving the op from q.sender to h.
          const double new_old_sender = cost[q.sender] - q.weight;
          const double new_dst = cost[q.dst_rank] - q.weight + w;
          const double new_h = cost[h] + w;
          const double new_m = m == q.sender ? new_old_sender : new_dst;
          if (new_m >= M || new_h >= M || new_dst >= M) continue;
          cost[q.sender] = new_old_sender;
          cost[q.dst_rank] = new_dst;
          cost[h] = new_h;
          q.sender = h;
          q.weight = w;
          improved = true;
          break;
        }
      }
      if (!improved) break;
    }
  }

  // 3. Lower bound.
  double lower_bound(const std::vector<Request>& reqs, int experts) const {
    const int R = topo.ranks;
    std::vector<double> unavoidable(static_cast<std::size_t>(R), 0.0);
    double total_min = 0.0;
    for (const Request& q : reqs) {
      unavoidable[q.dst_rank] += q.min_w;
      total_min += q.min_w;
      if (q.n_holders == 1)
        unavoidable[topo.rank_of_slot(holders.slots[holders.offsets[q.expert]])] += q.min_w;
    }
    double lb = 2.0 * total_min / R;
    for (int r = 0; r < R; ++r) lb = std::max(lb, unavoidable[r]);
    // Per expert with several holders: sum the cheapest sends to its receivers.
    std::vector<double> send_need(static_cast<std::size_t>(experts), 0.0);
    for (const Request& q : reqs)
      if (q.n_holders > 1) send_need[q.expert] += q.min_w;
    for (int e = 0; e < experts; ++e) {
      if (send_need[e] <= 0.0) continue;
      double sum = send_need[e];
      const int n = holders.offsets[e + 1] - holders.offsets[e];
      for (int j = holders.offsets[e]; j < holders.offsets[e + 1]; ++j)
        sum += unavoidable[topo.rank_of_slot(holders.slots[j])];
      lb = std::max(lb, sum / n);
    }
    return lb;
  }

  // 2c. Where the heuristic misses the bound (3), the heuristic may be off or the bound weak:
  // settle it exactly when the search is small.
  // Updates the senders, plan.makespan and (when the search finished) plan.lower_bound.
  void settle(std::vector<Request>& reqs, LayerPlan& plan) const {
    const int R = topo.ranks;
    std::vector<int> flex;
    for (std::size_t i = 0; i < reqs.size(); ++i)
      if (reqs[i].n_holders > 1) flex.push_back(static_cast<int>(i));
    std::stable_sort(flex.begin(), flex.end(), [&](int a, int b) {
      if (reqs[a].min_w != reqs[b].min_w) return reqs[a].min_w > reqs[b].min_w;
      return reqs[a].n_holders < reqs[b].n_holders;
    });
    BranchAndBound bb(reqs, flex, holders, topo, weights, plan.makespan, kNodeCap);
    bb.cost.assign(static_cast<std::size_t>(R), 0.0);
    bb.pending.assign(static_cast<std::size_t>(R), 0.0);
    for (const Request& q : reqs) {
      if (q.n_holders > 1) {
        bb.pending[q.dst_rank] += q.min_w;
      } else {
        bb.cost[q.sender] += q.weight;
        bb.cost[q.dst_rank] += q.weight;
      }
    }
    double start = 0.0;
    for (int r = 0; r < R; ++r) start = std::max(start, bb.cost[r] + bb.pending[r]);
    bb.sender.assign(flex.size(), -1);
    bool finished = true;
    if (start < plan.makespan - 1e-9) finished = bb.search(0, start);
    if (!bb.best_sender.empty()) {
      // A strictly better assignment was found: adopt it (final only if the search finished,
      // but better either way).
      for (std::size_t i = 0; i < flex.size(); ++i) {
        Request& q = reqs[flex[i]];
        q.sender = bb.best_sender[i];
        q.weight = link(q.sender, q.dst_rank);
      }
      plan.makespan = bb.best;
    }
    // A finished search proves the incumbent optimal: the optimum is the tightest bound.
    if (finished) plan.lower_bound = plan.makespan;
  }

  // Ops: remote (by dst rank, dst slot: requests were generated in that order), then local.
  void emit(const std::vector<Request>& reqs, const std::vector<TransferOp>& local,
            LayerPlan& plan) const {
    plan.ops.reserve(reqs.size() + local.size());
    for (const Request& q : reqs) {
      const int src_slot = old_slot_on(q.expert, q.sender);
      plan.ops.push_back({q.expert, q.sender, src_slot, q.dst_rank, q.dst_slot});
    }
    plan.ops.insert(plan.ops.end(), local.begin(), local.end());
    plan.remote_ops = static_cast<std::int64_t>(reqs.size());
    plan.local_ops = static_cast<std::int64_t>(local.size());
  }
};

}  // namespace

LayerPlan make_layer_plan(std::span<const ExpertId> old_layer, std::span<const ExpertId> new_layer,
                          int layer_index, int experts, const Topology& topo,
                          const LinkWeights& weights) {
  check_weights(weights);
  Status s = validate_layer(old_layer, topo, experts, layer_index);
  if (!s.ok()) throw InputError("old placement: " + s.message());
  s = validate_layer(new_layer, topo, experts, layer_index);
  if (!s.ok()) throw InputError("new placement: " + s.message());

  const Holders holders = holders_of(old_layer, experts);
  const LayerPlanner planner{topo, weights, holders};
  LayerPlan plan;
  plan.layer = layer_index;
  std::vector<Request> reqs;
  std::vector<TransferOp> local;
  planner.diff(old_layer, new_layer, reqs, local);
  std::vector<double> cost = planner.greedy(reqs);
  planner.improve(reqs, cost);
  plan.makespan = 0.0;
  for (double c : cost) plan.makespan = std::max(plan.makespan, c);
  plan.lower_bound = planner.lower_bound(reqs, experts);
  if (plan.makespan > plan.lower_bound + 1e-9) planner.settle(reqs, plan);
  planner.emit(reqs, local, plan);
  return plan;
}

TransferPlan make_transfer_plan(const Placement& old_placement, const Placement& new_placement,
                                const Topology& topo, const LinkWeights& weights) {
  if (old_placement.layers() != new_placement.layers() ||
      old_placement.num_slots() != new_placement.num_slots() ||
      old_placement.experts() != new_placement.experts())
    throw InputError("current placement (" + std::to_string(old_placement.layers()) + " layers x " +
                     std::to_string(old_placement.num_slots()) + " slots, " +
                     std::to_string(old_placement.experts()) + " experts) and new placement (" +
                     std::to_string(new_placement.layers()) + " x " +
                     std::to_string(new_placement.num_slots()) + ", " +
                     std::to_string(new_placement.experts()) + ") differ in shape");
  if (old_placement.num_slots() != topo.num_slots())
    throw InputError("placements have " + std::to_string(old_placement.num_slots()) +
                     " slots per layer, the topology has " + std::to_string(topo.num_slots()));
  TransferPlan out;
  out.layers.reserve(static_cast<std::size_t>(old_placement.layers()));
  for (int l = 0; l < old_placement.layers(); ++l) {
    out.layers.push_back(make_layer_plan(old_placement.layer(l), new_placement.layer(l), l,
                                         old_placement.experts(), topo, weights));
    out.remote_ops += out.layers.back().remote_ops;
    out.local_ops += out.layers.back().local_ops;
  }
  return out;
}

std::vector<ExpertId> apply_layer_plan(std::span<const ExpertId> old_layer, const LayerPlan& plan,
                                       const Topology& topo) {
  if (static_cast<int>(old_layer.size()) != topo.num_slots())
    throw InputError("layer has " + std::to_string(old_layer.size()) + " slots, the topology has " +
                     std::to_string(topo.num_slots()));
  std::vector<ExpertId> out(old_layer.begin(), old_layer.end());
  const int S = topo.slots_per_rank;
  for (const TransferOp& op : plan.ops) {
    if (op.src_rank < 0 || op.src_rank >= topo.ranks || op.dst_rank < 0 ||
        op.dst_rank >= topo.ranks || op.src_slot < 0 || op.src_slot >= S || op.dst_slot < 0 ||
        op.dst_slot >= S)
      throw InputError("layer " + std::to_string(plan.layer) +
                       ": transfer op names a rank or slot outside the topology");
    // Every source is read from the old layer (staged), so the order of ops does not matter.
    out[static_cast<std::size_t>(op.dst_rank) * S + op.dst_slot] =
        old_layer[static_cast<std::size_t>(op.src_rank) * S + op.src_slot];
  }
  return out;
}

}  // namespace swiftbalancer
