// The replay's output: the plain-text table and the JSON text.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "swiftbalancer/replay/replay.h"

namespace swiftbalancer::replay {

std::string format_table(const ReplayResult& r) {
  std::string s;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-24s %8s %7s %7s %7s %7s %7s %9s %6s %9s %9s %9s %s\n", "policy",
                "imb mean", "p50", "p99", "max", "window", "future", "step ms", "rebal",
                "transfers", "GB moved", "stall s", "recover (steps)");
  s += buf;
  for (const PolicyResult& p : r.policies) {
    std::string rec;
    for (std::int64_t v : p.recover_steps) {
      if (!rec.empty()) rec.push_back(',');
      if (v < 0) {
        rec.append("never");
      } else {
        rec.append(std::to_string(v));
      }
    }
    if (rec.empty()) rec.assign(1, '-');
    std::snprintf(buf, sizeof buf,
                  "%-24s %8.3f %7.3f %7.3f %7.3f %7.3f %7.3f %9.3f %6lld %9lld %9.1f %9.3f %s\n",
                  p.spec.label.c_str(), p.mean_imbalance, p.p50_imbalance, p.p99_imbalance,
                  p.max_imbalance, p.window_imbalance, p.future_imbalance, p.mean_step_ms,
                  static_cast<long long>(p.rebalances), static_cast<long long>(p.transfers),
                  p.bytes / 1e9, p.stall_ms / 1e3, rec.c_str());
    s += buf;
  }
  return s;
}

std::string to_json_text(const ReplayResult& r) {
  using nlohmann::json;
  const ReplayConfig& c = r.config;
  json j;
  j["trace"] = {{"steps", r.steps}, {"layers", r.layers}, {"experts", r.experts}};
  j["config"] = {
      {"ranks", c.topo.ranks},
      {"slots_per_rank", c.topo.slots_per_rank},
      {"ranks_per_node", c.topo.ranks_per_node},
      {"interval", c.interval},
      {"window", c.decay > 0.0 ? json(nullptr) : json(c.window)},
      {"decay", c.decay},
      {"layers_per_step", c.layers_per_step},
      {"poll_steps", c.poll_steps},
      {"start", c.start_static ? "static" : "contiguous"},
      {"policy_ms", c.policy_ms < 0 ? json("measured") : json(c.policy_ms)},
      {"policy_steps", c.policy_steps < 0 ? json("from policy time") : json(c.policy_steps)},
      {"threshold", c.options.threshold},
      {"max_transfers", c.options.max_transfers},
      {"cost",
       {{"token_us", c.cost.token_us},
        {"layer_us", c.cost.layer_us},
        {"expert_mb", c.cost.expert_mb},
        {"intra_gbps", c.cost.intra_gbps},
        {"inter_gbps", c.cost.inter_gbps},
        {"check_us", c.cost.check_us}}},
      {"shift",
       {{"check_steps", c.shift.check_steps},
        {"trigger_ratio", c.shift.trigger_ratio},
        {"rearm_ratio", c.shift.rearm_ratio},
        {"min_gap_steps", c.shift.min_gap_steps},
        {"skip_below", c.shift.skip_below},
        {"layers_per_step", c.shift.layers_per_step}}},
      {"switch_at", c.switch_at},
      {"switch_blend", c.switch_blend},
      {"recover_window", c.recover_window},
      {"recover_tol", c.recover_tol},
  };
  j["wall_s"] = r.wall_s;
  j["trace_memory_bytes"] = r.peak_window_bytes;
  json pols = json::array();
  for (const PolicyResult& p : r.policies) {
    json ev = json::array();
    for (const RebalanceEvent& e : p.events)
      ev.push_back({{"decided", e.decided},
                    {"first_commit", e.first_commit},
                    {"last_commit", e.last_commit},
                    {"layers_changed", e.layers_changed},
                    {"transfers", e.transfers},
                    {"transfer_ms", e.transfer_ms},
                    {"policy_ms", e.policy_ms},
                    {"policy_steps", e.policy_steps},
                    {"shift", e.shift},
                    {"layers_preempted", e.layers_preempted},
                    {"window_imbalance", e.window_imbalance},
                    {"future_imbalance",
                     e.future_imbalance < 0 ? json(nullptr) : json(e.future_imbalance)}});
    json rec = json::array();
    for (std::int64_t v : p.recover_steps) rec.push_back(v < 0 ? json(nullptr) : json(v));
    pols.push_back({{"label", p.spec.label},
                    {"policy", p.spec.policy},
                    {"mode", mode_name(p.spec.mode)},
                    {"shift_detection", p.spec.shift},
                    {"shift_checks", p.shift_checks},
                    {"shift_triggers", p.shift_triggers},
                    {"preempted", p.preempted},
                    {"imbalance",
                     {{"mean", p.mean_imbalance},
                      {"p50", p.p50_imbalance},
                      {"p99", p.p99_imbalance},
                      {"max", p.max_imbalance},
                      {"window", p.window_imbalance},
                      {"future", p.future_imbalance}}},
                    {"mean_step_ms", p.mean_step_ms},
                    {"mean_compute_ms", p.mean_compute_ms},
                    {"policy_calls", p.policy_calls},
                    {"rebalances", p.rebalances},
                    {"skipped_gathers", p.skipped},
                    {"transfers", p.transfers},
                    {"bytes", p.bytes},
                    {"stall_ms", p.stall_ms},
                    {"policy_wall_ms", p.policy_wall_ms},
                    {"recover_steps", rec},
                    {"events", ev},
                    {"series", {{"imbalance", p.imbalance}, {"step_ms", p.step_ms}}}});
  }
  j["policies"] = pols;
  return j.dump(1);
}

}  // namespace swiftbalancer::replay
