#include "swiftbalancer/stats/recorder.h"

#include <algorithm>
#include <string>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {

Recorder::Recorder(int layers, int slots_per_rank) : layers_(layers), slots_(slots_per_rank) {
  if (layers <= 0 || slots_per_rank <= 0)
    throw InputError("recorder needs positive layers and slots (got " + std::to_string(layers) +
                     " x " + std::to_string(slots_per_rank) + ")");
  counts_.assign(static_cast<std::size_t>(layers) * slots_per_rank, 0);
}

void Recorder::record_checked(int layer, std::span<const std::int64_t> counts) {
  if (layer < 0 || layer >= layers_)
    throw InputError("record: layer " + std::to_string(layer) + " out of range [0, " +
                     std::to_string(layers_) + ")");
  if (counts.size() != static_cast<std::size_t>(slots_))
    throw InputError("record: " + std::to_string(counts.size()) + " counts for " +
                     std::to_string(slots_) + " slots");
  record(layer, counts);
}

void Recorder::clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
}

void Recorder::clear_layer(int l) {
  auto* row = counts_.data() + static_cast<std::size_t>(l) * slots_;
  std::fill(row, row + slots_, 0);
}

}  // namespace swiftbalancer
