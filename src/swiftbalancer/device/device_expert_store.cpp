#include "swiftbalancer/device/device_expert_store.h"

#include <string>
#include <thread>
#include <utility>

#include "swiftbalancer/device/cuda_util.h"

namespace swiftbalancer::device {
namespace {

// Device memory from cudaMalloc on `device`; freed on that device.
class DeviceStaging final : public StagingBuffer {
 public:
  DeviceStaging(int device, std::size_t bytes) : device_(device), size_(bytes) {
    check_cuda(cudaSetDevice(device), "staging: cudaSetDevice");  // the worker's thread
    check_cuda(cudaMalloc(&data_, bytes == 0 ? 1 : bytes), "staging: cudaMalloc");
  }
  ~DeviceStaging() override {
    (void)cudaSetDevice(device_);
    (void)cudaFree(data_);
  }
  std::span<std::byte> bytes() override { return {static_cast<std::byte*>(data_), size_}; }
  MemoryKind memory_kind() const override { return MemoryKind::kDevice; }

 private:
  int device_;
  std::size_t size_;
  void* data_ = nullptr;
};

std::string where(int layer, int slot) {
  return "layer " + std::to_string(layer) + " slot " + std::to_string(slot);
}

}  // namespace

DeviceExpertStore::DeviceExpertStore(int layers, int slots, cudaStream_t engine_stream)
    : table_(layers, slots), engine_(engine_stream) {
  try {
    check_cuda(cudaGetDevice(&device_), "DeviceExpertStore: cudaGetDevice");
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

Status DeviceExpertStore::ready() {
  return table_.freeze();
}

std::span<const std::size_t> DeviceExpertStore::tensor_sizes(int layer) const {
  return table_.tensor_sizes(layer);
}

std::span<std::byte> DeviceExpertStore::tensor(int layer, int slot, int t) {
  return table_.at(layer, slot)[static_cast<std::size_t>(t)];
}

std::unique_ptr<StagingBuffer> DeviceExpertStore::allocate_staging(std::size_t bytes) {
  return std::make_unique<DeviceStaging>(device_, bytes);
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
