// Internal: the CSV expert-load reader behind read_load / read_load_steps (format in load_io.h).
// Stateless; safe from any thread.
//
// Memory follows the data: the dense matrix a CSV describes (layers and experts are max id + 1,
// missing cells are 0) may hold at most kCsvCellsPerRow cells per data row present, or
// kCsvFreeCells cells, whichever is larger. So a 47-byte file naming layer 1000000 is refused
// with a clear error instead of allocating gigabytes; a file that lists every cell, or a sparse
// one up to a megacell, reads as before. (docs/formats.md states the rule.)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"

namespace swiftbalancer::io_detail {

inline constexpr std::int64_t kCsvFreeCells = std::int64_t{1} << 20;
inline constexpr std::int64_t kCsvCellsPerRow = 64;

// The whole load summed over steps (`sum`), or one matrix per step 0..max step id.
std::vector<LoadMatrix> csv_counts(const std::string& path, bool sum);

}  // namespace swiftbalancer::io_detail
