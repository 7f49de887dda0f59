// Internal to the io component: the per-format load readers behind load_io.h and the checks they
// share (bounds on shapes and ids, finite non-negative values). Every error is an InputError whose
// message starts with the source (file) name. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/status.h"

namespace swiftbalancer::io_detail {

// Bounds that keep a hostile file from asking for absurd allocations.
inline constexpr std::int64_t kMaxId = 1 << 20;
inline constexpr std::int64_t kMaxCells = std::int64_t{1} << 27;  // per step: 1 GiB of doubles

[[noreturn]] inline void fail(const std::string& source, const std::string& what) {
  throw InputError(source + ": " + what);
}

std::string lower(std::string s);
// "step S, layer L, expert E" (the step only when the source has a step axis).
std::string where(int step, int layer, int expert, bool has_steps);
// Every load value passes here: finite and non-negative.
void check_value(double v, const std::string& source, int step, int layer, int expert,
                 bool has_steps);
// Both positive and within the bounds above.
void check_shape(const std::string& source, std::int64_t layers, std::int64_t experts);

// JSON: logical_count as steps ([T][L][E]) or one matrix ([L][E]); `sum` folds the steps into
// one. `j` is the object holding "logical_count" or the bare array.
std::vector<LoadMatrix> json_counts(const nlohmann::json& j, const std::string& source, bool sum);
nlohmann::json parse_json_file(const std::string& path);
nlohmann::json matrix_json(const LoadMatrix& m);  // [L][E] rows

// CSV: "layer,expert,tokens" or "step,layer,expert,tokens"; `sum` folds the steps into one.
std::vector<LoadMatrix> csv_counts(const std::string& path, bool sum);

}  // namespace swiftbalancer::io_detail
