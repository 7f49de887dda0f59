// DeviceExpertStore: expert weights in device memory that the engine owns; the balancer's copies
// run as cudaMemcpyAsync on a dedicated side stream, ordered against the engine's stream with
// events, and never synchronise the device on the serving thread.
//
// Ordering (one device, the engine's forward on `engine_stream`):
//   - stage() reads a slot: queued on the side stream, behind earlier installs into that slot
//     (same stream); the forward only reads slots, so stages need no wait on the engine.
//   - install() writes a slot: the first install after a fence or a stage makes the side stream
//     wait for everything the engine queued so far (the forward just enqueued, its last use of
//     the layer), through an event recorded on the engine stream, or through the event the
//     engine handed with install_after() (a finer point, e.g. right after the layer's MLP), and
//     likewise for every reader stream the engine added (add_reader_stream).
//   - fence() records an event on the side stream (a ring of events); when installs were queued
//     since the previous fence, the engine stream and every reader stream wait on it, so the
//     next forward reads the new weights on whichever stream it reads them (weights first, then
//     the table: the balancer commits the table after the fence).
//   - fence_done() is cudaEventQuery; wait_fence() polls it until the deadline.
// A transport that moves this store's memory should run on side_stream() (NcclTransport,
// SingleGpuWorld take it), so that sends read slots after earlier installs by stream order.
//
// A CUDA call that fails inside stage/install does not throw (the mover calls them on the
// serving path): the error is kept, every later fence reports it (wait_fence fails, fence_done
// stays false), so the layers in flight fail and serving goes on with the placement in service.
// failure() returns it; the layer mover carries it in its vote, so every rank stops moving at
// the same step. Every CUDA failure consumed here is cleared from the thread (cuda_util.h).
//
// Staging (issue 19, item 4): device memory blocks the store keeps for its whole life. The
// engine reserves them up front with reserve_staging() (on its own thread, before it captures
// graphs or serves); allocate_staging() (the decision worker, through the staging pool) hands
// out the smallest free block that fits, and a dropped StagingBuffer gives its block back: no
// cudaMalloc or cudaFree on the worker once the reserve covers what the cycles ask for. When no
// block fits, allocate_staging falls back to cudaMalloc, in relaxed capture mode (cuda_util.h),
// and counts it (late_staging_allocations). Blocks are cudaFree'd only when the store and every
// buffer it handed out are gone. Fence queries and waits are made in relaxed capture mode too,
// so the worker never invalidates an engine's global-mode graph capture.
//
// Ownership: slot memory is the engine's and must outlive the store, and so must reader
// streams; the store owns its side stream and events. Thread-safety: as ExpertStore (serving
// thread; allocate_staging and wait_fence also from the worker). Call from a thread whose
// current device is the store's.
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "swiftbalancer/runtime/expert_slot_table.h"
#include "swiftbalancer/runtime/expert_store.h"

namespace swiftbalancer::device {

class StagingArena;

class DeviceExpertStore final : public ExpertStore {
 public:
  // On the current device. Throws InputError on non-positive sizes, DeviceError when the device
  // refuses a stream or event.
  DeviceExpertStore(int layers, int slots, cudaStream_t engine_stream);
  // Waits for the side stream's queued copies, at most kReleaseBound (then leaves them to end).
  ~DeviceExpertStore() override;
  DeviceExpertStore(const DeviceExpertStore&) = delete;
  DeviceExpertStore& operator=(const DeviceExpertStore&) = delete;

  // The device tensors of the expert in (layer, local slot). Throws InputError when out of
  // range, empty, not device memory of this store's device, or after ready().
  void register_expert(int layer, int slot, std::vector<std::span<std::byte>> tensors);
  // The next install waits on `event` (recorded by the engine after its last use of the layers
  // being installed) instead of on all the engine's queued work. Used once.
  void install_after(cudaEvent_t event) { install_after_ = event; }
  // Issue 19, item 6: another stream on which the engine's forward reads expert slots (shared
  // experts, two-batch overlap, a communication stream). Installs wait for the work queued on
  // it so far, and it waits on the fence that follows them, as the engine stream does. Before
  // ready(); throws InputError for the engine stream or a stream added twice, DeviceError when
  // the device refuses an event.
  void add_reader_stream(cudaStream_t stream);
  // Reserves `count` staging blocks of `bytes` each now (typically layers_per_step + 1 blocks of
  // the most a layer stages on this rank, at most slots x expert bytes), so that the decision
  // worker never allocates. Call on the engine's thread, before capturing or serving. Throws
  // std::bad_alloc when the device has no room, DeviceError on other failures.
  void reserve_staging(int count, std::size_t bytes);
  // cudaMalloc calls allocate_staging had to make because no reserved block fitted.
  std::int64_t late_staging_allocations() const;

  cudaStream_t side_stream() const { return side_; }
  int device() const { return device_; }

  MemoryKind memory_kind() const override { return MemoryKind::kDevice; }
  int layers() const override { return table_.layers(); }
  int local_slots() const override { return table_.local_slots(); }
  Status ready() override;
  std::span<const std::size_t> tensor_sizes(int layer) const override;
  std::span<std::byte> tensor(int layer, int slot, int t) override;
  std::unique_ptr<StagingBuffer> allocate_staging(std::size_t bytes) override;
  void stage(int layer, int slot, std::span<std::byte> dst) override;
  void install(std::span<const std::byte> src, int layer, int slot) override;
  std::uint64_t fence() override;
  bool fence_done(std::uint64_t fence) override;
  Status wait_fence(std::uint64_t fence, Clock::time_point deadline) override;
  // The kept error (Ok while none): the balancer votes it, so every rank stops moving at the
  // step one rank's store broke.
  Status failure() override;

  static constexpr Millis kReleaseBound{5000};

 private:
  enum class LastCopy { kNone, kStage, kInstall };
  static constexpr std::size_t kRing = 64;
  void copy(void* dst, const void* src, std::size_t bytes);
  void keep_error(cudaError_t err, const char* what);
  void join_readers(const char* what);  // the side stream waits for every stream that reads
  void release();

  ExpertSlotTable table_;
  int device_ = 0;
  cudaStream_t engine_;
  cudaStream_t side_ = nullptr;
  cudaEvent_t engine_mark_ = nullptr;
  cudaEvent_t install_after_ = nullptr;
  std::vector<cudaStream_t> readers_;      // reader streams besides the engine's
  std::vector<cudaEvent_t> reader_marks_;  // one per reader stream
  bool frozen_ = false;                    // ready() succeeded
  std::shared_ptr<StagingArena> arena_;    // shared with the buffers it handed out
  bool joined_once_ = false;  // the first copy waits for the engine (weights it initialised)
  LastCopy last_ = LastCopy::kNone;
  bool installs_since_fence_ = false;

  std::mutex mu_;  // fence bookkeeping and the kept error (the worker waits on fences too)
  std::array<cudaEvent_t, kRing> ring_{};
  std::uint64_t fences_ = 0;     // fences taken; fence f's event is ring_[f % kRing]
  std::uint64_t done_upto_ = 0;  // every fence <= this is done (one stream: in order)
  Status error_;
};

}  // namespace swiftbalancer::device
