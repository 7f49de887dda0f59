// splitmix64 (Steele, Lea and Flood): a tiny portable 64-bit generator and mixer. Seeded
// randomness in this project goes through it (std:: distributions differ between standard
// libraries), so a seed gives the same numbers on every platform.
#pragma once

#include <cstdint>

namespace swiftbalancer {

// The output for state `x` (the state advanced once); a good hash of x on its own.
constexpr std::uint64_t splitmix64_hash(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Advances `state` and returns the next output of the stream.
constexpr std::uint64_t splitmix64_next(std::uint64_t& state) {
  const std::uint64_t out = splitmix64_hash(state);
  state += 0x9E3779B97F4A7C15ULL;
  return out;
}

}  // namespace swiftbalancer
