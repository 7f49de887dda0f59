#include "swiftbalancer/replay/cost_model.h"

#include <algorithm>
#include <string>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer::replay {

void CostModel::validate() const {
  if (!(token_us >= 0) || !(layer_us >= 0) || !(expert_mb >= 0))
    throw InputError("cost model: token-us, layer-us and expert-mb must be non-negative");
  if (!(intra_gbps > 0) || !(inter_gbps > 0))
    throw InputError("cost model: intra-gbps and inter-gbps must be positive");
}

std::vector<Move> layer_moves(std::span<const ExpertId> old_layer,
                              std::span<const ExpertId> new_layer, const Topology& topo,
                              int experts) {
  const int S = topo.slots_per_rank;
  // Old holders of each expert, in increasing rank order.
  std::vector<std::vector<std::int32_t>> holders(static_cast<std::size_t>(experts));
  for (int p = 0; p < static_cast<int>(old_layer.size()); ++p) {
    const ExpertId e = old_layer[p];
    if (e < 0 || e >= experts) continue;
    const int r = p / S;
    if (holders[e].empty() || holders[e].back() != r) holders[e].push_back(r);
  }
  std::vector<int> sent(static_cast<std::size_t>(topo.ranks), 0);
  std::vector<Move> out;
  std::vector<char> had(static_cast<std::size_t>(experts), 0);
  for (int r = 0; r < topo.ranks; ++r) {
    std::fill(had.begin(), had.end(), 0);
    for (int s = 0; s < S; ++s) {
      const ExpertId e = old_layer[r * S + s];
      if (e >= 0 && e < experts) had[e] = 1;
    }
    std::vector<ExpertId> need;
    for (int s = 0; s < S; ++s) {
      const ExpertId e = new_layer[r * S + s];
      if (e < 0 || e >= experts || had[e]) continue;
      had[e] = 1;  // a second slot of the same expert on r is a local copy
      need.push_back(e);
    }
    std::sort(need.begin(), need.end());
    for (ExpertId e : need) {
      int best = -1;
      for (int h : holders[e]) {
        if (best < 0) {
          best = h;
          continue;
        }
        const bool h_local = topo.node_of_rank(h) == topo.node_of_rank(r);
        const bool b_local = topo.node_of_rank(best) == topo.node_of_rank(r);
        if (h_local != b_local) {
          if (h_local) best = h;
        } else if (sent[h] < sent[best]) {
          best = h;
        }
      }
      if (best < 0) continue;  // expert absent from the old layer: invalid input, nothing to copy
      ++sent[best];
      out.push_back(Move{e, best, r});
    }
  }
  return out;
}

TransferTimer::TransferTimer(const Topology& topo, const CostModel& cost)
    : topo_(topo), cost_(cost) {
  clear();
}

void TransferTimer::clear() {
  const std::size_t R = static_cast<std::size_t>(topo_.ranks);
  send_intra_.assign(R, 0.0);
  send_inter_.assign(R, 0.0);
  recv_intra_.assign(R, 0.0);
  recv_inter_.assign(R, 0.0);
  moves_ = 0;
}

void TransferTimer::add(std::span<const Move> moves) {
  for (const Move& m : moves) {
    if (topo_.node_of_rank(m.src_rank) == topo_.node_of_rank(m.dst_rank)) {
      send_intra_[m.src_rank] += 1.0;
      recv_intra_[m.dst_rank] += 1.0;
    } else {
      send_inter_[m.src_rank] += 1.0;
      recv_inter_[m.dst_rank] += 1.0;
    }
  }
  moves_ += static_cast<std::int64_t>(moves.size());
}

double TransferTimer::time_ms() const {
  // expert units -> ms: bytes / (GB/s * 1e9) * 1e3
  const double per_intra = cost_.expert_bytes() / (cost_.intra_gbps * 1e9) * 1e3;
  const double per_inter = cost_.expert_bytes() / (cost_.inter_gbps * 1e9) * 1e3;
  double worst = 0.0;
  for (int r = 0; r < topo_.ranks; ++r) {
    const double send = send_intra_[r] * per_intra + send_inter_[r] * per_inter;
    const double recv = recv_intra_[r] * per_intra + recv_inter_[r] * per_inter;
    worst = std::max(worst, std::max(send, recv));
  }
  return worst;
}

}  // namespace swiftbalancer::replay
