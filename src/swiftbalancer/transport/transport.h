// Transport: how ranks talk. One small interface with three kinds of operation:
//   - collectives (all-gather and all-reduce of int64 arrays): every rank calls them in the same
//     order; each is bounded by a timeout;
//   - point-to-point byte transfers, posted as a batch that completes in the background and is
//     polled or waited on with a deadline (Mooncake-style: submit, poll, wait, cancel).
//
// Implementations: in-process (ranks are threads of one process; tests and the default demo;
// transport/inprocess_transport.h), MPI (processes launched by mpirun; transport/mpi_transport.h,
// the MPI calls in mpi_transport_mpi.cpp), and with the CUDA device path NCCL (device memory, a
// batch is a group of ncclSend/ncclRecv on a stream; device/nccl_transport.h) and single-GPU
// threads (device/single_gpu_transport.h); a torch engine's process groups
// (torch/process_group_transport.h). The two in-process ones match messages with one mailbox
// (transport/internal/mailbox.h). Clock and Millis are core/clock.h's.
//
// Threading: a Transport object belongs to one rank and is used from one thread at a time (the
// serving thread). Different ranks' objects may be used concurrently.
//
// A collective may also be started now and its result taken later (start_all_reduce,
// start_all_gather): in async mode the runtime starts its collectives one step before it reads
// them (the layer vote, the count gather, the decision agreement, the shift check), so no
// serving step blocks on a round trip. A transport whose collectives cannot run in the
// background completes them at the start (the default).
//
// Failure is a result, never a hang: every call takes a timeout or deadline and returns a Status
// (kTimeout, kTransportError). After a collective fails the ranks are still consistent: either
// every rank gets the result or none does (a rank that arrives late fails too). A transport that
// can no longer guarantee that (MPI after a stuck collective) reports broken() and fails every
// later call at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "swiftbalancer/core/clock.h"
#include "swiftbalancer/core/memory_kind.h"
#include "swiftbalancer/core/status.h"

namespace swiftbalancer {

enum class ReduceOp { kMin, kMax, kSum };

// One point-to-point operation. Buffers are owned by the caller and must stay valid (and, for
// receives, unread and unwritten by the caller) until the batch completes or is cancelled.
struct P2POp {
  enum class Kind { kSend, kRecv };
  Kind kind = Kind::kSend;
  int peer = -1;
  int tag = 0;                // 0 <= tag < Transport::kMaxTag
  std::byte* data = nullptr;  // read for sends, written for receives
  std::size_t size = 0;       // a receive must match the size of the send exactly
  // A bulk transfer (expert weights) that should progress in the background, off the posting
  // and waiting threads (a copy engine, DMA, a NIC). Small messages (tokens) leave it false.
  // A hint: a transport may ignore it.
  bool bulk = false;
  // Where `data` lives. A transport refuses (fails the batch) a kind it cannot move.
  MemoryKind memory = MemoryKind::kHost;

  static P2POp send(int peer, int tag, std::span<const std::byte> buf, bool bulk = false,
                    MemoryKind memory = MemoryKind::kHost) {
    return {Kind::kSend, peer, tag, const_cast<std::byte*>(buf.data()), buf.size(), bulk, memory};
  }
  static P2POp recv(int peer, int tag, std::span<std::byte> buf, bool bulk = false,
                    MemoryKind memory = MemoryKind::kHost) {
    return {Kind::kRecv, peer, tag, buf.data(), buf.size(), bulk, memory};
  }
};

// A posted set of point-to-point operations. Messages between one pair of ranks with one tag
// arrive in posting order. Destroying an unfinished batch cancels it.
class TransferBatch {
 public:
  enum class State { kPending, kCompleted, kFailed };
  virtual ~TransferBatch() = default;
  // Non-blocking progress check.
  virtual State poll() = 0;
  // Blocks until every operation completed (Ok), one failed (kTransportError) or the deadline
  // passed (kTimeout). On failure or timeout the batch is cancelled before returning.
  virtual Status wait(Clock::time_point deadline) = 0;
  // After cancel() returns the transport no longer touches the batch's buffers. Returns an error
  // when that cannot be guaranteed (the transport is then broken() and the buffers must be kept).
  virtual Status cancel() = 0;
};

// A collective started by Transport::start_all_reduce() or start_all_gather(). Owns its values
// (never the caller's memory). Every rank must take part in the same collectives in the same order:
// a pending one counts as issued, so the next collective may be started (or called) before this one
// is waited for. Destroying it unwaited abandons the result (the collective may still run).
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  // Blocks until the result is in, bounded by the timeout given at the start (counted from
  // then). Ok: `out` (the size of the result) holds it. Called at most once.
  virtual Status wait(std::span<std::int64_t> out) = 0;
};

class Transport {
 public:
  static constexpr int kMaxTag = 1 << 20;

  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;
  // True after an error that leaves the transport unusable; every later call fails at once.
  virtual bool broken() const = 0;

  // out.size() == size() * mine.size(); rank r's values land at out[r * mine.size() ...]. Every
  // rank passes the same mine.size().
  virtual Status all_gather(std::span<const std::int64_t> mine, std::span<std::int64_t> out,
                            Millis timeout) = 0;
  // Element-wise reduction of `values` over all ranks, in place. Same size on every rank.
  virtual Status all_reduce(std::span<std::int64_t> values, ReduceOp op, Millis timeout) = 0;

  // all_reduce() started now, completed in the background where the transport can (the
  // default runs it to the end here). Never throws: a failure is the handle's wait() status.
  virtual std::unique_ptr<PendingCollective> start_all_reduce(std::span<const std::int64_t> values,
                                                              ReduceOp op, Millis timeout);
  // all_gather() started now (its result: size() * mine.size() values), the same way.
  virtual std::unique_ptr<PendingCollective> start_all_gather(std::span<const std::int64_t> mine,
                                                              Millis timeout);

  // Whether start_all_reduce() and start_all_gather() return once the collective is started
  // (false: the default runs it to the end there). The runtime books a start's time as waiting
  // only where it waits; a background start is its own work on the serving thread.
  virtual bool starts_collectives_in_background() const { return false; }

  // Whether point-to-point operations on buffers of this kind can be posted. Host by default.
  virtual bool can_move(MemoryKind kind) const { return kind == MemoryKind::kHost; }

  // Posts the operations; they progress in the background (or inside later transport calls).
  // Never throws for a bad operation (peer or tag out of range, a memory kind it cannot move):
  // the returned batch has failed, with the reason in its wait() status.
  virtual std::unique_ptr<TransferBatch> post(std::span<const P2POp> ops) = 0;
};

// A batch that failed before anything was posted (its wait() returns `why`).
std::unique_ptr<TransferBatch> failed_batch(Status why);
// Ok, or the first operation a transport of `ranks` ranks cannot post (peer, tag, memory kind).
Status check_p2p_ops(std::span<const P2POp> ops, const Transport& transport);

}  // namespace swiftbalancer
