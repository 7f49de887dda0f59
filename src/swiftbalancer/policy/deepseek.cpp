#include "swiftbalancer/policy/deepseek.h"

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

namespace swiftbalancer {
namespace {

// Indices of w sorted by weight, heaviest first; ties keep the lower index first.
std::vector<int> order_heaviest_first(std::span<const double> w) {
  std::vector<int> idx(w.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return w[a] > w[b]; });
  return idx;
}

// Packs n = packs * capacity items into `packs` packs of `capacity` items, heaviest first, each
// onto the lightest pack that has room (ties: lowest pack). When `label` is non-empty a pack
// never takes two items with one label; if the order leaves no such pack, the item goes to the
// lightest pack with room and a swap with another pack repairs the clash afterwards.
// Output: pack_of[i] and pos_in_pack[i] (the order in which the pack received its items).
void balanced_packing(std::span<const double> w, std::span<const int> label, int packs,
                      int capacity, std::vector<int>& pack_of, std::vector<int>& pos_in_pack) {
  const int n = static_cast<int>(w.size());
  pack_of.assign(n, -1);
  pos_in_pack.assign(n, -1);
  if (capacity == 1) {  // one item per pack: the reference keeps item i in pack i
    for (int i = 0; i < n; ++i) {
      pack_of[i] = i;
      pos_in_pack[i] = 0;
    }
    return;
  }
  std::vector<double> pack_w(packs, 0.0);
  std::vector<int> pack_n(packs, 0);
  // items_in[pack * capacity + k] = item at position k of pack.
  std::vector<int> items_in(static_cast<std::size_t>(packs) * capacity, -1);
  auto holds = [&](int pack, int lab) {
    for (int k = 0; k < pack_n[pack]; ++k)
      if (label[items_in[pack * capacity + k]] == lab) return true;
    return false;
  };
  std::vector<int> clashes;
  for (int item : order_heaviest_first(w)) {
    int best = -1, fallback = -1;
    for (int p = 0; p < packs; ++p) {
      if (pack_n[p] >= capacity) continue;
      if (fallback < 0 || pack_w[p] < pack_w[fallback]) fallback = p;
      if (!label.empty() && holds(p, label[item])) continue;
      if (best < 0 || pack_w[p] < pack_w[best]) best = p;
    }
    if (fallback < 0)  // cannot happen: n == packs * capacity leaves room for every item
      throw InputError("internal: packing ran out of slots");
    if (best < 0) {
      best = fallback;
      clashes.push_back(item);
    }
    pack_of[item] = best;
    pos_in_pack[item] = pack_n[best];
    items_in[best * capacity + pack_n[best]] = item;
    pack_w[best] += w[item];
    ++pack_n[best];
  }
  // Repair: swap each clashing item with the closest-weight item of another pack such that
  // neither pack then holds a label twice. Ties: lowest (pack, position).
  for (int item : clashes) {
    const int p = pack_of[item];
    int best_other = -1;
    double best_diff = 0.0;
    for (int q = 0; q < packs; ++q) {
      if (q == p || holds(q, label[item])) continue;
      for (int k = 0; k < pack_n[q]; ++k) {
        const int other = items_in[q * capacity + k];
        if (holds(p, label[other])) continue;
        const double diff = std::abs(w[other] - w[item]);
        if (best_other < 0 || diff < best_diff) {
          best_other = other;
          best_diff = diff;
        }
      }
    }
    if (best_other < 0)
      throw InputError(
          "cannot place the replicas without putting two copies of one expert on a "
          "rank; use more ranks or fewer slots per rank");
    const int q = pack_of[best_other];
    std::swap(items_in[p * capacity + pos_in_pack[item]],
              items_in[q * capacity + pos_in_pack[best_other]]);
    std::swap(pack_of[item], pack_of[best_other]);
    std::swap(pos_in_pack[item], pos_in_pack[best_other]);
  }
}

// Gives each of the num_phy - n extra slots to the expert with the highest load per replica
// (ties: lowest index), never beyond `cap` replicas. phy2log[i] = i for i < n; counts[e] >= 1.
void replicate(std::span<const double> w, int num_phy, int cap, std::vector<int>& phy2log,
               std::vector<int>& counts) {
  const int n = static_cast<int>(w.size());
  phy2log.resize(num_phy);
  std::iota(phy2log.begin(), phy2log.begin() + n, 0);
  counts.assign(n, 1);
  for (int i = n; i < num_phy; ++i) {
    int best = -1;
    double best_v = 0.0;
    for (int e = 0; e < n; ++e) {
      if (counts[e] >= cap) continue;
      const double v = w[e] / counts[e];
      if (best < 0 || v > best_v) {
        best = e;
        best_v = v;
      }
    }
    if (best < 0)  // cannot happen: callers check slots per rank <= experts, so n * cap >= num_phy
      throw InputError("internal: no expert can take another replica");
    phy2log[i] = best;
    ++counts[best];
  }
}

class DeepSeekPolicy final : public Policy {
 public:
  explicit DeepSeekPolicy(DeepSeekMode mode) : mode_(mode) {}

