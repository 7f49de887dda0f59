// The engines' logical maps of a placement: log2phy as a dense [layers][experts][width] table
// padded with -1, in the replica order deepseek-ai/EPLB gives, and logcnt [layers][experts].
// Owner: compat component. Pure and thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"

namespace swiftbalancer::compat {

struct LogicalMaps {
  int max_replicas = 0;               // the last dimension of log2phy
  std::vector<std::int64_t> log2phy;  // [L][E][max_replicas], -1 padded, in replica order
  std::vector<std::int64_t> logcnt;   // [L][E]
};

// What the engines' policy hooks return: phy2log and, when asked for, the logical maps
// (empty otherwise).
struct EngineMaps {
  Placement placement;  // phy2log [L][num_replicas]
  LogicalMaps logical;
};

// Orders each expert's slots the way DeepSeek's packing placed them (the reference's replica
// rank): packing puts replicas heaviest first on the lightest rank, so among the replicas of one
// expert the earlier one went to the rank that was lighter when it arrived, i.e. whose earlier
// slots (lower local index) held less load (the load of a slot: its expert's load split evenly
// over its replicas); ties go to the lower slot. Exact for placements the DeepSeek policy
// produced; a valid (slot-ordered on ties) order for any other placement. max_replicas is the
// most replicas of an expert, at least min_width. InputError when the placement's shape and
// the load's differ or it holds an id outside [0, experts).
LogicalMaps replica_ordered_maps(const Placement& placement, const LoadMatrix& weight,
                                 const Topology& topo, int min_width = 0);

}  // namespace swiftbalancer::compat
