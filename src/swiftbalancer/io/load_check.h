// Internal checks shared by the load readers (JSON, CSV, npy): value and shape checks whose
// InputError messages start with the source name. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "swiftbalancer/core/limits.h"
#include "swiftbalancer/core/load_matrix.h"

namespace swiftbalancer::io_detail {

// Layer and expert ids a file may name (ids are < this), and the cells of a step-by-step read
// (read_load_steps keeps every step: at most 4 x limits::kMaxCells doubles, 4 GiB).
inline constexpr std::int64_t kMaxId = limits::kMaxExperts;
inline constexpr std::int64_t kMaxTraceCells = 4 * limits::kMaxCells;

[[noreturn]] void fail(const std::string& source, const std::string& what);
std::string lower(std::string s);
// "step 3, layer 1, expert 7" (the step only when the file has a step axis).
std::string where(int step, int layer, int expert, bool has_steps);

// Every load value passes here: finite and non-negative.
void check_value(double v, const std::string& source, int step, int layer, int expert,
                 bool has_steps);
// Positive and within the limits (layers, experts, cells per step).
void check_shape(const std::string& source, std::int64_t layers, std::int64_t experts);
// Every matrix a reader hands out passes here (summed or one step): a value that overflowed to
// infinity when summed, or one above limits::kMaxLoadValue, is reported naming the cell.
// `step`: the step the matrix holds, or -1 for a sum over the file's steps.
void check_summed(const LoadMatrix& m, const std::string& source, std::int64_t step = -1);
// "1e+307, above the limit of 2^53 ... per cell; scale the loads down ..."
std::string load_limit_text(double v);

}  // namespace swiftbalancer::io_detail
