// Aggregation of recorded counts into logical expert load.
//
// fold_slot_counts: gathered per-slot counts of every rank ([layers][ranks * slots_per_rank],
// rank-major as an all-gather of Recorder::all() from every rank produces it) folded onto the
// logical experts of the placement in service: load[l][phy2log[l][p]] += counts[l][p].
//
// LoadWindow: the sum of the last `size` interval loads (a sliding window), or, when a decay
// factor in (0, 1) is given, an exponentially decayed sum (old * decay + new). Deterministic.
// Not thread-safe; the runtime's serving thread owns it and hands copies to the worker.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer {

// gathered: for each rank r, its [layers][slots_per_rank] block, concatenated over ranks (the
// layout of Transport::all_gather). Throws InputError on a size mismatch.
LoadMatrix fold_slot_counts(std::span<const std::int64_t> gathered, const Placement& placement,
                            const Topology& topo);
// Same into an existing matrix (added, not overwritten); allocation-free.
void fold_slot_counts_into(std::span<const std::int64_t> gathered, const Placement& placement,
                           const Topology& topo, LoadMatrix& out);

class LoadWindow {
 public:
  LoadWindow() = default;
  // size >= 1 intervals; decay 0 means a sliding window, else 0 < decay < 1 (throws InputError).
  LoadWindow(int layers, int experts, int size, double decay = 0.0);

  void push(const LoadMatrix& interval_load);  // shapes must match (throws InputError)
  const LoadMatrix& sum() const { return sum_; }
  int filled() const { return filled_; }
  int size() const { return size_; }

 private:
  int size_ = 1;
  double decay_ = 0.0;
  int filled_ = 0;
  int next_ = 0;
  std::vector<LoadMatrix> ring_;
  LoadMatrix sum_;
};

}  // namespace swiftbalancer
