// One policy's simulation inside a replay (internal to the replay component; run_replay owns one
// per listed policy and feeds every one the same steps). It holds the placement in force, the
// rebalance in flight and the per-step series; the time line it follows is replay.h's.
//
// Per step: step() charges the step's compute under the placement in force (and, in async mode,
// moves and commits the step's batch of layers); at a gather, gather() calls the policy on the
// runtime's window, plans the changed layers with make_layer_plan (runtime_model.h) and either
// installs them at once (sync) or queues them (async). finish() reduces the series to figures.
// Not thread-safe.
#pragma once

#include <optional>

#include "swiftbalancer/replay/runtime_model.h"
#include "swiftbalancer/stats/shift_detector.h"

#include <cstdint>
#include <memory>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/replay/cost_model.h"
#include "swiftbalancer/replay/replay.h"

namespace swiftbalancer::replay {

class PolicySim {
 public:
  // `cfg` must outlive the simulation.
  PolicySim(PolicySpec spec, const ReplayConfig& cfg, int layers, int experts, std::int64_t steps);

  Mode mode() const { return res_.spec.mode; }
  bool dynamic() const { return mode() == Mode::kSync || mode() == Mode::kAsync; }

  // Static mode: this policy's placement for the first window, in force from step 0.
  void init_static(const LoadMatrix& first_window);
  void set_placement(const Placement& p);

  // counts: the step's [layers][experts] counts; totals: their per-layer sums.
  void step(std::int64_t t, const std::vector<double>& counts, const std::vector<double>& totals);
  // A gather after step t with the runtime's window `load`.
  void gather(std::int64_t t, const LoadMatrix& load);
  // Shift detection (spec.shift): such a simulation keeps its own window and gather schedule,
  // run after step() of every step t: the check every shift_check_steps steps, the early gather
  // one check period after the detector fires (on new load only), the fixed interval otherwise.
  bool shift() const { return res_.spec.shift; }
  void after_step(std::int64_t t, const std::vector<double>& counts);
  PolicyResult finish();

 private:
  double charge_compute(std::int64_t t, const std::vector<double>& counts,
                        const std::vector<double>& totals, double& imbalance);
  double move_batch(std::int64_t t, double compute_ms);
  void install(int layer, const Placement& from);
  Placement call_policy(const PolicyInput& in);
  void refresh_layer(int l);
  void cycle_ended(std::int64_t t);
  void preempt(std::int64_t t);

  const ReplayConfig& cfg_;
  Topology topo_;
  LinkWeights weights_;
  int L_, E_;
  std::int64_t T_;
  std::unique_ptr<Policy> policy_;
  Placement cur_;
  std::vector<double> weight_;  // [layers][slots]: 1 / replica count of the slot's expert
  std::vector<double> loads_;
  TransferTimer timer_;
  // Async rebalance in flight.
  bool pending_ = false;
  Placement next_;
  std::vector<int> changed_;
  std::vector<std::vector<Move>> moves_;
  std::size_t next_idx_ = 0;
  std::size_t batch_layers_ = 1;  // layers per step of the cycle in flight
  std::int64_t last_batch_ = -1;  // step of its last committed batch
  std::int64_t move_start_ = 0;
  PolicyResult res_;
  std::vector<double> heat_;
  std::vector<std::int64_t> heat_n_;
  // Shift detection (empty unless spec.shift).
  std::unique_ptr<StepWindow> own_window_;
  std::optional<ShiftDetector> detector_;
  std::vector<double> shift_acc_;  // [ranks][layers]: rank loads since the last check
  std::vector<double> signal_;     // the last check's per-layer signal
  std::int64_t next_check_ = 0, next_gather_ = 0;  // as step counts (after step t: t + 1)
  bool early_ = false;                             // the next gather was started by a shift
};

}  // namespace swiftbalancer::replay
