// `demo --metrics-port`: serves the Prometheus metrics of the demo's live balancers while it
// runs. Each in-process rank announces its balancer through DemoOptions::on_balancer; a scrape
// reads every live balancer's counters() (thread-safe) and renders all ranks in one exposition
// (metrics_text_ranks: each family once, one sample per rank). A rank whose balancer is gone
// (between modes, after the run) shows the last counters it had; one not started yet, zeros.
//
// Ownership: DemoMetrics owns the server; the hook it installs shares the registry, so a late
// call after DemoMetrics is gone is harmless. Thread-safety: the hook may be called from any
// rank's thread concurrently with scrapes.
#pragma once

#include <memory>

#include "cli/metrics_server.h"
#include "swiftbalancer/demo/demo_engine.h"

namespace swiftbalancer::cli {

class DemoMetrics {
 public:
  // Serves on 127.0.0.1:port (0: any free port) and sets opt.on_balancer. Prints the address on
  // stdout. Throws InputError when the port cannot be had.
  DemoMetrics(int port, DemoOptions& opt);
  ~DemoMetrics();  // stops the server
  int port() const { return server_->port(); }

  struct Registry;

 private:
  std::shared_ptr<Registry> registry_;
  std::unique_ptr<MetricsServer> server_;
};

}  // namespace swiftbalancer::cli
