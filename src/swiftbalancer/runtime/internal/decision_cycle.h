// DecisionCycle: one rebalance from the load window to a plan every rank agreed on.
//
//   start(load, placement)      at a gather step, on the serving thread: hands a job to the
//                               worker thread (async) or decides on the spot (sync);
//   agree(transport, final)     every few steps, on the serving thread: the ranks all-reduce
//                               their vote (pending / ready / failed, and how), and a hash of
//                               the result; all go on to moving at the same step, or all drop it.
//                               In async mode the vote is started at the end of the step before
//                               (start_agree) and agree() only reads it: it says where the
//                               worker stood then.
//
// The worker runs the policy, validates its result, aligns it to the placement in service (an
// expert a rank keeps keeps its slot: compat/align.h), derives this rank's CyclePlan and
// reserves its staging (so the allocation happens off the serving thread). A worker that
// throws, returns an invalid placement, or is not done within worker_timeout fails the cycle on
// every rank, and every rank counts the failure under its kind. Serving never waits for the worker.
//
// Thread-safety: every method on the serving thread. The worker touches only its job and the
// job's result, published with a release store of the result's state.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "swiftbalancer/core/load_matrix.h"
#include "swiftbalancer/core/placement.h"
#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/exec/thread_pool.h"
#include "swiftbalancer/policy/policy.h"
#include "swiftbalancer/runtime/balancer_config.h"
#include "swiftbalancer/runtime/cycle_plan.h"
#include "swiftbalancer/runtime/internal/reporter.h"
#include "swiftbalancer/runtime/internal/staging_pool.h"
#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer {

class DecisionCycle {
 public:
  DecisionCycle(const Topology& topo, int rank, std::shared_ptr<const Policy> policy,
                const BalancerConfig& config, Reporter& reporter, StagingPool& pool);
  ~DecisionCycle();  // stops the worker (waits for a running policy to finish)
  DecisionCycle(const DecisionCycle&) = delete;
  DecisionCycle& operator=(const DecisionCycle&) = delete;

  enum class Outcome { kPending, kAgreed, kDropped };

  // Starts the next cycle (none may be active). expert_bytes[l]: one expert of layer l.
  void start(const LoadMatrix& load, const Placement& current,
             std::vector<std::size_t> expert_bytes);
  bool active() const { return result_ != nullptr; }
  std::int64_t cycle_id() const;  // of the active cycle
  // One agreement round. final_poll: a result still pending counts as failed (sync mode).
  // kAgreed: take_plan() holds the plan; kDropped: the cycle is over (reported and counted).
  Outcome agree(Transport& transport, bool final_poll);
  // Starts the next agreement round's collective now; agree() then reads it.
  void start_agree(Transport& transport);
  bool agreeing() const { return agreeing_.pending != nullptr; }
  std::unique_ptr<CyclePlan> take_plan();
  // Drops the active cycle without a collective (the other ranks stopped answering).
  void abandon();
  // Drops the active cycle without a collective because every rank decided to at the same step
  // (a shift seen in an all-gathered signal); not counted as dropped. The worker's result, when
  // it comes, is discarded.
  void preempt();

  struct Result;  // one cycle's result, shared by the serving thread and the worker

 private:
  struct Job;
  // A started agreement round: its collective and what this rank saw of its own failure.
  struct Agreeing {
    std::unique_ptr<PendingCollective> pending;
    std::string why;
  };
  void worker_loop();
  void start_round(Transport& transport, bool final_poll);
  void decide(const Job& job, Result& out) const;
  void drop();

  Topology topo_;
  int rank_;
  std::shared_ptr<const Policy> policy_;
  const BalancerConfig& cfg_;
  Reporter& reporter_;
  StagingPool& pool_;
  std::int64_t next_cycle_ = 0;
  std::shared_ptr<Result> result_;  // the active cycle
  Agreeing agreeing_;
  // Threads for the policy's per-layer work when cfg_.policy_threads > 1 (else null). Used by
  // one decision at a time: the worker's (async) or the serving thread's (sync).
  std::unique_ptr<ThreadPool> policy_threads_;

  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool stop_ = false;
};

}  // namespace swiftbalancer
