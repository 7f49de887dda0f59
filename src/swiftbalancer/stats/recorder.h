// Recorder: per-rank token counts of this rank's own slots, [layers][slots_per_rank] int64.
//
// The hot path: record() is one add per slot, allocation-free, lock-free. A layer that runs more
// than once in a step (multi-token prediction, chunked prefill) simply accumulates.
//
// Thread-safety: not thread-safe; owned and used by the serving thread (the runtime snapshots it
// at step boundaries on that same thread).
#pragma once

#include <cassert>
#include <cstdint>
#include <span>
#include <vector>

namespace swiftbalancer {

class Recorder {
 public:
  Recorder() = default;
  Recorder(int layers, int slots_per_rank);  // throws InputError on non-positive sizes

  int layers() const { return layers_; }
  int local_slots() const { return slots_; }

  // counts.size() must be local_slots(); layer in [0, layers()). Checked only in debug builds (an
  // assert): this is the per-layer hot path.
  void record(int layer, std::span<const std::int64_t> counts) {
    assert(layer >= 0 && layer < layers_ && "record: layer out of range");
    assert(counts.size() == static_cast<std::size_t>(slots_) && "record: counts size != slots");
    std::int64_t* row = counts_.data() + static_cast<std::size_t>(layer) * slots_;
    for (int s = 0; s < slots_; ++s) row[s] += counts[static_cast<std::size_t>(s)];
  }
  void record(int layer, int slot, std::int64_t count) {
    counts_[static_cast<std::size_t>(layer) * slots_ + slot] += count;
  }
  // Same, with range checks (throws InputError). For callers outside the hot path.
  void record_checked(int layer, std::span<const std::int64_t> counts);

  std::span<const std::int64_t> layer(int l) const {
    return {counts_.data() + static_cast<std::size_t>(l) * slots_,
            static_cast<std::size_t>(slots_)};
  }
  // All counts, row-major [layers][slots]: what this rank contributes to the all-gather.
  std::span<const std::int64_t> all() const { return counts_; }

  void clear();
  void clear_layer(int l);

 private:
  int layers_ = 0;
  int slots_ = 0;
  std::vector<std::int64_t> counts_;
};

}  // namespace swiftbalancer
