// Readers and writers of expert-load files. Pure functions of their input; no shared state, so
// every function is safe to call from several threads at once (on different files).
// Every reader throws InputError whose message starts with the file (or source) name and names
// the problem: missing file, malformed content, ragged rows (with the index), non-numbers, NaN,
// infinities and negative values (with their step, layer and expert).
//
// Formats:
//   kSglangJson  {"logical_count": [L][E]} or [T][L][E] (summed over T), numbers int or float.
//                JSON has no NaN or Infinity: a file holding them is reported malformed.
//   kCsv         header "layer,expert,tokens" or "step,layer,expert,tokens" (columns in any order,
//                names case-insensitive; summed over steps). Layers and experts are max id + 1;
//                missing cells are 0; duplicate cells add up.
//   kNpy         numpy .npy, int8..int64, uint8..uint64, float32/64 or bool, C order,
//                little-endian, 2-D [L][E] or 3-D [T][L][E] (summed over T; read row by row).
// kAuto picks by extension (.json, .csv, .npy); with another extension it looks at the content
// (npy magic, a leading '{', else CSV).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"

namespace swiftbalancer {

enum class LoadFormat { kAuto, kSglangJson, kCsv, kNpy };

// Parses "auto", "sglang", "json", "csv", "npy" (throws InputError otherwise).
LoadFormat parse_load_format(const std::string& name);
const char* load_format_name(LoadFormat format);  // "auto", "sglang", "csv", "npy"

// The format kAuto reads `path` as (by extension, else by its first bytes).
LoadFormat detect_load_format(const std::string& path);

// The whole load, summed over steps when the file has a step axis.
LoadMatrix read_load(const std::string& path, LoadFormat format = LoadFormat::kAuto);
// JSON writes {"logical_count": [L][E]}; CSV writes "layer,expert,tokens" with every cell
// (zeros included, so the shape survives a round trip); npy writes float64.
// kAuto picks by extension and throws InputError on an unknown one.
void write_load(const std::string& path, const LoadMatrix& load,
                LoadFormat format = LoadFormat::kAuto);

// The per-step loads of a file with a step axis: [T][L][E] JSON or npy, CSV with a step column
// (steps 0..max step id; a step with no rows is all zero). A file without a step axis gives one
// step. Every step has the same shape. (For long npy traces, stream with NpyReader instead.)
std::vector<LoadMatrix> read_load_steps(const std::string& path,
                                        LoadFormat format = LoadFormat::kAuto);
// Writes steps as [T][L][E]: JSON {"logical_count": [T][L][E]}, CSV "step,layer,expert,tokens",
// npy float64 3-D. All steps must have one shape (throws InputError otherwise).
void write_load_steps(const std::string& path, const std::vector<LoadMatrix>& steps,
                      LoadFormat format = LoadFormat::kAuto);

// In-memory JSON forms (for the Python module and tools). `source` names the input in errors.
// load_from_json accepts {"logical_count": ...} or the bare [L][E] / [T][L][E] array.
LoadMatrix load_from_json(const nlohmann::json& j, const std::string& source = "json");
nlohmann::json load_to_json(const LoadMatrix& load);  // {"logical_count": [L][E]}

}  // namespace swiftbalancer
