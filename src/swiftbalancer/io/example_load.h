// The built-in example load: a deterministic, DeepSeek-like skewed expert load for demos and
// tests that must not depend on the shared traces. Pure; safe from any thread.
//
// Every layer draws its expert weights from a log-normal distribution (sigma 0.8, so the
// coefficient of variation is about 0.95 and the hottest of 256 experts gets about 5-8x the
// mean, as in DeepSeek-V3 dumps), from a splitmix64 stream seeded by (seed, layer), and spreads
// `tokens_per_layer` token-to-expert assignments over them (rounded to whole tokens). The same
// arguments give the same matrix on every run and machine.
#pragma once

#include <cstdint>

#include "swiftbalancer/core/load_matrix.h"

namespace swiftbalancer {

LoadMatrix example_load(int layers = 58, int experts = 256, std::uint64_t seed = 2025,
                        double tokens_per_layer = 8.0 * 16384);

}  // namespace swiftbalancer
