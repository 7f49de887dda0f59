// The demo MoE engine: R ranks serve a small MoE model through the Balancer, and every token's
// output is checked bit for bit against a reference computed from the canonical weights.
//
// Per rank and step: before_forward(); per layer: route tokens through the routing table
// (Workload picks experts, RoutingTable picks the slot), dispatch (TokenDispatcher), record the
// per-slot counts, apply_mlp with the weights in the slot (expert_mlp.h), combine, verify;
// after_forward(). The per-step records of all ranks are all-gathered at the end, so every rank
// returns the same DemoResult.
//
// Thread-safety: run_demo_rank() runs one rank on the calling thread; CanonicalExperts is
// read-only after construction and may be shared by in-process ranks.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "swiftbalancer/demo/demo_workload.h"
#include "swiftbalancer/demo/expert_mlp.h"
#include "swiftbalancer/runtime/balancer.h"

namespace swiftbalancer {

struct DemoOptions {
  int ranks = 4;
  int slots_per_rank = 10;
  MlpShape mlp{32, 64};
  int steps = 600;
  std::string policy = "swift";
  WorkloadSpec workload{};  // layers, experts, topk, tokens per rank, skew, drift, trace, switches
  BalancerConfig balancer{};  // mode, interval, window, layers per step, timeouts, fault
  Millis dispatch_timeout{30000};
  // Emulated bandwidth of each rank's link for weight transfers, in Gbit/s per direction
  // (demo/emulated_link.h); 0: no emulation, transfers take what the transport takes.
  double link_gbps = 0;
  // Recovery figure after each workload.switch_at (core/metrics.h recovery_steps, as in replay):
  // steps from the switch until the imbalance averaged over recover_window steps is at most
  // (1 + recover_tol) x its average over the recover_window steps before the switch.
  int recover_window = 10;
  double recover_tol = 0.05;
  // When set: called on the rank's thread with its balancer once constructed, and with nullptr
  // before that balancer is destroyed (also when the run fails), so that another thread may read
  // its counters() (thread-safe) in between, e.g. to serve metrics.
  std::function<void(int rank, const Balancer* balancer)> on_balancer;
};

// All canonical expert weights, [layer][expert][tensor].
class CanonicalExperts {
 public:
  CanonicalExperts(const MlpShape& shape, int layers, int experts, std::uint64_t seed);
  std::span<const std::byte> tensor(int layer, int expert, int t) const;
  std::size_t expert_bytes() const { return expert_bytes_; }

 private:
  std::array<std::size_t, 3> sizes_{};
  std::size_t expert_bytes_ = 0;
  int experts_ = 0;
  std::vector<std::byte> data_;
};

struct DemoStep {
  double wall_ms = 0;                     // slowest rank
  std::vector<std::int64_t> rank_tokens;  // rows computed per rank, summed over layers
  double imbalance = 0;                   // mean over layers of max/mean rank rows
  std::vector<double> balancer_us;        // per rank: balancer time on the serving thread
  std::vector<double> copy_us;            // per rank: weight copies on the serving thread
  std::vector<double> wait_us;            // per rank: blocked on transfers and collectives
  std::int64_t bytes_moved = 0;           // expert bytes sent over the transport, all ranks
  int layers_committed = 0;
  int errors = 0;             // balancer errors reported, all ranks
  std::int64_t verified = 0;  // token outputs checked (token x layer), all ranks
  std::int64_t mismatches = 0;
  bool gathered = false;
  bool rebalance_finished = false;
};

struct DemoResult {
  std::string mode;
  std::vector<DemoStep> steps;
  BalancerCounters counters;  // rank 0's
  std::int64_t verified = 0, mismatches = 0;
  // Staging: the largest peak of any rank, and its bound staging_regions() (layers_per_step + 1,
  // or max(layers_per_step, shift_layers_per_step) + 1 with shift detection) x slots per rank x
  // expert bytes (docs/runtime.md "Staging memory").
  std::int64_t peak_staging_bytes = 0, staging_bound_bytes = 0;
  // Resident memory of the process (largest over ranks' processes), after a warm-up of a fifth
  // of the steps and at the end: a flat line says nothing accumulates (soak runs). 0 where
  // /proc is not available.
  std::int64_t rss_warm_kb = 0, rss_end_kb = 0;
  double seconds = 0;
  // Per workload.switch_at entry, the steps the imbalance took to recover (DemoOptions
  // recover_window / recover_tol); -1: not within the run (or no steps before the switch).
  std::vector<std::int64_t> recover_steps;
};

// The recovery figure of `steps` after a switch at 1-based step `switch_step` (its first step on
// the new load): recovery_steps of core/metrics.h on the per-step imbalance. -1 when never.
std::int64_t demo_recovery_steps(const std::vector<DemoStep>& steps, int switch_step, int window,
                                 double tol);

// Where one rank's expert weights live and where their MLP runs, when not in host memory on the
// serving thread (the CPU demo's own path): e.g. device memory and a GPU kernel (demo/cuda/).
// compute() must give apply_mlp's results bit for bit: the demo checks every output exactly.
// Used by the rank's serving thread only.
class RankExperts {
 public:
  virtual ~RankExperts() = default;
  // Puts the canonical weights of the expert `initial` places in each of the rank's local slots
  // and registers the slots with store(). Called once, before the balancer is built.
  virtual void load(const CanonicalExperts& canonical, const Topology& topo,
                    const Placement& initial, int rank) = 0;
  // The store the balancer moves weights in; it must outlive the run.
  virtual ExpertStore& store() = 0;
  // Row i of `rows` ([n][hidden], n = slots.size()) through the expert in local slot slots[i]
  // of `layer`, into row i of `out`. Throws when the computation cannot be done.
  virtual void compute(int layer, std::span<const float> rows, std::span<const std::int32_t> slots,
                       std::span<float> out) = 0;
};

DemoResult run_demo_rank(const DemoOptions& opt, Transport& transport,
                         const CanonicalExperts& canonical);
// The same with the rank's experts in `experts`: `tokens` carries the token exchange and the
// demo's own collectives, `weights` the balancer's (it must move experts.store()'s memory kind;
// the emulated link, when set, wraps it).
DemoResult run_demo_rank(const DemoOptions& opt, Transport& tokens, Transport& weights,
                         RankExperts& experts, const CanonicalExperts& canonical);
// All ranks as threads of this process (in-process transport).
DemoResult run_demo_inprocess(const DemoOptions& opt);
// Runs rank_main(r) for r in [0, ranks) on one thread each; rethrows the first exception after
// all joined; else rank 0's result (every rank returns the same one).
DemoResult run_ranks_as_threads(int ranks, const std::function<DemoResult(int rank)>& rank_main);

}  // namespace swiftbalancer
