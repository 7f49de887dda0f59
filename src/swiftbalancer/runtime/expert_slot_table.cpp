#include "swiftbalancer/runtime/expert_slot_table.h"

#include <string>
#include <utility>

namespace swiftbalancer {
namespace {

std::string where(int layer, int slot) {
  return "layer " + std::to_string(layer) + " slot " + std::to_string(slot);
}

}  // namespace

ExpertSlotTable::ExpertSlotTable(int layers, int slots) : layers_(layers), slots_(slots) {
  if (layers < 1 || slots < 1) throw InputError("expert store needs at least one layer and slot");
  slots_of_.resize(static_cast<std::size_t>(layers) * static_cast<std::size_t>(slots));
}

void ExpertSlotTable::check(int layer, int slot,
                            std::span<const std::span<std::byte>> tensors) const {
  if (frozen_) throw InputError("register_expert after the first step");
  if (layer < 0 || layer >= layers_ || slot < 0 || slot >= slots_)
    throw InputError("register_expert: (layer " + std::to_string(layer) + ", slot " +
                     std::to_string(slot) + ") out of range");
  if (tensors.empty()) throw InputError("register_expert: an expert needs at least one tensor");
}

void ExpertSlotTable::set(int layer, int slot, std::vector<std::span<std::byte>> tensors) {
  check(layer, slot, tensors);
  slots_of_[static_cast<std::size_t>(layer) * static_cast<std::size_t>(slots_) +
            static_cast<std::size_t>(slot)] = std::move(tensors);
}

Status ExpertSlotTable::freeze() {
  if (frozen_) return Status::Ok();
  std::vector<std::vector<std::size_t>> sizes(static_cast<std::size_t>(layers_));
  for (int l = 0; l < layers_; ++l) {
    for (int s = 0; s < slots_; ++s) {
      const auto& t = at(l, s);
      if (t.empty())
        return Status::InvalidInput("expert buffers of " + where(l, s) + " were not registered");
      std::vector<std::size_t> sz;
      for (const auto& b : t) sz.push_back(b.size());
      if (s == 0) {
        sizes[static_cast<std::size_t>(l)] = std::move(sz);
      } else if (sz != sizes[static_cast<std::size_t>(l)]) {
        return Status::InvalidInput(where(l, s) + ": tensor count or sizes differ from slot 0");
      }
    }
  }
  sizes_ = std::move(sizes);
  frozen_ = true;
  return Status::Ok();
}

}  // namespace swiftbalancer
