// CycleSchedule: the step schedule of rebalance cycles, as a pure state machine (no threads,
// clocks or transports). The one place that says, step by step, when to gather, check for a
// shift, poll the worker's decision, post and commit layers, pre-empt, and stop. Balancer
// (runtime/balancer.h) and replay's PolicySim (replay/policy_sim.h) both drive it, so the
// balancer and its model take the same decisions; docs/architecture.md has its table.
//
// The cycle's phase lives here and only here:
//   kIdle --gather (start)--> kDeciding --agreed--> kMoving --last layer finished and voted-->
//   kIdle
//            kDeciding --dropped--> kIdle;  kDeciding/kMoving --shift fired--> kIdle (pre-empted)
//            any --peers lost or a broken transport agreed--> kStopped (final)
// DecisionCycle and LayerMover hold the work of the phase (a job, a plan), not the phase.
//
// Protocol: the driver hands every event to on() and does the action it returns; an action
// other than kNone wants one reply event (the result of doing it), which returns the next
// action, until kNone. Per step:
//   before the forward: on(before_forward())       -> kPost (async, moving) or kNone
//   after the forward:  on(step_ended(step)), then reply to each action until kNone;
//                       then (runtime) on(peers(...)) -> kStop or kNone.
// Within a step after the forward, in this order: finish the posted layers (async, moving) ->
// poll the decision (async, deciding, at its poll step) -> restart the shift totals when the
// cycle in flight at the step's start ended (shift on) -> the shift check (every
// shift.check_steps; on a firing: drop the window's load, pre-empt a cycle in flight, gather
// one check period later) -> the gather (every interval_steps; a successful one starts a cycle
// when idle; sync: poll with final_poll at once, then post and finish every layer this step).
// Every transition happens at a step number and on a result every rank shares (a collective's),
// so every rank's schedule is in the same state at the same step.
//
// Replies: kPost -> posted(layers taken); kFinish -> finished(voting); kPoll -> polled(decision,
// layers); kCheckShift -> checked(signal) or check_failed(); kGather -> gathered(ok);
// kStartCycle -> started(decision, layers); kResetTotals, kShiftFired, kPreempt, kStop ->
// done(). A reply that does not answer the action awaited throws InternalError.
//
// Thread-safety: none; one owner (the serving thread, or one replay simulation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "swiftbalancer/stats/shift_detector.h"

namespace swiftbalancer {

class CycleSchedule {
 public:
  enum class Mode { kAsync, kSync, kOff };
  struct Config {
    Mode mode = Mode::kAsync;
    int interval_steps = 50;          // a gather every this many steps (restarted by an early one)
    int decision_poll_steps = 2;      // async: steps between two decision polls
    int layers_per_step = 1;          // async: layers posted per step
    int sync_layers_at_once = 2;      // sync: layers posted at once (the staging regions)
    int max_collective_failures = 3;  // collectives failed in a row before stopping
    ShiftConfig shift{};              // shift.check_steps 0: no shift detection
    void validate() const;            // throws InputError naming the field
  };

  enum class Phase { kIdle, kDeciding, kMoving, kStopped };
  enum class Decision { kPending, kAgreed, kDropped };
  enum class StopReason { kNone, kAgreed, kBroken, kPeersLost };

  enum class Act {
    kNone,         // nothing more (this step, or before this forward)
    kPost,         // post layers [first, first + count) of the agreed plan (count >= 0)
    kFinish,       // wait for, agree on and commit what is posted (ends an empty plan's cycle)
    kPoll,         // one decision agreement round; final_poll: a pending result counts failed
    kResetTotals,  // a cycle ended: discard the per-layer totals since the last shift check
    kCheckShift,   // all-gather the per-layer totals since the last check, reply the signal
    kShiftFired,   // the load shifted: drop the window's load and the open interval
    kPreempt,      // drop the cycle in flight (`preempting` says which part holds it)
    kGather,       // all-gather the counts into the window
    kStartCycle,   // start a decision on the window; `early`: a shift started it
    kStop,         // stop balancing for good (`why`): abandon the cycle, record only
  };
  struct Action {
    Act act = Act::kNone;
    // kPost: the plan's layers [first, first + count); kPreempt (moving): the layers left,
    // [first, first + count), which stay on the old placement.
    std::size_t first = 0, count = 0;
    bool final_poll = false;             // kPoll
    bool early = false;                  // kStartCycle
    Phase preempting = Phase::kIdle;     // kPreempt: kDeciding or kMoving
    StopReason why = StopReason::kNone;  // kStop
  };

  struct Event {
    enum class Kind {
      kBeforeForward,
      kStepEnded,
      kPosted,
      kFinished,
      kPolled,
      kStarted,
      kChecked,
      kGathered,
      kDone,
      kPeers,
    };
    Kind kind = Kind::kDone;
    std::int64_t step = 0;                   // kStepEnded: the step just finished (1-based)
    Decision decision = Decision::kPending;  // kPolled, kStarted
    std::size_t layers = 0;  // kPosted: layers taken; kPolled/kStarted agreed: the plan's layers
    bool ok = true;          // kChecked (false: the check's collective failed), kGathered
    ShiftSignal signal;      // kChecked
    // kPeers: collectives failed since the last kPeers, the layer vote said a rank's transport
    // or store broke, this rank's transport reports broken.
    std::int64_t failures = 0;
    bool stop_agreed = false, transport_broken = false;
    bool voting = false;  // kFinished

