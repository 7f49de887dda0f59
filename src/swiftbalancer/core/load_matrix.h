// LoadMatrix: tokens per logical expert, [layers][experts], row-major doubles. A value type.
//
// Loads are token-to-expert assignments (a top-k token counts k times). Rows may be all zero
// (dense layers in DeepSeek dumps); values must be finite and non-negative (see validate()).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {

class LoadMatrix {
 public:
  LoadMatrix() = default;
  // Zero-filled.
  LoadMatrix(int layers, int experts);
  // Throws InputError when data.size() != layers * experts or a size is not positive.
  LoadMatrix(int layers, int experts, std::vector<double> data);

  int layers() const { return layers_; }
  int experts() const { return experts_; }
  bool empty() const { return data_.empty(); }

  double at(int layer, int expert) const { return data_[index(layer, expert)]; }
  double& at(int layer, int expert) { return data_[index(layer, expert)]; }
  std::span<const double> row(int layer) const {
    return {data_.data() + static_cast<std::size_t>(layer) * experts_,
            static_cast<std::size_t>(experts_)};
  }
  std::span<double> row(int layer) {
    return {data_.data() + static_cast<std::size_t>(layer) * experts_,
            static_cast<std::size_t>(experts_)};
  }
  const std::vector<double>& data() const { return data_; }

  double layer_total(int layer) const;
  bool layer_has_load(int layer) const { return layer_total(layer) > 0.0; }

  // Every value finite and >= 0; the message names the first bad (layer, expert).
  Status validate() const;

  bool operator==(const LoadMatrix&) const = default;

 private:
  std::size_t index(int layer, int expert) const {
    return static_cast<std::size_t>(layer) * experts_ + expert;
  }
  int layers_ = 0;
  int experts_ = 0;
  std::vector<double> data_;
};

}  // namespace swiftbalancer
