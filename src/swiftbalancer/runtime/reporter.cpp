#include "swiftbalancer/runtime/reporter.h"

#include <algorithm>
#include <cstdio>

namespace swiftbalancer {

void Reporter::log(const std::string& msg, LogSeverity severity) const {
  const std::string line = "rank " + std::to_string(rank_) + ": " + msg;
  if (sink_) {
    sink_(severity, line);
  } else if (severity != LogSeverity::kInfo) {
    std::fprintf(stderr, "swiftbalancer %s: %s\n", log_severity_name(severity), line.c_str());
  }
}

void Reporter::error(const std::string& msg, Counter counter) {
  log("error: " + msg, LogSeverity::kError);
  step_errors_.fetch_add(1, std::memory_order_relaxed);
  if (counter == &BalancerCounters::collective_failures)
    collective_failures_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  if (counter != nullptr) ++(counters_.*counter);
  ++counters_.errors;
  counters_.last_error = msg;
}

void Reporter::add(Counter counter, std::int64_t by) {
  std::lock_guard lock(mu_);
  counters_.*counter += by;
}

void Reporter::raise_to(Counter counter, std::int64_t value) {
  std::lock_guard lock(mu_);
  counters_.*counter = std::max(counters_.*counter, value);
}

void Reporter::add_step(std::int64_t bytes_sent, std::int64_t bytes_received) {
  std::lock_guard lock(mu_);
  ++counters_.steps;
  counters_.bytes_sent += bytes_sent;
  counters_.bytes_received += bytes_received;
}

void Reporter::rebalanced(double seconds, double imbalance_before, double imbalance_after) {
  std::lock_guard lock(mu_);
  ++counters_.rebalances;
  const auto& bounds = BalancerCounters::kRebalanceSecondsBounds;
  std::size_t b = 0;
  while (b < bounds.size() && seconds > bounds[b]) ++b;
  ++counters_.rebalance_seconds_buckets[b];
  counters_.rebalance_seconds_sum += seconds;
  counters_.imbalance_before = imbalance_before;
  counters_.imbalance_after = imbalance_after;
}

BalancerCounters Reporter::snapshot() const {
  std::lock_guard lock(mu_);
  return counters_;
}

}  // namespace swiftbalancer
