#include "swiftbalancer/device/device_expert_store.h"

#include <string>
#include <thread>
#include <utility>

#include "swiftbalancer/device/cuda_util.h"

namespace swiftbalancer::device {

// Staging blocks of one device, kept until the store and every buffer handed out are gone.
class StagingArena {
 public:
  explicit StagingArena(int device) : device_(device) {}
  ~StagingArena() {
    const RelaxedCaptureMode relaxed;
    (void)cudaSetDevice(device_);
    for (const Block& b : blocks_) (void)cudaFree(b.data);
  }
  StagingArena(const StagingArena&) = delete;
  StagingArena& operator=(const StagingArena&) = delete;

  // A new block of `bytes`, free or handed out at once (cudaMalloc on the arena's device).
  void* add(std::size_t bytes, bool in_use) {
    const RelaxedCaptureMode relaxed;  // the worker may call it while the engine captures
    check_cuda(cudaSetDevice(device_), "staging: cudaSetDevice");
    void* data = nullptr;
    check_cuda(cudaMalloc(&data, bytes == 0 ? 1 : bytes), "staging: cudaMalloc");
    std::lock_guard lock(mu_);
    blocks_.push_back({data, bytes, in_use});
    return data;
  }
  // The smallest free block of at least `bytes` (nullptr when none).
  void* take(std::size_t bytes) {
    std::lock_guard lock(mu_);
    Block* best = nullptr;
    for (Block& b : blocks_)
      if (!b.in_use && b.bytes >= bytes && (best == nullptr || b.bytes < best->bytes)) best = &b;
    if (best == nullptr) return nullptr;
    best->in_use = true;
    return best->data;
  }
  void give(void* data) {
    std::lock_guard lock(mu_);
    for (Block& b : blocks_)
      if (b.data == data) b.in_use = false;
  }
  void note_late() {
    std::lock_guard lock(mu_);
    ++late_;
  }
  std::int64_t late_allocations() const {
    std::lock_guard lock(mu_);
    return late_;
  }

 private:
  struct Block {
    void* data;
    std::size_t bytes;
    bool in_use;
  };
  int device_;
  mutable std::mutex mu_;
  std::vector<Block> blocks_;
  std::int64_t late_ = 0;
};

namespace {

// A block of the arena handed out as staging; dropping it gives the block back (no cudaFree).
class ArenaStaging final : public StagingBuffer {
 public:
  ArenaStaging(std::shared_ptr<StagingArena> arena, void* data, std::size_t bytes)
      : arena_(std::move(arena)), data_(data), size_(bytes) {}
  ~ArenaStaging() override { arena_->give(data_); }
  std::span<std::byte> bytes() override { return {static_cast<std::byte*>(data_), size_}; }
  MemoryKind memory_kind() const override { return MemoryKind::kDevice; }

 private:
  std::shared_ptr<StagingArena> arena_;
  void* data_;
  std::size_t size_;
};

std::string where(int layer, int slot) {
  return "layer " + std::to_string(layer) + " slot " + std::to_string(slot);
}

}  // namespace

DeviceExpertStore::DeviceExpertStore(int layers, int slots, cudaStream_t engine_stream)
    : table_(layers, slots), engine_(engine_stream) {
  try {
    check_cuda(cudaGetDevice(&device_), "DeviceExpertStore: cudaGetDevice");
    arena_ = std::make_shared<StagingArena>(device_);
    check_cuda(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking),
               "DeviceExpertStore: cudaStreamCreate");
    check_cuda(cudaEventCreateWithFlags(&engine_mark_, cudaEventDisableTiming),
               "DeviceExpertStore: cudaEventCreate");
    for (cudaEvent_t& e : ring_)
      check_cuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming),
                 "DeviceExpertStore: cudaEventCreate");
  } catch (...) {
    release();
    throw;
  }
}

DeviceExpertStore::~DeviceExpertStore() {
  release();
}

