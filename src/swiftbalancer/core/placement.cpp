#include "swiftbalancer/core/placement.h"

#include <algorithm>
#include <string>

#include "swiftbalancer/core/limits.h"

namespace swiftbalancer {
namespace {

// The cell count of a placement, checked against core/limits.h before anything is allocated.
std::size_t checked_cells(int layers, int num_slots, int experts) {
  if (layers <= 0 || num_slots <= 0 || experts <= 0)
    throw InputError("placement needs positive layers, slots and experts, got " +
                     std::to_string(layers) + ", " + std::to_string(num_slots) + ", " +
                     std::to_string(experts));
  if (layers > limits::kMaxLayers || experts > limits::kMaxExperts || num_slots > limits::kMaxSlots)
    throw InputError("placement of " + std::to_string(layers) + " layers x " +
                     std::to_string(num_slots) + " slots, " + std::to_string(experts) +
                     " experts exceeds the limits (" + std::to_string(limits::kMaxLayers) +
                     " layers, " + std::to_string(limits::kMaxSlots) + " slots, " +
                     std::to_string(limits::kMaxExperts) + " experts)");
  const std::int64_t cells = std::int64_t{layers} * num_slots;
  if (cells > limits::kMaxCells)
    throw InputError("placement of " + std::to_string(layers) + " layers x " +
                     std::to_string(num_slots) + " slots = " + std::to_string(cells) +
                     " cells exceeds the limit of " + std::to_string(limits::kMaxCells));
  return static_cast<std::size_t>(cells);
}

}  // namespace

Placement::Placement(int layers, int num_slots, int experts)
    : Placement(layers, num_slots, experts,
                std::vector<ExpertId>(checked_cells(layers, num_slots, experts), -1)) {}

Placement::Placement(int layers, int num_slots, int experts, std::vector<ExpertId> phy2log)
    : layers_(layers), num_slots_(num_slots), experts_(experts), phy2log_(std::move(phy2log)) {
  checked_cells(layers, num_slots, experts);
  if (phy2log_.size() != static_cast<std::size_t>(layers) * num_slots)
    throw InputError("placement has " + std::to_string(phy2log_.size()) + " entries, expected " +
                     std::to_string(layers) + " layers x " + std::to_string(num_slots) + " slots");
}

Status validate_layer(std::span<const ExpertId> phy2log, const Topology& topo, int experts,
                      int layer_index) {
  const std::string where = "layer " + std::to_string(layer_index);
  if (static_cast<int>(phy2log.size()) != topo.num_slots())
    return Status::InvalidInput(where + " has " + std::to_string(phy2log.size()) +
                                " slots, expected " + std::to_string(topo.num_slots()));
  std::vector<int> seen_on_rank(static_cast<std::size_t>(experts), -1);
  std::vector<char> present(static_cast<std::size_t>(experts), 0);
  for (int p = 0; p < topo.num_slots(); ++p) {
    const ExpertId e = phy2log[p];
    if (e < 0 || e >= experts)
      return Status::InvalidInput(where + ", slot " + std::to_string(p) + ": expert id " +
                                  std::to_string(e) + " is out of range [0, " +
                                  std::to_string(experts) + ")");
    const int r = topo.rank_of_slot(p);
    if (seen_on_rank[e] == r)
      return Status::InvalidInput(where + ": rank " + std::to_string(r) +
                                  " holds two replicas of expert " + std::to_string(e));
    seen_on_rank[e] = r;  // slots of a rank are contiguous, so the last rank seen suffices
    present[e] = 1;
  }
  for (int e = 0; e < experts; ++e)
    if (!present[e])
      return Status::InvalidInput(where + ": expert " + std::to_string(e) + " has no replica");
  return Status::Ok();
}

Status validate_placement(const Placement& placement, const Topology& topo) {
  if (placement.empty()) return Status::InvalidInput("placement is empty");
  if (placement.num_slots() != topo.num_slots())
    return Status::InvalidInput("placement has " + std::to_string(placement.num_slots()) +
                                " slots per layer, the topology has " + std::to_string(topo.ranks) +
                                " ranks x " + std::to_string(topo.slots_per_rank) + " = " +
                                std::to_string(topo.num_slots()));
  for (int l = 0; l < placement.layers(); ++l) {
    Status s = validate_layer(placement.layer(l), topo, placement.experts(), l);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Placement contiguous_placement(const Topology& topo, int layers, int experts) {
  Placement out(layers, topo.num_slots(), experts);
  for (int l = 0; l < layers; ++l)
    for (int p = 0; p < topo.num_slots(); ++p) out.at(l, p) = p % experts;
  return out;
}

std::vector<int> replica_counts(std::span<const ExpertId> phy2log, int experts) {
  std::vector<int> counts(static_cast<std::size_t>(experts), 0);
  for (ExpertId e : phy2log)
    if (e >= 0 && e < experts) ++counts[e];
  return counts;
}

Log2Phy build_log2phy(std::span<const ExpertId> phy2log, int experts) {
  Log2Phy out;
  out.offsets.assign(static_cast<std::size_t>(experts) + 1, 0);
  for (ExpertId e : phy2log)
    if (e >= 0 && e < experts) ++out.offsets[e + 1];
  for (int e = 0; e < experts; ++e) out.offsets[e + 1] += out.offsets[e];
  out.slots.assign(static_cast<std::size_t>(out.offsets[experts]), -1);
  std::vector<std::int32_t> fill(out.offsets.begin(), out.offsets.end() - 1);
  for (int p = 0; p < static_cast<int>(phy2log.size()); ++p) {
    const ExpertId e = phy2log[p];
    if (e >= 0 && e < experts) out.slots[fill[e]++] = p;
  }
  return out;
}

DenseLog2Phy dense_log2phy(const Placement& placement) {
  DenseLog2Phy out;
  out.layers = placement.layers();
  out.experts = placement.experts();
  for (int l = 0; l < placement.layers(); ++l) {
    const auto counts = replica_counts(placement.layer(l), placement.experts());
    for (int c : counts) out.max_replicas = std::max(out.max_replicas, c);
  }
  out.data.assign(static_cast<std::size_t>(out.layers) * out.experts * out.max_replicas, -1);
  for (int l = 0; l < placement.layers(); ++l) {
    const Log2Phy csr = build_log2phy(placement.layer(l), placement.experts());
    for (int e = 0; e < out.experts; ++e) {
      auto reps = csr.replicas(e);
      for (std::size_t k = 0; k < reps.size(); ++k)
        out.data[(static_cast<std::size_t>(l) * out.experts + e) * out.max_replicas + k] = reps[k];
    }
  }
  return out;
}

}  // namespace swiftbalancer