  std::string_view name() const override {
    switch (mode_) {
      case DeepSeekMode::kGlobal:
        return "deepseek-global";
      case DeepSeekMode::kHierarchical:
        return "deepseek-hierarchical";
      case DeepSeekMode::kAuto:
        break;
    }
    return "deepseek";
  }

  Placement rebalance(const PolicyInput& in) const override {
    throw_if_error(check_policy_input(in));
    const Topology& topo = in.topology;
    const int experts = in.load.experts();
    int groups = in.options.num_groups;
    bool hierarchical = false;
    switch (mode_) {
      case DeepSeekMode::kGlobal:
        break;
      case DeepSeekMode::kAuto:
        hierarchical = groups > 0 && groups % topo.nodes() == 0;
        break;
      case DeepSeekMode::kHierarchical:
        if (groups <= 0)
          throw InputError("deepseek-hierarchical needs the number of expert groups (--groups)");
        if (groups % topo.nodes() != 0)
          throw InputError("deepseek-hierarchical needs the groups (" + std::to_string(groups) +
                           ") to divide evenly over the nodes (" + std::to_string(topo.nodes()) +
                           ")");
        hierarchical = true;
        break;
    }
    const int nodes = hierarchical ? topo.nodes() : 1;
    if (!hierarchical) groups = 1;
    const int ranks_per_node = topo.ranks / nodes;
    const int experts_per_node = experts / nodes;
    if (topo.slots_per_rank > experts_per_node)
      throw InputError("slots per rank (" + std::to_string(topo.slots_per_rank) +
                       ") exceed the experts available to a " +
                       (hierarchical ? std::string("node (") : std::string("rank (")) +
                       std::to_string(experts_per_node) +
                       "): a rank would have to hold two replicas of one expert");

    Placement out(in.load.layers(), topo.num_slots(), experts);
    for (int l = 0; l < in.load.layers(); ++l)
      rebalance_layer(in.load.row(l), topo, groups, nodes, ranks_per_node, out.layer(l));
    return out;
  }

 private:
  static void rebalance_layer(std::span<const double> w, const Topology& topo, int groups,
                              int nodes, int ranks_per_node, std::span<ExpertId> out) {
    const int experts = static_cast<int>(w.size());
    const int group_size = experts / groups;
    const int groups_per_node = groups / nodes;
    const int experts_per_node = experts / nodes;
    const int slots_per_node = topo.num_slots() / nodes;

    // Step 1: groups onto nodes. mlog ("node-major logical") numbers experts node by node.
    std::vector<double> group_w(groups, 0.0);
    for (int e = 0; e < experts; ++e) group_w[e / group_size] += w[e];
    std::vector<int> group_node, group_pos;
    balanced_packing(group_w, {}, nodes, groups_per_node, group_node, group_pos);
    std::vector<int> mlog2log(experts);
    for (int e = 0; e < experts; ++e) {
      const int g = e / group_size;
      const int mlog =
          (group_node[g] * groups_per_node + group_pos[g]) * group_size + e % group_size;
      mlog2log[mlog] = e;
    }

    // Steps 2 and 3, per node: replicate within the node, then pack onto its ranks.
    std::vector<double> node_w(experts_per_node), phy_w(slots_per_node);
    std::vector<int> phy2mlog, counts, pack_of, pos;
    for (int node = 0; node < nodes; ++node) {
      const int* node_experts = mlog2log.data() + node * experts_per_node;
      for (int i = 0; i < experts_per_node; ++i) node_w[i] = w[node_experts[i]];
      replicate(node_w, slots_per_node, ranks_per_node, phy2mlog, counts);
      for (int i = 0; i < slots_per_node; ++i) phy_w[i] = node_w[phy2mlog[i]] / counts[phy2mlog[i]];
      balanced_packing(phy_w, phy2mlog, ranks_per_node, topo.slots_per_rank, pack_of, pos);
      for (int i = 0; i < slots_per_node; ++i) {
        const int p = node * slots_per_node + pack_of[i] * topo.slots_per_rank + pos[i];
        out[p] = node_experts[phy2mlog[i]];
      }
    }
  }

  DeepSeekMode mode_;
};

}  // namespace

std::unique_ptr<Policy> make_deepseek_policy(DeepSeekMode mode) {
  return std::make_unique<DeepSeekPolicy>(mode);
}

}  // namespace swiftbalancer