void DeviceExpertStore::release() {
  if (side_) {
    // Wait for the side stream's queued copies, bounded (issue 19, item 11): a kernel stuck
    // there (an NCCL group whose peer never posted) must not hang teardown. Past the bound the
    // stream and events are destroyed anyway; CUDA frees them once the work ends.
    cudaEvent_t drained = nullptr;
    if (consume_error(cudaEventCreateWithFlags(&drained, cudaEventDisableTiming)) == cudaSuccess) {
      if (consume_error(cudaEventRecord(drained, side_)) == cudaSuccess)
        (void)wait_event(drained, Clock::now() + kReleaseBound, "store teardown");
      (void)cudaEventDestroy(drained);
    }
  }
  for (cudaEvent_t& e : ring_)
    if (e) (void)cudaEventDestroy(e);
  for (cudaEvent_t e : reader_marks_) (void)cudaEventDestroy(e);
  reader_marks_.clear();
  readers_.clear();
  if (engine_mark_) (void)cudaEventDestroy(engine_mark_);
  if (side_) (void)cudaStreamDestroy(side_);
  ring_.fill(nullptr);
  engine_mark_ = nullptr;
  side_ = nullptr;
}

void DeviceExpertStore::register_expert(int layer, int slot,
                                        std::vector<std::span<std::byte>> tensors) {
  table_.check(layer, slot, tensors);
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    cudaPointerAttributes attr{};
    const cudaError_t err = cudaPointerGetAttributes(&attr, tensors[t].data());
    const bool on_device =
        err == cudaSuccess && attr.device == device_ &&
        (attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged);
    if (err != cudaSuccess) (void)cudaGetLastError();
    if (!on_device)
      throw InputError("register_expert: tensor " + std::to_string(t) + " of " +
                       where(layer, slot) + " is not device memory of CUDA device " +
                       std::to_string(device_));
  }
  table_.set(layer, slot, std::move(tensors));
}

void DeviceExpertStore::add_reader_stream(cudaStream_t stream) {
  if (frozen_)
    throw InputError("add_reader_stream: the store is ready already; add streams before");
  if (stream == engine_) throw InputError("add_reader_stream: that is the engine stream");
  for (cudaStream_t r : readers_)
    if (r == stream) throw InputError("add_reader_stream: stream added twice");
  cudaEvent_t mark = nullptr;
  check_cuda(cudaEventCreateWithFlags(&mark, cudaEventDisableTiming),
             "add_reader_stream: cudaEventCreate");
  readers_.push_back(stream);
  reader_marks_.push_back(mark);
}

void DeviceExpertStore::reserve_staging(int count, std::size_t bytes) {
  if (count < 0) throw InputError("reserve_staging: negative block count");
  for (int i = 0; i < count; ++i) arena_->add(bytes, /*in_use=*/false);
}

std::int64_t DeviceExpertStore::late_staging_allocations() const {
  return arena_->late_allocations();
}

Status DeviceExpertStore::ready() {
  Status s = table_.freeze();
  if (s.ok()) frozen_ = true;
  return s;
}

std::span<const std::size_t> DeviceExpertStore::tensor_sizes(int layer) const {
  return table_.tensor_sizes(layer);
}

std::span<std::byte> DeviceExpertStore::tensor(int layer, int slot, int t) {
  return table_.at(layer, slot)[static_cast<std::size_t>(t)];
}

std::unique_ptr<StagingBuffer> DeviceExpertStore::allocate_staging(std::size_t bytes) {
  void* data = arena_->take(bytes);
  if (data == nullptr) {
    data = arena_->add(bytes, /*in_use=*/true);  // relaxed capture mode inside
    arena_->note_late();
  }
  return std::make_unique<ArenaStaging>(arena_, data, bytes);
}

void DeviceExpertStore::join_readers(const char* what) {
  for (std::size_t i = 0; i < readers_.size(); ++i) {
    keep_error(cudaEventRecord(reader_marks_[i], readers_[i]), what);
    keep_error(cudaStreamWaitEvent(side_, reader_marks_[i], 0), what);
  }
}

void DeviceExpertStore::keep_error(cudaError_t err, const char* what) {
  if (consume_error(err) == cudaSuccess) return;
  std::lock_guard lock(mu_);
  if (error_.ok()) error_ = cuda_status(err, what);
}

