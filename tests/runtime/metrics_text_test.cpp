// Prometheus exposition of the counters: exact samples for hand-set counters.
#include "swiftbalancer/runtime/metrics_text.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

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

// Every row of the counter table (runtime/report_fields.h) is a sample of its family, with its
// own value: each field gets a distinct value, and the text must carry exactly that value
// under the row's family and label.
TEST(MetricsText, EveryRowOfTheCounterTableIsASampleWithItsValue) {
  BalancerCounters c;
  int next = 1;
#define SET_FIELD(field, type, kind, family, label, demo, help) \
  c.field = static_cast<type>(100 + next++);
  SWIFTBALANCER_COUNTER_FIELDS(SET_FIELD)
#undef SET_FIELD
  const std::string t = metrics_text(c, {{"rank", "1"}});
  int rows = 0, value = 101;
#define CHECK_ROW(field, type, kind, family, label, demo, help)                                \
  {                                                                                            \
    const std::string l(label);                                                                \
    const std::string line = std::string("swiftbalancer_") + family + "{rank=\"1\"" +          \
                             (l.empty() ? "" : "," + l) + "} " + std::to_string(value++);      \
    EXPECT_TRUE(has_line(t, line)) << #field << ": no line " << line << "\n" << t;             \
    EXPECT_NE(t.find(std::string("# TYPE swiftbalancer_") + family + " " +                     \
                     (MetricKind::kind == MetricKind::kCounter ? "counter" : "gauge") + "\n"), \
              std::string::npos)                                                               \
        << #field;                                                                             \
    ++rows;                                                                                    \
  }
  SWIFTBALANCER_COUNTER_FIELDS(CHECK_ROW)
#undef CHECK_ROW
  EXPECT_GE(rows, 28);
  // Each sample once: the table's rows, the histogram's 10 buckets, its sum and its count.
  int samples = 0;
  for (std::size_t p = 0; (p = t.find("\nswiftbalancer_", p)) != std::string::npos; ++p) ++samples;
  EXPECT_EQ(samples, rows + 12);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST(MetricsText, RanksShareEachFamilyOnce) {
  BalancerCounters a, b;
  a.steps = 7;
  a.bytes_received = 100;
  a.rebalance_seconds_buckets[0] = 2;
  a.rebalance_seconds_sum = 0.25;
  b.steps = 9;
  b.transfer_failures = 1;
  b.imbalance_after = 1.5;
  const BalancerCounters both[] = {a, b};
  const std::string t = metrics_text_ranks(both);
  // Exact excerpt: one header, then one sample per rank in rank order.
  EXPECT_NE(t.find("# HELP swiftbalancer_steps_total Serving steps seen by the balancer.\n"
                   "# TYPE swiftbalancer_steps_total counter\n"
                   "swiftbalancer_steps_total{rank=\"0\"} 7\n"
                   "swiftbalancer_steps_total{rank=\"1\"} 9\n"
                   "# HELP swiftbalancer_gathers_total"),
            std::string::npos)
      << t;
  EXPECT_TRUE(has_line(t, "swiftbalancer_failures_total{rank=\"1\",kind=\"transfer\"} 1"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_bytes_total{rank=\"0\",direction=\"received\"} 100"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_imbalance{rank=\"1\",placement=\"after\"} 1.5"));
  EXPECT_TRUE(
      has_line(t, "swiftbalancer_rebalance_duration_seconds_bucket{rank=\"0\",le=\"+Inf\"} 2"));
  EXPECT_TRUE(has_line(t, "swiftbalancer_rebalance_duration_seconds_count{rank=\"1\"} 0"));

  // Invariants: every HELP/TYPE line once; the samples are exactly those of each rank's own
  // exposition with its rank label; a family's samples follow its header.
  const auto all = lines_of(t);
  std::vector<std::string> headers, samples;
  for (const auto& l : all) (l.rfind("# ", 0) == 0 ? headers : samples).push_back(l);
  std::vector<std::string> sorted = headers;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << t;
  std::vector<std::string> expected_headers, expected_samples;
  for (int r = 0; r < 2; ++r)
    for (const auto& l : lines_of(metrics_text(both[r], {{"rank", std::to_string(r)}}))) {
      if (l.rfind("# ", 0) != 0)
        expected_samples.push_back(l);
      else if (r == 0)
        expected_headers.push_back(l);
    }
  EXPECT_EQ(headers, expected_headers);
  std::sort(samples.begin(), samples.end());
  std::sort(expected_samples.begin(), expected_samples.end());
  EXPECT_EQ(samples, expected_samples);
  std::string family;
  for (const auto& l : all) {
    if (l.rfind("# TYPE swiftbalancer_", 0) == 0) family = l.substr(7, l.find(' ', 7) - 7);
    if (l.rfind("# ", 0) != 0) {
      EXPECT_EQ(l.rfind(family, 0), 0u) << l << " after " << family;
    }
  }
  // One rank: the same text as that rank's own exposition.
  EXPECT_EQ(metrics_text_ranks(std::span(both, 1)), metrics_text(a, {{"rank", "0"}}));
  // No ranks: the headers alone.
  EXPECT_EQ(lines_of(metrics_text_ranks({})), expected_headers);
}

}  // namespace
}  // namespace swiftbalancer
