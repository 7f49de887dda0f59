// The library's clock and its one duration type for timeouts, and the elapsed-time helper every
// timing figure uses (serving, copy and wait times in StepStats).
#pragma once

#include <chrono>
#include <cstdint>

namespace swiftbalancer {

// Monotonic: deadlines and figures never jump with the wall clock.
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

// Nanoseconds from `since` to now.
inline std::int64_t elapsed_ns_since(Clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count();
}

}  // namespace swiftbalancer
