// TorchExpertStore: the ExpertStore over a torch engine's expert tensors.
//
// Each layer's experts are any number of tensors (weights, biases, block scales; any dtype)
// whose leading dimension is the local slot: w13[slots, 2I, H], w2[slots, H, I], ... A slot's
// expert is row `slot` of every tensor of its layer, and all of them move together. Tensors are
// written in place (only rows whose expert changes), so their addresses never change and a
// captured CUDA graph keeps reading the right memory.
//
// CPU tensors: copies are memcpy on the calling thread; every fence is done at once (as
// HostExpertStore). Accelerator tensors (CUDA, or any device with a torch stream and event
// implementation): copies are queued on a side stream of the device (torch's stream pool),
// ordered against the engine's current stream with events, never a device-wide synchronise:
//   - stage() reads a slot, on the side stream (behind earlier installs in stream order);
//   - the first install() after a stage or a fence makes the side stream wait for everything the
//     engine's current stream has queued so far (the forward's last use of the layer);
//   - fence() records an event on the side stream and, when installs were queued since the last
//     fence, makes the engine's current stream wait on it: the next forward reads new weights;
//   - fence_done() queries the event; wait_fence() polls it until the deadline.
// Staging is torch memory of the store's device (the caching allocator on CUDA).
//
// Ownership: the store keeps a reference to every tensor (the engine keeps using them).
// Thread-safety: as ExpertStore: the serving thread, plus allocate_staging() and wait_fence()
// from the decision worker. Call on a thread whose current device is the store's.
#pragma once

#include <ATen/ATen.h>
#include <c10/core/Event.h>
#include <c10/core/Stream.h>

#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "swiftbalancer/runtime/expert_slot_table.h"
#include "swiftbalancer/runtime/expert_store.h"

namespace swiftbalancer::torch_engine {

class TorchExpertStore final : public ExpertStore {
 public:
  // experts[layer] = the layer's tensors, each contiguous with leading dimension `slots`, all on
  // one device. Throws InputError naming the first tensor that is not.
  TorchExpertStore(std::vector<std::vector<at::Tensor>> experts, int slots);
  ~TorchExpertStore() override;  // waits (bounded) for the side stream's queued copies
  TorchExpertStore(const TorchExpertStore&) = delete;
  TorchExpertStore& operator=(const TorchExpertStore&) = delete;

  c10::Device device() const { return device_; }
  // The side stream (accelerators only): a transport moving this store's memory posts on it.
  std::optional<c10::Stream> side_stream() const { return side_; }

  MemoryKind memory_kind() const override {
    return device_.is_cpu() ? MemoryKind::kHost : MemoryKind::kDevice;
  }
  int layers() const override { return table_.layers(); }
  int local_slots() const override { return table_.local_slots(); }
  Status ready() override { return table_.freeze(); }
  std::span<const std::size_t> tensor_sizes(int layer) const override {
    return table_.tensor_sizes(layer);
  }
  std::span<std::byte> tensor(int layer, int slot, int t) override {
    return table_.at(layer, slot)[static_cast<std::size_t>(t)];
  }
  std::unique_ptr<StagingBuffer> allocate_staging(std::size_t bytes) override;
  void stage(int layer, int slot, std::span<std::byte> dst) override;
  void install(std::span<const std::byte> src, int layer, int slot) override;
  std::uint64_t fence() override;
  bool fence_done(std::uint64_t fence) override;
  Status wait_fence(std::uint64_t fence, Clock::time_point deadline) override;
  // CPU tensors: the copies are done inside stage() and install().
  bool fences_done_when_taken() const override { return !side_; }

 private:
  enum class LastCopy { kNone, kStage, kInstall };
  void copy(std::byte* dst, const std::byte* src, std::size_t bytes);
  at::Tensor view(const std::byte* p, std::size_t bytes) const;

  std::vector<std::vector<at::Tensor>> tensors_;  // kept alive; rows registered in table_
  ExpertSlotTable table_;
  c10::Device device_;
  std::optional<c10::Stream> side_;
  LastCopy last_ = LastCopy::kNone;
  bool installs_since_fence_ = false;
  std::uint64_t fences_ = 0;
  std::mutex mu_;  // guards events_ (fence_done / wait_fence may run on the worker)
  std::deque<std::pair<std::uint64_t, c10::Event>> events_;  // fences not yet seen done
};

}  // namespace swiftbalancer::torch_engine
