// LayerMover: moves the layers of an agreed CyclePlan, a few per step, and commits each.
//
//   post(n)     before a step's forward: for the next n layers, stage this rank's local copies
//               and post the receives (into staging) and the sends (from the slots);
//   finish()    after the forward: wait for the posted batches (bounded by transfer_timeout) and
//               start the layer vote, an all-reduce (minimum) of per-layer success flags; then
//               install each layer that arrived everywhere (only slots whose expert changes are
//               written) and commit its row and routing table. A layer that failed anywhere
//               stays on its old placement on every rank.
//
// The vote is pipelined in async mode: it is started after the forward of the step that posted
// the layers and read after the next step's forward, when it has had a whole forward to
// complete, so no serving step blocks on it (a blocking all-reduce waits for the slowest rank
// and for the collective's own round trips: milliseconds on a loaded host). Those layers are
// therefore committed one step after their transfers completed, on every rank at the same step
// (a commit is never timing-dependent: every rank reads the vote at the same step). Sync mode
// (serving stopped) reads the vote at once.
//
// Staging comes from the StagingPool, one region per posted layer, given back after the vote
// (reused once the store's fence is done). When a failed batch cannot be cancelled (the
// transport may still write into the staging) the region is parked, never reused.
//
// The serving thread never waits for the device (issue 19, item 7): in async mode a post takes
// only staging whose fence is done. Every vote also carries how many regions this rank will
// have ready for the post after next (the vote is read after the next post): the regions ready
// now, plus the voted layers' regions when they come back ready, less what the next post may
// take. The minimum over ranks is that post's budget, so a layer whose staging some rank is
// still draining is deferred to a later step on every rank alike (counted in posts_deferred).
// A step that deferred a post starts a vote even with nothing posted, so a budget is agreed
// again. With layers_per_step + 1 regions, one layer per step keeps moving every step; more
// layers per step alternate between full and short batches while the regions of the layers in
// the vote are held.
//
// Thread-safety: serving thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "swiftbalancer/core/topology.h"
#include "swiftbalancer/runtime/balancer_config.h"
#include "swiftbalancer/runtime/cycle_plan.h"
#include "swiftbalancer/runtime/expert_store.h"
#include "swiftbalancer/runtime/internal/load_accounting.h"
#include "swiftbalancer/runtime/internal/reporter.h"
#include "swiftbalancer/runtime/internal/staging_pool.h"
#include "swiftbalancer/runtime/serving_state.h"
#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer {

class LayerMover {
 public:
  LayerMover(int rank, int layers, Transport& transport, ExpertStore& store, StagingPool& pool,
             ServingState& state, LoadAccounting& accounting, const BalancerConfig& config,
             Reporter& reporter);
  ~LayerMover();  // cancels posted batches (parking what cannot be cancelled)
  LayerMover(const LayerMover&) = delete;
  LayerMover& operator=(const LayerMover&) = delete;

  void begin(std::unique_ptr<CyclePlan> plan);
  bool moving() const { return plan_ != nullptr; }
  bool has_posted() const { return !posted_.empty(); }
  // A vote started by finish() and not yet read (async): its layers commit at the next finish().
  bool voting() const { return vote_.has_value(); }
  bool layers_left() const { return plan_ && next_ < plan_->layers.size(); }

  // Posts up to `layers` more layers (fewer when staging runs short; at least one while layers
  // are left). Returns how many it took from the plan.
  std::size_t post(std::size_t layers, StepStats& stats);
  // Reads the vote in flight and commits its layers; waits for what post() started and starts
  // its vote (sync: reads it at once and commits). When the cycle's last layer is handled, ends
  // the cycle (moving() turns false) and sets stats.rebalance_finished.
  void finish(StepStats& stats, std::int64_t step);
  // Gives up the cycle without talking to the other ranks (they stopped answering): posted
  // batches are cancelled (staging parked where that fails), every layer left stays old.
  void abandon(std::int64_t step);
  // Ends the cycle between steps (nothing posted) because every rank saw the load shift at this
  // step: a vote in flight is read and its layers committed first; the layers not yet posted
  // stay on their old placement, counted as pre-empted. Returns how many.
  int preempt(StepStats& stats, std::int64_t step);
  // True from the step at which the layer vote said that some rank's transport is broken or its
  // store failed (ExpertStore::failure): every rank sees it at the same vote, so every rank
  // stops moving at the same point (the balancer stops balancing then). stop_reason() says
  // what this rank saw (empty when it was another rank).
  bool stop_agreed() const { return stop_agreed_; }
  const std::string& stop_reason() const { return stop_reason_; }

 private:
  struct Posted {
    LayerMove* move = nullptr;
    int region = -1;  // staging region, -1 when the layer stages nothing here
    std::span<std::byte> staging;
    std::unique_ptr<TransferBatch> batch;
    std::optional<Status> cancelled;  // a failed batch is cancelled before the vote, once
  };
  // The posted layers whose vote is in flight, and what this rank saw of them.
  struct Vote {
    std::vector<Posted> layers;
    std::vector<std::string> why;  // per layer: this rank's failure, empty when it arrived here
    std::unique_ptr<PendingCollective> pending;
    std::size_t values = 0;  // layers + 2 (the broken flag, the ready regions)
    bool broken_here = false;
    Status store_failure = Status::Ok();
  };
  int tag_for(int layer) const;
  bool withhold_sends(const LayerMove& m);
  void post_layer(LayerMove& m, std::span<std::byte> staging, int region, StepStats& stats);
  void start_vote(StepStats& stats);
  void read_vote(StepStats& stats);
  void install(LayerMove& m, std::span<const std::byte> staging, StepStats& stats);
  void give_back(Posted& p, bool transfer_ok);
  void end_cycle(StepStats& stats, std::int64_t step);

  int rank_, layers_;
  Transport& transport_;
  ExpertStore& store_;
  StagingPool& pool_;
  ServingState& state_;
  LoadAccounting& accounting_;
  const BalancerConfig& cfg_;
  Reporter& reporter_;

  std::unique_ptr<CyclePlan> plan_;
  std::size_t next_ = 0;  // next layer of plan_ to post
  std::vector<Posted> posted_;
  std::optional<Vote> vote_;
  std::vector<std::int64_t> votes_;  // reused
  std::vector<P2POp> ops_;           // reused
  int committed_ = 0, failed_ = 0;   // in this cycle
  bool withheld_once_ = false;
  // Layers the next async post may stage: agreed by every rank (a vote's minimum, less what
  // posts took since), so every rank posts the same layers at the same step.
  std::size_t budget_ = 0;
  bool vote_due_ = false;  // a post was deferred: finish() votes even with nothing posted
  bool stop_agreed_ = false;
  std::string stop_reason_;
};

}  // namespace swiftbalancer
