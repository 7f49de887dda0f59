// Prometheus text exposition (format 0.0.4) of a balancer's counters: what a metrics endpoint
// serves. Labels have bounded cardinality: the rank (and whatever constant labels the caller
// passes), never a layer or an expert.
//
// Metric names (prefix swiftbalancer_): steps_total, gathers_total, cycles_started_total,
// cycles_agreed_total, cycles_dropped_total, rebalances_total, layers_committed_total,
// layers_failed_total, failures_total{kind=transfer|worker|invalid_placement|collective},
// errors_total, bytes_sent_total, bytes_received_total, staging_peak_bytes,
// staging_parked_bytes, balancing_stopped, rebalance_duration_seconds (histogram),
// imbalance{placement=before|after}.
//
// Pure; thread-safe.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "swiftbalancer/runtime/balancer_config.h"

namespace swiftbalancer {

// `labels`: constant labels added to every sample, e.g. {{"rank", "0"}}. Label values are
// escaped; names must be valid Prometheus label names (InputError otherwise).
std::string metrics_text(const BalancerCounters& counters,
                         const std::vector<std::pair<std::string, std::string>>& labels = {});

}  // namespace swiftbalancer