void DeviceExpertStore::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  keep_error(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, side_),
             "expert copy: cudaMemcpyAsync");
}

void DeviceExpertStore::stage(int layer, int slot, std::span<std::byte> dst) {
  if (!joined_once_) {
    // The engine may have filled the slots on its stream: the very first copy waits for that.
    keep_error(cudaEventRecord(engine_mark_, engine_), "stage: cudaEventRecord");
    keep_error(cudaStreamWaitEvent(side_, engine_mark_, 0), "stage: cudaStreamWaitEvent");
    join_readers("stage: joining a reader stream");
    joined_once_ = true;
  }
  std::size_t off = 0;
  for (const auto& src : table_.at(layer, slot)) {
    copy(dst.data() + off, src.data(), src.size());
    off += src.size();
  }
  last_ = LastCopy::kStage;
}

void DeviceExpertStore::install(std::span<const std::byte> src, int layer, int slot) {
  if (last_ != LastCopy::kInstall) {
    // The forward that last reads this layer has been queued on the engine stream by now.
    if (install_after_ != nullptr) {
      keep_error(cudaStreamWaitEvent(side_, install_after_, 0), "install: cudaStreamWaitEvent");
      install_after_ = nullptr;
    } else {
      keep_error(cudaEventRecord(engine_mark_, engine_), "install: cudaEventRecord");
      keep_error(cudaStreamWaitEvent(side_, engine_mark_, 0), "install: cudaStreamWaitEvent");
    }
    // Every other stream that reads experts may still read this layer's slots (issue 19, item 6).
    join_readers("install: joining a reader stream");
    joined_once_ = true;
  }
  std::size_t off = 0;
  for (const auto& dst : table_.at(layer, slot)) {
    copy(dst.data(), src.data() + off, dst.size());
    off += dst.size();
  }
  last_ = LastCopy::kInstall;
  installs_since_fence_ = true;
}

std::uint64_t DeviceExpertStore::fence() {
  std::lock_guard lock(mu_);
  const std::uint64_t f = ++fences_;
  cudaEvent_t e = ring_[f % kRing];
  cudaError_t err = cudaEventRecord(e, side_);
  if (err == cudaSuccess && installs_since_fence_) err = cudaStreamWaitEvent(engine_, e, 0);
  for (std::size_t i = 0; err == cudaSuccess && installs_since_fence_ && i < readers_.size(); ++i)
    err = cudaStreamWaitEvent(readers_[i], e, 0);
  if (consume_error(err) != cudaSuccess && error_.ok()) error_ = cuda_status(err, "fence");
  installs_since_fence_ = false;
  last_ = LastCopy::kNone;  // the next install joins the engine stream again
  return f;
}

Status DeviceExpertStore::failure() {
  std::lock_guard lock(mu_);
  return error_;
}

bool DeviceExpertStore::fence_done(std::uint64_t f) {
  std::lock_guard lock(mu_);
  if (!error_.ok()) return false;
  if (f <= done_upto_) return true;
  if (f > fences_) return false;  // not taken yet
  // A fence whose event was re-recorded is done once any later one is (one stream, in order).
  const std::uint64_t g = fences_ >= kRing && f <= fences_ - kRing ? fences_ - kRing + 1 : f;
  const cudaError_t q = query_event(ring_[g % kRing]);
  if (q == cudaSuccess) {
    done_upto_ = g;
    return true;
  }
  if (q != cudaErrorNotReady) error_ = cuda_status(q, "fence query");
  return false;
}

Status DeviceExpertStore::wait_fence(std::uint64_t f, Clock::time_point deadline) {
  for (int polls = 0;; ++polls) {
    if (fence_done(f)) return Status::Ok();
    {
      std::lock_guard lock(mu_);
      if (!error_.ok()) return error_;
      if (f > fences_)
        return Status::InvalidInput("wait_fence: fence " + std::to_string(f) + " was never taken");
    }
    if (Clock::now() >= deadline)
      return Status::Timeout("expert copies of fence " + std::to_string(f) +
                             " not done by the deadline");
    if (polls < 64)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace swiftbalancer::device
