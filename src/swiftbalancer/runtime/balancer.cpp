// Balancer: the facade that drives its parts at step boundaries. Owner: runtime component.
//
// State machine of a rank (identical on every rank, because every transition is taken at a step
// number all ranks share, on the result of a collective all ranks share):
//   kIdle --gather step--> kDeciding --agreed--> kMoving --last layer--> kIdle
//                               \--dropped (failed, timed out, collective failed)--> kIdle
#include "swiftbalancer/runtime/balancer.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "swiftbalancer/runtime/decision_cycle.h"
#include "swiftbalancer/runtime/host_expert_store.h"
#include "swiftbalancer/runtime/layer_mover.h"
#include "swiftbalancer/runtime/load_accounting.h"
#include "swiftbalancer/runtime/metrics_text.h"
#include "swiftbalancer/runtime/reporter.h"
#include "swiftbalancer/runtime/staging_pool.h"
#include "swiftbalancer/stats/shift_detector.h"

namespace swiftbalancer {
namespace {

std::int64_t elapsed_ns(Clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count();
}

void check_arguments(const Topology& topo, int rank, const Transport& transport,
                     const Policy* policy, const Placement& initial, const BalancerConfig& cfg) {
  if (policy == nullptr) throw InputError("balancer needs a policy");
  if (transport.size() != topo.ranks)
    throw InputError("transport has " + std::to_string(transport.size()) + " ranks, the topology " +
                     std::to_string(topo.ranks));
  if (rank < 0 || rank >= topo.ranks || transport.rank() != rank)
    throw InputError("rank " + std::to_string(rank) + " does not match the transport");
  if (initial.empty()) throw InputError("balancer needs an initial placement");
  throw_if_error(validate_placement(initial, topo));
  validate_config(cfg);
}

}  // namespace

// Declaration order is destruction order reversed: the mover cancels its batches first, then
// the worker stops (it may be reserving staging), then the pool and the store go.
struct Balancer::Parts {
  Parts(const Topology& t, int r, Transport& tr, std::shared_ptr<const Policy> policy,
        const Placement& initial, ExpertStore* engine_store, ServingState& state,
        const BalancerConfig& cfg)
      : topo(t),
        rank(r),
        transport(tr),
        own_store(engine_store
                      ? nullptr
                      : std::make_unique<HostExpertStore>(initial.layers(), t.slots_per_rank)),
        store(engine_store ? *engine_store : *own_store),
        reporter(r, cfg.log),
        accounting(t, initial, cfg.window_intervals, cfg.window_decay),
        pool(store, staging_regions(cfg)),
        decision(t, r, std::move(policy), cfg, reporter, pool),
        mover(r, initial.layers(), tr, store, pool, state, accounting, cfg, reporter),
        next_gather(cfg.interval_steps),
        cycle_layers_per_step(cfg.layers_per_step) {
    if (cfg.shift_check_steps > 0 && cfg.mode != BalancerMode::kOff) {
      shift.emplace(
          ShiftConfig{cfg.shift_trigger_ratio, cfg.shift_rearm_ratio, cfg.shift_min_gap_steps});
      next_check = cfg.shift_check_steps;
      shift_all.assign(static_cast<std::size_t>(t.ranks) * initial.layers(), 0);
    }
  }

  Topology topo;
  int rank;
  Transport& transport;
  std::unique_ptr<HostExpertStore> own_store;  // when the engine registers host buffers
  ExpertStore& store;
  Reporter reporter;
  LoadAccounting accounting;
  StagingPool pool;
  DecisionCycle decision;
  LayerMover mover;

  enum class Phase { kIdle, kDeciding, kMoving, kStopped } phase = Phase::kIdle;
  std::int64_t collective_failures_seen = 0;
  int collective_streak = 0;  // collectives failed in a row
  std::int64_t next_poll = 0;
  bool ready = false;
  std::vector<std::size_t> expert_bytes;  // [layer], once ready
  StepStats pending;                      // this step's figures, gathered from before_forward on
  std::int64_t next_gather;               // the fixed interval's next gather step
  // Shift detection (empty when off). Every rank observes the same all-gathered signal, so
  // every rank fires, gathers and orders layers alike.
  std::optional<ShiftDetector> shift;
  ShiftSignal signal;                   // the last check's, [layers]
  std::vector<std::int64_t> shift_all;  // all-gathered totals, [ranks][layers]
  std::int64_t next_check = 0;
  bool early_gather = false;  // the next gather was brought forward by a shift
  int cycle_layers_per_step;  // of the cycle in flight
  std::int64_t record_ns = 0, before_ns = 0;

