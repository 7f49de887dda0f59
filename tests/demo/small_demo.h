// The small demo both demo test files run: 3 ranks x 4 slots, 3 layers x 9 experts, 60 steps,
// decisions polled every step by a worker at normal priority (a nice-19 worker can starve for
// the whole short run on a busy 2-core test machine, and the decisions the tests count would
// never arrive).
#pragma once

#include <chrono>
#include <string>

#include "swiftbalancer/demo/demo_engine.h"

namespace swiftbalancer::testing {

inline DemoOptions small_demo(BalancerMode mode, Millis transfer_timeout) {
  DemoOptions o;
  o.ranks = 3;
  o.slots_per_rank = 4;
  o.mlp = {8, 16};
  o.steps = 60;
  o.workload.layers = 3;
  o.workload.experts = 9;
  o.workload.tokens_per_rank = 16;
  o.workload.skew = 1.5;
  o.balancer.mode = mode;
  o.balancer.interval_steps = 8;
  o.balancer.window_intervals = 2;
  o.balancer.decision_poll_steps = 1;
  o.balancer.transfer_timeout = transfer_timeout;
  o.balancer.background_worker = false;
  o.balancer.log = [](LogSeverity, const std::string&) {};
  return o;
}

}  // namespace swiftbalancer::testing
