#include "swiftbalancer/core/load_matrix.h"

#include <cmath>
#include <string>

namespace swiftbalancer {

LoadMatrix::LoadMatrix(int layers, int experts)
    : layers_(layers),
      experts_(experts),
      data_(static_cast<std::size_t>(layers > 0 ? layers : 0) * (experts > 0 ? experts : 0), 0.0) {
  if (layers <= 0 || experts <= 0)
    throw InputError("load matrix needs positive layers and experts, got " +
                     std::to_string(layers) + " x " + std::to_string(experts));
}

LoadMatrix::LoadMatrix(int layers, int experts, std::vector<double> data)
    : layers_(layers), experts_(experts), data_(std::move(data)) {
  if (layers <= 0 || experts <= 0)
    throw InputError("load matrix needs positive layers and experts, got " +
                     std::to_string(layers) + " x " + std::to_string(experts));
  if (data_.size() != static_cast<std::size_t>(layers) * experts)
    throw InputError("load matrix data has " + std::to_string(data_.size()) + " values, expected " +
                     std::to_string(layers) + " x " + std::to_string(experts));
}

double LoadMatrix::layer_total(int layer) const {
  double s = 0.0;
  for (double v : row(layer)) s += v;
  return s;
}

Status LoadMatrix::validate() const {
  for (int l = 0; l < layers_; ++l) {
    for (int e = 0; e < experts_; ++e) {
      const double v = at(l, e);
      if (std::isnan(v))
        return Status::InvalidInput("load of layer " + std::to_string(l) + ", expert " +
                                    std::to_string(e) + " is NaN");
      if (std::isinf(v))
        return Status::InvalidInput("load of layer " + std::to_string(l) + ", expert " +
                                    std::to_string(e) + " is infinite");
      if (v < 0)
        return Status::InvalidInput("load of layer " + std::to_string(l) + ", expert " +
                                    std::to_string(e) + " is negative (" + std::to_string(v) + ")");
    }
  }
  return Status::Ok();
}

}  // namespace swiftbalancer
