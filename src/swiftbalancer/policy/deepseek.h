// DeepSeek's EPLB algorithm (deepseek-ai/EPLB), written from its description:
//   1. replicate: give each extra slot to the expert with the highest load per replica;
//   2. pack: place replicas heaviest first on the lightest rank that has a free slot.
// Hierarchical mode first packs expert groups onto nodes (balancing node load), then replicates
// within each node, then packs onto that node's ranks. It needs the groups to divide evenly
// over the nodes; kAuto picks hierarchical when they do, global otherwise (as the reference).
//
// One deliberate difference from the reference: a rank never receives a second replica of an
// expert it already holds (the reference allows it, which wastes a slot). Packing skips such a
// rank and takes the next lightest one.
#pragma once

#include <memory>

#include "swiftbalancer/policy/policy.h"

namespace swiftbalancer {

enum class DeepSeekMode { kAuto, kGlobal, kHierarchical };

std::unique_ptr<Policy> make_deepseek_policy(DeepSeekMode mode);

}  // namespace swiftbalancer
