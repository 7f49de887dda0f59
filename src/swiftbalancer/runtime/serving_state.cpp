#include "swiftbalancer/runtime/serving_state.h"

#include <algorithm>
#include <utility>

namespace swiftbalancer {

ServingState::ServingState(Placement initial)
    : placement_(std::move(initial)),
      live_(static_cast<std::size_t>(placement_.layers())),
      retired_(static_cast<std::size_t>(placement_.layers())),
      tables_(static_cast<std::size_t>(placement_.layers())) {
  for (int l = 0; l < placement_.layers(); ++l) {
    const auto i = static_cast<std::size_t>(l);
    live_[i] = std::make_unique<RoutingTable>(placement_.layer(l), placement_.experts());
    tables_[i].store(live_[i].get(), std::memory_order_release);
  }
}

void ServingState::commit(int layer, std::span<const ExpertId> new_row,
                          std::unique_ptr<RoutingTable> table) {
  auto row = placement_.layer(layer);
  std::copy(new_row.begin(), new_row.end(), row.begin());
  const auto l = static_cast<std::size_t>(layer);
  retired_[l] = std::move(live_[l]);
  live_[l] = std::move(table);
  tables_[l].store(live_[l].get(), std::memory_order_release);
}

}  // namespace swiftbalancer
