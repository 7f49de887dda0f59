#include "swiftbalancer/runtime/cycle_schedule.h"

#include <algorithm>
#include <string>
#include <utility>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {
namespace {

const char* event_name(CycleSchedule::Event::Kind k) {
  using K = CycleSchedule::Event::Kind;
  switch (k) {
    case K::kBeforeForward:
      return "before_forward";
    case K::kStepEnded:
      return "step_ended";
    case K::kPosted:
      return "posted";
    case K::kFinished:
      return "finished";
    case K::kPolled:
      return "polled";
    case K::kStarted:
      return "started";
    case K::kChecked:
      return "checked";
    case K::kGathered:
      return "gathered";
    case K::kDone:
      return "done";
    case K::kPeers:
      return "peers";
  }
  return "?";
}

}  // namespace

void CycleSchedule::Config::validate() const {
  if (interval_steps < 1) throw InputError("interval_steps must be at least 1");
  if (decision_poll_steps < 1) throw InputError("decision_poll_steps must be at least 1");
  if (layers_per_step < 1) throw InputError("layers_per_step must be at least 1");
  if (sync_layers_at_once < 1) throw InputError("sync_layers_at_once must be at least 1");
  if (max_collective_failures < 1) throw InputError("max_collective_failures must be at least 1");
  if (shift.check_steps < 0) throw InputError("shift.check_steps must not be negative");
  if (shift.check_steps > 0) shift.validate();
}

CycleSchedule::CycleSchedule(Config cfg)
    : cfg_((cfg.validate(), std::move(cfg))),
      shift_on_(cfg_.shift.check_steps > 0 && cfg_.mode != Mode::kOff),
      detector_(shift_on_ ? cfg_.shift : ShiftConfig{}),
      next_gather_(cfg_.interval_steps),
      cycle_lps_(cfg_.layers_per_step) {
  if (shift_on_) next_check_ = cfg_.shift.check_steps;
}

const char* CycleSchedule::act_name(Act a) {
  switch (a) {
    case Act::kNone:
      return "none";
    case Act::kPost:
      return "post";
    case Act::kFinish:
      return "finish";
    case Act::kPoll:
      return "poll";
    case Act::kResetTotals:
      return "reset-totals";
    case Act::kCheckShift:
      return "check-shift";
    case Act::kShiftFired:
      return "shift-fired";
    case Act::kPreempt:
      return "preempt";
    case Act::kGather:
      return "gather";
    case Act::kStartCycle:
      return "start-cycle";
    case Act::kStop:
      return "stop";
  }
  return "?";
}

const char* CycleSchedule::phase_name(Phase p) {
  switch (p) {
    case Phase::kIdle:
      return "idle";
    case Phase::kDeciding:
      return "deciding";
    case Phase::kMoving:
      return "moving";
    case Phase::kStopped:
      return "stopped";
  }
  return "?";
}

bool CycleSchedule::reads_counts_next() const {
  if (cfg_.mode == Mode::kOff || phase_ == Phase::kStopped) return false;
  const std::int64_t next = step_ + 1 + (cfg_.mode == Mode::kAsync ? 1 : 0);
  return next >= next_gather_ || (shift_on_ && next >= next_check_);
}

bool CycleSchedule::polls_next() const {
  return cfg_.mode == Mode::kAsync && phase_ == Phase::kDeciding && step_ + 1 >= next_poll_;
}

bool CycleSchedule::checks_next() const {
  return shift_on_ && phase_ != Phase::kStopped && step_ + 1 >= next_check_;
}

bool CycleSchedule::gathers_next() const {
  return cfg_.mode != Mode::kOff && phase_ != Phase::kStopped && step_ + 1 >= next_gather_;
}

std::vector<int> CycleSchedule::order_layers(std::span<const int> changed) const {
  if (!shift_on_ || signal_.per_layer.empty()) return {changed.begin(), changed.end()};
  return swiftbalancer::order_layers(changed, signal_.per_layer, cfg_.shift.skip_below);
}

void CycleSchedule::protocol_error(const Event& e) const {
  throw InternalError(std::string("cycle schedule: event '") + event_name(e.kind) +
                      "' while awaiting the reply to '" + act_name(awaiting_) + "' in phase " +
                      phase_name(phase_) + " at step " + std::to_string(step_));
}

CycleSchedule::Action CycleSchedule::await(Action a) {
  awaiting_ = a.act;
  return a;
}

