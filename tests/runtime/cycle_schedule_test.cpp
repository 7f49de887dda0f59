// CycleSchedule through every transition: each row of the table is a state (reached by a setup
// script of events from a fresh schedule, the driver's replies included) and one event, and the
// action and phase that must follow.
#include "swiftbalancer/runtime/cycle_schedule.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "swiftbalancer/core/status.h"

namespace swiftbalancer {
namespace {

using S = CycleSchedule;
using E = S::Event;
using Act = S::Act;
using Phase = S::Phase;
using D = S::Decision;

// Async: a gather every 4 steps, a poll every 2, 2 layers per step. Sync: 2 layers at once.
S::Config async_cfg() {
  S::Config c;
  c.mode = S::Mode::kAsync;
  c.interval_steps = 4;
  c.decision_poll_steps = 2;
  c.layers_per_step = 2;
  c.sync_layers_at_once = 2;
  c.max_collective_failures = 3;
  return c;
}
S::Config sync_cfg() {
  S::Config c = async_cfg();
  c.mode = S::Mode::kSync;
  return c;
}
S::Config off_cfg() {
  S::Config c = async_cfg();
  c.mode = S::Mode::kOff;
  return c;
}
// Shift detection: a check every 2 steps, fires above 1.3x the reference (no gap), early cycles
// post 4 layers per step.
S::Config shift_cfg(S::Mode mode = S::Mode::kAsync) {
  S::Config c = async_cfg();
  c.mode = mode;
  c.interval_steps = 8;
  c.shift.check_steps = 2;
  c.shift.trigger_ratio = 1.3;
  c.shift.rearm_ratio = 1.1;
  c.shift.min_gap_steps = 0;
  c.shift.layers_per_step = 4;
  return c;
}

ShiftSignal level(double v) {
  return ShiftSignal{{v, v}, v};
}

using Script = std::vector<E>;
Script operator+(Script a, const Script& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}
Script quiet_steps(std::int64_t from, std::int64_t to) {  // steps with nothing to do
  Script s;
  for (std::int64_t k = from; k <= to; ++k) s.push_back(E::step_ended(k));
  return s;
}

// Async scripts (no shift): deciding from step 4 (polls at 6, 8, ...); moving n layers from
// step 6 (next gather at 8); the first batch posted before step 7.
const Script kDeciding =
    quiet_steps(1, 3) + Script{E::step_ended(4), E::gathered(true), E::started(D::kPending)};
Script moving(std::size_t n) {
  return kDeciding + Script{E::step_ended(5), E::step_ended(6), E::polled(D::kAgreed, n)};
}
const Script kPosted = moving(3) + Script{E::before_forward(), E::posted(2)};
// Sync: the gather of step 4 has started a cycle that waits for its final poll.
const Script kSyncStarted =
    quiet_steps(1, 3) + Script{E::step_ended(4), E::gathered(true), E::started(D::kPending)};
// Shift (async): the reference is set at the check of step 2 (level 1.0).
const Script kArmed = Script{E::step_ended(1), E::step_ended(2), E::checked(level(1.0))};
// Shift: deciding from the gather of step 8 (its check first), polls at 10, ...
const Script kShiftDeciding =
    kArmed + Script{E::step_ended(3),  E::step_ended(4),       E::checked(level(1.0)),
                    E::step_ended(5),  E::step_ended(6),       E::checked(level(1.0)),
                    E::step_ended(7),  E::step_ended(8),       E::checked(level(1.0)),
                    E::gathered(true), E::started(D::kPending)};
// Shift: moving 5 layers agreed at step 10; two of them committed at step 11.
const Script kShiftMoving =
    kShiftDeciding + Script{E::step_ended(9),       E::step_ended(10),   E::polled(D::kAgreed, 5),
                            E::checked(level(1.0)), E::before_forward(), E::posted(2),
                            E::step_ended(11),      E::finished()};

// Shift: a 2-layer cycle agreed at step 10, both layers posted before step 11 and finished
// after it (reply due).
const Script kShiftEnding =
    kShiftDeciding + Script{E::step_ended(9),       E::step_ended(10),   E::polled(D::kAgreed, 2),
                            E::checked(level(1.0)), E::before_forward(), E::posted(2),
                            E::step_ended(11)};

struct Expect {
  Act act = Act::kNone;
  std::size_t first = 0, count = 0;
  bool final_poll = false, early = false;
  Phase preempting = Phase::kIdle;
  S::StopReason why = S::StopReason::kNone;
};

struct Row {
  const char* name;
  S::Config cfg;
  Script setup;
  E event;
  Expect want;
  Phase phase;  // after the event
};

std::vector<Row> rows() {
  using R = S::StopReason;
  return {
      // Idle: nothing between gathers; the gather at the interval; its result.
      {"idle step: nothing", async_cfg(), quiet_steps(1, 2), E::step_ended(3), {}, Phase::kIdle},
      {"idle at the interval: gather",
       async_cfg(),
       quiet_steps(1, 3),
       E::step_ended(4),
       {Act::kGather},
       Phase::kIdle},
      {"failed gather: no cycle",
       async_cfg(),
       quiet_steps(1, 3) + Script{E::step_ended(4)},
       E::gathered(false),
       {},
       Phase::kIdle},
      {"gathered while idle: start",
       async_cfg(),
       quiet_steps(1, 3) + Script{E::step_ended(4)},
       E::gathered(true),
       {Act::kStartCycle},
       Phase::kIdle},
      {"the fixed interval goes on after a gather",
       async_cfg(),
       quiet_steps(1, 3) + Script{E::step_ended(4), E::gathered(false)} + quiet_steps(5, 7),
       E::step_ended(8),
       {Act::kGather},
       Phase::kIdle},
      // Deciding (async).
      {"started, pending: deciding",
       async_cfg(),
       quiet_steps(1, 3) + Script{E::step_ended(4), E::gathered(true)},
       E::started(D::kPending),
       {},
       Phase::kDeciding},
      {"deciding before the poll step",
       async_cfg(),
       kDeciding,
       E::step_ended(5),
       {},
       Phase::kDeciding},
      {"deciding at the poll step: poll",
       async_cfg(),
       kDeciding + Script{E::step_ended(5)},
       E::step_ended(6),
       {Act::kPoll},
       Phase::kDeciding},
      {"polled pending: still deciding",
       async_cfg(),
       kDeciding + Script{E::step_ended(5), E::step_ended(6)},
       E::polled(D::kPending),
       {},
       Phase::kDeciding},
      {"pending: polled again one period later, before the gather",
       async_cfg(),
       kDeciding +
           Script{E::step_ended(5), E::step_ended(6), E::polled(D::kPending), E::step_ended(7)},
       E::step_ended(8),
       {Act::kPoll},
       Phase::kDeciding},
      {"gathered while deciding: no start",
       async_cfg(),
       kDeciding + Script{E::step_ended(5), E::step_ended(6), E::polled(D::kPending),
                          E::step_ended(7), E::step_ended(8), E::polled(D::kPending)},
       E::gathered(true),
       {},
       Phase::kDeciding},
      {"polled dropped: idle",
       async_cfg(),
       kDeciding + Script{E::step_ended(5), E::step_ended(6)},
       E::polled(D::kDropped),
       {},
       Phase::kIdle},
      {"polled agreed: moving",
       async_cfg(),
       kDeciding + Script{E::step_ended(5), E::step_ended(6)},
       E::polled(D::kAgreed, 3),
       {},
       Phase::kMoving},
      {"agreed on nothing to move: finish at once",
       async_cfg(),
       kDeciding + Script{E::step_ended(5), E::step_ended(6)},
       E::polled(D::kAgreed, 0),
       {Act::kFinish},
       Phase::kMoving},
      {"empty plan finished: idle", async_cfg(), moving(0), E::finished(), {}, Phase::kIdle},
      {"started agreed (decided at once): moving",
       async_cfg(),
       quiet_steps(1, 3) + Script{E::step_ended(4), E::gathered(true)},
       E::started(D::kAgreed, 2),
       {},
       Phase::kMoving},
      {"started agreed on nothing: finish",
       async_cfg(),
       quiet_steps(1, 3) + Script{E::step_ended(4), E::gathered(true)},
       E::started(D::kAgreed, 0),
       {Act::kFinish},
       Phase::kMoving},
      {"started dropped: idle",
       async_cfg(),
       quiet_steps(1, 3) + Script{E::step_ended(4), E::gathered(true)},
       E::started(D::kDropped),
       {},
       Phase::kIdle},
      // Moving (async).
      {"moving, before the forward: post the first layers",
       async_cfg(),
       moving(3),
       E::before_forward(),
       {Act::kPost, 0, 2},
       Phase::kMoving},
      {"posted: nothing more before the forward",
       async_cfg(),
       moving(3) + Script{E::before_forward()},
       E::posted(2),
       {},
       Phase::kMoving},
      {"posted already: a second before_forward posts nothing",
       async_cfg(),
       kPosted,
       E::before_forward(),
       {},
       Phase::kMoving},
      {"moving after the forward: finish",
       async_cfg(),
       kPosted,
       E::step_ended(7),
       {Act::kFinish},
       Phase::kMoving},
      {"finished with layers left: moving",
       async_cfg(),
       kPosted + Script{E::step_ended(7)},
       E::finished(),
       {},
       Phase::kMoving},
      {"the last batch: the layers left only",
       async_cfg(),
       kPosted + Script{E::step_ended(7), E::finished()},
       E::before_forward(),
       {Act::kPost, 2, 1},
       Phase::kMoving},
      {"the last layer finished, at a gather step: idle, then gather",
       async_cfg(),
       kPosted + Script{E::step_ended(7), E::finished(), E::before_forward(), E::posted(1),
                        E::step_ended(8)},
       E::finished(),
       {Act::kGather},
       Phase::kIdle},
      {"finish without a post (no before_forward): still moving",
       async_cfg(),
       moving(3),
       E::step_ended(7),
       {Act::kFinish},
       Phase::kMoving},
      {"gathered while moving: no start",
       async_cfg(),
       kPosted + Script{E::step_ended(7), E::finished(), E::step_ended(8), E::finished()},
       E::gathered(true),
       {},
       Phase::kMoving},
      // Sync: agree at once, then post and finish every layer at the gather step.
      {"sync started: final poll at once",
       sync_cfg(),
       quiet_steps(1, 3) + Script{E::step_ended(4), E::gathered(true)},
       E::started(D::kPending),
       {Act::kPoll, 0, 0, true},
       Phase::kDeciding},
      {"sync agreed: post as many as the pool holds",
       sync_cfg(),
       kSyncStarted,
       E::polled(D::kAgreed, 3),
       {Act::kPost, 0, 2},
       Phase::kMoving},
      {"sync posted: finish",
       sync_cfg(),
       kSyncStarted + Script{E::polled(D::kAgreed, 3)},
       E::posted(2),
       {Act::kFinish},
       Phase::kMoving},
      {"sync finished with layers left: post the rest",
       sync_cfg(),
       kSyncStarted + Script{E::polled(D::kAgreed, 3), E::posted(2)},
       E::finished(),
       {Act::kPost, 2, 1},
       Phase::kMoving},
      {"sync finished the last: idle",
       sync_cfg(),
       kSyncStarted + Script{E::polled(D::kAgreed, 3), E::posted(2), E::finished(), E::posted(1)},
       E::finished(),
       {},
       Phase::kIdle},
      {"sync agreed on nothing: one empty post",
       sync_cfg(),
       kSyncStarted,
       E::polled(D::kAgreed, 0),
       {Act::kPost, 0, 0},
       Phase::kMoving},
      {"sync dropped: idle", sync_cfg(), kSyncStarted, E::polled(D::kDropped), {}, Phase::kIdle},
      {"sync: before_forward never posts",
       sync_cfg(),
       kSyncStarted + Script{E::polled(D::kDropped)},
       E::before_forward(),
       {},
       Phase::kIdle},
      // Shift detection.
      {"shift: check every check_steps",
       shift_cfg(),
       Script{E::step_ended(1)},
       E::step_ended(2),
       {Act::kCheckShift},
       Phase::kIdle},
      {"shift: the first level is the reference",
       shift_cfg(),
       Script{E::step_ended(1), E::step_ended(2)},
       E::checked(level(2.0)),
       {},
       Phase::kIdle},
      {"shift: a failed check is skipped",
       shift_cfg(),
       kArmed + Script{E::step_ended(3), E::step_ended(4)},
       E::check_failed(),
       {},
       Phase::kIdle},
      {"shift: below the trigger: nothing",
       shift_cfg(),
       kArmed + Script{E::step_ended(3), E::step_ended(4)},
       E::checked(level(1.29)),
       {},
       Phase::kIdle},
      {"shift: above the trigger, idle: fired",
       shift_cfg(),
       kArmed + Script{E::step_ended(3), E::step_ended(4)},
       E::checked(level(1.5)),
       {Act::kShiftFired},
       Phase::kIdle},
      {"shift fired, idle: nothing to pre-empt",
       shift_cfg(),
       kArmed + Script{E::step_ended(3), E::step_ended(4), E::checked(level(1.5))},
       E::done(),
       {},
       Phase::kIdle},
      {"shift fired: the early gather one check period later",
       shift_cfg(),
       kArmed + Script{E::step_ended(3), E::step_ended(4), E::checked(level(1.5)), E::done(),
                       E::step_ended(5), E::step_ended(6)},
       E::checked(level(1.5)),
       {Act::kGather},
       Phase::kIdle},
      {"shift: the early gather starts an early cycle",
       shift_cfg(),
       kArmed + Script{E::step_ended(3), E::step_ended(4), E::checked(level(1.5)), E::done(),
                       E::step_ended(5), E::step_ended(6), E::checked(level(1.5))},
       E::gathered(true),
       {Act::kStartCycle, 0, 0, false, true},
       Phase::kIdle},
      {"shift: an early cycle posts shift.layers_per_step",
       shift_cfg(),
       kArmed + Script{E::step_ended(3), E::step_ended(4), E::checked(level(1.5)), E::done(),
                       E::step_ended(5), E::step_ended(6), E::checked(level(1.5)),
                       E::gathered(true), E::started(D::kAgreed, 6)},
       E::before_forward(),
       {Act::kPost, 0, 4},
       Phase::kMoving},
      {"shift fired while deciding: pre-empt the decision",
       shift_cfg(),
       kShiftDeciding + Script{E::step_ended(9), E::step_ended(10), E::polled(D::kPending),
                               E::checked(level(1.5))},
       E::done(),
       {Act::kPreempt, 0, 0, false, false, Phase::kDeciding},
       Phase::kDeciding},
      {"pre-empted decision: idle",
       shift_cfg(),
       kShiftDeciding + Script{E::step_ended(9), E::step_ended(10), E::polled(D::kPending),
                               E::checked(level(1.5)), E::done()},
       E::done(),
       {},
       Phase::kIdle},
      {"shift fired while moving: pre-empt the layers left",
       shift_cfg(),
       kShiftMoving + Script{E::step_ended(12), E::finished(), E::checked(level(1.5))},
       E::done(),
       {Act::kPreempt, 2, 3, false, false, Phase::kMoving},
       Phase::kMoving},
      {"pre-empted move: idle, the totals kept (not a cycle end)",
       shift_cfg(),
       kShiftMoving + Script{E::step_ended(12), E::finished(), E::checked(level(1.5)), E::done()},
       E::done(),
       {},
       Phase::kIdle},
      {"shift: a cycle end restarts the totals",
       shift_cfg(),
       kShiftEnding,
       E::finished(),
       {Act::kResetTotals},
       Phase::kIdle},
      {"shift: after the reset, the check one period on (13, not 12)",
       shift_cfg(),
       kShiftEnding + Script{E::finished(), E::done(), E::step_ended(12)},
       E::step_ended(13),
       {Act::kCheckShift},
       Phase::kIdle},
      {"shift: a dropped cycle restarts the totals",
       shift_cfg(),
       kShiftDeciding + Script{E::step_ended(9), E::step_ended(10)},
       E::polled(D::kDropped),
       {Act::kResetTotals},
       Phase::kIdle},
      {"shift, sync: a cycle that ends at its gather restarts the totals",
       shift_cfg(S::Mode::kSync),
       kArmed + Script{E::step_ended(3), E::step_ended(4), E::checked(level(1.0)), E::step_ended(5),
                       E::step_ended(6), E::checked(level(1.0)), E::step_ended(7), E::step_ended(8),
                       E::checked(level(1.0)), E::gathered(true), E::started(D::kPending)},
       E::polled(D::kDropped),
       {Act::kResetTotals},
       Phase::kIdle},
      // Peers and stopping (the runtime's fallback to recording only).
      {"peers fine: nothing",
       async_cfg(),
       quiet_steps(1, 1),
       E::peers(0, false, false),
       {},
       Phase::kIdle},
      {"collectives failing in a row: stop",
       async_cfg(),
       quiet_steps(1, 1) + Script{E::peers(2, false, false), E::step_ended(2)},
       E::peers(1, false, false),
       {Act::kStop, 0, 0, false, false, Phase::kIdle, R::kPeersLost},
       Phase::kStopped},
      {"a successful gather ends the streak",
       async_cfg(),
       quiet_steps(1, 3) + Script{E::peers(2, false, false), E::step_ended(4), E::gathered(true),
                                  E::started(D::kPending)},
       E::peers(1, false, false),
       {},
       Phase::kDeciding},
      {"a broken transport agreed by the vote: stop",
       async_cfg(),
       kPosted + Script{E::step_ended(7), E::finished()},
       E::peers(0, true, false),
       {Act::kStop, 0, 0, false, false, Phase::kIdle, R::kAgreed},
       Phase::kStopped},
      {"own transport broken, collectives fine: go on",
       async_cfg(),
       quiet_steps(1, 1),
       E::peers(0, false, true),
       {},
       Phase::kIdle},
      {"own transport broken and a collective failed: stop",
       async_cfg(),
       quiet_steps(1, 1),
       E::peers(1, false, true),
       {Act::kStop, 0, 0, false, false, Phase::kIdle, R::kBroken},
       Phase::kStopped},
      {"stopped: no gather, no check, ever",
       shift_cfg(),
       Script{E::step_ended(1), E::peers(3, false, false), E::done()} + quiet_steps(2, 7),
       E::step_ended(8),
       {},
       Phase::kStopped},
      {"stopped: peers no more",
       async_cfg(),
       Script{E::step_ended(1), E::peers(3, false, false), E::done()},
       E::peers(3, false, false),
       {},
       Phase::kStopped},
      // Off: records only.
      {"off: no gather", off_cfg(), quiet_steps(1, 3), E::step_ended(4), {}, Phase::kIdle},
      {"off: no stop", off_cfg(), quiet_steps(1, 1), E::peers(5, true, true), {}, Phase::kIdle},
  };
}

TEST(CycleSchedule, EveryTransition) {
  for (const Row& r : rows()) {
    SCOPED_TRACE(r.name);
    S s(r.cfg);
    for (const E& e : r.setup) s.on(e);
    const S::Action a = s.on(r.event);
    EXPECT_EQ(S::act_name(a.act), std::string(S::act_name(r.want.act)));
    EXPECT_EQ(a.first, r.want.first);
    EXPECT_EQ(a.count, r.want.count);
    EXPECT_EQ(a.final_poll, r.want.final_poll);
    EXPECT_EQ(a.early, r.want.early);
    EXPECT_EQ(S::phase_name(a.preempting), std::string(S::phase_name(r.want.preempting)));
    EXPECT_EQ(static_cast<int>(a.why), static_cast<int>(r.want.why));
    EXPECT_EQ(S::phase_name(s.phase()), std::string(S::phase_name(r.phase)));
  }
}

// Events out of turn are the driver's bug, reported as InternalError.
TEST(CycleSchedule, ProtocolViolationsThrow) {
  {
    S s(async_cfg());
    s.on(E::step_ended(1));
    EXPECT_THROW(s.on(E::step_ended(1)), InternalError);  // steps must increase
    EXPECT_THROW(s.on(E::finished()), InternalError);     // nothing awaited
  }
  {
    S s(async_cfg());
    for (const E& e : quiet_steps(1, 3)) s.on(e);
    ASSERT_EQ(s.on(E::step_ended(4)).act, Act::kGather);
    EXPECT_THROW(s.on(E::step_ended(5)), InternalError);  // the gather's reply first
    EXPECT_THROW(s.on(E::before_forward()), InternalError);
    EXPECT_THROW(s.on(E::polled(D::kPending)), InternalError);  // not the reply awaited
  }
  {
    S s(sync_cfg());
    for (const E& e : kSyncStarted) s.on(e);
    ASSERT_EQ(s.on(E::polled(D::kAgreed, 3)).act, Act::kPost);
    EXPECT_THROW(s.on(E::posted(0)), InternalError);  // would post for ever
  }
  {
    S s(async_cfg());
    for (const E& e : moving(3)) s.on(e);
    ASSERT_EQ(s.on(E::before_forward()).act, Act::kPost);
    EXPECT_THROW(s.on(E::posted(4)), InternalError);  // more than the plan has left
  }
}

TEST(CycleSchedule, ReadsCountsBeforeGathersAndChecks) {
  S s(async_cfg());
  for (const E& e : quiet_steps(1, 1)) s.on(e);
  EXPECT_FALSE(s.reads_counts_next());
  EXPECT_FALSE(s.gathers_next());
  s.on(E::step_ended(2));
  // Async: step 4 gathers, and its collective starts at the end of step 3 with the counts
  // recorded until then.
  EXPECT_TRUE(s.reads_counts_next());
  EXPECT_FALSE(s.gathers_next());
  s.on(E::step_ended(3));
  EXPECT_TRUE(s.gathers_next());
  EXPECT_FALSE(s.polls_next());
  S sync(sync_cfg());
  for (const E& e : quiet_steps(1, 2)) sync.on(e);
  EXPECT_FALSE(sync.reads_counts_next());  // sync gathers at step 4 with no collective started
  sync.on(E::step_ended(3));
  EXPECT_TRUE(sync.reads_counts_next());
  S shift(shift_cfg());
  shift.on(E::step_ended(1));
  EXPECT_TRUE(shift.reads_counts_next());  // step 2 checks
  S off(off_cfg());
  for (const E& e : quiet_steps(1, 3)) off.on(e);
  EXPECT_FALSE(off.reads_counts_next());
}

// Async: the cycle goes on while the last layers' vote is in flight (read at the next finish),
// and the collectives of the next step are foreseen between steps.
TEST(CycleSchedule, AVoteInFlightKeepsTheCycleMovingAndTheNextCollectivesAreForeseen) {
  S s(async_cfg());
  for (const E& e : kDeciding) s.on(e);
  EXPECT_FALSE(s.polls_next());  // after step 4: the poll is at step 6
  s.on(E::step_ended(5));
  EXPECT_TRUE(s.polls_next());
  EXPECT_EQ(s.on(E::step_ended(6)).act, Act::kPoll);
  s.on(E::polled(D::kAgreed, 2));
  EXPECT_FALSE(s.polls_next());  // moving now
  ASSERT_EQ(s.on(E::before_forward()).act, Act::kPost);
  s.on(E::posted(2));
  EXPECT_EQ(s.on(E::step_ended(7)).act, Act::kFinish);
  EXPECT_EQ(s.on(E::finished(/*voting=*/true)).act, Act::kNone);
  EXPECT_EQ(s.phase(), Phase::kMoving);  // every layer posted, their vote not read yet
  EXPECT_TRUE(s.gathers_next());         // step 8
  EXPECT_EQ(s.on(E::before_forward()).act, Act::kNone);  // nothing left to post
  EXPECT_EQ(s.on(E::step_ended(8)).act, Act::kFinish);
  EXPECT_EQ(s.on(E::finished(false)).act, Act::kGather);  // the vote read: the cycle is over
  EXPECT_EQ(s.phase(), Phase::kIdle);

  S sync(sync_cfg());
  for (const E& e : kSyncStarted) sync.on(e);
  EXPECT_FALSE(sync.polls_next());  // sync polls at the gather itself
  S shift(shift_cfg());
  EXPECT_FALSE(shift.checks_next());
  shift.on(E::step_ended(1));
  EXPECT_TRUE(shift.checks_next());  // step 2 checks
}

// The plan's layers: unchanged without a signal; with one, worst first and the fine ones left
// out (shift.skip_below).
TEST(CycleSchedule, OrdersLayersByTheLastCheck) {
  S::Config c = shift_cfg();
  c.shift.skip_below = 1.2;
  S s(c);
  const std::vector<int> changed = {0, 1, 2};
  EXPECT_EQ(s.order_layers(changed), changed);
  s.on(E::step_ended(1));
  ASSERT_EQ(s.on(E::step_ended(2)).act, Act::kCheckShift);
  s.on(E::checked(ShiftSignal{{1.5, 1.1, 2.0}, 1.53}));
  EXPECT_EQ(s.order_layers(changed), (std::vector<int>{2, 0}));
  S plain(async_cfg());
  EXPECT_EQ(plain.order_layers(std::vector<int>{2, 0, 1}), (std::vector<int>{2, 0, 1}));
}

TEST(CycleSchedule, RejectsBadConfig) {
  S::Config c = async_cfg();
  c.interval_steps = 0;
  EXPECT_THROW(S{c}, InputError);
  c = async_cfg();
  c.shift.check_steps = -1;
  EXPECT_THROW(S{c}, InputError);
  c = shift_cfg();
  c.shift.trigger_ratio = 1.0;
  EXPECT_THROW(S{c}, InputError);
  c = async_cfg();
  c.shift.trigger_ratio = 1.0;  // detection off: its ratios are not used
  EXPECT_NO_THROW(S{c});
}

}  // namespace
}  // namespace swiftbalancer
