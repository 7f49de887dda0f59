// Seeded random numbers for trace generation: a small, fast generator (xoshiro256**, seeded
// through splitmix64) and an exact binomial sampler written here, so that a seed gives the same
// trace on every platform and standard library (std:: distributions are not portable).
//
// Ownership: an Rng is a plain value; one instance per thread (not thread-safe).
#pragma once

#include <cmath>
#include <cstdint>

#include "swiftbalancer/core/splitmix.h"

namespace swiftbalancer::replay {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    std::uint64_t x = seed;
    for (auto& s : s_) s = splitmix64_next(x);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; the tiny bias of skipping the
  // rejection step is below 2^-40 for the n used here and keeps the stream simple).
  std::uint32_t below(std::uint32_t n) {
    return static_cast<std::uint32_t>(((next() >> 32) * static_cast<std::uint64_t>(n)) >> 32);
  }

  // Exact Binomial(n, p) sample. Small means use inversion (BINV: expected cost about n*p
  // steps); larger ones are split into two independent halves (a sum of binomials with the same
  // p is binomial), so the cost stays O(n*min(p, 1-p)) and pow() never underflows.
  std::int64_t binomial(std::int64_t n, double p) {
    if (n <= 0 || !(p > 0.0)) return 0;
    if (p >= 1.0) return n;
    if (p > 0.5) return n - binomial(n, 1.0 - p);
    if (static_cast<double>(n) * p > 24.0) {
      const std::int64_t half = n / 2;
      return binomial(half, p) + binomial(n - half, p);
    }
    const double q = 1.0 - p;
    const double s = p / q;
    const double a = static_cast<double>(n + 1) * s;
    for (;;) {
      double r = std::pow(q, static_cast<double>(n));
      double u = uniform();
      std::int64_t x = 0;
      while (u > r) {
        u -= r;
        ++x;
        if (x > n) break;  // rounding left u above the whole mass: draw again
        r *= a / static_cast<double>(x) - s;
      }
      if (x <= n) return x;
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4] = {};
};

// Mixes several integers into one seed (so per-layer and per-workload streams are independent).
inline std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0) {
  std::uint64_t x = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL);
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= c + 0x94D049BB133111EBULL + (x << 6) + (x >> 2);
  x ^= x >> 29;
  return x;
}

}  // namespace swiftbalancer::replay