CycleSchedule::Action CycleSchedule::on(Event e) {
  using K = Event::Kind;
  // Events that start something: only between two steps, with no reply outstanding.
  if (e.kind == K::kBeforeForward || e.kind == K::kStepEnded || e.kind == K::kPeers) {
    if (awaiting_ != Act::kNone || stage_ != Stage::kOutside) protocol_error(e);
    if (e.kind == K::kBeforeForward) {
      // Async moving: this step's batch, posted once (a second call before the forward posts
      // nothing more).
      if (cfg_.mode != Mode::kAsync || phase_ != Phase::kMoving || in_flight_ ||
          next_layer_ >= plan_layers_)
        return {};
      const std::size_t left = plan_layers_ - next_layer_;
      return await({Act::kPost, next_layer_, std::min(left, static_cast<std::size_t>(cycle_lps_))});
    }
    if (e.kind == K::kPeers) return stop(e);
    if (e.step <= step_)
      throw InternalError("cycle schedule: step " + std::to_string(e.step) + " after step " +
                          std::to_string(step_));
    step_ = e.step;
    busy_at_start_ = busy();
    gathered_ = false;
    stage_ = Stage::kCommit;
    return advance();
  }
  // A reply to the action awaited.
  const Act a = awaiting_;
  const bool answers =
      (e.kind == K::kPosted && a == Act::kPost) || (e.kind == K::kFinished && a == Act::kFinish) ||
      (e.kind == K::kPolled && a == Act::kPoll) ||
      (e.kind == K::kStarted && a == Act::kStartCycle) ||
      (e.kind == K::kChecked && a == Act::kCheckShift) ||
      (e.kind == K::kGathered && a == Act::kGather) ||
      (e.kind == K::kDone &&
       (a == Act::kResetTotals || a == Act::kShiftFired || a == Act::kPreempt || a == Act::kStop));
  if (!answers) protocol_error(e);
  awaiting_ = Act::kNone;
  switch (e.kind) {
    case K::kPosted:
      if (e.layers > plan_layers_ - next_layer_)
        throw InternalError("cycle schedule: posted more layers than the plan has left");
      next_layer_ += e.layers;
      in_flight_ = true;
      if (stage_ == Stage::kOutside) return {};  // async: posted before the forward
      // Sync: post and finish until every layer is done, at this step. A post that took no
      // layer while some are left would loop for ever (the mover always takes one).
      if (e.layers == 0 && next_layer_ < plan_layers_)
        throw InternalError("cycle schedule: a post took no layer while layers are left");
      return await(Act::kFinish);
    case K::kFinished:
      in_flight_ = false;
      if (e.voting && cfg_.mode != Mode::kAsync)
        throw InternalError("cycle schedule: a vote left in flight outside async mode");
      if (next_layer_ >= plan_layers_ && !e.voting) {
        phase_ = Phase::kIdle;  // the last layer is handled: the cycle is over
        plan_layers_ = next_layer_ = 0;
      } else if (cfg_.mode == Mode::kSync) {
        return post_at_once();
      }
      return advance();
    case K::kPolled:
      if (e.decision == Decision::kAgreed) return agreed(e.layers);
      if (e.decision == Decision::kPending && cfg_.mode == Mode::kAsync) {
        next_poll_ = step_ + cfg_.decision_poll_steps;
      } else {
        phase_ = Phase::kIdle;  // dropped everywhere (a final poll is never left pending)
      }
      return advance();
    case K::kStarted:
      if (e.decision == Decision::kAgreed) return agreed(e.layers);  // decided at once
      if (e.decision == Decision::kDropped) {
        phase_ = Phase::kIdle;
        return advance();
      }
      phase_ = Phase::kDeciding;
      if (cfg_.mode == Mode::kSync) {  // stop the world: agree now, the result or a failure
        Action poll{Act::kPoll};
        poll.final_poll = true;
        return await(poll);
      }
      next_poll_ = step_ + cfg_.decision_poll_steps;
      return advance();
    case K::kChecked:
      if (!e.ok) return advance();  // a failed check: the detector skips it
      signal_ = std::move(e.signal);
      if (!detector_.observe(step_, signal_.level)) return advance();
      // The load shifted: what the window holds and a cycle in flight were decided on the load
      // that went away. Gather one check period from now, so that the early cycle decides on
      // new load only.
      next_gather_ = step_ + cfg_.shift.check_steps;
      early_ = true;
      return await(Act::kShiftFired);
    case K::kGathered:
      gathered_ = e.ok;
      if (!e.ok || phase_ != Phase::kIdle) return advance();  // no cycle (failed, or busy)
      cycle_lps_ = early_now_ && cfg_.shift.layers_per_step > 0 ? cfg_.shift.layers_per_step
                                                                : cfg_.layers_per_step;
      stage_ = Stage::kAfterStart;
      {
        Action start{Act::kStartCycle};
        start.early = early_now_;
        return await(start);
      }
    case K::kDone:
      if (a == Act::kShiftFired && busy()) {
        // Every rank fired at this step on the same signal, so every rank pre-empts alike
        // without a collective. Between steps: nothing is posted.
        if (in_flight_) throw InternalError("cycle schedule: pre-empted with layers in flight");
        Action p{Act::kPreempt};
        p.preempting = phase_;
        if (phase_ == Phase::kMoving) {
          p.first = next_layer_;
          p.count = plan_layers_ - next_layer_;
        }
        return await(p);
      }
      if (a == Act::kPreempt) {
        // Not a cycle end: the detector keeps its reference until the early cycle ends.
        phase_ = Phase::kIdle;
        plan_layers_ = next_layer_ = 0;
      }
      if (a == Act::kStop) return {};
      return advance();
    default:
      protocol_error(e);
  }
}

