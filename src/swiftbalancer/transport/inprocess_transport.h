// In-process transport: ranks are threads of one process sharing an InProcessWorld. For unit
// tests (N ranks as threads) and the default demo.
//
// Ownership: transports and batches keep the world's state alive; each transport(rank) is used
// by one thread at a time; the world itself is thread-safe.
//
// Semantics: a send is offered to the receiver (no copy at post) and completes once the data has
// been copied into the matching receive; receives match (source, tag) in FIFO order. The copy
// is done by whichever thread completes the match, except for bulk operations (P2POp::bulk,
// the balancer's expert weights), which a copy-engine thread of the world performs in the
// background, as a DMA engine or NIC would: posting and waiting threads never copy them. A
// cancelled receive absorbs the next message with its (source, tag), so a late message never
// lands in a later receive. Collectives are matched by call order; a rank that times out
// abandons the round, and ranks arriving later fail the same round, so all ranks agree on
// whether a collective succeeded.
#pragma once

#include <memory>

#include "swiftbalancer/transport/transport.h"

namespace swiftbalancer {

class InProcessWorld {
 public:
  explicit InProcessWorld(int ranks);  // throws InputError when ranks < 1
  ~InProcessWorld();
  InProcessWorld(const InProcessWorld&) = delete;
  InProcessWorld& operator=(const InProcessWorld&) = delete;

  int size() const;
  // A new handle for `rank` (throws InputError when out of range). Cheap; many may exist.
  std::unique_ptr<Transport> transport(int rank);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace swiftbalancer
