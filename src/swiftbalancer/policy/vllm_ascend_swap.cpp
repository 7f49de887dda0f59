// vllm-ascend's swap-based dynamic EPLB policy, its "policy 2" (the factory maps 2 to the
// class in vllm_ascend/eplb/core/policy/policy_swift_balancer.py), rendered from its algorithm.
// Owner: policy component. Stateless; rebalance() is const and thread-safe.
//
// Per layer (a layer with imbalance < 1.01 is kept as it is):
//   1. Scanning slot by slot, and within a slot rank by rank, the first slot holding an expert
//      is its home; every later slot holding it is a redundant position.
//   2. Replica counts: each redundant position goes to the expert with the highest per-replica
//      weight (ties: higher expert id, as numpy's reversed stable argsort picks) that has
//      fewer than `ranks` replicas. The reference's weight update after a new replica is
//      weight * (c + 1) / (c + 2) with c the replicas before it (so 2w/3 after the first, not
//      w/2); kept as is, since these weights drive everything below.
//   3. Non-redundant slots stay. The new replicas, heaviest weight first (ties: lower expert),
//      go to the lightest rank (ties: lowest) that has a redundant position left, lacks the
//      expert and has not yet received anything from the expert's home rank (at most one
//      transfer per pair of ranks), into its last free redundant position. Positions left
//      over are refilled rank by rank with the heaviest expert (true per-replica load) that
//      the rank lacks.
//   4. Up to 100 rounds: the heaviest rank (by these weights) tries the other ranks lightest
//      first, skipping any it has already exchanged with in either direction; with the first
//      one that offers a swap lowering the pair's larger load by at least 1% of the mean rank
//      load (experts not on the other rank and not received in this rebalance), it swaps the
//      best such pair. Stops when the heaviest rank finds no partner.
//   5. The layer is taken only if its final heaviest weight over the mean is below the
//      layer's old imbalance. Experts that stay on a rank keep their slots.
// Differences from the reference: the reference takes the mean rank load from layer 0 (zero
// in DeepSeek dumps, where it then divides by zero); this uses the first layer with load.
// Python set iteration order (ties between equal swaps, slot order of arrivals) is replaced
// by ascending expert id.
#include "swiftbalancer/policy/vllm_ascend_swap.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "swiftbalancer/core/metrics.h"

namespace swiftbalancer {
namespace {

constexpr double kSkipBelow = 1.01;  // layers already this balanced are not touched
constexpr double kIncrement = 0.01;  // a swap must gain this fraction of the mean rank load
constexpr int kMaxSwaps = 100;

// Indices ordered by value descending as numpy's argsort(kind="stable")[::-1] does: equal
// values come out highest index first.
std::vector<int> numpy_desc_order(const std::vector<double>& v) {
  std::vector<int> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return v[a] < v[b]; });
  std::reverse(idx.begin(), idx.end());
  return idx;
}

// One layer's working state, shared by the steps below.
struct SwapLayer {
  std::span<const ExpertId> cur;  // the placement in service
  std::span<const double> w;      // the layer's expert loads
  int R, S, E;
  std::vector<int> home;                   // [expert] first rank holding it (slot-major scan)
  std::vector<std::vector<int>> free_pos;  // [rank] redundant positions (local slots)
  int n_red = 0;
  std::vector<int> extra;                       // [expert] replicas beyond the first
  std::vector<double> weight;                   // [expert] the reference's per-replica weight
  std::vector<ExpertId> assign;                 // [rank * S + slot] the new layer, -1 while free
  std::vector<double> load;                     // [rank] by `weight`
  std::vector<int> com;                         // [src * R + dst] transfers between a pair of ranks
  std::vector<std::vector<ExpertId>> received;  // [rank] experts it receives

  SwapLayer(std::span<const ExpertId> c, std::span<const double> loads, const Topology& topo)
      : cur(c),
        w(loads),
        R(topo.ranks),
        S(topo.slots_per_rank),
        E(static_cast<int>(loads.size())),
        home(E, -1),
        free_pos(R),
        extra(E, 0),
        weight(loads.begin(), loads.end()),
        assign(static_cast<std::size_t>(R) * S, -1),
        load(R, 0.0),
        com(static_cast<std::size_t>(R) * R, 0),
        received(R) {}

