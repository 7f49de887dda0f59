// Balancer: the facade that drives its parts at step boundaries. Owner: runtime component.
//
// What to do at each step, and the cycle's phase, come from the CycleSchedule (pure, its states
// and transitions in runtime/cycle_schedule.h and docs/architecture.md); this file does each
// action with the parts (the collectives, the worker, the mover) and reports its result back.
// Every transition is taken at a step number all ranks share, on the result of a collective all
// ranks share, so the schedule is in the same state on every rank.
#include "swiftbalancer/runtime/balancer.h"

#include <algorithm>
#include <string>
#include <utility>

#include "swiftbalancer/core/clock.h"
#include "swiftbalancer/runtime/host_expert_store.h"
#include "swiftbalancer/runtime/internal/decision_cycle.h"
#include "swiftbalancer/runtime/internal/layer_mover.h"
#include "swiftbalancer/runtime/internal/load_accounting.h"
#include "swiftbalancer/runtime/internal/reporter.h"
#include "swiftbalancer/runtime/internal/staging_pool.h"
#include "swiftbalancer/runtime/metrics_text.h"

namespace swiftbalancer {
namespace {

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

CycleSchedule::Config schedule_config(const BalancerConfig& cfg) {
  CycleSchedule::Config c;
  c.mode = cfg.mode == BalancerMode::kAsync  ? CycleSchedule::Mode::kAsync
           : cfg.mode == BalancerMode::kSync ? CycleSchedule::Mode::kSync
                                             : CycleSchedule::Mode::kOff;
  c.interval_steps = cfg.interval_steps;
  c.decision_poll_steps = cfg.decision_poll_steps;
  c.layers_per_step = cfg.layers_per_step;
  c.sync_layers_at_once = staging_regions(cfg);  // the pool's regions
  c.max_collective_failures = cfg.max_collective_failures;
  c.shift = cfg.shift;
  return c;
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
        schedule(schedule_config(cfg)) {
    if (schedule.shift_on())
      shift_all.assign(static_cast<std::size_t>(t.ranks) * initial.layers(), 0);
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

  CycleSchedule schedule;
  std::int64_t collective_failures_seen = 0;  // by the last peers check
  bool ready = false;
  std::vector<std::size_t> expert_bytes;  // [layer], once ready
  StepStats pending;                      // this step's figures, gathered from before_forward on
  std::vector<std::int64_t> shift_all;    // all-gathered shift totals, [ranks][layers]
  std::unique_ptr<PendingCollective> check_started;  // async: the next step's shift check
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
  parts_->record_ns += elapsed_ns_since(t0);
}

void Balancer::before_forward() {
  const auto t0 = Clock::now();
  Parts& p = *parts_;
  p.make_ready(cfg_.mode);
  using Event = CycleSchedule::Event;
  const CycleSchedule::Action a = p.schedule.on(Event::before_forward());
  if (a.act == CycleSchedule::Act::kPost)
    p.schedule.on(Event::posted(p.mover.post(a.count, p.pending)));
  p.before_ns += elapsed_ns_since(t0);
}

bool Balancer::reads_counts_next() const {
  return parts_->schedule.reads_counts_next();
}

bool Balancer::may_commit_next() const {
  const CycleSchedule& s = parts_->schedule;
  if (cfg_.mode == BalancerMode::kOff || s.phase() == CycleSchedule::Phase::kStopped) return false;
  // Async commits only when it reads a vote, started at the after_forward before; sync decides,
  // moves and commits inside the step that gathers, or later steps of the same cycle.
  if (cfg_.mode == BalancerMode::kAsync) return parts_->mover.voting();
  return s.busy() || s.gathers_next();
}

StepStats Balancer::after_forward() {
  const auto t0 = Clock::now();
  Parts& p = *parts_;
  p.make_ready(cfg_.mode);
  StepStats& st = p.pending;
  st.step = ++step_;
  using Event = CycleSchedule::Event;
  for (auto a = p.schedule.on(Event::step_ended(step_)); a.act != CycleSchedule::Act::kNone;)
    a = p.schedule.on(run(a, st));
  // Peers: a broken transport or store agreed by the layer vote, or collectives failing in a
  // row (a rank stopped answering), stop balancing. A rank does not stop alone on its own
  // broken() while its collectives still work (NCCL's go over a host transport): the others
  // would go on calling collectives it no longer joins (issue 19, item 1).
  const std::int64_t seen = p.reporter.collective_failures_seen();
  const auto peers = p.schedule.on(
      Event::peers(seen - p.collective_failures_seen, p.mover.stop_agreed(), p.transport.broken()));
  p.collective_failures_seen = seen;
  if (peers.act == CycleSchedule::Act::kStop) {
    stop(peers.why);
    p.schedule.on(Event::done());
  }
  if (cfg_.mode == BalancerMode::kAsync) start_next_collectives();
  const CycleSchedule::Phase phase = p.schedule.phase();
  if (cfg_.mode != BalancerMode::kOff)
    p.reporter.liveness(step_, st.cycle_agreed, phase == CycleSchedule::Phase::kDeciding,
                        phase == CycleSchedule::Phase::kStopped,
                        static_cast<std::int64_t>(cfg_.stall_intervals) * cfg_.interval_steps);
  StepStats out = st;
  out.errors = p.reporter.take_step_errors();
  out.serving_ns = elapsed_ns_since(t0) + p.before_ns + p.record_ns - out.wait_ns - out.copy_ns;
  p.before_ns = p.record_ns = 0;
  st = StepStats{};
  p.reporter.add_step(out.bytes_sent, out.bytes_received);
  return out;
}

// Async: the collectives the next step reads are started now, in the order that step reads
// them, so that they run during its forward; every rank starts the same ones (the schedule's
// state is the same everywhere between steps).
void Balancer::start_next_collectives() {
  Parts& p = *parts_;
  const bool poll = p.schedule.polls_next() && p.decision.active() && !p.decision.agreeing();
  const bool check = p.schedule.checks_next() && !p.check_started;
  const bool gather = p.schedule.gathers_next() && !p.accounting.gather_started();
  if (!poll && !check && !gather) return;
  const auto c0 = Clock::now();
  if (poll) p.decision.start_agree(p.transport);
  if (check)
    p.check_started =
        p.transport.start_all_gather(p.accounting.take_layer_totals(), cfg_.collective_timeout);
  if (gather) p.accounting.start_gather(p.transport, state_->placement(), cfg_.collective_timeout);
  // Waiting where the transport runs the collectives here; else the runtime's own time.
  if (!p.transport.starts_collectives_in_background()) p.pending.wait_ns += elapsed_ns_since(c0);
}

// Does one action of the schedule with the parts; returns its result for the schedule.
CycleSchedule::Event Balancer::run(const CycleSchedule::Action& a, StepStats& stats) {
  using Act = CycleSchedule::Act;
  using Event = CycleSchedule::Event;
  Parts& p = *parts_;
  switch (a.act) {
    case Act::kPost:  // sync: as many layers as the pool has regions, this step
      return Event::posted(p.mover.post(a.count, stats));
    case Act::kFinish:
      p.mover.finish(stats, step_);
      return Event::finished(p.mover.voting());
    case Act::kPoll:
      return poll(a, stats);
    case Act::kResetTotals:     // measured from here on: the next check sees only new steps
      p.check_started.reset();  // started for this step, whose check the cycle's end moved
      p.accounting.take_layer_totals();
      return Event::done();
    case Act::kCheckShift:
      return check_shift(stats);
    case Act::kShiftFired:
      p.reporter.add(&BalancerCounters::shift_triggers);
      p.reporter.log("shift detected at step " + std::to_string(step_) + ": imbalance " +
                     std::to_string(p.schedule.signal().level) + " against " +
                     std::to_string(p.schedule.detector().reference()) + "; early gather in " +
                     std::to_string(cfg_.shift.check_steps) + " steps");
      p.accounting.drop_interval(state_->placement());
      return Event::done();
    case Act::kPreempt:
      // A decision still running is discarded; a cycle moving its layers stops after the ones
      // committed (nothing is posted between steps).
      if (a.preempting == CycleSchedule::Phase::kDeciding) {
        p.decision.preempt();
      } else {
        p.reporter.add(&BalancerCounters::shift_layers_preempted, p.mover.preempt(stats, step_));
      }
      p.reporter.add(&BalancerCounters::shift_preemptions);
      return Event::done();
    case Act::kGather:
      return gather(stats);
    case Act::kStartCycle:
      p.decision.start(p.accounting.window(), state_->placement(), p.expert_bytes);
      return Event::started(CycleSchedule::Decision::kPending);
    case Act::kNone:
    case Act::kStop:
      break;
  }
  throw InternalError(std::string("balancer: unexpected schedule action ") +
                      CycleSchedule::act_name(a.act));
}

// One agreement round on the decision (async: pending, agreed or dropped; sync: final).
CycleSchedule::Event Balancer::poll(const CycleSchedule::Action& a, StepStats& stats) {
  using Decision = CycleSchedule::Decision;
  Parts& p = *parts_;
  const auto c0 = Clock::now();
  const std::int64_t cycle = p.decision.cycle_id();
  const auto outcome = p.decision.agree(p.transport, a.final_poll);
  stats.wait_ns += elapsed_ns_since(c0);
  if (outcome == DecisionCycle::Outcome::kPending)
    return CycleSchedule::Event::polled(Decision::kPending);
  if (outcome == DecisionCycle::Outcome::kDropped)
    return CycleSchedule::Event::polled(Decision::kDropped);
  stats.cycle_agreed = true;
  auto plan = order_plan(p.decision.take_plan());
  const std::size_t layers = plan->layers.size();
  if (!a.final_poll)
    p.reporter.log("cycle " + std::to_string(cycle) + " agreed at step " + std::to_string(step_) +
                   ": " + std::to_string(layers) + " layers to move");
  p.mover.begin(std::move(plan));
  return CycleSchedule::Event::polled(Decision::kAgreed, layers);
}

// The shift check: all-gather the per-layer totals since the last check; the schedule's
// detector judges them. A failed check is a collective failure like any other; the detector
// skips it.
CycleSchedule::Event Balancer::check_shift(StepStats& stats) {
  Parts& p = *parts_;
  const auto c0 = Clock::now();
  const Status s = p.check_started ? p.check_started->wait(p.shift_all)
                                   : p.transport.all_gather(p.accounting.take_layer_totals(),
                                                            p.shift_all, cfg_.collective_timeout);
  p.check_started.reset();
  stats.wait_ns += elapsed_ns_since(c0);
  if (!s.ok()) {
    p.reporter.error("shift check all-gather failed (" + s.to_string() + ")",
                     &BalancerCounters::collective_failures);
    return CycleSchedule::Event::check_failed();
  }
  p.reporter.add(&BalancerCounters::shift_checks);
  return CycleSchedule::Event::checked(
      shift_signal(p.shift_all, p.topo.ranks, state_->placement().layers()));
}

CycleSchedule::Event Balancer::gather(StepStats& stats) {
  Parts& p = *parts_;
  const auto c0 = Clock::now();
  const Status s =
      p.accounting.gather_started()
          ? p.accounting.finish_gather()
          : p.accounting.gather(p.transport, state_->placement(), cfg_.collective_timeout);
  stats.wait_ns += elapsed_ns_since(c0);
  if (!s.ok()) {
    p.reporter.error("count all-gather failed (" + s.to_string() + "); interval skipped",
                     &BalancerCounters::collective_failures);
    return CycleSchedule::Event::gathered(false);
  }
  stats.gathered = true;
  p.reporter.add(&BalancerCounters::gathers);
  return CycleSchedule::Event::gathered(true);
}

// The plan's layers in the schedule's order (with shift detection: worst first by the last
// check's signal, without those under shift.skip_below; they keep their placement, as a layer
// that failed to move).
std::unique_ptr<CyclePlan> Balancer::order_plan(std::unique_ptr<CyclePlan> plan) {
  Parts& p = *parts_;
  if (!plan) return plan;
  std::vector<int> changed;
  for (const LayerMove& m : plan->layers) changed.push_back(m.layer);
  const std::vector<int> order = p.schedule.order_layers(changed);
  if (order == changed) return plan;
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

// Balancing stops for good: the cycle in flight is given up without a collective, the
// placement in service stays, recording goes on.
void Balancer::stop(CycleSchedule::StopReason why) {
  Parts& p = *parts_;
  p.mover.abandon(step_);
  p.decision.abandon();
  p.reporter.add(&BalancerCounters::balancing_stopped);
  using R = CycleSchedule::StopReason;
  p.reporter.log(std::string(why == R::kAgreed   ? p.mover.stop_reason() + " (agreed by every rank)"
                             : why == R::kBroken ? "the transport is broken"
                                                 : std::to_string(p.schedule.collective_streak()) +
                                                       " collectives in a row failed (a rank "
                                                       "stopped answering)") +
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
