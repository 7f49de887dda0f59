// SingleGpuWorld: ranks as threads of one process sharing one GPU, each rank's slots and staging
// in its own device allocations; point-to-point messages are device-to-device copies. It runs the
// whole device path (recording, staging, side streams, events, install, commit) on a machine
// with one GPU, where NCCL cannot put two ranks on one device.
//
// Matching is the in-process transport's: a send and a receive meet in the receiver's mailbox,
// first in first out per (source, tag); a cancelled receive absorbs the next message with its
// (source, tag). Collectives go through an InProcessWorld of the same ranks.
//
// Each rank's transport has a stream (give it the rank's DeviceExpertStore::side_stream()). A
// send records an event on the sender's stream when posted (its buffer is read after the
// sender's earlier copies); when the pair meets, the copy is queued on the receiver's stream
// behind that event, followed by an event that both operations poll (cudaEventQuery).
// Unmatched operations are withdrawn by cancel(); matched ones are waited for (bounded: a copy
// that does not finish within kCancelWait leaves cancel() failing, so the buffers are kept).
//
// Ownership: transports keep the world's state alive; streams stay the caller's and must
// outlive the transports and batches. Thread-safety: the world is thread-safe; each transport
// is used by one thread at a time. Every call needs the world's device current.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>

#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer::device {

class SingleGpuWorld {
 public:
  static constexpr Millis kCancelWait{10000};

  explicit SingleGpuWorld(int ranks);  // throws InputError when ranks < 1
  ~SingleGpuWorld();
  SingleGpuWorld(const SingleGpuWorld&) = delete;
  SingleGpuWorld& operator=(const SingleGpuWorld&) = delete;

  int size() const;
  // The transport of `rank`, copying on `stream` (throws InputError when out of range).
  std::unique_ptr<Transport> transport(int rank, cudaStream_t stream);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace swiftbalancer::device
