#include "swiftbalancer/runtime/internal/reporter.h"

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

bool Reporter::liveness(std::int64_t step, bool progress, bool deciding, bool stopped,
                        std::int64_t limit_steps) {
  if (!deciding || progress) deciding_since_ = -1;
  if (deciding && deciding_since_ < 0) deciding_since_ = step;
  std::unique_lock lock(mu_);
  if (progress) {
    progress_step_ = step;
    dropped_at_progress_ = counters_.cycles_dropped;
    collective_at_progress_ = counters_.collective_failures;
  }
  counters_.steps_since_progress = step - progress_step_;
  if (progress && counters_.stalled != 0) {
    counters_.stalled = 0;
    lock.unlock();
    log("balancing resumed: a cycle was agreed at step " + std::to_string(step),
        LogSeverity::kWarning);
    return false;
  }
  if (limit_steps <= 0 || counters_.stalled != 0 || counters_.steps_since_progress < limit_steps)
    return false;
  // The reason, most specific first.
  const std::int64_t dropped = counters_.cycles_dropped - dropped_at_progress_;
  const std::int64_t collective = counters_.collective_failures - collective_at_progress_;
  const std::string last = counters_.last_error.empty() ? "none" : counters_.last_error;
  std::string why;
  if (stopped) {
    why = "balancing stopped (the transport is broken or a rank stopped answering; last error: " +
          last + ")";
  } else if (deciding && step - deciding_since_ >= limit_steps) {
    why = "worker busy: the decision out since step " + std::to_string(deciding_since_) +
          " has not been answered";
  } else if (dropped > 0) {
    why = "every cycle was dropped (" + std::to_string(dropped) + " since step " +
          std::to_string(progress_step_) + "; last error: " + last + ")";
  } else if (collective > 0) {
    why = "collectives failed (" + std::to_string(collective) + " since step " +
          std::to_string(progress_step_) + "; last error: " + last + ")";
  } else if (deciding) {
    why = "worker busy: a decision is out since step " + std::to_string(deciding_since_);
  } else {
    why = "no cycle started";
  }
  counters_.stalled = 1;
  ++counters_.stall_warnings;
  counters_.stall_reason = why;
  const std::int64_t since = counters_.steps_since_progress;
  lock.unlock();
  log("balancing has stalled: no cycle agreed for " + std::to_string(since) + " steps (step " +
          std::to_string(step) + "): " + why,
      LogSeverity::kWarning);
  return true;
}

BalancerCounters Reporter::snapshot() const {
  std::lock_guard lock(mu_);
  return counters_;
}

}  // namespace swiftbalancer
