// Readers and writers of placement files. Pure functions, safe to call from several threads.
// Readers throw InputError whose message starts with the file (or source) name and names the
// layer, rank, slot or expert at fault.
//
// Formats:
//   kSglang      {"physical_to_logical_map": [L][R*S]} (the default)
//   kVllmAscend  {"moe_layer_count": L, "layer_list": [{"layer_id": l, "device_count": R,
//                  "device_list": [{"device_id": r, "device_expert": [S expert ids]}]}]}
//                layer_id and device_id are optional; when present they place the entry (each
//                id exactly once), otherwise the list order does.
// read_placement detects the format from the keys present.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer {

enum class PlacementFormat { kSglang, kVllmAscend };

// Parses "sglang" or "vllm-ascend" (throws InputError otherwise).
PlacementFormat parse_placement_format(const std::string& name);
const char* placement_format_name(PlacementFormat format);

// Reads a placement for `topo` and `experts` logical experts; checks the shape against the
// topology (and against `layers` when positive) and validates it (validate_placement), naming
// the first fault.
Placement read_placement(const std::string& path, const Topology& topo, int experts,
                         int layers = 0);
void write_placement(const std::string& path, const Placement& placement, const Topology& topo,
                     PlacementFormat format = PlacementFormat::kSglang);

// In-memory JSON forms (for the Python module and tools); same checks as the file functions.
// `source` names the input in errors.
Placement placement_from_json(const nlohmann::json& j, const Topology& topo, int experts,
                              int layers = 0, const std::string& source = "placement");
nlohmann::json placement_to_json(const Placement& placement, const Topology& topo,
                                 PlacementFormat format = PlacementFormat::kSglang);

}  // namespace swiftbalancer
