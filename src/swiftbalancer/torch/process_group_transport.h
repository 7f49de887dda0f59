// ProcessGroupTransport: the Transport seam over a torch engine's own process groups
// (torch.distributed, c10d), so the runtime's LayerMover, DecisionCycle and LoadAccounting run
// unchanged inside a one-process-per-rank torch engine.
//
// Two groups, which may be the same object:
//   - the control group carries the collectives (count all-gathers, ready flags, hashes): int64
//     tensors on `control_device` (CPU for a gloo group, as vLLM keeps one for EPLB; the CUDA
//     device when the only group is NCCL);
//   - the weight group carries the point-to-point expert transfers: CPU tensors on gloo, CUDA
//     tensors on NCCL (memory kinds kHost and kDevice respectively).
//
// Point-to-point batches. A batch's operations are ordered the same way on both ends of every
// pair of ranks (messages from the lower rank first, then by tag, then in posting order, which
// the Transport contract already makes match) and cut into stages of at most
// max_ops_in_flight / (size - 1) operations per pair; a stage is posted once the previous one
// completed, so no rank has more than max_ops_in_flight operations outstanding (NCCL has hung
// with about a thousand in one group), and since every pair cuts its list the same way no stage
// can wait on one the peer has not posted. On NCCL (any backend but gloo) a stage is one
// coalesced group, and completion is Work::isCompleted(). gloo completes a send or receive only
// inside Work::wait(), and a wait with a timeout that expires breaks the whole group; so a
// waiter thread of the transport waits on gloo operations without a timeout, and the serving
// thread waits on the waiter with the runtime's deadline. On gloo a posting thread of the
// transport makes the send/recv calls (stage 0 when post() hands a batch over, each next stage
// as soon as the waiter saw the previous one complete): the serving thread's post() costs a
// queue push, and stages advance between steps without the serving thread polling.
//
// Collectives: all_gather() and all_reduce() start the group's collective and wait for it;
// start_all_reduce() and start_all_gather() (async mode's collectives, read a step later) start
// it and leave it running on the group's own threads until the handle's wait(). On a CPU
// (gloo) control group the posting thread makes the group's calls, in the order the serving
// thread asked for them (blocking ones too, so the order every rank issues is the order asked
// for): creating gloo's work and waking gloo's worker thread costs the serving thread a
// hundred microseconds or more, and the woken worker, an ordinary thread, would take the core
// from it for a time slice on a loaded host. The serving thread's start costs a copy of the
// values and a queue push; the deadline counts from the request.
//
// Failure is a result (the Transport contract):
//   - a collective that fails or runs past its timeout fails on this rank; a timed-out one
//     leaves the group out of step, so the transport reports broken() from then on (as the MPI
//     transport does); its tensors are owned by the transport, never the caller's memory;
//   - cancel() of an unfinished batch aborts its operations' waits; on gloo the receives stay
//     posted (a late message may still land), so cancel() reports an error and keeps the batch's
//     operations referenced: the caller parks the buffers, the group stays usable. On NCCL an
//     abort tears the communicator down: the transport is then broken().
//
// Threading: as Transport (one serving thread per rank), plus the transport's own waiter and
// posting threads for gloo (the posting thread alone when only the control group is gloo),
// scheduled SCHED_BATCH (exec/thread_priority.h): handed work, they never preempt the serving
// thread. Nothing here calls Python. Destruction aborts what is outstanding and joins both;
// a collective asked for and not yet started by then fails in its wait().
#pragma once

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer::torch_engine {

struct ProcessGroupTransportOptions {
  // Most point-to-point operations one rank has outstanding at once (>= 1).
  int max_ops_in_flight = 512;
  // Where the control group's collectives take their tensors (CPU for gloo).
  c10::Device control_device = c10::Device(c10::kCPU);
  // Where the weight group's buffers live: CPU (kHost) or an accelerator (kDevice).
  c10::Device weight_device = c10::Device(c10::kCPU);
  // How often the posting thread looks for work the serving thread queued without waking it
  // (gloo; > 0): the most a queued collective or stage waits before it starts, unless a thread
  // blocks on it first.
  Millis poll_interval = Millis(1);
};

class ProcessGroupTransport final : public Transport {
 public:
  // Both groups must have the same rank and size. Throws InputError otherwise.
  ProcessGroupTransport(c10::intrusive_ptr<c10d::ProcessGroup> control,
                        c10::intrusive_ptr<c10d::ProcessGroup> weights,
                        ProcessGroupTransportOptions options = {});
  ~ProcessGroupTransport() override;
  ProcessGroupTransport(const ProcessGroupTransport&) = delete;
  ProcessGroupTransport& operator=(const ProcessGroupTransport&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override;
  bool broken() const override { return broken_.load(std::memory_order_acquire); }

  Status all_gather(std::span<const std::int64_t> mine, std::span<std::int64_t> out,
                    Millis timeout) override;
  Status all_reduce(std::span<std::int64_t> values, ReduceOp op, Millis timeout) override;
  // Both run on the control group in the background: gloo's worker threads, NCCL's stream.
  std::unique_ptr<PendingCollective> start_all_reduce(std::span<const std::int64_t> values,
                                                      ReduceOp op, Millis timeout) override;
  std::unique_ptr<PendingCollective> start_all_gather(std::span<const std::int64_t> mine,
                                                      Millis timeout) override;
  bool starts_collectives_in_background() const override { return true; }

  bool can_move(MemoryKind kind) const override { return kind == weight_kind_; }
  std::unique_ptr<TransferBatch> post(std::span<const P2POp> ops) override;

  // The stream point-to-point operations are posted from (the expert store's side stream), so
  // that sends read slots after the installs queued on it. Accelerator weights only.
  void set_stream(std::optional<c10::Stream> stream) { stream_ = stream; }

  // Batches whose operations could not be cancelled (kept referenced: they may still complete).
  std::size_t parked_operations() const;

  // Internal: the waiter thread's queue entry (one gloo operation), a batch's shared state and a
  // collective the posting thread starts.
  struct Op;
  struct BatchState;
  struct CollectiveJob;

 private:
  friend class ProcessGroupBatch;
  friend class ProcessGroupPendingCollective;
  Status wait_work(const c10::intrusive_ptr<c10d::Work>& work, Millis timeout, const char* what);
  at::Tensor owned_copy(std::span<const std::int64_t> values) const;
  // A collective's work and its tensors, owned: the collective reads and writes them in the
  // background.
  struct Started {
    c10::intrusive_ptr<c10d::Work> work;
    std::vector<at::Tensor> inputs, parts;
  };
  // What starts a collective from the values it reduces or gathers (a copy, owned by the job).
  using Starter = std::function<Started(std::span<const std::int64_t>)>;
  // Starts a collective (on the posting thread for a CPU control group, here otherwise); any
  // failure marks the transport broken.
  std::unique_ptr<PendingCollective> start_collective(const char* what,
                                                      std::span<const std::int64_t> values,
                                                      Millis timeout, Starter start);
  void post_stage(BatchState& b);      // off gloo, on the serving thread
  void start_job(CollectiveJob& job);  // on the posting thread
  // Until the posting thread started `job` (its work moved to `out`), bounded by `deadline`.
  Status await_start(CollectiveJob& job, Clock::time_point deadline, Started& out);
  void poster_loop();
  void waiter_loop();
  void park(std::shared_ptr<BatchState> b);
  void mark_broken(const std::string& why);
  Status broken_status() const;

  c10::intrusive_ptr<c10d::ProcessGroup> control_;
  c10::intrusive_ptr<c10d::ProcessGroup> weights_;
  ProcessGroupTransportOptions opt_;
  MemoryKind weight_kind_;
  bool gloo_weights_;
  int rank_ = 0;
  int size_ = 1;
  std::optional<c10::Stream> stream_;
  std::atomic<bool> broken_{false};

  // Guards the queues, the gloo batches' shared state, parked_, stop_ and broken_why_.
  mutable std::mutex mu_;
  std::string broken_why_;
  std::condition_variable cv_;       // the waiter's queue
  std::condition_variable post_cv_;  // the posting thread's queue
  std::condition_variable done_cv_;  // a gloo batch's state changed, or a collective started
  std::deque<std::shared_ptr<Op>> queue_;
  std::shared_ptr<Op> waiting_;  // the operation the waiter is in wait() on
  // The posting thread's queue, in the order asked for: a batch's next stage or a collective.
  struct PostJob {
    std::shared_ptr<BatchState> batch;
    std::shared_ptr<CollectiveJob> collective;
  };
  std::deque<PostJob> to_post_;
  std::vector<std::shared_ptr<BatchState>> parked_;
  bool stop_ = false;
  std::thread waiter_;
  std::thread poster_;
};

}  // namespace swiftbalancer::torch_engine
