#include "swiftbalancer/runtime/internal/decision_cycle.h"

#include <atomic>
#include <stdexcept>
#include <string>
#include <utility>

#include "swiftbalancer/compat/align.h"
#include "swiftbalancer/core/metrics.h"
#include "swiftbalancer/core/resource.h"
#include "swiftbalancer/exec/thread_priority.h"

namespace swiftbalancer {
namespace {

// Votes, ordered so that the minimum over ranks is the outcome.
constexpr std::int64_t kVoteFailed = 0, kVotePending = 1, kVoteReady = 2;

enum class FailKind { kNone, kWorker, kInvalid };

}  // namespace

struct DecisionCycle::Result {
  std::int64_t cycle = 0;
  Clock::time_point started;
  std::atomic<std::int64_t> state{kVotePending};
  std::atomic<bool> cancelled{false};
  // Written by the worker before `state` is released, read by the serving thread after.
  FailKind fail = FailKind::kNone;
  std::string error;
  std::unique_ptr<CyclePlan> plan;

  void finish(FailKind kind, std::string why) {
    fail = kind;
    error = std::move(why);
    plan.reset();
    state.store(kVoteFailed, std::memory_order_release);
  }
};

struct DecisionCycle::Job {
  std::int64_t cycle = 0;
  LoadMatrix load;
  Placement current;
  std::vector<std::size_t> expert_bytes;
  std::shared_ptr<Result> result;
};

DecisionCycle::DecisionCycle(const Topology& topo, int rank, std::shared_ptr<const Policy> policy,
                             const BalancerConfig& config, Reporter& reporter, StagingPool& pool)
    : topo_(topo),
      rank_(rank),
      policy_(std::move(policy)),
      cfg_(config),
      reporter_(reporter),
      pool_(pool) {
  if (cfg_.policy_threads > 1 && cfg_.mode != BalancerMode::kOff) {
    // The policy's helpers run at the worker's priority (they are the worker, spread out); off
    // mode never decides, so it starts none.
    const bool lower = cfg_.mode == BalancerMode::kAsync && cfg_.background_worker;
    policy_threads_ = std::make_unique<ThreadPool>(cfg_.policy_threads, [lower] {
      if (lower) lower_current_thread_priority();
    });
  }
  if (cfg_.mode == BalancerMode::kAsync)
    worker_ = start_thread("the balancer's worker thread", [this] { worker_loop(); });
}

DecisionCycle::~DecisionCycle() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

std::int64_t DecisionCycle::cycle_id() const {
  return result_ ? result_->cycle : -1;
}

void DecisionCycle::decide(const Job& job, Result& out) const {
  const FaultInjection& f = cfg_.fault;
  try {
    if (f.hits(FaultInjection::Kind::kWorkerException, rank_, job.cycle, topo_.ranks))
      throw std::runtime_error("injected worker exception");
    PolicyInput in{topo_, job.load, &job.current, cfg_.policy_options, policy_threads_.get()};
    Placement target = policy_->rebalance(in);
    if (f.hits(FaultInjection::Kind::kBadPlacement, rank_, job.cycle, topo_.ranks) &&
        target.num_slots() > 1)
      target.at(0, 1) = target.at(0, 0);  // two replicas on rank 0, or an expert missing
    if (target.layers() != job.current.layers() || target.experts() != job.current.experts() ||
        target.num_slots() != topo_.num_slots())
      return out.finish(FailKind::kInvalid, "policy returned a placement of the wrong shape");
    if (const Status v = validate_placement(target, topo_); !v.ok())
      return out.finish(FailKind::kInvalid, "policy returned an invalid placement: " + v.message());
    // A policy says which experts each rank holds, not in which of its slots (DeepSeek's packing
    // builds from scratch): an expert a rank keeps stays in its slot, so the plan never copies
    // it within the rank nor writes a slot whose expert need not change. Only permutes slots
    // within a rank, so the placement stays valid and its cross-rank transfers are the same;
    // deterministic, so every rank aligns alike and the hashes still agree.
    compat::align_to_current(job.current, target, topo_);
    auto plan = std::make_unique<CyclePlan>(
        plan_cycle(job.current, target, topo_, rank_, cfg_.link_weights, job.expert_bytes));
    plan->cycle = job.cycle;
    plan->started = out.started;
    plan->imbalance_before = balance_summary(job.current, job.load, topo_).mean_imbalance;
    plan->imbalance_after = balance_summary(target, job.load, topo_).mean_imbalance;
    const Status staged =
        pool_.reserve(plan->staging_region_bytes, Clock::now() + cfg_.transfer_timeout);
    if (!staged.ok()) return out.finish(FailKind::kWorker, "staging: " + staged.message());
    out.plan = std::move(plan);
    out.state.store(kVoteReady, std::memory_order_release);
  } catch (const std::exception& e) {
    out.finish(FailKind::kWorker, std::string("worker failed: ") + e.what());
  }
}

void DecisionCycle::worker_loop() {
  if (cfg_.background_worker && !lower_current_thread_priority())
    reporter_.log("could not lower the worker thread's priority; it runs at normal priority",
                  LogSeverity::kWarning);
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      // Notified by start() (worker_poll 0: the timeout only bounds the wait), or not at all:
      // then this wait's timeout is how the worker finds its job (BalancerConfig::worker_poll).
      const Millis wait = cfg_.worker_poll.count() > 0 ? cfg_.worker_poll : Millis(100);
      while (!stop_ && jobs_.empty()) cv_.wait_for(lock, wait);
      if (stop_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    if (job.result->cancelled.load(std::memory_order_acquire)) continue;
    decide(job, *job.result);
  }
}

void DecisionCycle::start(const LoadMatrix& load, const Placement& current,
                          std::vector<std::size_t> expert_bytes) {
  if (result_) throw InternalError("a decision cycle started while another is active");
  auto result = std::make_shared<Result>();
  result->cycle = next_cycle_++;
  result->started = Clock::now();
  reporter_.add(&BalancerCounters::cycles_started);
  result_ = result;
  Job job{result->cycle, load, current, std::move(expert_bytes), result};
  if (cfg_.mode != BalancerMode::kAsync) {
    decide(job, *result);
    return;
  }
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  if (cfg_.worker_poll.count() == 0) cv_.notify_one();
}

void DecisionCycle::start_agree(Transport& transport) {
  start_round(transport, /*final_poll=*/false);
}

void DecisionCycle::start_round(Transport& transport, bool final_poll) {
  if (!result_ || agreeing_.pending) throw InternalError("start_agree without a cycle to agree on");
  Result& r = *result_;
  std::int64_t vote = r.state.load(std::memory_order_acquire);
  FailKind fail = vote == kVoteFailed ? r.fail : FailKind::kNone;
  agreeing_.why = vote == kVoteFailed ? r.error : std::string();
  bool timed_out = false;
  if (vote == kVotePending && (final_poll || Clock::now() - r.started > cfg_.worker_timeout)) {
    vote = kVoteFailed;
    fail = FailKind::kWorker;
    agreeing_.why =
        "worker did not finish within " + std::to_string(cfg_.worker_timeout.count()) + " ms";
    r.cancelled.store(true, std::memory_order_release);
    timed_out = true;
  }
  const std::int64_t h = vote == kVoteReady ? r.plan->hash : 0;
  // Minimum over ranks: the vote, the hash both ways (equal everywhere iff min == -min(-h)),
  // and each failure kind as a negated flag (so that any rank's failure shows everywhere), the
  // worker deadline apart, so that a rank whose own worker answered can still name the cause.
  const std::int64_t v[] = {vote,
                            h,
                            -h,
                            fail == FailKind::kWorker ? -1 : 0,
                            fail == FailKind::kInvalid ? -1 : 0,
                            timed_out ? -1 : 0};
  agreeing_.pending = transport.start_all_reduce(v, ReduceOp::kMin, cfg_.collective_timeout);
}

DecisionCycle::Outcome DecisionCycle::agree(Transport& transport, bool final_poll) {
  if (!agreeing_.pending) start_round(transport, final_poll);
  Result& r = *result_;
  std::vector<std::int64_t> v(6);
  const Status s = agreeing_.pending->wait(v);
  agreeing_.pending.reset();
  const std::string why = std::move(agreeing_.why);
  const std::string name = "cycle " + std::to_string(r.cycle);
  if (!s.ok()) {
    reporter_.error(name + ": decision agreement failed (" + s.to_string() + "); cycle dropped",
                    &BalancerCounters::collective_failures);
    drop();
    return Outcome::kDropped;
  }
  if (v[0] == kVoteReady && v[1] != -v[2]) {
    reporter_.error(name + ": ranks computed different placements; cycle dropped", nullptr);
    drop();
    return Outcome::kDropped;
  }
  if (v[0] == kVoteReady) {
    reporter_.add(&BalancerCounters::cycles_agreed);
    return Outcome::kAgreed;
  }
  if (v[0] == kVotePending) return Outcome::kPending;
  const Reporter::Counter counter =
      v[4] != 0 ? &BalancerCounters::invalid_placements : &BalancerCounters::worker_failures;
  if (!why.empty()) {
    reporter_.error(name + ": " + why + "; cycle dropped on every rank", counter);
  } else if (v[5] != 0) {
    reporter_.error(name + ": another rank's worker did not finish within the worker deadline (" +
                        std::to_string(cfg_.worker_timeout.count()) + " ms here); cycle dropped",
                    counter);
  } else if (v[4] != 0) {
    reporter_.error(name + ": another rank's policy returned an invalid placement; cycle dropped",
                    counter);
  } else {
    reporter_.error(name + ": another rank's worker failed; cycle dropped", counter);
  }
  drop();
  return Outcome::kDropped;
}

std::unique_ptr<CyclePlan> DecisionCycle::take_plan() {
  if (!result_ || result_->state.load(std::memory_order_acquire) != kVoteReady)
    throw InternalError("take_plan without an agreed cycle");
  auto plan = std::move(result_->plan);
  result_.reset();
  return plan;
}

void DecisionCycle::abandon() {
  if (result_) drop();
}

void DecisionCycle::preempt() {
  agreeing_.pending.reset();  // every rank drops it at the same step; never read
  if (!result_) return;
  result_->cancelled.store(true, std::memory_order_release);
  result_.reset();
}

void DecisionCycle::drop() {
  reporter_.add(&BalancerCounters::cycles_dropped);
  preempt();
}

}  // namespace swiftbalancer
