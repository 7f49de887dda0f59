#include "swiftbalancer/stats/window.h"

#include <algorithm>
#include <string>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {

void fold_slot_counts_into(std::span<const std::int64_t> gathered, const Placement& placement,
                           const Topology& topo, LoadMatrix& out) {
  const int L = placement.layers(), S = topo.slots_per_rank, P = topo.num_slots();
  if (placement.num_slots() != P)
    throw InputError("fold: placement has " + std::to_string(placement.num_slots()) +
                     " slots, the topology " + std::to_string(P));
  if (gathered.size() != static_cast<std::size_t>(L) * P)
    throw InputError("fold: " + std::to_string(gathered.size()) + " counts, expected " +
                     std::to_string(static_cast<std::size_t>(L) * P));
  if (out.layers() != L || out.experts() != placement.experts())
    throw InputError("fold: output shape does not match the placement");
  for (int r = 0; r < topo.ranks; ++r) {
    const std::int64_t* block = gathered.data() + static_cast<std::size_t>(r) * L * S;
    for (int l = 0; l < L; ++l) {
      const auto phy = placement.layer(l);
      auto row = out.row(l);
      for (int s = 0; s < S; ++s) {
        const ExpertId e = phy[static_cast<std::size_t>(topo.slot_id(r, s))];
        if (e < 0 || e >= placement.experts())
          throw InputError("fold: slot holds invalid expert " + std::to_string(e));
        row[static_cast<std::size_t>(e)] += static_cast<double>(block[l * S + s]);
      }
    }
  }
}

LoadMatrix fold_slot_counts(std::span<const std::int64_t> gathered, const Placement& placement,
                            const Topology& topo) {
  LoadMatrix out(placement.layers(), placement.experts());
  fold_slot_counts_into(gathered, placement, topo, out);
  return out;
}

LoadWindow::LoadWindow(int layers, int experts, int size, double decay)
    : size_(size), decay_(decay), sum_(layers, experts) {
  if (size < 1) throw InputError("window size must be at least 1 interval");
  if (decay < 0.0 || decay >= 1.0) throw InputError("window decay must be in [0, 1)");
  if (decay_ == 0.0) ring_.assign(static_cast<std::size_t>(size), LoadMatrix(layers, experts));
}

void LoadWindow::push(const LoadMatrix& load) {
  if (load.layers() != sum_.layers() || load.experts() != sum_.experts())
    throw InputError("window: load shape does not match");
  if (decay_ == 0.0) {
    ring_[static_cast<std::size_t>(next_)] = load;
    next_ = (next_ + 1) % size_;
  }
  for (int l = 0; l < sum_.layers(); ++l) {
    auto sum = sum_.row(l);
    if (decay_ > 0.0) {
      const auto in = load.row(l);
      for (std::size_t e = 0; e < sum.size(); ++e) sum[e] = sum[e] * decay_ + in[e];
    } else {
      // Recomputed from the ring (oldest first) so that no rounding drift accumulates.
      std::fill(sum.begin(), sum.end(), 0.0);
      for (int k = 0; k < size_; ++k) {
        const auto in = ring_[static_cast<std::size_t>((next_ + k) % size_)].row(l);
        for (std::size_t e = 0; e < sum.size(); ++e) sum[e] += in[e];
      }
    }
  }
  if (filled_ < size_) ++filled_;
}

}  // namespace swiftbalancer
