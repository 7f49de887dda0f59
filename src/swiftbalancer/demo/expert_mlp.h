// The expert computation of the demo MoE model, in its own unit (not in the dispatcher, not in
// the balancer). An expert is three fp32 tensors that always move together:
//   tensor 0: w1 [ffn][hidden]   tensor 1: w2 [hidden][ffn]   tensor 2: biases b1 [ffn], b2
//   [hidden]
// y = w2 * relu(w1 * x + b1) + b2, one row at a time, so a row's result does not depend on the
// batch it is computed in (the demo compares results bit for bit). Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace swiftbalancer {

struct MlpShape {
  int hidden = 32;
  int ffn = 64;
};

// Byte sizes of the three tensors of one expert.
std::array<std::size_t, 3> expert_tensor_bytes(const MlpShape& shape);

// Canonical weights of (layer, expert), generated deterministically from (seed, layer, expert):
// uniform in +-1/sqrt(fan_in). Each span must have the size expert_tensor_bytes gives.
void generate_expert(const MlpShape& shape, std::uint64_t seed, int layer, int expert,
                     std::span<std::byte> w1, std::span<std::byte> w2, std::span<std::byte> bias);

// x and y: n rows of `hidden` floats; scratch: at least `ffn` floats. Tensors as raw bytes.
void apply_mlp(const MlpShape& shape, std::span<const std::byte> w1, std::span<const std::byte> w2,
               std::span<const std::byte> bias, const float* x, int n, float* y, float* scratch);

}  // namespace swiftbalancer
