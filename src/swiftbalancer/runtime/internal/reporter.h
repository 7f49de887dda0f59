// Reporter: where the balancer's parts log and count. One per balancer; the parts hold a
// reference. The counters are the one place the runtime's figures live.
//
// Thread-safety: log() may be called from any thread (the sink must cope); the counters are
// guarded by a mutex, so add(), error() and snapshot() are thread-safe. errors_this_step() and
// take_step_errors() belong to the serving thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include "swiftbalancer/runtime/balancer_config.h"

namespace swiftbalancer {

class Reporter {
 public:
  using Counter = std::int64_t BalancerCounters::*;

  Reporter(int rank, std::function<void(LogSeverity, const std::string&)> sink)
      : rank_(rank), sink_(std::move(sink)) {}

  void log(const std::string& msg, LogSeverity severity = LogSeverity::kInfo) const;
  // Logs an error, counts it in `counter` (when not null) and in `errors`.
  void error(const std::string& msg, Counter counter);
  void add(Counter counter, std::int64_t by = 1);
  void raise_to(Counter counter, std::int64_t value);  // counter = max(counter, value)
  void add_step(std::int64_t bytes_sent, std::int64_t bytes_received);  // one lock a step
  // A cycle that committed at least one layer ended after `seconds`.
  void rebalanced(double seconds, double imbalance_before, double imbalance_after);
  BalancerCounters snapshot() const;
  // Liveness, once a step from the serving thread: `progress` when a cycle was agreed at this
  // step; `deciding` while a decision is out on the worker; `stopped` once balancing stopped.
  // Warns (log and counter) when `limit_steps` (> 0) steps pass without progress, naming why;
  // logs again when progress resumes. Returns true at the step it warns.
  bool liveness(std::int64_t step, bool progress, bool deciding, bool stopped,
                std::int64_t limit_steps);

  int take_step_errors() { return step_errors_.exchange(0, std::memory_order_relaxed); }
  // Collective failures so far (lock-free read for the serving thread's per-step check).
  std::int64_t collective_failures_seen() const {
    return collective_failures_.load(std::memory_order_relaxed);
  }

 private:
  int rank_;
  std::function<void(LogSeverity, const std::string&)> sink_;
  mutable std::mutex mu_;
  BalancerCounters counters_;
  std::atomic<int> step_errors_{0};
  std::atomic<std::int64_t> collective_failures_{0};
  // Liveness, serving thread only: the step of the last progress and what had happened by then.
  std::int64_t progress_step_ = 0;
  std::int64_t dropped_at_progress_ = 0, collective_at_progress_ = 0;
  std::int64_t deciding_since_ = -1;  // step the current decision was first seen out; -1 none
};

}  // namespace swiftbalancer
