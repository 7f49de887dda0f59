// What the two runtime extensions share (_runtime over in-process ranks, _torch over a torch
// engine's groups): StepStats and BalancerCounters as Python dicts, and the name of the capsule
// that carries a BalancerConfig from one to the other. Header-only on purpose: each module
// compiles it against its own pybind11.
#pragma once

#include <pybind11/pybind11.h>

#include "swiftbalancer/runtime/balancer_config.h"

namespace swiftbalancer::python {

inline constexpr const char* kConfigCapsuleName = "swiftbalancer.BalancerConfig";

// Every field of StepStats (the rows of SWIFTBALANCER_STEP_FIELDS, runtime/report_fields.h).
inline pybind11::dict stats_dict(const StepStats& s) {
  pybind11::dict d;
#define SWIFTBALANCER_DICT_ITEM(field, type, help) d[#field] = s.field;
  SWIFTBALANCER_STEP_FIELDS(SWIFTBALANCER_DICT_ITEM)
#undef SWIFTBALANCER_DICT_ITEM
  return d;
}

// Every row of SWIFTBALANCER_COUNTER_FIELDS (runtime/report_fields.h), then the figures outside
// the table: the histogram's sum (its buckets are in metrics_text()) and the two strings.
inline pybind11::dict counters_dict(const BalancerCounters& c) {
  pybind11::dict d;
#define SWIFTBALANCER_DICT_ITEM(field, type, kind, family, label, demo, help) d[#field] = c.field;
  SWIFTBALANCER_COUNTER_FIELDS(SWIFTBALANCER_DICT_ITEM)
#undef SWIFTBALANCER_DICT_ITEM
  d["rebalance_seconds_sum"] = c.rebalance_seconds_sum;
  d["last_error"] = c.last_error;
  d["stall_reason"] = c.stall_reason;
  return d;
}

}  // namespace swiftbalancer::python
