// One policy's simulation inside a replay (internal to the replay component; run_replay owns one
// per listed policy and feeds every one the same steps). It holds the placement in force, the
// rebalance in flight and the per-step series; the time line it follows is replay.h's.
//
// The schedule (when to gather, check for a shift, pick up the decision, move which layers,
// pre-empt) is the runtime's own CycleSchedule (runtime/cycle_schedule.h), driven here with
// modelled results: a decision is agreed policy_steps after its gather (a multiple of
// poll_steps; at once when 0), a batch of layers moves during the step it is posted for and is
// committed after it, and a gather without load starts nothing (as a failed one).
//
// Per step: step() charges the step's compute under the placement in force, moves the step's
// batch of layers (async) and does what the schedule says after the step. finish() reduces the
// series to figures. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/plan/transfer_plan.h"
#include "swiftbalancer/replay/cost_model.h"
#include "swiftbalancer/replay/replay.h"
#include "swiftbalancer/replay/runtime_model.h"
#include "swiftbalancer/runtime/cycle_schedule.h"

namespace swiftbalancer::replay {

// The window of the simulations without shift detection: the runtime's statistics do not depend
// on the placement, so one window serves them all. Closed at most once per step, by the first
// simulation whose schedule gathers at that step (without shift detection every schedule
// gathers at the same steps, every interval).
class SharedWindow {
 public:
  SharedWindow(int layers, int experts, const ReplayConfig& cfg)
      : window_(layers, experts, cfg.interval, cfg.window, cfg.decay) {}
  void add_step(std::span<const double> counts) { window_.add_step(counts); }
  const LoadMatrix& gather_at(std::int64_t t) {
    if (t != gathered_at_) window_.gather();
    gathered_at_ = t;
    return window_.sum();
  }
  std::int64_t bytes() const { return window_.bytes(); }

 private:
  StepWindow window_;
  std::int64_t gathered_at_ = -1;
};

class PolicySim {
 public:
  // `cfg` must outlive the simulation.
  PolicySim(PolicySpec spec, const ReplayConfig& cfg, int layers, int experts, std::int64_t steps);

  Mode mode() const { return res_.spec.mode; }
  bool dynamic() const { return mode() == Mode::kSync || mode() == Mode::kAsync; }
  // Shift detection (spec.shift): such a simulation keeps its own window (a shift drops it).
  bool shift() const { return res_.spec.shift; }

  // Static mode: this policy's placement for the first window, in force from step 0.
  void init_static(const LoadMatrix& first_window);
  void set_placement(const Placement& p);

  // Step t: counts, the step's [layers][experts] counts; totals, their per-layer sums; shared,
  // the window of the simulations without shift detection (the step already added).
  void step(std::int64_t t, const std::vector<double>& counts, const std::vector<double>& totals,
            SharedWindow& shared);
  PolicyResult finish();

 private:
  using Action = CycleSchedule::Action;
  using Event = CycleSchedule::Event;
  Event run(const Action& a, std::int64_t t, SharedWindow& shared);
  Event start(std::int64_t t, const LoadMatrix& load, bool early);
  Event check_shift(std::int64_t t);
  void preempt(std::int64_t t, const Action& a);
  double charge_compute(std::int64_t t, const std::vector<double>& counts,
                        const std::vector<double>& totals, double& imbalance);
  double move_batch();
  void commit_voted(std::int64_t t);
  void install(int layer, const Placement& from);
  Placement call_policy(const PolicyInput& in);
  void refresh_layer(int l);

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
  std::optional<CycleSchedule> schedule_;  // sync and async
  // The rebalance in flight: its placement, its changed layers in the order they move, and
  // their moves; the schedule step at which its decision is picked up.
  Placement next_;
  std::vector<int> changed_;
  std::vector<std::vector<Move>> moves_;
  std::int64_t agree_at_ = 0;
  // This step's batch: changed_[batch_first_, batch_first_ + batch_count_), when posted.
  bool posted_ = false;
  std::size_t batch_first_ = 0, batch_count_ = 0;
  // The batch whose vote is in flight (async): changed_[vote_first_, vote_first_ + vote_count_).
  bool voting_ = false;
  std::size_t vote_first_ = 0, vote_count_ = 0;
  double compute_ms_ = 0.0;               // this step's
  const LoadMatrix* gathered_ = nullptr;  // the window of this step's gather
  std::int64_t last_batch_ = -1;          // step of the last committed batch
  PolicyResult res_;
  std::vector<double> heat_;
  std::vector<std::int64_t> heat_n_;
  // Shift detection (empty unless spec.shift).
  std::unique_ptr<StepWindow> own_window_;
  std::vector<double> shift_acc_;  // [ranks][layers]: rank loads since the last check
};

}  // namespace swiftbalancer::replay
