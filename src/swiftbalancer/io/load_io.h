// Readers and writers of expert-load files. Every reader throws InputError whose message names
// the file and the problem (missing file, malformed content, ragged rows, NaN, negative values).
//
// Formats:
//   kSglangJson  {"logical_count": [L][E]} or [T][L][E] (summed over T), numbers int or float
//   kCsv         header "layer,expert,tokens" or "step,layer,expert,tokens" (summed over steps)
//   kNpy         numpy .npy, int or float, 2-D [L][E] or 3-D [T][L][E] (summed over T)
// kAuto picks by extension: .json, .csv, .npy.
#pragma once

#include <string>

#include "swiftbalancer/core/load_matrix.h"

namespace swiftbalancer {

enum class LoadFormat { kAuto, kSglangJson, kCsv, kNpy };

// Parses "auto", "sglang", "json", "csv", "npy" (throws InputError otherwise).
LoadFormat parse_load_format(const std::string& name);

LoadMatrix read_load(const std::string& path, LoadFormat format = LoadFormat::kAuto);
// JSON writes {"logical_count": [L][E]}; CSV writes "layer,expert,tokens"; npy writes float64.
void write_load(const std::string& path, const LoadMatrix& load,
                LoadFormat format = LoadFormat::kAuto);

}  // namespace swiftbalancer