    static Event of(Kind k) {
      Event e;
      e.kind = k;
      return e;
    }
    static Event before_forward() { return of(Kind::kBeforeForward); }
    static Event step_ended(std::int64_t s) {
      Event e = of(Kind::kStepEnded);
      e.step = s;
      return e;
    }
    static Event posted(std::size_t n) {
      Event e = of(Kind::kPosted);
      e.layers = n;
      return e;
    }
    // voting: layers finished at this step still wait for their vote (async: read at the next
    // kFinish); the cycle goes on until it is read.
    static Event finished(bool voting = false) {
      Event e = of(Kind::kFinished);
      e.voting = voting;
      return e;
    }
    static Event polled(Decision d, std::size_t layers = 0) {
      Event e = of(Kind::kPolled);
      e.decision = d;
      e.layers = layers;
      return e;
    }
    static Event started(Decision d, std::size_t layers = 0) {
      Event e = polled(d, layers);
      e.kind = Kind::kStarted;
      return e;
    }
    static Event checked(ShiftSignal s) {
      Event e = of(Kind::kChecked);
      e.signal = std::move(s);
      return e;
    }
    static Event check_failed() {
      Event e = of(Kind::kChecked);
      e.ok = false;
      return e;
    }
    static Event gathered(bool ok) {
      Event e = of(Kind::kGathered);
      e.ok = ok;
      return e;
    }
    static Event done() { return of(Kind::kDone); }
    static Event peers(std::int64_t failures, bool stop_agreed, bool transport_broken) {
      Event e = of(Kind::kPeers);
      e.failures = failures;
      e.stop_agreed = stop_agreed;
      e.transport_broken = transport_broken;
      return e;
    }
  };

  explicit CycleSchedule(Config cfg);  // throws InputError on a bad config

  // One event in, the action to take out (see the protocol above).
  Action on(Event e);

  Phase phase() const { return phase_; }
  bool busy() const { return phase_ == Phase::kDeciding || phase_ == Phase::kMoving; }
  std::int64_t step() const { return step_; }
  bool shift_on() const { return shift_on_; }
  // Whether the step after step() reads the counts recorded so far (a gather or a check). In
  // async mode, also when the step after that gathers: its collective is started at the end of
  // the step before (Balancer), with the counts recorded until then.
  bool reads_counts_next() const;
  // What the step after step() does, as far as is known between two steps: a decision poll
  // (async), a shift check, a count gather. Async mode starts these collectives at the end of
  // the step before, so that the step only reads them. A check or a gather foreseen here may
  // still not happen (a cycle that ends at that step restarts the check period; a shift that
  // fires moves the gather): its started collective is then dropped on every rank alike.
  bool polls_next() const;
  bool checks_next() const;
  bool gathers_next() const;
  // The plan's layers to move, from the ones whose placement changes: worst first by the last
  // check's signal, without those under shift.skip_below (unchanged without a signal).
  std::vector<int> order_layers(std::span<const int> changed) const;
  // Layers per step of the cycle in flight (async).
  int cycle_layers_per_step() const { return cycle_lps_; }
  // The plan's layers and the next one to post (kMoving).
  std::size_t plan_layers() const { return plan_layers_; }
  std::size_t next_layer() const { return next_layer_; }
  // Shift detection: the last check's signal and the detector (reference level, for logs).
  const ShiftSignal& signal() const { return signal_; }
  const ShiftDetector& detector() const { return detector_; }
  int collective_streak() const { return streak_; }  // collectives failed in a row
  const Config& config() const { return cfg_; }

  static const char* act_name(Act a);
  static const char* phase_name(Phase p);

 private:
  // Where the after-forward sequence of the step stands; the next action is looked for from
  // here on.
  enum class Stage { kOutside, kCommit, kPoll, kEnded, kCheck, kGather, kAfterStart };

  Action await(Action a);
  Action await(Act a) { return await(Action{a}); }
  Action advance();
  Action agreed(std::size_t layers);
  Action post_at_once();
  Action cycle_ended();
  Action stop(const Event& e);
  [[noreturn]] void protocol_error(const Event& e) const;

  Config cfg_;
  bool shift_on_;
  ShiftDetector detector_;
  Phase phase_ = Phase::kIdle;
  Stage stage_ = Stage::kOutside;
  Act awaiting_ = Act::kNone;
  std::int64_t step_ = 0;
  bool busy_at_start_ = false;  // a cycle was in flight when the step's forward ended
  bool gathered_ = false;       // a gather succeeded at this step
  bool early_now_ = false;      // the gather of this step was brought forward by a shift
  std::int64_t next_gather_, next_check_ = 0, next_poll_ = 0;
  bool early_ = false;  // the next gather was brought forward by a shift
  int cycle_lps_;
  std::size_t plan_layers_ = 0, next_layer_ = 0;
  bool in_flight_ = false;  // layers posted and not yet finished
  ShiftSignal signal_;
  int streak_ = 0;
};

}  // namespace swiftbalancer