  // The store's layout is frozen at the first step.
  void make_ready(BalancerMode mode) {
    if (ready) return;
    ready = true;
    if (mode == BalancerMode::kOff) return;
    throw_if_error(store.ready());
    if (store.layers() != accounting.recorder().layers() ||
        store.local_slots() != topo.slots_per_rank)
      throw InputError("expert store shape does not match the placement and topology");
    if (!transport.can_move(store.memory_kind()))
      throw InputError("the " + transport.name() + " transport cannot move " +
                       memory_kind_name(store.memory_kind()) + " memory");
    for (int l = 0; l < store.layers(); ++l) expert_bytes.push_back(store.expert_bytes(l));
  }
};

Balancer::Balancer(const Topology& topo, int rank, Transport& transport,
                   std::shared_ptr<const Policy> policy, Placement initial, BalancerConfig config)
    : cfg_(std::move(config)) {
  check_arguments(topo, rank, transport, policy.get(), initial, cfg_);
  state_ = std::make_unique<ServingState>(std::move(initial));
  parts_ = std::make_unique<Parts>(topo, rank, transport, std::move(policy), state_->placement(),
                                   nullptr, *state_, cfg_);
}

Balancer::Balancer(const Topology& topo, int rank, Transport& transport,
                   std::shared_ptr<const Policy> policy, Placement initial, ExpertStore& store,
                   BalancerConfig config)
    : cfg_(std::move(config)) {
  check_arguments(topo, rank, transport, policy.get(), initial, cfg_);
  state_ = std::make_unique<ServingState>(std::move(initial));
  parts_ = std::make_unique<Parts>(topo, rank, transport, std::move(policy), state_->placement(),
                                   &store, *state_, cfg_);
}

Balancer::~Balancer() = default;

void Balancer::register_expert(int layer, int local_slot,
                               std::vector<std::span<std::byte>> tensors) {
  if (!parts_->own_store)
    throw InputError("register_expert: this balancer uses the engine's expert store");
  if (parts_->ready) throw InputError("register_expert after the first step");
  parts_->own_store->register_expert(layer, local_slot, std::move(tensors));
}

void Balancer::record(int layer, std::span<const std::int64_t> slot_counts) {
  const auto t0 = Clock::now();
  parts_->accounting.record(layer, slot_counts);
  parts_->record_ns += elapsed_ns(t0);
}

void Balancer::before_forward() {
  const auto t0 = Clock::now();
  Parts& p = *parts_;
  p.make_ready(cfg_.mode);
  if (cfg_.mode == BalancerMode::kAsync && p.phase == Parts::Phase::kMoving &&
      !p.mover.has_posted() && p.mover.layers_left())
    p.mover.post(static_cast<std::size_t>(p.cycle_layers_per_step), p.pending);
  p.before_ns += elapsed_ns(t0);
}

void Balancer::start_cycle(StepStats& stats, bool early) {
  Parts& p = *parts_;
  p.cycle_layers_per_step =
      early && cfg_.shift_layers_per_step > 0 ? cfg_.shift_layers_per_step : cfg_.layers_per_step;
  p.decision.start(p.accounting.window(), state_->placement(), p.expert_bytes);
  p.phase = Parts::Phase::kDeciding;
  if (cfg_.mode == BalancerMode::kSync) {
    move_sync(stats);
  } else {
    p.next_poll = step_ + cfg_.decision_poll_steps;
  }
}

// Stop the world: agree, then move and commit every layer before serving resumes, staging as
// many layers at a time as the pool has regions.
void Balancer::move_sync(StepStats& stats) {
  Parts& p = *parts_;
  const auto t0 = Clock::now();
  const auto outcome = p.decision.agree(p.transport, /*final_poll=*/true);
  stats.wait_ns += elapsed_ns(t0);
  p.phase = Parts::Phase::kIdle;
  if (outcome != DecisionCycle::Outcome::kAgreed) return;
  stats.cycle_agreed = true;
  p.mover.begin(order_plan(p.decision.take_plan()));
  while (p.mover.moving()) {
    p.mover.post(static_cast<std::size_t>(p.pool.regions()), stats);
    p.mover.finish(stats, step_);
  }
}

bool Balancer::reads_counts_next() const {
  const Parts& p = *parts_;
  if (cfg_.mode == BalancerMode::kOff || p.phase == Parts::Phase::kStopped) return false;
  const std::int64_t next = step_ + 1;
  return next >= p.next_gather || (p.shift && next >= p.next_check);
}

StepStats Balancer::after_forward() {
  const auto t0 = Clock::now();
  Parts& p = *parts_;
  p.make_ready(cfg_.mode);
  StepStats& st = p.pending;
  st.step = ++step_;
  const bool busy_before = p.phase == Parts::Phase::kDeciding || p.phase == Parts::Phase::kMoving;
  if (cfg_.mode == BalancerMode::kAsync) {
    if (p.phase == Parts::Phase::kMoving) {
      p.mover.finish(st, step_);
      if (!p.mover.moving()) p.phase = Parts::Phase::kIdle;
    }
    if (p.phase == Parts::Phase::kDeciding && step_ >= p.next_poll) {
      const auto c0 = Clock::now();
      const std::int64_t cycle = p.decision.cycle_id();
      const auto outcome = p.decision.agree(p.transport, /*final_poll=*/false);
      st.wait_ns += elapsed_ns(c0);
      if (outcome == DecisionCycle::Outcome::kAgreed) {
        st.cycle_agreed = true;
        auto plan = order_plan(p.decision.take_plan());
        p.reporter.log("cycle " + std::to_string(cycle) + " agreed at step " +
                       std::to_string(step_) + ": " + std::to_string(plan->layers.size()) +
                       " layers to move");
        p.mover.begin(std::move(plan));
        p.phase = Parts::Phase::kMoving;
        if (!p.mover.layers_left()) {
          p.mover.finish(st, step_);  // nothing to move: the cycle ends here
          p.phase = Parts::Phase::kIdle;
        }
      } else if (outcome == DecisionCycle::Outcome::kPending) {
        p.next_poll = step_ + cfg_.decision_poll_steps;
      } else {
        p.phase = Parts::Phase::kIdle;
      }
    }
  }
  if (busy_before && p.phase == Parts::Phase::kIdle) cycle_ended();
  if (check_shift(st)) {
    // The load shifted: a cycle in flight was decided on the old load, and so is what the
    // window and the open interval hold. Pre-empt the one, drop the other, and gather one check
    // period from now, so that the early cycle decides on new load only.
    preempt_cycle(st);
    p.accounting.drop_interval(state_->placement());
    p.next_gather = step_ + cfg_.shift_check_steps;
    p.early_gather = true;
  }
  if (cfg_.mode != BalancerMode::kOff && p.phase != Parts::Phase::kStopped &&
      step_ >= p.next_gather) {
    // The fixed interval restarts from an early gather (without detection: every
    // interval_steps steps, as before).
    p.next_gather = step_ + cfg_.interval_steps;
    const bool early = std::exchange(p.early_gather, false);
    const auto c0 = Clock::now();
    const Status s = p.accounting.gather(p.transport, state_->placement(), cfg_.collective_timeout);
    st.wait_ns += elapsed_ns(c0);
    if (!s.ok()) {
      p.reporter.error("count all-gather failed (" + s.to_string() + "); interval skipped",
                       &BalancerCounters::collective_failures);
    } else {
      st.gathered = true;
      p.reporter.add(&BalancerCounters::gathers);
      if (p.phase == Parts::Phase::kIdle) {
        start_cycle(st, early);
        if (p.phase == Parts::Phase::kIdle) cycle_ended();  // sync, or nothing to do
      }
    }
  }
  check_peers(st.gathered);
  if (cfg_.mode != BalancerMode::kOff)
    p.reporter.liveness(step_, st.cycle_agreed, p.phase == Parts::Phase::kDeciding,
                        p.phase == Parts::Phase::kStopped,
                        static_cast<std::int64_t>(cfg_.stall_intervals) * cfg_.interval_steps);
  StepStats out = st;
  out.errors = p.reporter.take_step_errors();
  out.serving_ns = elapsed_ns(t0) + p.before_ns + p.record_ns - out.wait_ns - out.copy_ns;
  p.before_ns = p.record_ns = 0;
  st = StepStats{};
  p.reporter.add_step(out.bytes_sent, out.bytes_received);
  return out;
}

// Every shift_check_steps steps: all-gather the per-layer totals since the last check and let
// the detector judge them. True when it fired (the caller pre-empts a cycle in flight, restarts
// the window and gathers early). A failed check is a collective failure like any other; the
// detector skips it.
bool Balancer::check_shift(StepStats& stats) {
  Parts& p = *parts_;
  if (!p.shift || p.phase == Parts::Phase::kStopped || step_ < p.next_check) return false;
  p.next_check = step_ + cfg_.shift_check_steps;
  const auto c0 = Clock::now();
  const Status s = p.transport.all_gather(p.accounting.take_layer_totals(), p.shift_all,
                                          cfg_.collective_timeout);
  stats.wait_ns += elapsed_ns(c0);
  if (!s.ok()) {
    p.reporter.error("shift check all-gather failed (" + s.to_string() + ")",
                     &BalancerCounters::collective_failures);
    return false;
  }
  p.reporter.add(&BalancerCounters::shift_checks);
  p.signal = shift_signal(p.shift_all, p.topo.ranks, state_->placement().layers());
  if (!p.shift->observe(step_, p.signal.level)) return false;
  p.reporter.add(&BalancerCounters::shift_triggers);
  p.reporter.log("shift detected at step " + std::to_string(step_) + ": imbalance " +
                 std::to_string(p.signal.level) + " against " +
                 std::to_string(p.shift->reference()) + "; early gather in " +
                 std::to_string(cfg_.shift_check_steps) + " steps");
  return true;
}

// Every rank fired at this step on the same all-gathered signal, so every rank pre-empts alike,
// without a collective: a decision still running is discarded, and a cycle moving its layers
// stops after the ones committed (nothing is posted between steps). The detector keeps its
// reference until the early cycle that follows ends.
void Balancer::preempt_cycle(StepStats& stats) {
  Parts& p = *parts_;
  if (p.phase == Parts::Phase::kDeciding) {
    p.decision.preempt();
    p.reporter.add(&BalancerCounters::shift_preemptions);
  } else if (p.phase == Parts::Phase::kMoving) {
    p.reporter.add(&BalancerCounters::shift_layers_preempted, p.mover.preempt(stats, step_));
    p.reporter.add(&BalancerCounters::shift_preemptions);
  } else {
    return;
  }
  p.phase = Parts::Phase::kIdle;
}

// A cycle ended (committed, dropped, or nothing to move): what it reached is the detector's new
// reference, measured from here on (the next check covers only steps after this one).
void Balancer::cycle_ended() {
  Parts& p = *parts_;
  if (!p.shift) return;
  p.shift->reset_reference();
  p.accounting.take_layer_totals();
  p.next_check = step_ + cfg_.shift_check_steps;
}

// With shift detection: the plan's layers worst first by the last check's signal, without
// those under shift_skip_below (they keep their placement, as a layer that failed to move).
std::unique_ptr<CyclePlan> Balancer::order_plan(std::unique_ptr<CyclePlan> plan) {
  Parts& p = *parts_;
  if (!p.shift || p.signal.per_layer.empty() || !plan) return plan;
  std::vector<int> changed;
  for (const LayerMove& m : plan->layers) changed.push_back(m.layer);
  const std::vector<int> order = order_layers(changed, p.signal.per_layer, cfg_.shift_skip_below);
  std::vector<LayerMove> kept;
  kept.reserve(order.size());
  for (int l : order) {
    auto it = std::find_if(plan->layers.begin(), plan->layers.end(),
                           [l](const LayerMove& m) { return m.layer == l; });
    kept.push_back(std::move(*it));
  }
  if (plan->layers.size() > kept.size())
    p.reporter.add(&BalancerCounters::shift_layers_skipped,
                   static_cast<std::int64_t>(plan->layers.size() - kept.size()));
  plan->layers = std::move(kept);
  return plan;
}

// Falls back to recording only when the transport is broken or the other ranks stopped
// answering (max_collective_failures collectives in a row failed; a gather that succeeds ends
// the streak). Once, for good: a rank that came back would find the others out of step.
void Balancer::check_peers(bool gathered) {
  Parts& p = *parts_;
  if (p.phase == Parts::Phase::kStopped || cfg_.mode == BalancerMode::kOff) return;
  const std::int64_t seen = p.reporter.collective_failures_seen();
  p.collective_streak += static_cast<int>(seen - p.collective_failures_seen);
  p.collective_failures_seen = seen;
  if (gathered) p.collective_streak = 0;
  // A broken transport or store stops every rank at the same step: the layer vote carries it
  // (LayerMover::stop_agreed). A rank does not stop alone on its own broken() while its
  // collectives still work (NCCL's go over a host transport): the others would go on calling
  // collectives it no longer joins (issue 19, item 1). Only when its collectives fail as well
  // (an MPI transport that broke) does it stop here; the others then see them fail.
  const bool agreed = p.mover.stop_agreed();
  const bool broken = agreed || (p.transport.broken() && p.collective_streak > 0);
  if (!broken && p.collective_streak < cfg_.max_collective_failures) return;
  p.mover.abandon(step_);
  p.decision.abandon();
  p.phase = Parts::Phase::kStopped;
  p.reporter.add(&BalancerCounters::balancing_stopped);
  p.reporter.log(std::string(agreed   ? p.mover.stop_reason() + " (agreed by every rank)"
                             : broken ? "the transport is broken"
                                    : std::to_string(p.collective_streak) +
                                          " collectives in a row failed (a rank stopped "
                                          "answering)") +
                     "; balancing stops, the placement in service stays, recording goes on",
                 LogSeverity::kError);
}

std::string Balancer::metrics_text() const {
  return swiftbalancer::metrics_text(counters(), {{"rank", std::to_string(parts_->rank)}});
}

BalancerCounters Balancer::counters() const {
  return parts_->reporter.snapshot();
}

}  // namespace swiftbalancer
