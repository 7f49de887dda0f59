#include "swiftbalancer/core/topology.h"

#include <string>

#include "swiftbalancer/core/limits.h"

namespace swiftbalancer {

Topology Topology::make(int ranks, int slots_per_rank, int ranks_per_node) {
  Topology t{ranks, slots_per_rank, ranks_per_node <= 0 ? ranks : ranks_per_node};
  if (ranks <= 0) throw InputError("ranks must be positive, got " + std::to_string(ranks));
  if (slots_per_rank <= 0)
    throw InputError("slots per rank must be positive, got " + std::to_string(slots_per_rank));
  if (ranks > limits::kMaxRanks)
    throw InputError("ranks (" + std::to_string(ranks) + ") exceed the limit of " +
                     std::to_string(limits::kMaxRanks));
  if (slots_per_rank > limits::kMaxSlotsPerRank)
    throw InputError("slots per rank (" + std::to_string(slots_per_rank) +
                     ") exceed the limit of " + std::to_string(limits::kMaxSlotsPerRank));
  // 64-bit: the product of two in-range ints may not fit an int.
  const std::int64_t slots = std::int64_t{ranks} * slots_per_rank;
  if (slots > limits::kMaxSlots)
    throw InputError("ranks x slots per rank (" + std::to_string(ranks) + " x " +
                     std::to_string(slots_per_rank) + " = " + std::to_string(slots) +
                     " slots) exceed the limit of " + std::to_string(limits::kMaxSlots) +
                     " slots per layer");
  if (t.ranks % t.ranks_per_node != 0)
    throw InputError("ranks (" + std::to_string(ranks) + ") must be divisible by ranks per node (" +
                     std::to_string(t.ranks_per_node) + ")");
  return t;
}

Status Topology::validate(int num_experts) const {
  if (ranks <= 0 || slots_per_rank <= 0 || ranks_per_node <= 0)
    return Status::InvalidInput("topology sizes must be positive (ranks " + std::to_string(ranks) +
                                ", slots per rank " + std::to_string(slots_per_rank) +
                                ", ranks per node " + std::to_string(ranks_per_node) + ")");
  if (std::int64_t{ranks} * slots_per_rank > limits::kMaxSlots)
    return Status::InvalidInput("ranks x slots per rank (" + std::to_string(ranks) + " x " +
                                std::to_string(slots_per_rank) + ") exceed the limit of " +
                                std::to_string(limits::kMaxSlots) + " slots per layer");
  if (ranks % ranks_per_node != 0)
    return Status::InvalidInput("ranks (" + std::to_string(ranks) +
                                ") must be divisible by ranks per node (" +
                                std::to_string(ranks_per_node) + ")");
  if (num_experts <= 0)
    return Status::InvalidInput("number of experts must be positive, got " +
                                std::to_string(num_experts));
  if (num_slots() < num_experts)
    return Status::InvalidInput("ranks x slots per rank (" + std::to_string(ranks) + " x " +
                                std::to_string(slots_per_rank) + " = " +
                                std::to_string(num_slots()) + ") is smaller than the " +
                                std::to_string(num_experts) + " experts");
  if (slots_per_rank > num_experts)
    return Status::InvalidInput("slots per rank (" + std::to_string(slots_per_rank) +
                                ") exceed the " + std::to_string(num_experts) +
                                " experts: a rank would have to hold two replicas of one expert");
  return Status::Ok();
}

}  // namespace swiftbalancer
