// ExpertStore: the seam between the layer mover and the memory that expert weights live in.
//
// The mover never copies bytes itself: it asks the store for staging, to stage a slot's expert
// (a local copy, read before any slot of the layer is written), to install staged bytes into a
// slot, and for a fence after a group of such copies. The store says which memory kind its
// slots and staging are in, so the mover posts transport operations of that kind and a
// transport that cannot move it refuses them.
//
// An expert is a set of tensors (weights, scales, biases) that always move together. Staged, an
// expert is its tensors packed back to back in tensor order (expert_bytes(layer) bytes); sends
// and receives are one message per tensor, so a receive lands at its tensor's offset.
//
// Implementations: HostExpertStore (host memory, synchronous memcpy: host_expert_store.h); a
// device store queues its copies on a side stream, ordered against the engine's stream with
// events, and fences with an event.
//
// Thread-safety: every call comes from the serving thread, except allocate_staging(), which the
// decision worker calls while no layer is moving (so it never runs concurrently with the copy
// calls).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "swiftbalancer/core/clock.h"
#include "swiftbalancer/core/memory_kind.h"
#include "swiftbalancer/core/status.h"

namespace swiftbalancer {

// One staging allocation, owned by whoever holds the pointer. Destroying it frees the memory:
// only allowed once no transfer can still touch it.
class StagingBuffer {
 public:
  virtual ~StagingBuffer() = default;
  virtual std::span<std::byte> bytes() = 0;
  virtual MemoryKind memory_kind() const = 0;
};

class ExpertStore {
 public:
  virtual ~ExpertStore() = default;

  virtual MemoryKind memory_kind() const = 0;
  virtual int layers() const = 0;
  virtual int local_slots() const = 0;  // local slots per layer

  // Ok when every (layer, slot) holds an expert and all slots of a layer agree on the tensor
  // sizes; the error names the first slot that does not. After ready() the layout is frozen.
  virtual Status ready() = 0;
  // Tensor sizes of every expert of `layer` (same on every slot and, by contract, every rank).
  virtual std::span<const std::size_t> tensor_sizes(int layer) const = 0;
  std::size_t expert_bytes(int layer) const {
    std::size_t n = 0;
    for (std::size_t s : tensor_sizes(layer)) n += s;
    return n;
  }
  // Tensor t of (layer, slot): what a send of that expert reads.
  virtual std::span<std::byte> tensor(int layer, int slot, int t) = 0;

  // Staging memory of `bytes` bytes, of this store's kind. Throws std::bad_alloc (or the
  // device's out-of-memory error as InputError) when it cannot be had.
  virtual std::unique_ptr<StagingBuffer> allocate_staging(std::size_t bytes) = 0;

  // Copies the expert in (layer, slot) into `dst` (expert_bytes(layer) bytes of staging).
  virtual void stage(int layer, int slot, std::span<std::byte> dst) = 0;
  // Copies a staged expert from `src` into (layer, slot).
  virtual void install(std::span<const std::byte> src, int layer, int slot) = 0;
  // A point after every copy queued so far. fence_done(f) tells without blocking whether those
  // copies finished; wait_fence() blocks until then or the deadline. Staging handed to stage()
  // or install() may be reused once a later fence is done.
  virtual std::uint64_t fence() = 0;
  virtual bool fence_done(std::uint64_t fence) = 0;
  virtual Status wait_fence(std::uint64_t fence, Clock::time_point deadline) = 0;
  // True when every fence is done as soon as it is taken (the copies finish inside stage() and
  // install(): a host store). The layer mover then counts the staging of the layers it installs
  // in a step as free for the next step without a fence query; otherwise only staging whose
  // fence is already done counts (issue 19, item 7).
  virtual bool fences_done_when_taken() const { return false; }
  // A failure that ends this store's moves for good (e.g. a device error it kept), or Ok. The
  // layer mover carries it in its vote, so that every rank stops moving at the same step.
  virtual Status failure() { return Status::Ok(); }
};

}  // namespace swiftbalancer
