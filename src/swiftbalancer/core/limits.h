// Size limits of the library, checked before anything is allocated (Topology::make, Placement,
// the readers), so that a wrong size fails with a message instead of an int overflow, a
// std::bad_alloc or gigabytes of memory. Every limit is far above real deployments (DeepSeek-V3
// at EP320: 320 ranks x 9 slots, 58 layers x 256 experts) and keeps every count an `int` and
// every cell count an int64 without overflow. docs/formats.md lists them for users.
#pragma once

#include <cstdint>

namespace swiftbalancer::limits {

inline constexpr std::int64_t kMaxRanks = std::int64_t{1} << 16;         // 65,536
inline constexpr std::int64_t kMaxSlotsPerRank = std::int64_t{1} << 16;  // 65,536
// Physical slots per layer (ranks x slots per rank).
inline constexpr std::int64_t kMaxSlots = std::int64_t{1} << 22;  // 4,194,304
inline constexpr std::int64_t kMaxLayers = std::int64_t{1} << 20;
inline constexpr std::int64_t kMaxExperts = std::int64_t{1} << 20;
// Cells of one placement (layers x slots) or one load matrix (layers x experts): 2^27 cells is
// 512 MiB of expert ids or 1 GiB of doubles.
inline constexpr std::int64_t kMaxCells = std::int64_t{1} << 27;
// One load value (tokens of one expert in one layer, in one step or summed over a file's steps):
// at most 2^53, the largest count a double holds exactly. Every sum the program forms from such
// values (2^27 cells, 2^40 steps) stays below 2^120, far from the double range, so no imbalance,
// mean or cost figure can become infinite or NaN. Loads above it (1e307 per cell) are refused,
// naming the layer and expert; scale them down (loads are relative: only ratios matter).
inline constexpr double kMaxLoadValue = 9007199254740992.0;  // 2^53
// Steps of one trace file or gen-trace run (streamed; a trace file's steps are checked in 64 bits).
inline constexpr std::int64_t kMaxTraceSteps = std::int64_t{1} << 40;
// The trace generator holds every base distribution twice (the loads and their inclusion
// probabilities): workloads x layers x experts at most 2^24 cells (256 MiB of doubles), so that
// gen-trace and replay at the limit fit in 4 GB of address space with their step buffers.
inline constexpr std::int64_t kMaxTraceBaseCells = std::int64_t{1} << 24;
// replay keeps, per policy, its window and placements of one step's shape and two figures per
// step: layers x experts at most 2^22 cells (32 MiB a matrix) and 2^24 steps (16.7 million;
// 128 MiB of series per policy); both are checked before the replay starts.
inline constexpr std::int64_t kMaxReplayCells = std::int64_t{1} << 22;
inline constexpr std::int64_t kMaxReplaySteps = std::int64_t{1} << 24;
// Threads of one ThreadPool (exec/thread_pool.h), the caller included.
inline constexpr int kMaxPoolThreads = 256;

}  // namespace swiftbalancer::limits
