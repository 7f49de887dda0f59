// Topology: how physical expert slots are laid out over ranks and nodes. A plain value type.
//
// Physical slot id p = rank * slots_per_rank + slot; rank r lives on node r / ranks_per_node.
#pragma once

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {

struct Topology {
  int ranks = 0;
  int slots_per_rank = 0;
  int ranks_per_node = 0;  // 0 means "all ranks on one node"

  // Throws InputError naming the problem: non-positive sizes, sizes over core/limits.h (ranks,
  // slots per rank, and their product computed in 64 bits), ranks not divisible by
  // ranks_per_node. ranks_per_node <= 0 becomes `ranks`. A Topology from make() (or one that
  // validate() accepts) has num_slots() <= limits::kMaxSlots, so the int below never overflows.
  static Topology make(int ranks, int slots_per_rank, int ranks_per_node = 0);

  // Checks the sizes (as make() does), that the slots can hold `num_experts` logical experts, and
  // that no rank has more slots than there are experts (it would need two replicas of one expert).
  Status validate(int num_experts) const;

  int num_slots() const { return ranks * slots_per_rank; }  // global (local: slots_per_rank)
  int nodes() const { return ranks / ranks_per_node; }
  int rank_of_slot(int p) const { return p / slots_per_rank; }
  int node_of_rank(int r) const { return r / ranks_per_node; }
  int slot_id(int rank, int local_slot) const { return rank * slots_per_rank + local_slot; }

  bool operator==(const Topology&) const = default;
};

}  // namespace swiftbalancer
