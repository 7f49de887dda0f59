// RoutingTable: for one layer, where the tokens of each logical expert go. Immutable once built,
// so readers on any thread need no lock; the runtime publishes a new table by swapping a pointer.
//
// Replica selection spreads one rank's tokens over all replicas of an expert: the i-th token
// (token_index) of source rank r for expert e goes to replica (i + r) mod n_e. Over n_e
// consecutive tokens of one rank every replica gets exactly one; different ranks start on
// different replicas, so even short batches spread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "swiftbalancer/core/placement.h"

namespace swiftbalancer {

class RoutingTable {
 public:
  RoutingTable() = default;
  RoutingTable(std::span<const ExpertId> phy2log, int experts)
      : log2phy_(build_log2phy(phy2log, experts)), phy2log_(phy2log.begin(), phy2log.end()) {}

  int experts() const { return log2phy_.experts(); }
  int num_slots() const { return static_cast<int>(phy2log_.size()); }  // global
  std::span<const std::int32_t> replicas(ExpertId e) const { return log2phy_.replicas(e); }
  ExpertId expert_at(int physical_slot) const { return phy2log_[physical_slot]; }
  std::span<const ExpertId> phy2log() const { return phy2log_; }

  // Physical slot for the token_index-th token of src_rank routed to expert e. Allocation-free.
  std::int32_t select(ExpertId e, std::int64_t token_index, int src_rank) const {
    const auto reps = log2phy_.replicas(e);
    const auto n = static_cast<std::int64_t>(reps.size());
    return reps[static_cast<std::size_t>((token_index + src_rank) % n)];
  }

 private:
  Log2Phy log2phy_;
  std::vector<ExpertId> phy2log_;
};

}  // namespace swiftbalancer
