#include "swiftbalancer/io/example_load.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "swiftbalancer/core/splitmix.h"

namespace swiftbalancer {
namespace {

// Uniform in (0, 1): never 0, so log() is finite.
double uniform(std::uint64_t& state) {
  return (static_cast<double>(splitmix64_next(state) >> 11) + 0.5) * 0x1.0p-53;
}

}  // namespace

LoadMatrix example_load(int layers, int experts, std::uint64_t seed, double tokens_per_layer) {
  LoadMatrix m(layers, experts);
  if (!(tokens_per_layer >= 0) || !std::isfinite(tokens_per_layer))
    throw InputError("example load: tokens per layer must be finite and non-negative");
  constexpr double kSigma = 0.8;
  std::vector<double> w(static_cast<std::size_t>(experts));
  for (int l = 0; l < layers; ++l) {
    std::uint64_t state = seed * 0x100000001B3ull + static_cast<std::uint64_t>(l);
    double total = 0.0;
    for (int e = 0; e < experts; ++e) {
      // Box-Muller: one standard normal per expert.
      const double u1 = uniform(state), u2 = uniform(state);
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
      w[e] = std::exp(kSigma * z);
      total += w[e];
    }
    for (int e = 0; e < experts; ++e) m.at(l, e) = std::round(tokens_per_layer * w[e] / total);
  }
  return m;
}

}  // namespace swiftbalancer
