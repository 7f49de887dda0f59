// ServingState: the placement in service and its routing tables, the one place they live.
//
// commit() installs a layer's new row and publishes its new table (after the mover has installed
// the weights: weights first, then the table). Tables are immutable; the one replaced is retired
// and freed at the layer's next commit, so a reference from routing() stays valid until the
// second commit of that layer after it was obtained.
//
// Thread-safety: routing() from any thread (lock-free, acquire); everything else from the
// serving thread.
#pragma once

#include <atomic>
#include <memory>
#include <span>
#include <vector>

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/plan/routing_table.h"

namespace swiftbalancer {

class ServingState {
 public:
  explicit ServingState(Placement initial);

  const RoutingTable& routing(int layer) const {
    return *tables_[static_cast<std::size_t>(layer)].load(std::memory_order_acquire);
  }
  const Placement& placement() const { return placement_; }
  int layers() const { return placement_.layers(); }
  int experts() const { return placement_.experts(); }

  // new_row.size() == num_slots; `table` built from new_row.
  void commit(int layer, std::span<const ExpertId> new_row, std::unique_ptr<RoutingTable> table);

 private:
  Placement placement_;
  std::vector<std::unique_ptr<RoutingTable>> live_, retired_;
  std::vector<std::atomic<const RoutingTable*>> tables_;
};

}  // namespace swiftbalancer
