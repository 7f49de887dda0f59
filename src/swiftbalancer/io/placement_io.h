// Readers and writers of placement files. Readers throw InputError naming the file and problem.
//
// Formats:
//   kSglang      {"physical_to_logical_map": [L][R*S]} (the default)
//   kVllmAscend  {"moe_layer_count": L, "layer_list": [{"layer_id": l, "device_count": R,
//                  "device_list": [{"device_id": r, "device_expert": [S expert ids]}]}]}
// read_placement detects the format from the keys present.
#pragma once

#include <string>

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer {

enum class PlacementFormat { kSglang, kVllmAscend };

// Parses "sglang" or "vllm-ascend" (throws InputError otherwise).
PlacementFormat parse_placement_format(const std::string& name);

// Reads a placement for `topo` and `experts` logical experts; checks the shape against the
// topology and validates it (validate_placement), naming the first fault.
Placement read_placement(const std::string& path, const Topology& topo, int experts);
void write_placement(const std::string& path, const Placement& placement, const Topology& topo,
                     PlacementFormat format = PlacementFormat::kSglang);

}  // namespace swiftbalancer
