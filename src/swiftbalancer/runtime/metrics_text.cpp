#include "swiftbalancer/runtime/metrics_text.h"

#include <charconv>
#include <span>
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

// One source of samples: a set of counters and the labels that tell it apart.
struct Source {
  std::string labels;  // rendered, e.g. rank="0"
  const BalancerCounters* counters;
};

// Writes each family once: its HELP and TYPE lines, then its samples for every source in order.
class Writer {
 public:
  explicit Writer(std::span<const Source> sources) : sources_(sources) {}

  template <typename Samples>
  void family(const char* name, const char* type, const char* help, Samples samples) {
    out_ += std::string("# HELP swiftbalancer_") + name + " " + help + "\n";
    out_ += std::string("# TYPE swiftbalancer_") + name + " " + type + "\n";
    for (const Source& s : sources_) {
      labels_ = &s.labels;
      samples(*s.counters);
    }
  }
  void sample(std::string_view name, const std::string& extra, const std::string& value) {
    out_ += "swiftbalancer_";
    out_ += name;
    std::string labels = *labels_;
    if (!extra.empty()) labels += (labels.empty() ? "" : ",") + extra;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += " " + value + "\n";
  }
  void counter(const char* name, const char* help, std::int64_t BalancerCounters::*field) {
    family(name, "counter", help,
           [&](const BalancerCounters& c) { sample(name, "", std::to_string(c.*field)); });
  }
  template <typename Field>
  void gauge(const char* name, const char* help, Field BalancerCounters::*field) {
    family(name, "gauge", help, [&](const BalancerCounters& c) {
      sample(name, "", number(static_cast<double>(c.*field)));
    });
  }
  std::string take() { return std::move(out_); }

 private:
  std::span<const Source> sources_;
  const std::string* labels_ = nullptr;
  std::string out_;
};

std::string render_labels(const std::vector<std::pair<std::string, std::string>>& labels) {
  std::string base;
  for (const auto& [k, v] : labels) {
    if (!valid_label_name(k)) throw InputError("metrics: invalid label name '" + k + "'");
    base += (base.empty() ? "" : ",") + k + "=\"" + escape(v) + "\"";
  }
  return base;
}

std::string exposition(std::span<const Source> sources) {
  using C = BalancerCounters;
  Writer w(sources);
  auto n = [](std::int64_t v) { return std::to_string(v); };
  w.counter("steps_total", "Serving steps seen by the balancer.", &C::steps);
  w.counter("gathers_total", "Load all-gathers.", &C::gathers);
  w.counter("rebalances_total", "Cycles that committed at least one layer.", &C::rebalances);
  w.counter("errors_total", "Failures reported (all kinds).", &C::errors);
  w.family("cycles_total", "counter", "Decision cycles by outcome.", [&](const C& c) {
    w.sample("cycles_total", "outcome=\"started\"", n(c.cycles_started));
    w.sample("cycles_total", "outcome=\"agreed\"", n(c.cycles_agreed));
    w.sample("cycles_total", "outcome=\"dropped\"", n(c.cycles_dropped));
  });
  w.family("layers_total", "counter", "Layer moves by outcome.", [&](const C& c) {
    w.sample("layers_total", "outcome=\"committed\"", n(c.layers_committed));
    w.sample("layers_total", "outcome=\"failed\"", n(c.layers_failed));
  });
  w.family("failures_total", "counter", "Failures by kind.", [&](const C& c) {
    w.sample("failures_total", "kind=\"transfer\"", n(c.transfer_failures));
    w.sample("failures_total", "kind=\"worker\"", n(c.worker_failures));
    w.sample("failures_total", "kind=\"invalid_placement\"", n(c.invalid_placements));
    w.sample("failures_total", "kind=\"collective\"", n(c.collective_failures));
  });
  w.family("bytes_total", "counter", "Expert bytes moved by this rank.", [&](const C& c) {
    w.sample("bytes_total", "direction=\"sent\"", n(c.bytes_sent));
    w.sample("bytes_total", "direction=\"received\"", n(c.bytes_received));
  });
  w.counter("shift_checks_total", "Shift-detection checks of the imbalance in service.",
            &C::shift_checks);
  w.counter("shift_triggers_total", "Cycles started early by shift detection.", &C::shift_triggers);
  w.counter("shift_preemptions_total", "Cycles in flight pre-empted by a shift.",
            &C::shift_preemptions);
  w.counter("shift_layers_preempted_total", "Layers a pre-empted cycle left on the old placement.",
            &C::shift_layers_preempted);
  w.gauge("staging_peak_bytes", "Most staging memory held at once.", &C::peak_staging_bytes);
  w.gauge("staging_parked_bytes", "Staging kept after transfers that could not be cancelled.",
          &C::parked_staging_bytes);
  w.gauge("balancing_stopped", "1 once the balancer fell back to recording only.",
          &C::balancing_stopped);
  w.gauge("steps_since_progress", "Steps since a decision cycle was last agreed.",
          &C::steps_since_progress);
  w.gauge("stalled",
          "1 while no cycle has been agreed for stall_intervals intervals (see the log for why).",
          &C::stalled);
  w.counter("stall_warnings_total", "Times the balancer warned that balancing had stalled.",
            &C::stall_warnings);
  w.family("rebalance_duration_seconds", "histogram",
           "From the gather that started a rebalance to its last layer.", [&](const C& c) {
             std::int64_t cumulative = 0;
             const auto& bounds = C::kRebalanceSecondsBounds;
             for (std::size_t b = 0; b <= bounds.size(); ++b) {
               cumulative += c.rebalance_seconds_buckets[b];
               const std::string le = b < bounds.size() ? number(bounds[b]) : "+Inf";
               w.sample("rebalance_duration_seconds_bucket", "le=\"" + le + "\"", n(cumulative));
             }
             w.sample("rebalance_duration_seconds_sum", "", number(c.rebalance_seconds_sum));
             w.sample("rebalance_duration_seconds_count", "", n(cumulative));
           });
  w.family("imbalance", "gauge",
           "Mean over layers of max/mean rank load of the last rebalance's window.",
           [&](const C& c) {
             w.sample("imbalance", "placement=\"before\"", number(c.imbalance_before));
             w.sample("imbalance", "placement=\"after\"", number(c.imbalance_after));
           });
  return w.take();
}

}  // namespace

std::string metrics_text(const BalancerCounters& c,
                         const std::vector<std::pair<std::string, std::string>>& labels) {
  const Source one[] = {{render_labels(labels), &c}};
  return exposition(one);
}

std::string metrics_text_ranks(std::span<const BalancerCounters> ranks) {
  std::vector<Source> sources;
  sources.reserve(ranks.size());
  for (std::size_t r = 0; r < ranks.size(); ++r)
    sources.push_back({"rank=\"" + std::to_string(r) + "\"", &ranks[r]});
  return exposition(sources);
}

}  // namespace swiftbalancer
