// ExpertSlotTable: the tensors an engine registered for every (layer, local slot), as byte spans
// the engine owns, and their layout once frozen. What every store that keeps the engine's spans
// shares (HostExpertStore, and the device store over device pointers).
//
// Thread-safety: as the store that owns it (registration before the first step, then reads).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {

class ExpertSlotTable {
 public:
  ExpertSlotTable(int layers, int slots);  // throws InputError on non-positive sizes

  int layers() const { return layers_; }
  int local_slots() const { return slots_; }

  // Throws InputError when frozen, (layer, slot) out of range, or no tensor is given.
  void check(int layer, int slot, std::span<const std::span<std::byte>> tensors) const;
  // check(), then keeps the tensors of (layer, slot).
  void set(int layer, int slot, std::vector<std::span<std::byte>> tensors);

  // Ok when every slot holds an expert and all slots of a layer agree on the tensor sizes (the
  // error names the first slot that does not); the layout is frozen from then on. Idempotent.
  Status freeze();
  std::span<const std::size_t> tensor_sizes(int layer) const {
    return sizes_.at(static_cast<std::size_t>(layer));
  }
  const std::vector<std::span<std::byte>>& at(int layer, int slot) const {
    return slots_of_[static_cast<std::size_t>(layer) * static_cast<std::size_t>(slots_) +
                     static_cast<std::size_t>(slot)];
  }

 private:
  int layers_, slots_;
  std::vector<std::vector<std::span<std::byte>>> slots_of_;  // [layer * slots + slot][tensor]
  std::vector<std::vector<std::size_t>> sizes_;              // [layer][tensor], set by freeze()
  bool frozen_ = false;
};

}  // namespace swiftbalancer
