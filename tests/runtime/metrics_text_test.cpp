// Prometheus exposition of the counters: exact samples for hand-set counters.
#include "swiftbalancer/runtime/metrics_text.h"

#include <gtest/gtest.h>

#include <string>

namespace swiftbalancer {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(MetricsText, ExposesEveryCounterWithBoundedLabels) {
  BalancerCounters c;
  c.steps = 120;
  c.rebalances = 2;
  c.transfer_failures = 1;
  c.worker_failures = 3;
  c.bytes_sent = 4096;
  c.peak_staging_bytes = 640;
  c.rebalance_seconds_buckets[1] = 1;  // one rebalance in (0.01, 0.05]
  c.rebalance_seconds_buckets[9] = 1;  // one over 60 s
  c.rebalance_seconds_sum = 61.03;
  c.imbalance_before = 1.5;
  c.imbalance_after = 1.0625;
  const std::string t = metrics_text(c, {{"rank", "3"}});
  EXPECT_TRUE(has_line(t, "# TYPE swiftbalancer_steps_total counter"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_steps_total{rank=\"3\"} 120"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_rebalances_total{rank=\"3\"} 2"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_failures_total{rank=\"3\",kind=\"transfer\"} 1"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_failures_total{rank=\"3\",kind=\"worker\"} 3"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_bytes_total{rank=\"3\",direction=\"sent\"} 4096"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_cycles_total{rank=\"3\",outcome=\"agreed\"} 0"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_staging_peak_bytes{rank=\"3\"} 640"));
  // Cumulative buckets.
  EXPECT_TRUE(
      has_line(t, "swiftbalancer_rebalance_duration_seconds_bucket{rank=\"3\",le=\"0.01\"} 0"));
  EXPECT_TRUE(
      has_line(t, "swiftbalancer_rebalance_duration_seconds_bucket{rank=\"3\",le=\"0.05\"} 1"));
  EXPECT_TRUE(
      has_line(t, "swiftbalancer_rebalance_duration_seconds_bucket{rank=\"3\",le=\"60\"} 1"));
  EXPECT_TRUE(
      has_line(t, "swiftbalancer_rebalance_duration_seconds_bucket{rank=\"3\",le=\"+Inf\"} 2"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_rebalance_duration_seconds_count{rank=\"3\"} 2"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_imbalance{rank=\"3\",placement=\"after\"} 1.0625"));
  EXPECT_EQ(t.find("layer="), std::string::npos);  // no per-layer label
  EXPECT_THROW(metrics_text(c, {{"bad-name", "x"}}), InputError);
  EXPECT_TRUE(has_line(metrics_text(c, {{"model", "a\"b"}}),
                       "swiftbalancer_steps_total{model=\"a\\\"b\"} 120"));
}

}  // namespace
}  // namespace swiftbalancer
