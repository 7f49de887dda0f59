// Prometheus text exposition (format 0.0.4) of a balancer's counters: what a metrics endpoint
// serves. Labels have bounded cardinality: the rank (and whatever constant labels the caller
// passes), never a layer or an expert.
//
// Metric names (prefix swiftbalancer_, the same families as the Python collector
// swiftbalancer.prometheus): one family per row (or run of rows) of SWIFTBALANCER_COUNTER_FIELDS
// in runtime/report_fields.h, in its order, e.g. steps_total, cycles_total{outcome=...},
// failures_total{kind=...}, bytes_total{direction=...}, the gauges staging_peak_bytes and
// imbalance{placement=before|after}; then the histogram rebalance_duration_seconds.
//
// Pure; thread-safe.
#pragma once

#include <span>
#include <string>
#include <utility>
#include <vector>

#include "swiftbalancer/runtime/balancer_config.h"

namespace swiftbalancer {

// `labels`: constant labels added to every sample, e.g. {{"rank", "0"}}. Label values are
// escaped; names must be valid Prometheus label names (InputError otherwise).
std::string metrics_text(const BalancerCounters& counters,
                         const std::vector<std::pair<std::string, std::string>>& labels = {});

// Several ranks in one exposition (what one endpoint serving in-process ranks shows): each
// family's HELP and TYPE once, then its samples for rank 0, 1, ... labelled rank="<index>".
// For one rank it equals metrics_text(ranks[0], {{"rank", "0"}}).
std::string metrics_text_ranks(std::span<const BalancerCounters> ranks);

}  // namespace swiftbalancer
