// Placement: which logical expert each physical slot holds, per layer: phy2log[layer][p] with
// p = rank * slots_per_rank + slot. A value type; it records its expert count so that it can be
// validated on its own.
//
// A valid placement (validate_placement) has, in every layer: every id in [0, experts), every
// expert at least once, and no rank holding two replicas of one expert.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "swiftbalancer/core/status.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer {

using ExpertId = std::int32_t;

class Placement {
 public:
  Placement() = default;
  // Every slot set to -1 (invalid until filled).
  Placement(int layers, int num_slots, int experts);
  // Throws InputError when phy2log.size() != layers * num_slots.
  Placement(int layers, int num_slots, int experts, std::vector<ExpertId> phy2log);

  int layers() const { return layers_; }
  int num_slots() const { return num_slots_; }  // global: every rank's slots of a layer
  int experts() const { return experts_; }
  bool empty() const { return phy2log_.empty(); }

  std::span<const ExpertId> layer(int l) const {
    return {phy2log_.data() + static_cast<std::size_t>(l) * num_slots_,
            static_cast<std::size_t>(num_slots_)};
  }
  std::span<ExpertId> layer(int l) {
    return {phy2log_.data() + static_cast<std::size_t>(l) * num_slots_,
            static_cast<std::size_t>(num_slots_)};
  }
  ExpertId at(int l, int p) const { return phy2log_[static_cast<std::size_t>(l) * num_slots_ + p]; }
  ExpertId& at(int l, int p) { return phy2log_[static_cast<std::size_t>(l) * num_slots_ + p]; }
  const std::vector<ExpertId>& data() const { return phy2log_; }

  bool operator==(const Placement&) const = default;

 private:
  int layers_ = 0;
  int num_slots_ = 0;
  int experts_ = 0;
  std::vector<ExpertId> phy2log_;
};

// Checks one layer's phy2log against the invariants; the message names the layer, slot, expert
// or rank at fault.
Status validate_layer(std::span<const ExpertId> phy2log, const Topology& topo, int experts,
                      int layer_index);
// Checks shape (num_slots == topo.num_slots()) and every layer.
Status validate_placement(const Placement& placement, const Topology& topo);

// The placement with no balancing: slot p holds expert p % experts. Contiguous blocks of
// experts per rank; the extra slots (R*S > E) hold the low-numbered experts again. Valid when
// slots_per_rank <= experts.
Placement contiguous_placement(const Topology& topo, int layers, int experts);

// Number of replicas of each expert in one layer.
std::vector<int> replica_counts(std::span<const ExpertId> phy2log, int experts);

// log2phy in CSR form for one layer: the slots of expert e are
// slots[offsets[e] .. offsets[e+1]), in increasing slot order.
struct Log2Phy {
  std::vector<std::int32_t> offsets;  // experts + 1 entries
  std::vector<std::int32_t> slots;    // num_slots entries
  std::span<const std::int32_t> replicas(int expert) const {
    return {slots.data() + offsets[expert],
            static_cast<std::size_t>(offsets[expert + 1] - offsets[expert])};
  }
  int experts() const { return static_cast<int>(offsets.size()) - 1; }
};
Log2Phy build_log2phy(std::span<const ExpertId> phy2log, int experts);

// Dense log2phy as vLLM and DeepSeek return it: [experts][max_replicas], padded with -1, where
// max_replicas is the largest replica count over all layers. Row-major over [layer][expert][k].
struct DenseLog2Phy {
  int layers = 0, experts = 0, max_replicas = 0;
  std::vector<std::int32_t> data;
};
DenseLog2Phy dense_log2phy(const Placement& placement);

}  // namespace swiftbalancer
