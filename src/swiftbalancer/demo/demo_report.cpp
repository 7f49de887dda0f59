#include "swiftbalancer/demo/demo_report.h"

#include <algorithm>
#include <utility>

#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/runtime/report_fields.h"

namespace swiftbalancer {
namespace {

std::vector<DemoSummary::Switch> switch_figures(const DemoResult& r, const DemoOptions& opt) {
  std::vector<DemoSummary::Switch> out;
  const auto& sw = opt.workload.switch_at;
  const int n = static_cast<int>(r.steps.size()), w = opt.recover_window;
  auto imb = [&r](int i) { return r.steps[static_cast<std::size_t>(i)].imbalance; };
  for (std::size_t j = 0; j < sw.size(); ++j) {
    DemoSummary::Switch f;
    f.step = sw[j];
    f.recover = j < r.recover_steps.size() ? r.recover_steps[j] : -1;
    const int s = f.step - 1;  // index of the first step on the new load
    const int end = j + 1 < sw.size() ? std::min(n, sw[j + 1] - 1) : n;
    int cnt = 0;
    for (int i = std::max(0, s - w); i < s && i < n; ++i) f.before += imb(i), ++cnt;
    f.before = cnt > 0 ? f.before / cnt : 0.0;
    for (int i = s; i < end; ++i) f.peak = std::max(f.peak, imb(i));
    for (int b = s; b < end && static_cast<int>(f.means.size()) < kDemoSwitchWindows; b += w) {
      double sum = 0;
      const int e = std::min(end, b + w);
      for (int i = b; i < e; ++i) sum += imb(i);
      f.means.push_back(sum / (e - b));
    }
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

DemoSummary summarize_demo(const DemoResult& r, const DemoOptions& opt) {
  const int interval = opt.balancer.interval_steps;
  DemoSummary s;
  s.switches = switch_figures(r, opt);
  std::vector<double> walls, bal, wait, copy, with_copy;
  double init_sum = 0, after_sum = 0, last_sum = 0;
  int init_n = 0, after_n = 0, last_n = 0;
  const int n = static_cast<int>(r.steps.size());
  for (int i = 0; i < n; ++i) {
    const DemoStep& d = r.steps[static_cast<std::size_t>(i)];
    walls.push_back(d.wall_ms);
    for (double v : d.balancer_us) bal.push_back(v);
    for (double v : d.wait_us) wait.push_back(v);
    for (std::size_t q = 0; q < d.copy_us.size(); ++q) {
      copy.push_back(d.copy_us[q]);
      with_copy.push_back(d.copy_us[q] + d.balancer_us[q]);
    }
    s.bytes += d.bytes_moved;
    if (i < interval) init_sum += d.imbalance, ++init_n;
    if (s.first_rebalance_step > 0 && i + 1 > s.first_rebalance_step)
      after_sum += d.imbalance, ++after_n;
    if (i >= n - interval) last_sum += d.imbalance, ++last_n;
    if (s.first_rebalance_step == 0 && d.rebalance_finished && d.layers_committed > 0)
      s.first_rebalance_step = i + 1;
    if (d.gathered || d.layers_committed > 0)
      s.balancer_action_max_ms = std::max(s.balancer_action_max_ms, d.wall_ms);
    if (d.layers_committed > 0 && d.wall_ms > s.commit_max_ms) {
      s.commit_max_ms = d.wall_ms;
      s.commit_max_step = i + 1;
      s.commit_max_bytes = d.bytes_moved;
    }
  }
  s.imbalance_initial = init_n ? init_sum / init_n : 0;
  s.imbalance_after = after_n ? after_sum / after_n : 0;
  s.imbalance_last = last_n ? last_sum / last_n : 0;
  s.step_median_ms = percentile(walls, 0.5);
  s.step_p99_ms = percentile(walls, 0.99);
  s.step_max_ms = percentile(walls, 1.0);
  s.balancer_p50_us = percentile(bal, 0.5);
  s.balancer_p99_us = percentile(bal, 0.99);
  s.balancer_max_us = percentile(bal, 1.0);
  s.wait_p99_us = percentile(wait, 0.99);
  s.wait_max_us = percentile(wait, 1.0);
  s.copy_p99_us = percentile(copy, 0.99);
  s.copy_max_us = percentile(copy, 1.0);
  s.with_copy_p99_us = percentile(with_copy, 0.99);
  return s;
}

double demo_transfer_gbps(const DemoSummary& s) {
  const double extra_s = (s.commit_max_ms - s.step_median_ms) / 1e3;
  return extra_s > 0 ? static_cast<double>(s.commit_max_bytes) / extra_s / 1e9 : 0.0;
}

nlohmann::json demo_run_json(const DemoResult& r, const DemoSummary& s) {
  nlohmann::json steps = nlohmann::json::array();
  for (std::size_t i = 0; i < r.steps.size(); ++i) {
    const DemoStep& d = r.steps[i];
    double bal_max = 0, wait_max = 0, copy_max = 0;
    for (double v : d.balancer_us) bal_max = std::max(bal_max, v);
    for (double v : d.copy_us) copy_max = std::max(copy_max, v);
    for (double v : d.wait_us) wait_max = std::max(wait_max, v);
    steps.push_back({{"step", i + 1},
                     {"wall_ms", d.wall_ms},
                     {"balancer_us", bal_max},
                     {"balancer_us_per_rank", d.balancer_us},
                     {"copy_us", copy_max},
                     {"wait_us", wait_max},
                     {"rank_tokens", d.rank_tokens},
                     {"imbalance", d.imbalance},
                     {"bytes_moved", d.bytes_moved},
                     {"layers_committed", d.layers_committed},
                     {"gathered", d.gathered},
                     {"errors", d.errors},
                     {"verified", d.verified},
                     {"mismatches", d.mismatches}});
  }
  nlohmann::json switches = nlohmann::json::array();
  for (const DemoSummary::Switch& f : s.switches)
    switches.push_back(
        {{"step", f.step},
         {"imbalance_before", f.before},
         {"peak_imbalance", f.peak},
         {"recover_steps", f.recover < 0 ? nlohmann::json(nullptr) : nlohmann::json(f.recover)},
         {"window_means", f.means}});
  const auto& c = r.counters;
  nlohmann::json out = {
      {"mode", r.mode},
      {"switches", std::move(switches)},
      {"seconds", r.seconds},
      {"totals",
       {{"verified_tokens", r.verified},
        {"mismatches", r.mismatches},
        {"bytes_moved", s.bytes},
        {"peak_staging_bytes", r.peak_staging_bytes},
        {"staging_bound_bytes", r.staging_bound_bytes},
        {"rss_warm_kb", r.rss_warm_kb},
        {"rss_end_kb", r.rss_end_kb},
        {"imbalance_first_interval", s.imbalance_initial},
        {"imbalance_after_first_rebalance", s.imbalance_after},
        {"imbalance_last_interval", s.imbalance_last},
        {"first_rebalance_step", s.first_rebalance_step},
        {"step_median_ms", s.step_median_ms},
        {"step_p99_ms", s.step_p99_ms},
        {"step_max_ms", s.step_max_ms},
        {"stall_ms", s.step_max_ms - s.step_median_ms},
        {"max_over_median", s.step_max_ms / s.step_median_ms},
        {"balancer_step_max_ms", s.balancer_action_max_ms},
        {"rebalance_step", s.commit_max_step},
        {"rebalance_step_ms", s.commit_max_ms},
        {"rebalance_step_bytes", s.commit_max_bytes},
        {"transfer_gbps", demo_transfer_gbps(s)},
        {"rebalance_step_over_median", s.commit_max_ms / s.step_median_ms},
        {"rebalance_stall_ms", s.commit_max_step > 0 ? s.commit_max_ms - s.step_median_ms : 0.0},
        {"balancer_step_max_over_median", s.balancer_action_max_ms / s.step_median_ms},
        {"balancer_us_p50", s.balancer_p50_us},
        {"balancer_us_p99", s.balancer_p99_us},
        {"balancer_us_max", s.balancer_max_us},
        {"copy_us_p99", s.copy_p99_us},
        {"copy_us_max", s.copy_max_us},
        {"balancer_with_copy_us_p99", s.with_copy_p99_us},
        {"wait_us_p99", s.wait_p99_us},
        {"wait_us_max", s.wait_max_us}}}};
  // The counters the table marks for the demo (runtime/report_fields.h), under their own names.
  nlohmann::json& totals = out["totals"];
#define SWIFTBALANCER_DEMO_TOTAL(field, type, kind, family, label, demo, help) \
  if (demo) totals[#field] = c.field;
  SWIFTBALANCER_COUNTER_FIELDS(SWIFTBALANCER_DEMO_TOTAL)
#undef SWIFTBALANCER_DEMO_TOTAL
  out["steps"] = std::move(steps);
  return out;
}

}  // namespace swiftbalancer
