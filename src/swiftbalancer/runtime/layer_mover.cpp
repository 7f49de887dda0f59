#include "swiftbalancer/runtime/internal/layer_mover.h"

#include <algorithm>
#include <string>
#include <utility>

namespace swiftbalancer {

LayerMover::LayerMover(int rank, int layers, Transport& transport, ExpertStore& store,
                       StagingPool& pool, ServingState& state, LoadAccounting& accounting,
                       const BalancerConfig& config, Reporter& reporter)
    : rank_(rank),
      layers_(layers),
      transport_(transport),
      store_(store),
      pool_(pool),
      state_(state),
      accounting_(accounting),
      cfg_(config),
      reporter_(reporter) {}

LayerMover::~LayerMover() {
  for (Posted& p : posted_) give_back(p, /*transfer_ok=*/false);
  if (vote_)
    for (std::size_t i = 0; i < vote_->layers.size(); ++i)
      give_back(vote_->layers[i], vote_->why[i].empty());
}

void LayerMover::begin(std::unique_ptr<CyclePlan> plan) {
  if (plan_ || !posted_.empty() || vote_)
    throw InternalError("a cycle began while another was moving");
  plan_ = std::move(plan);
  next_ = 0;
  // The worker's reserve() waited for every region's fence: all are ready on every rank.
  budget_ = static_cast<std::size_t>(pool_.regions());
  vote_due_ = false;
  committed_ = failed_ = 0;
  if (cfg_.fault.cycle < 0 || cfg_.fault.random_rate > 0) withheld_once_ = false;
}

int LayerMover::tag_for(int layer) const {
  const int space = Transport::kMaxTag - cfg_.tag_base;
  return cfg_.tag_base + static_cast<int>((plan_->cycle * layers_ + layer) % space);
}

// The transfer fault fires at the first layer, in its cycle or a later one, in which this rank
// sends anything (once; once per cycle when the fault cycle is -1). A random fault fires in the
// cycle it was drawn for only.
bool LayerMover::withhold_sends(const LayerMove& m) {
  const FaultInjection& f = cfg_.fault;
  const bool armed =
      f.random_rate > 0
          ? f.hits(FaultInjection::Kind::kTransferTimeout, rank_, plan_->cycle, transport_.size())
          : f.kind == FaultInjection::Kind::kTransferTimeout && f.rank == rank_ &&
                (f.cycle < 0 || plan_->cycle >= f.cycle);
  if (!armed || withheld_once_ || m.sends.empty()) return false;
  withheld_once_ = true;
  reporter_.log("fault injection: withholding the sends of layer " + std::to_string(m.layer),
                LogSeverity::kWarning);
  return true;
}

std::size_t LayerMover::post(std::size_t layers, StepStats& stats) {
  const std::size_t first = next_;
  const bool stop_the_world = cfg_.mode == BalancerMode::kSync;
  std::size_t limit = layers;
  if (stop_the_world) {
    // Serving is stopped anyway: wait here for the device to drain the staging (bounded).
    (void)pool_.wait_free(Clock::now() + cfg_.transfer_timeout);
  } else {
    // Never wait for the device on the serving thread (issue 19, item 7): post only as many
    // layers as every rank has staging ready for (agreed at the last vote); the rest waits for
    // a later step, the same on every rank, so the ranks' posts still pair up.
    limit = std::min(layers, budget_);
  }
  const std::size_t wanted = std::min(layers, plan_ ? plan_->layers.size() - next_ : 0);
  std::size_t posted = 0;
  for (; posted < limit && layers_left(); ++posted) {
    LayerMove& m = plan_->layers[next_];
    std::span<std::byte> staging;
    int region = -1;
    if (!m.installs.empty()) {
      // Never fewer layers than asked for because of this rank's own pool (a region parked
      // after a failed cancel is gone for the cycle): the peers post the same layers, and the
      // vote pairs them up by position. A layer without staging fails below, on every rank.
      auto lease = pool_.acquire();
      if (lease) {
        region = lease->region;
        staging = lease->bytes;
      }
    }
    ++next_;
    if (!m.installs.empty() && region < 0) {
      // Nothing to stage into (regions parked after a failed cancel, or a sync wait for the
      // device that timed out): the layer fails here, and so everywhere, at the agreement.
      posted_.push_back(
          {&m,
           -1,
           {},
           failed_batch(Status::Internal(
               "no staging region free (one is parked after a transfer that could not be "
               "cancelled, or still in use by the device)")),
           std::nullopt});
      continue;
    }
    post_layer(m, staging, region, stats);
  }
  if (!stop_the_world) {
    // The regions this post took are not back before the vote in flight is read: the next
    // post, before that, has only what is left (the same count on every rank).
    budget_ -= std::min(budget_, posted);
    if (posted < wanted) {
      reporter_.add(&BalancerCounters::posts_deferred, static_cast<std::int64_t>(wanted - posted));
      vote_due_ = true;  // a step that posts nothing still votes: a budget is agreed again
    }
  }
  reporter_.raise_to(&BalancerCounters::peak_staging_bytes, pool_.allocated_bytes());
  return next_ - first;
}

void LayerMover::post_layer(LayerMove& m, std::span<std::byte> staging, int region,
                            StepStats& stats) {
  const int tag = tag_for(m.layer);
  const MemoryKind kind = store_.memory_kind();
  const auto sizes = store_.tensor_sizes(m.layer);
  ops_.clear();
  for (std::size_t i = 0; i < m.installs.size(); ++i) {
    const LayerMove::Install& in = m.installs[i];
    const std::span<std::byte> dst = staging.subspan(i * m.expert_bytes, m.expert_bytes);
    if (in.src_rank == rank_) {
      // Local copies are staged now: every source is read before any slot is written.
      const auto c0 = Clock::now();
      store_.stage(m.layer, in.src_slot, dst);
      stats.copy_ns += elapsed_ns_since(c0);
      continue;
    }
    std::size_t off = 0;
    for (std::size_t size : sizes) {
      ops_.push_back(P2POp::recv(in.src_rank, tag, dst.subspan(off, size), /*bulk=*/true, kind));
      off += size;
    }
  }
  if (!withhold_sends(m)) {
    for (const LayerMove::Send& s : m.sends)
      for (std::size_t t = 0; t < sizes.size(); ++t)
        ops_.push_back(P2POp::send(s.dst_rank, tag,
                                   store_.tensor(m.layer, s.src_slot, static_cast<int>(t)),
                                   /*bulk=*/true, kind));
  }
  std::unique_ptr<TransferBatch> batch;
  try {
    batch = transport_.post(ops_);
  } catch (const std::exception& e) {  // a transport that throws still fails only this batch
    batch = failed_batch(Status::TransportError(std::string("post failed: ") + e.what()));
  }
  posted_.push_back({&m, region, staging, std::move(batch), std::nullopt});
}

void LayerMover::start_vote(StepStats& stats) {
  Vote v;
  v.why.assign(posted_.size(), {});
  votes_.assign(posted_.size(), 1);
  const auto t0 = Clock::now();
  const auto deadline = t0 + cfg_.transfer_timeout;
  // A layer that timed out must not eat the time of the layers behind it (sync mode waits for
  // many): each later wait gets at least a short grace.
  const auto grace = std::min<Clock::duration>(cfg_.transfer_timeout, Millis(10));
  for (std::size_t i = 0; i < posted_.size(); ++i) {
    const Status s = posted_[i].batch->wait(std::max(deadline, Clock::now() + grace));
    if (!s.ok()) {
      votes_[i] = 0;
      v.why[i] = s.to_string();
      // Cancelled before the vote, not after: a cancel that breaks the transport (an NCCL
      // abort) is then carried by this very vote, so no rank learns it a step later alone.
      posted_[i].cancelled = posted_[i].batch->cancel();
    }
  }
  // Then: -1 when this rank's transport is broken or its store failed. A rank whose transport
  // broke still takes part in the collectives (NCCL's go over a host transport): with the
  // minimum over ranks, every rank learns it at this vote and stops moving there, instead of
  // the broken rank stopping alone and the others pairing their next collectives with nobody
  // (issue 19, items 1 and 9).
  v.store_failure = store_.failure();
  v.broken_here = transport_.broken() || !v.store_failure.ok();
  votes_.push_back(v.broken_here ? -1 : 0);
  // Last: the regions this rank can stage into, without waiting for its device, at the first
  // post after this vote is read. Regions ready now, plus (with a store whose fences are done
  // when taken) the regions of these layers that go back to the pool when the vote is read (not
  // parked), less what the post before that read may take (async; its budget is agreed).
  std::int64_t ready = pool_.ready_regions();
  if (store_.fences_done_when_taken())
    for (const Posted& p : posted_)
      if (p.region >= 0 && !(p.cancelled && !p.cancelled->ok())) ++ready;
  if (cfg_.mode != BalancerMode::kSync && plan_)
    ready -= static_cast<std::int64_t>(std::min(budget_, plan_->layers.size() - next_));
  votes_.push_back(std::max<std::int64_t>(ready, 0));
  // A rank whose layers failed at once (nothing posted: a broken transport) starts its vote
  // early, while its peers may wait for their transfers until the deadline: its vote waits for
  // them that long on top of the collective timeout, so it does not time out alone.
  const auto until_deadline =
      std::chrono::duration_cast<Millis>(std::max(deadline - Clock::now(), Clock::duration(0)));
  v.values = votes_.size();
  // The waits above are waiting; so is the vote's start where the transport runs it here.
  if (transport_.starts_collectives_in_background()) stats.wait_ns += elapsed_ns_since(t0);
  v.pending =
      transport_.start_all_reduce(votes_, ReduceOp::kMin, cfg_.collective_timeout + until_deadline);
  if (!transport_.starts_collectives_in_background()) stats.wait_ns += elapsed_ns_since(t0);
  v.layers = std::move(posted_);
  posted_.clear();
  vote_ = std::move(v);
}

void LayerMover::read_vote(StepStats& stats) {
  Vote v = std::move(*vote_);
  vote_.reset();
  const auto t0 = Clock::now();
  votes_.assign(v.values, 0);
  const Status agreed = v.pending->wait(votes_);
  stats.wait_ns += elapsed_ns_since(t0);
  // A failed vote agrees on nothing: post nothing next step, and vote again then.
  budget_ = agreed.ok() ? static_cast<std::size_t>(std::max<std::int64_t>(votes_.back(), 0)) : 0;
  const bool stop = agreed.ok() && votes_[v.values - 2] < 0;
  bool install_any = agreed.ok();
  if (!agreed.ok()) {
    reporter_.error(
        "layer agreement failed (" + agreed.to_string() + "); layers stay on the old placement",
        &BalancerCounters::collective_failures);
  }
  if (stop && !stop_agreed_) {
    stop_agreed_ = true;
    stop_reason_ = !v.broken_here ? "another rank's transport or expert store broke"
                   : transport_.broken()
                       ? "the " + transport_.name() + " transport is broken"
                       : "the expert store failed (" + v.store_failure.to_string() + ")";
  }
  if (stop_agreed_) install_any = false;  // nothing is installed once a rank broke
  for (std::size_t i = 0; i < v.layers.size(); ++i) {
    Posted& p = v.layers[i];
    LayerMove& m = *p.move;
    if (install_any && votes_[i] == 1) {
      install(m, p.staging, stats);
      ++stats.layers_committed;
      stats.bytes_sent += m.bytes_out;
      stats.bytes_received += m.bytes_in;
      ++committed_;
    } else {
      ++stats.layers_failed;
      ++failed_;
      reporter_.error("cycle " + std::to_string(plan_->cycle) + " layer " +
                          std::to_string(m.layer) + ": transfer failed (" +
                          (v.why[i].empty() ? "on another rank" : v.why[i]) +
                          "); the layer stays on its old placement",
                      &BalancerCounters::transfer_failures);
    }
    give_back(p, v.why[i].empty());
  }
}

void LayerMover::install(LayerMove& m, std::span<const std::byte> staging, StepStats& stats) {
  const auto c0 = Clock::now();
  for (std::size_t i = 0; i < m.installs.size(); ++i)
    store_.install(staging.subspan(i * m.expert_bytes, m.expert_bytes), m.layer,
                   m.installs[i].dst_slot);
  stats.copy_ns += elapsed_ns_since(c0);
  // Counts recorded so far were under the old placement; then weights first, then the table.
  accounting_.carry_layer(m.layer);
  state_.commit(m.layer, m.new_row, std::move(m.table));
}

void LayerMover::give_back(Posted& p, bool transfer_ok) {
  bool parked = false;
  if (!transfer_ok && p.batch) {
    const Status c = p.cancelled ? *p.cancelled : p.batch->cancel();
    if (!c.ok() && p.region >= 0) {
      pool_.park(p.region);
      parked = true;
      reporter_.raise_to(&BalancerCounters::parked_staging_bytes, pool_.parked_bytes());
      reporter_.log("staging of layer " + std::to_string(p.move->layer) +
                        " parked: its transfer could not be cancelled (" + c.to_string() + ")",
                    LogSeverity::kWarning);
    }
  }
  p.batch.reset();
  if (p.region >= 0 && !parked) pool_.release(p.region, store_.fence());
  p.region = -1;
}

void LayerMover::finish(StepStats& stats, std::int64_t step) {
  if (vote_) read_vote(stats);
  // Once a rank broke (agreed by every rank at the same vote) nothing more is voted on: the
  // balancer stops and abandons what is posted.
  if ((!posted_.empty() || vote_due_) && !stop_agreed_) {
    vote_due_ = false;
    start_vote(stats);
    if (cfg_.mode == BalancerMode::kSync) read_vote(stats);  // serving is stopped anyway
  }
  if (plan_ && !layers_left() && !vote_) end_cycle(stats, step);
}

void LayerMover::abandon(std::int64_t step) {
  if (!plan_) return;
  for (Posted& p : posted_) give_back(p, /*transfer_ok=*/false);
  failed_ += static_cast<int>(posted_.size() + (plan_->layers.size() - next_));
  posted_.clear();
  if (vote_) {  // its result is never read: the collective may never complete
    for (std::size_t i = 0; i < vote_->layers.size(); ++i)
      give_back(vote_->layers[i], vote_->why[i].empty());
    failed_ += static_cast<int>(vote_->layers.size());
    vote_.reset();
  }
  next_ = plan_->layers.size();
  StepStats ignored;
  end_cycle(ignored, step);
}

int LayerMover::preempt(StepStats& stats, std::int64_t step) {
  if (!plan_) return 0;
  // Between steps: finish() has waited for every posted batch.
  if (!posted_.empty()) throw InternalError("LayerMover::preempt with layers in flight");
  if (vote_) read_vote(stats);  // every rank reads it at this same step
  const int left = static_cast<int>(plan_->layers.size() - next_);
  next_ = plan_->layers.size();
  reporter_.log("cycle " + std::to_string(plan_->cycle) + " pre-empted at step " +
                std::to_string(step) + ": " + std::to_string(left) + " layers stay old");
  end_cycle(stats, step);
  return left;
}

void LayerMover::end_cycle(StepStats& stats, std::int64_t step) {
  reporter_.add(&BalancerCounters::layers_committed, committed_);
  reporter_.add(&BalancerCounters::layers_failed, failed_);
  if (committed_ > 0) {
    const double seconds = std::chrono::duration<double>(Clock::now() - plan_->started).count();
    reporter_.rebalanced(seconds, plan_->imbalance_before, plan_->imbalance_after);
  }
  reporter_.log("cycle " + std::to_string(plan_->cycle) + " done at step " + std::to_string(step) +
                ": " + std::to_string(committed_) + " layers committed, " +
                std::to_string(failed_) + " failed");
  stats.rebalance_finished = true;
  plan_.reset();
  vote_due_ = false;
}

}  // namespace swiftbalancer
