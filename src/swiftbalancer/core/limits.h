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
// Threads of one ThreadPool (exec/thread_pool.h), the caller included.
inline constexpr int kMaxPoolThreads = 256;

}  // namespace swiftbalancer::limits
