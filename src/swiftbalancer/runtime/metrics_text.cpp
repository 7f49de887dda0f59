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

// One row of SWIFTBALANCER_COUNTER_FIELDS: how to read and render its sample.
struct Row {
  const char* family;
  const char* label;
  MetricKind kind;
  const char* help;
  std::string (*value)(const BalancerCounters&);
};

// Counters as integers, gauges as the shortest text of their double.
std::string render(MetricKind kind, std::int64_t v) {
  return kind == MetricKind::kCounter ? std::to_string(v) : number(static_cast<double>(v));
}
std::string render(MetricKind, double v) {
  return number(v);
}

#define SWIFTBALANCER_ROW(field, type, kind, family, label, demo, help) \
  {family, label, MetricKind::kind, help,                               \
   [](const BalancerCounters& c) { return render(MetricKind::kind, c.field); }},
constexpr Row kRows[] = {SWIFTBALANCER_COUNTER_FIELDS(SWIFTBALANCER_ROW)};
#undef SWIFTBALANCER_ROW

std::string exposition(std::span<const Source> sources) {
  using C = BalancerCounters;
  Writer w(sources);
  // The table's families in its order: consecutive rows of one family share its header.
  const std::span<const Row> rows(kRows);
  for (std::size_t i = 0; i < rows.size();) {
    std::size_t end = i + 1;
    while (end < rows.size() && std::string_view(rows[end].family) == rows[i].family) ++end;
    const char* type = rows[i].kind == MetricKind::kCounter ? "counter" : "gauge";
    w.family(rows[i].family, type, rows[i].help, [&](const C& c) {
      for (std::size_t j = i; j < end; ++j)
        w.sample(rows[j].family, rows[j].label, rows[j].value(c));
    });
    i = end;
  }
  w.family("rebalance_duration_seconds", "histogram",
           "From the gather that started a rebalance to its last layer.", [&](const C& c) {
             std::int64_t cumulative = 0;
             const auto& bounds = C::kRebalanceSecondsBounds;
             for (std::size_t b = 0; b <= bounds.size(); ++b) {
               cumulative += c.rebalance_seconds_buckets[b];
               const std::string le = b < bounds.size() ? number(bounds[b]) : "+Inf";
               w.sample("rebalance_duration_seconds_bucket", "le=\"" + le + "\"",
                        std::to_string(cumulative));
             }
             w.sample("rebalance_duration_seconds_sum", "", number(c.rebalance_seconds_sum));
             w.sample("rebalance_duration_seconds_count", "", std::to_string(cumulative));
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
