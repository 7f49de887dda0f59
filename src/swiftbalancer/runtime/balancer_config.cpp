#include "swiftbalancer/runtime/balancer_config.h"

#include <algorithm>

#include "swiftbalancer/core/limits.h"
#include "swiftbalancer/core/splitmix.h"

namespace swiftbalancer {

const char* balancer_mode_name(BalancerMode mode) {
  switch (mode) {
    case BalancerMode::kAsync:
      return "async";
    case BalancerMode::kSync:
      return "sync";
    case BalancerMode::kOff:
      return "off";
  }
  return "?";
}

BalancerMode parse_balancer_mode(const std::string& name) {
  if (name == "async") return BalancerMode::kAsync;
  if (name == "sync") return BalancerMode::kSync;
  if (name == "off") return BalancerMode::kOff;
  throw InputError("unknown mode '" + name + "' (known: async, sync, off)");
}

const char* fault_kind_name(FaultInjection::Kind kind) {
  switch (kind) {
    case FaultInjection::Kind::kNone:
      return "none";
    case FaultInjection::Kind::kTransferTimeout:
      return "transfer-timeout";
    case FaultInjection::Kind::kWorkerException:
      return "worker-exception";
    case FaultInjection::Kind::kBadPlacement:
      return "bad-placement";
  }
  return "?";
}

FaultInjection::Kind parse_fault_kind(const std::string& name) {
  for (auto k : {FaultInjection::Kind::kNone, FaultInjection::Kind::kTransferTimeout,
                 FaultInjection::Kind::kWorkerException, FaultInjection::Kind::kBadPlacement})
    if (name == fault_kind_name(k)) return k;
  throw InputError("unknown fault '" + name +
                   "' (known: none, transfer-timeout, worker-exception, bad-placement)");
}

FaultInjection::Kind FaultInjection::in_cycle(std::int64_t c, int ranks, int* at_rank) const {
  if (random_rate <= 0.0) {
    *at_rank = rank;
    return (cycle < 0 || cycle == c) ? kind : Kind::kNone;
  }
  std::uint64_t s = splitmix64_hash(random_seed ^ splitmix64_hash(static_cast<std::uint64_t>(c)));
  const double u = static_cast<double>(splitmix64_next(s) >> 11) * 0x1.0p-53;
  if (u >= random_rate) return Kind::kNone;
  static constexpr Kind kinds[] = {Kind::kTransferTimeout, Kind::kWorkerException,
                                   Kind::kBadPlacement};
  *at_rank = static_cast<int>(splitmix64_next(s) % static_cast<std::uint64_t>(ranks));
  return kinds[splitmix64_next(s) % 3];
}

void validate_config(const BalancerConfig& c) {
  if (c.interval_steps < 1) throw InputError("interval_steps must be at least 1");
  if (c.window_intervals < 1) throw InputError("window_intervals must be at least 1");
  if (!(c.window_decay >= 0.0 && c.window_decay < 1.0))
    throw InputError("window_decay must be in [0, 1)");
  if (c.layers_per_step < 1) throw InputError("layers_per_step must be at least 1");
  if (c.decision_poll_steps < 1) throw InputError("decision_poll_steps must be at least 1");
  if (c.policy_threads < 1 || c.policy_threads > limits::kMaxPoolThreads)
    throw InputError("policy_threads must be 1 .. " + std::to_string(limits::kMaxPoolThreads));
  if (!(c.fault.random_rate >= 0.0 && c.fault.random_rate <= 1.0))
    throw InputError("fault.random_rate must be in [0, 1]");
  if (c.max_collective_failures < 1) throw InputError("max_collective_failures must be at least 1");
  if (c.stall_intervals < 0) throw InputError("stall_intervals must not be negative");
  if (c.tag_base < 0 || c.tag_base >= Transport::kMaxTag) throw InputError("tag_base out of range");
  if (c.worker_timeout.count() <= 0 || c.transfer_timeout.count() <= 0 ||
      c.collective_timeout.count() <= 0)
    throw InputError("timeouts must be positive");
  if (c.worker_poll.count() < 0 || c.worker_poll >= c.worker_timeout)
    throw InputError(
        "worker_poll must be 0 (the worker is woken) or positive and less than "
        "worker_timeout");
  // Detection off (shift.check_steps 0) ignores the other shift settings, as before.
  if (c.shift.check_steps < 0) throw InputError("shift.check_steps must not be negative");
  if (c.shift.check_steps > 0) c.shift.validate();
}

int staging_regions(const BalancerConfig& c) {
  const int shift_lps = c.shift.check_steps > 0 ? c.shift.layers_per_step : 0;
  return std::max(c.layers_per_step, shift_lps) + 1;
}

}  // namespace swiftbalancer
