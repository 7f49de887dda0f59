#include "swiftbalancer/demo/expert_mlp.h"

#include <cmath>
#include <cstring>

#include "swiftbalancer/core/splitmix.h"

namespace swiftbalancer {
namespace {

std::uint64_t splitmix(std::uint64_t x) {
  return splitmix64_hash(x);
}

void fill(std::span<std::byte> out, std::uint64_t key, float scale) {
  const std::size_t n = out.size() / sizeof(float);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint64_t h = splitmix(key ^ splitmix(i));
    const float u = static_cast<float>(h >> 40) / static_cast<float>(1ull << 24);  // [0, 1)
    const float v = (2.0f * u - 1.0f) * scale;
    std::memcpy(out.data() + i * sizeof(float), &v, sizeof(float));
  }
}

}  // namespace

std::array<std::size_t, 3> expert_tensor_bytes(const MlpShape& s) {
  const auto h = static_cast<std::size_t>(s.hidden), f = static_cast<std::size_t>(s.ffn);
  return {f * h * sizeof(float), h * f * sizeof(float), (f + h) * sizeof(float)};
}

void generate_expert(const MlpShape& shape, std::uint64_t seed, int layer, int expert,
                     std::span<std::byte> w1, std::span<std::byte> w2, std::span<std::byte> bias) {
  const std::uint64_t key = splitmix(seed ^ splitmix((static_cast<std::uint64_t>(layer) << 32) |
                                                     static_cast<std::uint32_t>(expert)));
  fill(w1, key ^ 1, 1.0f / std::sqrt(static_cast<float>(shape.hidden)));
  fill(w2, key ^ 2, 1.0f / std::sqrt(static_cast<float>(shape.ffn)));
  fill(bias, key ^ 3, 0.1f);
}

void apply_mlp(const MlpShape& shape, std::span<const std::byte> w1b,
               std::span<const std::byte> w2b, std::span<const std::byte> biasb, const float* x,
               int n, float* y, float* h) {
  const int H = shape.hidden, F = shape.ffn;
  const auto* w1 = reinterpret_cast<const float*>(w1b.data());
  const auto* w2 = reinterpret_cast<const float*>(w2b.data());
  const auto* b1 = reinterpret_cast<const float*>(biasb.data());
  const float* b2 = b1 + F;
  for (int r = 0; r < n; ++r) {
    const float* xr = x + static_cast<std::size_t>(r) * H;
    float* yr = y + static_cast<std::size_t>(r) * H;
    for (int f = 0; f < F; ++f) {
      float acc = b1[f];
      const float* w = w1 + static_cast<std::size_t>(f) * H;
      for (int k = 0; k < H; ++k) acc += w[k] * xr[k];
      h[f] = acc > 0.0f ? acc : 0.0f;
    }
    for (int o = 0; o < H; ++o) {
      float acc = b2[o];
      const float* w = w2 + static_cast<std::size_t>(o) * F;
      for (int f = 0; f < F; ++f) acc += w[f] * h[f];
      yr[o] = acc;
    }
  }
}

}  // namespace swiftbalancer