CycleSchedule::Action CycleSchedule::agreed(std::size_t layers) {
  phase_ = Phase::kMoving;
  plan_layers_ = layers;
  next_layer_ = 0;
  in_flight_ = false;
  if (cfg_.mode == Mode::kSync) return post_at_once();
  if (layers == 0) return await(Act::kFinish);  // nothing to move: the cycle ends here
  return advance();                             // the first layers go out before the next forward
}

CycleSchedule::Action CycleSchedule::post_at_once() {
  const std::size_t left = plan_layers_ - next_layer_;
  return await({Act::kPost, next_layer_,
                std::min(left, static_cast<std::size_t>(cfg_.sync_layers_at_once))});
}

CycleSchedule::Action CycleSchedule::advance() {
  for (;;) {
    switch (stage_) {
      case Stage::kCommit:  // the layers posted before this forward
        stage_ = Stage::kPoll;
        if (cfg_.mode == Mode::kAsync && phase_ == Phase::kMoving) return await(Act::kFinish);
        break;
      case Stage::kPoll:
        stage_ = Stage::kEnded;
        if (cfg_.mode == Mode::kAsync && phase_ == Phase::kDeciding && step_ >= next_poll_)
          return await(Act::kPoll);
        break;
      case Stage::kEnded:  // the cycle in flight at the step's start ended (or was dropped)
        stage_ = Stage::kCheck;
        if (busy_at_start_ && phase_ == Phase::kIdle) return cycle_ended();
        break;
      case Stage::kCheck:
        stage_ = Stage::kGather;
        if (shift_on_ && phase_ != Phase::kStopped && step_ >= next_check_) {
          next_check_ = step_ + cfg_.shift.check_steps;
          return await(Act::kCheckShift);
        }
        break;
      case Stage::kGather:
        stage_ = Stage::kOutside;
        if (cfg_.mode != Mode::kOff && phase_ != Phase::kStopped && step_ >= next_gather_) {
          // The fixed interval restarts from every gather (an early one included).
          next_gather_ = step_ + cfg_.interval_steps;
          early_now_ = std::exchange(early_, false);
          return await(Act::kGather);
        }
        break;
      case Stage::kAfterStart:  // a cycle started at this step and already ended (sync)
        stage_ = Stage::kOutside;
        if (phase_ == Phase::kIdle) return cycle_ended();
        break;
      case Stage::kOutside:
        return {};
    }
  }
}

// A cycle ended (committed, dropped, or nothing to move): what it reached is the detector's new
// reference, measured from here on (the next check covers only the steps after this one).
CycleSchedule::Action CycleSchedule::cycle_ended() {
  if (!shift_on_) return advance();
  detector_.reset_reference();
  next_check_ = step_ + cfg_.shift.check_steps;
  return await(Act::kResetTotals);
}

// Falls back to recording only when the layer vote said a rank's transport or store broke,
// when this rank's transport is broken and its collectives fail too, or when
// max_collective_failures collectives in a row failed (a gather that succeeds ends the streak).
// Once, for good: a rank that came back would find the others out of step.
CycleSchedule::Action CycleSchedule::stop(const Event& e) {
  if (cfg_.mode == Mode::kOff || phase_ == Phase::kStopped) return {};
  streak_ += static_cast<int>(e.failures);
  if (gathered_) streak_ = 0;
  const bool broken = e.stop_agreed || (e.transport_broken && streak_ > 0);
  if (!broken && streak_ < cfg_.max_collective_failures) return {};
  phase_ = Phase::kStopped;
  plan_layers_ = next_layer_ = 0;
  in_flight_ = false;
  Action s{Act::kStop};
  s.why = e.stop_agreed ? StopReason::kAgreed
          : broken      ? StopReason::kBroken
                        : StopReason::kPeersLost;
  return await(s);
}

}  // namespace swiftbalancer
