// HostExpertStore: expert weights in host memory that the engine owns; the balancer copies with
// memcpy on the calling thread, so every fence is done as soon as it is taken.
//
// The engine registers the buffers of every (layer, local slot) once, before the first step;
// they stay owned by the engine and must outlive the store. Staging is plain host memory.
//
// Thread-safety: as ExpertStore. register_expert() only before ready().
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "swiftbalancer/runtime/expert_slot_table.h"
#include "swiftbalancer/runtime/expert_store.h"

namespace swiftbalancer {

class HostExpertStore final : public ExpertStore {
 public:
  HostExpertStore(int layers, int slots);  // throws InputError on non-positive sizes

  // The tensors of the expert in (layer, local slot). Throws InputError when out of range, empty,
  // or after ready().
  void register_expert(int layer, int slot, std::vector<std::span<std::byte>> tensors);

  MemoryKind memory_kind() const override { return MemoryKind::kHost; }
  int layers() const override { return table_.layers(); }
  int local_slots() const override { return table_.local_slots(); }
  Status ready() override;
  std::span<const std::size_t> tensor_sizes(int layer) const override;
  std::span<std::byte> tensor(int layer, int slot, int t) override;
  std::unique_ptr<StagingBuffer> allocate_staging(std::size_t bytes) override;
  void stage(int layer, int slot, std::span<std::byte> dst) override;
  void install(std::span<const std::byte> src, int layer, int slot) override;
  std::uint64_t fence() override { return ++fences_; }
  bool fence_done(std::uint64_t) override { return true; }
  Status wait_fence(std::uint64_t, Clock::time_point) override { return Status::Ok(); }
  bool fences_done_when_taken() const override { return true; }

 private:
  ExpertSlotTable table_;
  std::uint64_t fences_ = 0;
};

}  // namespace swiftbalancer
