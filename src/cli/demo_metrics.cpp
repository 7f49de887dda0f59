#include "cli/demo_metrics.h"

#include <cstdio>
#include <mutex>
#include <vector>

#include "swiftbalancer/runtime/metrics_text.h"

namespace swiftbalancer::cli {

// live[r] is rank r's balancer while it exists; last[r] its counters when it was last read.
// Invariant: a pointer in live is only used under mu, and the rank removes it (under mu) before
// its balancer is destroyed, so a scrape never reads a destroyed balancer.
struct DemoMetrics::Registry {
  explicit Registry(int ranks)
      : live(static_cast<std::size_t>(ranks), nullptr), last(static_cast<std::size_t>(ranks)) {}

  void announce(int rank, const Balancer* b) {
    std::lock_guard lock(mu);
    if (rank < 0 || static_cast<std::size_t>(rank) >= live.size()) return;
    const Balancer*& slot = live[static_cast<std::size_t>(rank)];
    if (slot != nullptr) last[static_cast<std::size_t>(rank)] = slot->counters();
    slot = b;
  }

  std::string text() {
    std::lock_guard lock(mu);
    for (std::size_t r = 0; r < live.size(); ++r)
      if (live[r] != nullptr) last[r] = live[r]->counters();
    return metrics_text_ranks(last);
  }

  std::mutex mu;
  std::vector<const Balancer*> live;
  std::vector<BalancerCounters> last;
};

DemoMetrics::DemoMetrics(int port, DemoOptions& opt)
    : registry_(std::make_shared<Registry>(opt.ranks)) {
  server_ = std::make_unique<MetricsServer>(port, [reg = registry_] { return reg->text(); });
  opt.on_balancer = [reg = registry_](int rank, const Balancer* b) { reg->announce(rank, b); };
  std::printf("metrics: serving http://127.0.0.1:%d/metrics while the demo runs\n",
              server_->port());
  std::fflush(stdout);
}

DemoMetrics::~DemoMetrics() {
  server_->stop();
}

}  // namespace swiftbalancer::cli
