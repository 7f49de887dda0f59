#include "swiftbalancer/replay/policy_sim.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "swiftbalancer/compat/align.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/core/status.h"
#include "swiftbalancer/replay/runtime_model.h"

namespace swiftbalancer::replay {
namespace {

// The runtime's schedule for one simulated policy: its gather interval, poll period and layers
// per step; sync moves every changed layer at once; shift detection for NAME:shift only.
CycleSchedule::Config schedule_config(const PolicySpec& spec, const ReplayConfig& cfg, int layers) {
  CycleSchedule::Config c;
  c.mode = spec.mode == Mode::kSync ? CycleSchedule::Mode::kSync : CycleSchedule::Mode::kAsync;
  c.interval_steps = cfg.interval;
  c.decision_poll_steps = cfg.poll_steps;
  c.layers_per_step = cfg.layers_per_step;
  c.sync_layers_at_once = std::max(1, layers);
  c.shift = cfg.shift;
  if (!spec.shift) c.shift.check_steps = 0;
  return c;
}

}  // namespace

PolicySim::PolicySim(PolicySpec spec, const ReplayConfig& cfg, int layers, int experts,
                     std::int64_t steps)
    : cfg_(cfg),
      topo_(cfg.topo),
      weights_(link_weights(cfg.cost)),
      L_(layers),
      E_(experts),
      T_(steps),
      cur_(contiguous_placement(cfg.topo, layers, experts)),
      timer_(cfg.topo, cfg.cost) {
  res_.spec = std::move(spec);
  if (res_.spec.mode != Mode::kOff) policy_ = make_policy(res_.spec.policy);
  const std::size_t slots = static_cast<std::size_t>(topo_.num_slots());
  weight_.assign(slots * L_, 0.0);
  for (int l = 0; l < L_; ++l) refresh_layer(l);
  loads_.assign(static_cast<std::size_t>(topo_.ranks), 0.0);
  res_.imbalance.assign(static_cast<std::size_t>(T_), 0.0f);
  res_.step_ms.assign(static_cast<std::size_t>(T_), 0.0f);
  res_.heat_bins = static_cast<int>(std::min<std::int64_t>(cfg.heatmap_bins, T_));
  heat_.assign(static_cast<std::size_t>(res_.heat_bins) * topo_.ranks, 0.0);
  heat_n_.assign(static_cast<std::size_t>(res_.heat_bins), 0);
  if (dynamic()) schedule_.emplace(schedule_config(res_.spec, cfg, layers));
  if (shift()) {
    own_window_ = std::make_unique<StepWindow>(L_, E_, cfg.interval, cfg.window, cfg.decay);
    shift_acc_.assign(static_cast<std::size_t>(topo_.ranks) * L_, 0.0);
  }
}

void PolicySim::init_static(const LoadMatrix& first_window) {
  PolicyInput in{topo_, first_window, &cur_, cfg_.options, cfg_.executor};
  set_placement(call_policy(in));
}

void PolicySim::set_placement(const Placement& p) {
  for (int l = 0; l < L_; ++l) install(l, p);
}

void PolicySim::step(std::int64_t t, const std::vector<double>& counts,
                     const std::vector<double>& totals, SharedWindow& shared) {
  // Before the forward: the batch of layers that moves during it (async).
  if (schedule_) {
    const Action a = schedule_->on(Event::before_forward());
    if (a.act == CycleSchedule::Act::kPost) schedule_->on(run(a, t, shared));
  }
  double imbalance = 1.0;
  compute_ms_ = charge_compute(t, counts, totals, imbalance);
  res_.mean_compute_ms += compute_ms_;
  res_.imbalance[t] = static_cast<float>(imbalance);
  res_.step_ms[t] = static_cast<float>(compute_ms_);
  if (!schedule_) return;
  // After the forward (step t + 1 of the runtime's count): what the schedule says.
  if (own_window_) own_window_->add_step(counts);
  for (Action a = schedule_->on(Event::step_ended(t + 1)); a.act != CycleSchedule::Act::kNone;)
    a = schedule_->on(run(a, t, shared));
}

// Does one action of the schedule in the model; returns its result for the schedule.
CycleSchedule::Event PolicySim::run(const Action& a, std::int64_t t, SharedWindow& shared) {
  using Act = CycleSchedule::Act;
  switch (a.act) {
    case Act::kPost:
      posted_ = true;
      batch_first_ = a.first;
      batch_count_ = a.count;
      return Event::posted(a.count);
    case Act::kFinish:
      // Async: the batch whose vote went out at the last finish commits now (the runtime's
      // pipelined vote, LayerMover), then this step's batch goes to its vote.
      if (std::exchange(voting_, false)) commit_voted(t);
      if (std::exchange(posted_, false)) {
        if (mode() == Mode::kSync) {
          // Stop the world: the layers are installed before step t + 1 (the stall is charged
          // at the decision).
          for (std::size_t i = batch_first_; i < batch_first_ + batch_count_; ++i)
            install(changed_[i], next_);
        } else {
          // Only the part of the transfer time beyond the step's compute is exposed.
          const double exposed = move_batch();
          res_.step_ms[t] = static_cast<float>(compute_ms_ + exposed);
          res_.stall_ms += exposed;
          voting_ = true;
          vote_first_ = batch_first_;
          vote_count_ = batch_count_;
        }
      }
      return Event::finished(voting_);
    case Act::kPoll:  // the worker's result is picked up policy_steps after the gather
      return t + 1 >= agree_at_ ? Event::polled(CycleSchedule::Decision::kAgreed, changed_.size())
                                : Event::polled(CycleSchedule::Decision::kPending);
    case Act::kResetTotals:
      std::fill(shift_acc_.begin(), shift_acc_.end(), 0.0);
      return Event::done();
    case Act::kCheckShift:
      return check_shift(t);
    case Act::kShiftFired:
      ++res_.shift_triggers;
      own_window_->drop();
      return Event::done();
    case Act::kPreempt:
      preempt(t, a);
      return Event::done();
    case Act::kGather: {
      // A gather whose window holds no load starts nothing, as a failed one.
      if (own_window_) own_window_->gather();
      gathered_ = own_window_ ? &own_window_->sum() : &shared.gather_at(t);
      bool has_load = false;
      for (int l = 0; l < L_ && !has_load; ++l) has_load = gathered_->layer_has_load(l);
      if (has_load && schedule_->busy()) ++res_.skipped;  // the previous rebalance is in flight
      return Event::gathered(has_load);
    }
    case Act::kStartCycle:
      return start(t, *gathered_, a.early);
    case Act::kNone:
    case Act::kStop:
      break;
  }
  throw InternalError(std::string("replay: unexpected schedule action ") +
                      CycleSchedule::act_name(a.act));
}

// The shift check after step t: the rank loads since the last check, charged check_us.
CycleSchedule::Event PolicySim::check_shift(std::int64_t t) {
  ++res_.shift_checks;
  const double check_ms = cfg_.cost.check_us / 1000.0;
  res_.step_ms[t] += static_cast<float>(check_ms);
  res_.stall_ms += check_ms;
  ShiftSignal s = shift_signal(shift_acc_, topo_.ranks, L_);
  std::fill(shift_acc_.begin(), shift_acc_.end(), 0.0);
  return Event::checked(std::move(s));
}

// A shift fired while a cycle was in flight: the layers it has not committed stay old (the
// runtime's LayerMover::preempt).
void PolicySim::preempt(std::int64_t t, const Action& a) {
  if (std::exchange(voting_, false)) commit_voted(t);  // read at the pre-empting step
  const std::size_t committed = a.preempting == CycleSchedule::Phase::kMoving ? a.first : 0;
  RebalanceEvent& ev = res_.events.back();
  ev.layers_preempted = static_cast<int>(changed_.size() - committed);
  ev.last_commit = committed > 0 ? last_batch_ : -1;
  if (committed == 0) ev.first_commit = t + 1;
  ++res_.preempted;
  changed_.clear();
  moves_.clear();
}

// The step's compute time (ms) under the placement in force: per layer, layer_us plus token_us
// times the busiest rank's load. Also the step's imbalance (mean over loaded layers) and the
// heatmap's rank loads.
double PolicySim::charge_compute(std::int64_t t, const std::vector<double>& counts,
                                 const std::vector<double>& totals, double& imbalance) {
  const int R = topo_.ranks, S = topo_.slots_per_rank;
  const std::size_t slots = static_cast<std::size_t>(topo_.num_slots());
  const std::size_t bin = static_cast<std::size_t>(t * res_.heat_bins / T_);
  double compute_us = 0.0, imb_sum = 0.0;
  int loaded = 0;
  for (int l = 0; l < L_; ++l) {
    const double* row = counts.data() + static_cast<std::size_t>(l) * E_;
    const ExpertId* ex = cur_.layer(l).data();
    const double* w = weight_.data() + slots * l;
    double mx = 0.0;
    for (int r = 0; r < R; ++r) {
      double acc = 0.0;
      for (int s = r * S, e = s + S; s < e; ++s) acc += row[ex[s]] * w[s];
      loads_[r] = acc;
      mx = std::max(mx, acc);
      if (!shift_acc_.empty()) shift_acc_[static_cast<std::size_t>(r) * L_ + l] += acc;
    }
    compute_us += cfg_.cost.layer_us + cfg_.cost.token_us * mx;
    const double tot = totals[l];
    if (tot > 0.0) {
      const double inv_mean = R / tot;
      imb_sum += mx * inv_mean;
      ++loaded;
      double* h = heat_.data() + bin * R;
      for (int r = 0; r < R; ++r) h[r] += loads_[r] * inv_mean;
      ++heat_n_[bin];
    }
  }
  imbalance = loaded ? imb_sum / loaded : 1.0;
  return compute_us / 1000.0;
}

// Async: this step's batch of layers moves during the forward pass (committed after the next
// one, when its vote is read: commit_voted). Returns the transfer time beyond the step's
// compute (exposed, ms).
double PolicySim::move_batch() {
  const std::size_t end = batch_first_ + batch_count_;
  timer_.clear();
  RebalanceEvent& ev = res_.events.back();
  for (std::size_t i = batch_first_; i < end; ++i) {
    timer_.add(moves_[i]);
    const auto n = static_cast<std::int64_t>(moves_[i].size());
    ev.transfers += n;
    res_.transfers += n;
    res_.bytes += static_cast<double>(n) * cfg_.cost.expert_bytes();
  }
  return std::max(0.0, timer_.time_ms() - compute_ms_);
}

// The batch in the vote commits after step t (its vote read one step after its transfers).
void PolicySim::commit_voted(std::int64_t t) {
  const std::size_t end = vote_first_ + vote_count_;
  for (std::size_t i = vote_first_; i < end; ++i) install(changed_[i], next_);
  last_batch_ = t;
  if (end == changed_.size()) res_.events.back().last_commit = t;  // the schedule ends the cycle
}

// A cycle starts after step t on the window `load`: decide, plan the changed layers, and say
// when the decision is agreed (sync: at once; async: policy_steps later; an empty plan: at
// once, the cycle ends at this step).
CycleSchedule::Event PolicySim::start(std::int64_t t, const LoadMatrix& load, bool early) {
  using Decision = CycleSchedule::Decision;
  // Decide.
  PolicyInput in{topo_, load, &cur_, cfg_.options, cfg_.executor};
  const auto t0 = std::chrono::steady_clock::now();
  Placement p = call_policy(in);
  const double wall =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  res_.policy_wall_ms += wall;
  // Plan: the changed layers only, with the runtime's planner.
  changed_.clear();
  moves_.clear();
  RebalanceEvent ev;
  ev.decided = t;
  ev.shift = early;
  ev.policy_ms = cfg_.policy_ms >= 0.0 ? cfg_.policy_ms : wall;
  timer_.clear();
  for (int l = 0; l < L_; ++l) {
    const auto a = cur_.layer(l), b = p.layer(l);
    if (!std::equal(a.begin(), a.end(), b.begin())) changed_.push_back(l);
  }
  // With shift detection: worst layers first by the last check, fine ones left out.
  changed_ = schedule_->order_layers(changed_);
  Placement effective = cur_;
  std::int64_t planned = 0;
  for (int l : changed_) {
    moves_.push_back(layer_moves(cur_.layer(l), p.layer(l), l, E_, topo_, weights_));
    timer_.add(moves_.back());
    planned += static_cast<std::int64_t>(moves_.back().size());
    std::copy(p.layer(l).begin(), p.layer(l).end(), effective.layer(l).begin());
  }
  if (changed_.empty()) return Event::started(Decision::kAgreed, 0);
  ev.window_imbalance = balance_summary(effective, load, topo_).mean_imbalance;
  ev.layers_changed = static_cast<int>(changed_.size());
  ev.transfer_ms = timer_.time_ms();
  ++res_.rebalances;
  if (mode() == Mode::kSync) {
    ev.transfers = planned;
    res_.transfers += planned;
    res_.bytes += static_cast<double>(planned) * cfg_.cost.expert_bytes();
    // Stop the world: every changed layer is installed before step t + 1 (the schedule posts
    // and finishes them at this step).
    const double stall = ev.policy_ms + ev.transfer_ms;
    res_.step_ms[t] += static_cast<float>(stall);
    res_.stall_ms += stall;
    ev.first_commit = ev.last_commit = t;
    agree_at_ = t + 1;
  } else {
    // The worker's delay in steps, picked up at the next poll; then one batch per step.
    const double step_ms = std::max(1e-9, static_cast<double>(res_.step_ms[t]));
    ev.policy_steps = cfg_.policy_steps >= 0 ? cfg_.policy_steps
                                             : static_cast<int>(std::ceil(ev.policy_ms / step_ms));
    ev.policy_steps = (ev.policy_steps + cfg_.poll_steps - 1) / cfg_.poll_steps * cfg_.poll_steps;
    // Agreed at the poll of step t + 1 + P (the runtime's count); the first batch moves during
    // the step after it, step t + 1 + P here, and its vote is read after the next step.
    agree_at_ = t + 1 + ev.policy_steps;
    ev.first_commit = agree_at_ + 1;
    ev.last_commit = -1;  // set when the last batch commits (stays -1 past the trace's end)
  }
  next_ = std::move(p);
  res_.events.push_back(ev);
  return agree_at_ == t + 1 ? Event::started(Decision::kAgreed, changed_.size())
                            : Event::started(Decision::kPending);
}

PolicyResult PolicySim::finish() {
  const std::size_t n = res_.imbalance.size();
  const std::vector<double> imb(res_.imbalance.begin(), res_.imbalance.end());
  auto rank = [&](double q) { return percentile(imb, q, QuantileRule::kNearestRank); };
  double sum_imb = 0.0, sum_ms = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    sum_imb += res_.imbalance[i];
    sum_ms += res_.step_ms[i];
  }
  res_.mean_imbalance = sum_imb / n;
  res_.p50_imbalance = rank(0.50);
  res_.p99_imbalance = rank(0.99);
  res_.max_imbalance = rank(1.0);
  res_.mean_step_ms = sum_ms / n;
  res_.mean_compute_ms /= static_cast<double>(n);
  // Judged on the future: each placement against the steps it served.
  int served = 0;
  for (std::size_t i = 0; i < res_.events.size(); ++i) {
    RebalanceEvent& e = res_.events[i];
    // A pre-empted placement never served as decided: left out of both means.
    if (e.last_commit < 0 || e.layers_preempted > 0) continue;
    const std::int64_t from = e.last_commit + 1;
    const std::int64_t to = std::min<std::int64_t>(
        static_cast<std::int64_t>(n),
        i + 1 < res_.events.size() ? res_.events[i + 1].first_commit + 1 : T_);
    if (to <= from) continue;
    double sum = 0.0;
    for (std::int64_t k = from; k < to; ++k) sum += res_.imbalance[static_cast<std::size_t>(k)];
    e.future_imbalance = sum / static_cast<double>(to - from);
    res_.window_imbalance += e.window_imbalance;
    res_.future_imbalance += e.future_imbalance;
    ++served;
  }
  if (served > 0) {
    res_.window_imbalance /= served;
    res_.future_imbalance /= served;
  }
  for (std::int64_t s : cfg_.switch_at)
    res_.recover_steps.push_back(recovery_steps(res_.imbalance, s, cfg_.recover_window,
                                                cfg_.recover_tol, s + cfg_.switch_blend));
  const int R = topo_.ranks;
  res_.heat.assign(heat_.size(), 0.0f);
  for (int b = 0; b < res_.heat_bins; ++b)
    for (int r = 0; r < R; ++r)
      if (heat_n_[b] > 0)
        res_.heat[static_cast<std::size_t>(b) * R + r] =
            static_cast<float>(heat_[static_cast<std::size_t>(b) * R + r] / heat_n_[b]);
  return std::move(res_);
}

Placement PolicySim::call_policy(const PolicyInput& in) {
  Placement p = policy_->rebalance(in);
  ++res_.policy_calls;
  const Status s = validate_placement(p, topo_);
  if (!s.ok() || p.layers() != L_ || p.experts() != E_)
    throw std::runtime_error("policy '" + res_.spec.policy +
                             "' returned an invalid placement: " + s.message());
  // As the runtime's DecisionCycle does before planning: an expert a rank keeps stays in its
  // slot, so a from-scratch policy's reordering within a rank is no change.
  compat::align_to_current(cur_, p, topo_);
  return p;
}

// Copies layer l of `from` into the placement in force (a commit).
void PolicySim::install(int l, const Placement& from) {
  auto src = from.layer(l);
  std::copy(src.begin(), src.end(), cur_.layer(l).begin());
  refresh_layer(l);
}

void PolicySim::refresh_layer(int l) {
  const auto layer = cur_.layer(l);
  const std::vector<int> rc = replica_counts(layer, E_);
  double* w = weight_.data() + static_cast<std::size_t>(topo_.num_slots()) * l;
  for (int p = 0; p < topo_.num_slots(); ++p) w[p] = 1.0 / rc[layer[p]];
}

}  // namespace swiftbalancer::replay
