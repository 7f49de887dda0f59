#include "swiftbalancer/runtime/metrics_text.h"

#include <charconv>
#include <string_view>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {
namespace {

bool valid_label_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return name.rfind("__", 0) != 0;
}

std::string escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// Shortest text that reads back as the same double.
std::string number(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

class Writer {
 public:
  explicit Writer(std::string base_labels) : base_(std::move(base_labels)) {}

  void header(const char* name, const char* type, const char* help) {
    out_ += std::string("# HELP swiftbalancer_") + name + " " + help + "\n";
    out_ += std::string("# TYPE swiftbalancer_") + name + " " + type + "\n";
  }
  void sample(std::string_view name, const std::string& extra, const std::string& value) {
    out_ += "swiftbalancer_";
    out_ += name;
    std::string labels = base_;
    if (!extra.empty()) labels += (labels.empty() ? "" : ",") + extra;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += " " + value + "\n";
  }
  void counter(const char* name, const char* help, std::int64_t v) {
    header(name, "counter", help);
    sample(name, "", std::to_string(v));
  }
  void gauge(const char* name, const char* help, double v) {
    header(name, "gauge", help);
    sample(name, "", number(v));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string base_;
  std::string out_;
};

}  // namespace

std::string metrics_text(const BalancerCounters& c,
                         const std::vector<std::pair<std::string, std::string>>& labels) {
  std::string base;
  for (const auto& [k, v] : labels) {
    if (!valid_label_name(k)) throw InputError("metrics: invalid label name '" + k + "'");
    base += (base.empty() ? "" : ",") + k + "=\"" + escape(v) + "\"";
  }
  Writer w(base);
  w.counter("steps_total", "Serving steps seen by the balancer.", c.steps);
  w.counter("gathers_total", "Load all-gathers.", c.gathers);
  w.counter("rebalances_total", "Cycles that committed at least one layer.", c.rebalances);
  w.counter("errors_total", "Failures reported (all kinds).", c.errors);
  w.header("cycles_total", "counter", "Decision cycles by outcome.");
  w.sample("cycles_total", "outcome=\"started\"", std::to_string(c.cycles_started));
  w.sample("cycles_total", "outcome=\"agreed\"", std::to_string(c.cycles_agreed));
  w.sample("cycles_total", "outcome=\"dropped\"", std::to_string(c.cycles_dropped));
  w.header("layers_total", "counter", "Layer moves by outcome.");
  w.sample("layers_total", "outcome=\"committed\"", std::to_string(c.layers_committed));
  w.sample("layers_total", "outcome=\"failed\"", std::to_string(c.layers_failed));
  w.header("failures_total", "counter", "Failures by kind.");
  w.sample("failures_total", "kind=\"transfer\"", std::to_string(c.transfer_failures));
  w.sample("failures_total", "kind=\"worker\"", std::to_string(c.worker_failures));
  w.sample("failures_total", "kind=\"invalid_placement\"", std::to_string(c.invalid_placements));
  w.sample("failures_total", "kind=\"collective\"", std::to_string(c.collective_failures));
  w.header("bytes_total", "counter", "Expert bytes moved by this rank.");
  w.sample("bytes_total", "direction=\"sent\"", std::to_string(c.bytes_sent));
  w.sample("bytes_total", "direction=\"received\"", std::to_string(c.bytes_received));
  w.gauge("staging_peak_bytes", "Most staging memory held at once.",
          static_cast<double>(c.peak_staging_bytes));
  w.gauge("staging_parked_bytes", "Staging kept after transfers that could not be cancelled.",
          static_cast<double>(c.parked_staging_bytes));
  w.gauge("balancing_stopped", "1 once the balancer fell back to recording only.",
          static_cast<double>(c.balancing_stopped));
  w.header("rebalance_duration_seconds", "histogram",
           "From the gather that started a rebalance to its last layer.");
  std::int64_t cumulative = 0;
  const auto& bounds = BalancerCounters::kRebalanceSecondsBounds;
  for (std::size_t b = 0; b <= bounds.size(); ++b) {
    cumulative += c.rebalance_seconds_buckets[b];
    const std::string le = b < bounds.size() ? number(bounds[b]) : "+Inf";
    w.sample("rebalance_duration_seconds_bucket", "le=\"" + le + "\"", std::to_string(cumulative));
  }
  w.sample("rebalance_duration_seconds_sum", "", number(c.rebalance_seconds_sum));
  w.sample("rebalance_duration_seconds_count", "", std::to_string(cumulative));
  w.header("imbalance", "gauge",
           "Mean over layers of max/mean rank load of the last rebalance's window.");
  w.sample("imbalance", "placement=\"before\"", number(c.imbalance_before));
  w.sample("imbalance", "placement=\"after\"", number(c.imbalance_after));
  return w.take();
}

}  // namespace swiftbalancer
