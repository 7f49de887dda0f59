// Shared real-load traces for tests: the folder comes from SWIFTBALANCER_TRACES_DIR. Tests call
// deepseek_trace(name) and GTEST_SKIP() when it returns nullopt (folder absent).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/io/load_io.h"

namespace swiftbalancer::testing {

inline std::string traces_dir() {
  return SWIFTBALANCER_TRACES_DIR;
}

inline bool have_trace(const std::string& relative) {
  return std::filesystem::exists(std::filesystem::path(traces_dir()) / relative);
}

// Only the layers that carry load: DeepSeek dumps begin with three all-zero dense layers.
inline LoadMatrix moe_layers_only(const LoadMatrix& m) {
  std::vector<double> data;
  int layers = 0;
  for (int l = 0; l < m.layers(); ++l) {
    if (!m.layer_has_load(l)) continue;
    data.insert(data.end(), m.row(l).begin(), m.row(l).end());
    ++layers;
  }
  return LoadMatrix(layers, m.experts(), std::move(data));
}

// deepseek_v3r1/<workload>.json with all its 61 layers (the first three all zero), or nullopt
// when absent.
inline std::optional<LoadMatrix> deepseek_trace_all_layers(const std::string& workload) {
  const std::string rel = "deepseek_v3r1/" + workload + ".json";
  if (!have_trace(rel)) return std::nullopt;
  return read_load(traces_dir() + "/" + rel);
}

// deepseek_v3r1/<workload>.json restricted to its 58 MoE layers, or nullopt when absent.
inline std::optional<LoadMatrix> deepseek_trace(const std::string& workload) {
  auto all = deepseek_trace_all_layers(workload);
  if (!all) return std::nullopt;
  return moe_layers_only(*all);
}

}  // namespace swiftbalancer::testing
