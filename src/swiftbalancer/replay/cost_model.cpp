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
  if (!(check_us >= 0)) throw InputError("cost model: check-us must be non-negative");
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