  bool holds(int r, ExpertId e) const {
    return std::find(assign.begin() + r * S, assign.begin() + (r + 1) * S, e) !=
           assign.begin() + (r + 1) * S;
  }
  bool got(int r, ExpertId e) const {
    return std::find(received[r].begin(), received[r].end(), e) != received[r].end();
  }

  // 1. Homes and redundant positions (slot-major scan).
  void find_redundant() {
    for (int k = 0; k < S; ++k)
      for (int r = 0; r < R; ++r) {
        const ExpertId e = cur[r * S + k];
        if (home[e] < 0) {
          home[e] = r;
        } else {
          free_pos[r].push_back(k);
          ++n_red;
        }
      }
  }

  // 2. Replica counts and the reference's per-replica weights.
  void count_replicas() {
    for (int i = 0; i < n_red; ++i) {
      for (int e : numpy_desc_order(weight)) {
        const int c = extra[e] + 1;
        if (c >= R) continue;
        weight[e] = weight[e] * (c + 1) / (c + 2);
        ++extra[e];
        break;
      }
    }
  }

  // 3a. Keep non-redundant slots; place the replicas.
  void place_replicas() {
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < S; ++k) {
        if (std::find(free_pos[r].begin(), free_pos[r].end(), k) != free_pos[r].end()) continue;
        const ExpertId e = cur[r * S + k];
        assign[r * S + k] = e;
        load[r] += weight[e];
      }
    std::vector<ExpertId> list;
    for (int e = 0; e < E; ++e)
      for (int j = 0; j < extra[e]; ++j) list.push_back(e);
    std::stable_sort(list.begin(), list.end(),
                     [&](ExpertId a, ExpertId b) { return weight[a] > weight[b]; });
    for (ExpertId e : list) {
      const int src = home[e];
      int cand = -1;
      for (int r = 0; r < R; ++r) {
        if (free_pos[r].empty() || holds(r, e) || com[src * R + r] >= 1) continue;
        if (cand < 0 || load[r] < load[cand]) cand = r;
      }
      if (cand < 0) continue;
      const int k = free_pos[cand].back();
      free_pos[cand].pop_back();
      assign[cand * S + k] = e;
      load[cand] += weight[e];
      ++com[src * R + cand];
      received[cand].push_back(e);
    }
  }

  // 3b. Positions left over: refilled rank by rank with the heaviest expert the rank lacks.
  void refill_leftovers() {
    bool leftover = false;
    for (const auto& f : free_pos) leftover |= !f.empty();
    if (!leftover) return;
    std::vector<int> count(E, 0);
    for (ExpertId e : assign)
      if (e >= 0) ++count[e];
    for (int e = 0; e < E; ++e) weight[e] = w[e] / count[e];
    for (int r = 0; r < R; ++r) {
      for (int k : free_pos[r]) {
        for (int e : numpy_desc_order(weight)) {
          if (holds(r, e)) continue;
          assign[r * S + k] = e;
          ++com[home[e] * R + r];
          received[r].push_back(e);
          weight[e] *= static_cast<double>(count[e]) / (count[e] + 1);
          ++count[e];
          break;
        }
      }
      free_pos[r].clear();
    }
    for (int r = 0; r < R; ++r) {
      load[r] = 0.0;
      for (int k = 0; k < S; ++k) load[r] += weight[assign[r * S + k]];
    }
  }

  // 4. Swaps from the heaviest rank; returns its final load.
  double swap_rounds(double ave) {
    std::vector<int> order(R);
    std::vector<ExpertId> mine(S), theirs(S);
    double max_load = 0.0;
    bool exchanged = true;
    for (int round = 0; round < kMaxSwaps; ++round) {
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return load[a] < load[b]; });
      const int hi = order.back();
      max_load = load[hi];
      if (!exchanged) break;
      exchanged = false;
      for (int idx = 0; idx + 1 < R && !exchanged; ++idx) {
        const int lo = order[idx];
        if (com[lo * R + hi] >= 1 || com[hi * R + lo] >= 1) continue;
        std::copy(assign.begin() + hi * S, assign.begin() + (hi + 1) * S, mine.begin());
        std::copy(assign.begin() + lo * S, assign.begin() + (lo + 1) * S, theirs.begin());
        std::sort(mine.begin(), mine.end());
        std::sort(theirs.begin(), theirs.end());
        double best = max_load;
        ExpertId ba = -1, bb = -1;
        for (ExpertId a : mine) {
          if (holds(lo, a) || got(hi, a)) continue;
          for (ExpertId b : theirs) {
            if (holds(hi, b) || got(lo, b)) continue;
            const double m =
                std::max(max_load - weight[a] + weight[b], load[lo] - weight[b] + weight[a]);
            if (m < best) {
              best = m;
              ba = a;
              bb = b;
            }
          }
        }
        if (ba < 0 || max_load - best < ave * kIncrement) continue;
        *std::find(assign.begin() + hi * S, assign.begin() + (hi + 1) * S, ba) = bb;
        *std::find(assign.begin() + lo * S, assign.begin() + (lo + 1) * S, bb) = ba;
        load[hi] += weight[bb] - weight[ba];
        load[lo] += weight[ba] - weight[bb];
        received[hi].push_back(bb);
        received[lo].push_back(ba);
        ++com[lo * R + hi];
        ++com[hi * R + lo];
        exchanged = true;
      }
    }
    return max_load;
  }

  // 5. Experts that stay keep their slots; arrivals fill the rest in ascending id.
  void write_out(std::span<ExpertId> out) const {
    for (int r = 0; r < R; ++r) {
      const ExpertId* old = cur.data() + r * S;
      std::vector<ExpertId> now(assign.begin() + r * S, assign.begin() + (r + 1) * S), arrivals;
      std::sort(now.begin(), now.end());
      for (ExpertId e : now)
        if (std::find(old, old + S, e) == old + S) arrivals.push_back(e);
      std::size_t next = 0;
      for (int k = 0; k < S; ++k)
        out[r * S + k] =
            std::binary_search(now.begin(), now.end(), old[k]) ? old[k] : arrivals[next++];
    }
  }
};

