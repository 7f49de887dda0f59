// StagingPool: the staging memory of the layers in flight, allocated once per size and reused
// layer after layer.
//
// The pool holds `regions` regions (layers_per_step + 1: the layers posted in one step, and one
// more whose installs a device store may still be draining). A region holds every expert this
// rank stages for one layer (receives and local copies), so its size is at most slots_per_rank x
// expert bytes, and the pool's at most (layers_per_step + 1) x slots_per_rank x expert bytes.
//
// A region handed back with release() is reused once the store's fence taken after its last
// install is done. A region whose transfer could not be cancelled (the transport may still write
// it) is parked instead: never reused, kept allocated until the pool is destroyed, which must
// happen only after the transport no longer runs.
//
// The serving thread never waits for the device here (issue 19, item 7): acquire() and
// ready_regions() only query fences (ExpertStore::fence_done). A region whose fence is not done
// is simply not handed out; the layer mover then defers the layer's post to a later step, at the
// same step on every rank (the layer vote carries each rank's ready_regions()). Host waits on
// fences happen on the decision worker (reserve) or in a stop-the-world move (wait_free).
//
// Thread-safety: reserve() is called by the decision worker while no region is in use; the rest
// by the serving thread. A mutex keeps the two apart anyway.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <vector>

#include "swiftbalancer/runtime/expert_store.h"

namespace swiftbalancer {

class StagingPool {
 public:
  StagingPool(ExpertStore& store, int regions);

  // Makes every region at least `region_bytes` long, allocating anew where smaller, and waits
  // until `deadline` for the last fence of every region not in use, so that a cycle's first
  // post finds every region ready on every rank. Called by the decision worker (a host wait
  // there costs the serving thread nothing). Errors: a region in use when it must grow, a fence
  // not done in time, an allocation that failed.
  Status reserve(std::size_t region_bytes, Clock::time_point deadline);

  struct Lease {
    int region = -1;
    std::span<std::byte> bytes;  // region_bytes() long
  };
  // Never blocks: a free region whose last fence is done (the oldest released first), or none.
  std::optional<Lease> acquire();
  // Free regions whose last fence is done now (a fence query each; never blocks): how many
  // acquire() calls would succeed in a row.
  int ready_regions();
  // Waits until the last fence of every free region is done, or `deadline`. Blocks the caller:
  // only for stop-the-world moves, where serving is stopped anyway.
  Status wait_free(Clock::time_point deadline);
  // The region is free again once `fence` (taken after its last use) is done.
  void release(int region, std::uint64_t fence);
  // The region is never reused; its memory is kept until the pool goes.
  void park(int region);

  std::size_t region_bytes() const;
  std::int64_t allocated_bytes() const;  // regions in the pool plus parked ones
  std::int64_t parked_bytes() const;
  int regions() const { return static_cast<int>(slots_.size()); }

 private:
  struct Region {
    std::unique_ptr<StagingBuffer> buffer;
    bool in_use = false;
    std::uint64_t fence = 0;  // 0: nothing to wait for
    std::uint64_t released_order = 0;
  };
  bool ready(Region& r);  // free, allocated and its fence done (clears the fence then)
  ExpertStore& store_;
  mutable std::mutex mu_;
  std::vector<Region> slots_;
  std::vector<std::unique_ptr<StagingBuffer>> parked_;
  std::size_t region_bytes_ = 0;
  std::uint64_t releases_ = 0;
};

}  // namespace swiftbalancer
