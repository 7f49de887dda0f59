// SVG pictures of a replay, written as text by the project (no plotting runtime):
//   1. imbalance over time, one line per policy (binned means when the trace is long), with
//      axes, ticks, labels, a legend, a title and dashed marks at workload switches;
//   2. one heatmap per policy of the layer-averaged load of each rank over time (rank load / mean
//      rank load: white is 1.0, red above, blue below, one shared colour bar), so that the load
//      before and after each switch and each rebalance can be read at a glance.
// Pure functions of the result; thread-safe.
#pragma once

#include <string>

#include "swiftbalancer/replay/replay.h"

namespace swiftbalancer::replay {

std::string replay_svg(const ReplayResult& result, const std::string& title);
// Writes replay_svg to `path`; throws InputError when the file cannot be written.
void write_replay_svg(const std::string& path, const ReplayResult& result,
                      const std::string& title);

}  // namespace swiftbalancer::replay
