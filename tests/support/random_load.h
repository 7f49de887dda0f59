// Random loads for tests: heavy-tailed (lognormal, so a few hot experts per layer) with about one
// layer in five all zero (a dense layer). The same seed gives the same matrix.
#pragma once

#include <cmath>
#include <random>

#include "swiftbalancer/core/load_matrix.h"

namespace swiftbalancer::testing {

inline LoadMatrix heavy_tailed_load(std::mt19937& rng, int layers, int experts) {
  LoadMatrix m(layers, experts);
  std::lognormal_distribution<double> d(0.0, 1.5);
  for (int l = 0; l < layers; ++l) {
    if (rng() % 5 == 0) continue;  // a dense layer: all zero
    for (int e = 0; e < experts; ++e) m.at(l, e) = std::floor(d(rng) * 100);
  }
  return m;
}

}  // namespace swiftbalancer::testing