// Returns false when the reference would keep the layer as it was.
bool rebalance_layer(std::span<const ExpertId> cur, std::span<const double> w, const Topology& topo,
                     double ave, double old_imbalance, std::span<ExpertId> out) {
  SwapLayer layer(cur, w, topo);
  layer.find_redundant();
  layer.count_replicas();
  layer.place_replicas();
  layer.refill_leftovers();
  const double max_load = layer.swap_rounds(ave);
  if (!(ave > 0.0) || !(max_load / ave < old_imbalance)) return false;
  layer.write_out(out);
  return true;
}

class VllmAscendSwapPolicy final : public Policy {
 public:
  std::string_view name() const override { return "vllm-ascend-swap"; }

  Placement rebalance(const PolicyInput& in) const override {
    throw_if_error(check_policy_input(in));
    const Topology& topo = in.topology;
    if (topo.slots_per_rank > in.load.experts())
      throw InputError("slots per rank (" + std::to_string(topo.slots_per_rank) + ") exceed the " +
                       std::to_string(in.load.experts()) +
                       " experts: a rank would have to hold two replicas of one expert");
    // Without a placement in service it starts from the contiguous one, as a fresh
    // vllm-ascend deployment does.
    Placement out = in.current != nullptr
                        ? *in.current
                        : contiguous_placement(topo, in.load.layers(), in.load.experts());
    const Placement start = out;
    // The reference's mean rank load: total of its first layer / ranks (see the header).
    double ave = 0.0;
    for (int l = 0; l < in.load.layers() && ave <= 0.0; ++l)
      ave = in.load.layer_total(l) / topo.ranks;
    for (int l = 0; l < in.load.layers(); ++l) {
      const LayerBalance b = layer_balance(start.layer(l), in.load.row(l), topo);
      if (!b.has_load || b.imbalance < kSkipBelow || b.imbalance <= in.options.threshold) continue;
      rebalance_layer(start.layer(l), in.load.row(l), topo, ave, b.imbalance, out.layer(l));
    }
    throw_if_error(validate_placement(out, topo));
    return out;
  }
};

}  // namespace

std::unique_ptr<Policy> make_vllm_ascend_swap_policy() {
  return std::make_unique<VllmAscendSwapPolicy>();
}

}  // namespace swiftbalancer
