// `swiftbalancer demo`'s command line: what it parses into (DemoArgs) and the option groups it
// registers (the model and workload, the balancer). cmd_demo.cpp runs and prints.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "swiftbalancer/demo/demo_engine.h"

namespace swiftbalancer::cli {

// A DeepSeek-V3 expert is about 44 MB (7168 x 2048 x 3 fp8); the demo's is 16.8 KB, about 2600x
// smaller. 0.2 Gbit/s is a 400 Gbit/s link scaled down by about 2000: one layer's moves take a
// fraction of a step, moving every layer at once (sync) a visible stall.
inline constexpr double kDefaultLinkGbps = 0.2;
inline constexpr int kDefaultTokens = 256;

struct DemoArgs {
  DemoOptions opt;
  std::string modes = "async,sync";
  std::string transport = "inprocess";
  std::string trace;
  std::string fault = "none";
  int fault_rank = -1;
  int fault_cycle = 1;
  int transfer_timeout_ms = 200;
  int worker_timeout_ms = 5000;
  int worker_poll_ms = 0;  // 0: the serving thread wakes the decision worker
  std::string report;
  bool quiet = false;
  bool verbose = false;
  int metrics_port = -1;  // -1: no metrics endpoint
  std::string device = "cpu";
  bool link_given = false;  // --link-gbps on the command line (cuda drops the default emulation)
};

// The model and its workload: sizes, skew and drift, the emulated link, the switches and the
// recovery figure.
void add_model_options(CLI::App* cmd, DemoOptions& o);
// The balancer: policy, cadence, window, commit rate, shift detection, timeouts and faults.
void add_balancer_options(CLI::App* cmd, DemoArgs& a);

}  // namespace swiftbalancer::cli
