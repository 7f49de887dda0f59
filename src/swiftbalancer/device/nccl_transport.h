// NcclTransport: point-to-point expert transfers between GPUs over NCCL; collectives (counts,
// votes) through a host transport the engine supplies (in-process, MPI).
//
// Two ways to get one:
//   - wrap a communicator the engine already has, plus the stream the transfers run on;
//   - bootstrap(): rank 0 of the host transport makes an NCCL unique id, every rank receives it
//     through the host transport's all_gather and joins a new non-blocking communicator.
// The stream should be the DeviceExpertStore's side_stream(), so that sends read slots after
// earlier installs and receives write staging in the same order as the store's copies.
//
// A batch is one ncclGroupStart / ncclSend... ncclRecv... / ncclGroupEnd on the stream; post()
// returns once a non-blocking communicator has settled (the group is on the stream, bounded by
// 2 s, else an abort), then records an event behind it: nothing is ever queued on the stream
// while a group is ncclInProgress. poll() and wait() query the event, never synchronise.
// First connections: NCCL connects a pair of ranks on their first send/receive, which may take
// longer than a transfer deadline; bootstrap() ends with warm_up() (one byte each way with
// every rank, bounded by its timeout). Call warm_up() on a wrapped communicator before the
// balancer's first step.
// NCCL has no tags: messages between two ranks match in posting order, which the balancer
// guarantees (every rank posts the same layers in the same order; within a layer, sends and
// receives of a pair follow the plan's order). Sizes must match exactly (NCCL cannot check).
//
// Failure: with a non-blocking communicator (ncclConfig_t blocking = 0, what bootstrap makes) a
// transfer that misses its deadline ends in ncclCommAbort: the transport is broken() from then
// on (every later post fails at once), every batch not seen complete before the abort fails
// (the abort makes NCCL's kernels exit, so their events complete with nothing received),
// cancel() of an unfinished batch returns an error so the mover parks its staging, and serving
// goes on with the placement in service. The abort runs with no lock held and is waited for at
// most 2 s (then left to finish on a helper thread). The balancer carries broken() in its layer
// vote, so every rank stops moving at the same step. Collectives keep
// going through the host transport, so the ranks still agree that the layers failed. A wrapped
// communicator is aborted too: give the balancer its own (ncclCommSplit), not the model's.
//
// Ownership: a wrapped communicator stays the engine's unless aborted; a bootstrapped one is
// owned and destroyed with the transport. The host transport must outlive this one.
// Thread-safety: as Transport (one thread at a time).
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <memory>

#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer::device {

class NcclTransport final : public Transport {
 public:
  // Wraps `comm` (its rank and size must equal the host transport's: InputError otherwise).
  NcclTransport(ncclComm_t comm, cudaStream_t stream, Transport& host);
  // Makes a non-blocking communicator over the host transport's ranks on the current device.
  // Throws DeviceError when NCCL fails or does not finish within `timeout`.
  static std::unique_ptr<NcclTransport> bootstrap(Transport& host, cudaStream_t stream,
                                                  Millis timeout);
  ~NcclTransport() override;

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  std::string name() const override { return "nccl"; }
  bool broken() const override;
  bool can_move(MemoryKind kind) const override { return kind == MemoryKind::kDevice; }

  Status all_gather(std::span<const std::int64_t> mine, std::span<std::int64_t> out,
                    Millis timeout) override {
    return host_.all_gather(mine, out, timeout);
  }
  Status all_reduce(std::span<std::int64_t> values, ReduceOp op, Millis timeout) override {
    return host_.all_reduce(values, op, timeout);
  }
  std::unique_ptr<TransferBatch> post(std::span<const P2POp> ops) override;
  // Connects every pair: one byte each way with every rank (itself included), all ranks at
  // once (a collective). kTimeout, and the communicator aborted, when not done by `timeout`.
  Status warm_up(Millis timeout);

  struct Shared;  // the communicator and its state, shared with the batches

 private:
  NcclTransport(std::shared_ptr<Shared> shared, Transport& host);
  std::shared_ptr<Shared> sh_;
  Transport& host_;
};

}  // namespace swiftbalancer::device
