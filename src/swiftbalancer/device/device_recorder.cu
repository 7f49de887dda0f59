#include "swiftbalancer/device/device_recorder.h"

#include <cuda_runtime.h>

#include <string>

#include "swiftbalancer/device/cuda_util.h"
#include "swiftbalancer/device/step_counts_layout.h"

namespace swiftbalancer::device {
namespace {

constexpr int kThreads = 256;
// count_ids keeps a per-block histogram in shared memory up to this many slots (32 KiB).
constexpr int kSharedSlots = 8192;
// Enough blocks to fill an H200 (132 SMs) several times over; each loops over the rest.
constexpr std::int64_t kMaxBlocks = 1024;

using u64 = unsigned long long;

// counter[i] += counts[i] for i < n. One thread per element: the counts path is a single pass.
template <typename T>
__global__ void add_kernel(u64* counter, const T* counts, std::int64_t n) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    atomicAdd(counter + i, static_cast<u64>(static_cast<std::int64_t>(counts[i])));
}

// One step: counter[i] += counts[step_source_index(i)] for the n = layers x slots cells, rows of
// `counts` row_stride apart (step_counts_layout.h).
template <typename T>
__global__ void add_rows_kernel(u64* counter, const T* counts, std::int64_t n, int slots,
                                std::int64_t row_stride) {
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
    atomicAdd(counter + i, static_cast<u64>(static_cast<std::int64_t>(
                               counts[step_source_index(i, slots, row_stride)])));
}

// Counts slot ids into row[0..slots) (invalid ids, >= slots, into *invalid; negative ids are
// padding). With a shared histogram the global atomics are one per (block, slot) seen.
template <typename T>
__global__ void ids_kernel(u64* row, u64* invalid, const T* ids, std::int64_t n, int slots,
                           bool shared_hist) {
  extern __shared__ unsigned int hist[];
  if (shared_hist) {
    for (int s = threadIdx.x; s < slots; s += blockDim.x) hist[s] = 0;
    __syncthreads();
  }
  unsigned int bad = 0;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t id = static_cast<std::int64_t>(ids[i]);
    if (id < 0) continue;
    if (id >= slots) {
      ++bad;
    } else if (shared_hist) {
      atomicAdd(hist + id, 1u);
    } else {
      atomicAdd(row + id, 1ull);
    }
  }
  if (bad != 0) atomicAdd(invalid, static_cast<u64>(bad));
  if (shared_hist) {
    __syncthreads();
    for (int s = threadIdx.x; s < slots; s += blockDim.x)
      if (hist[s] != 0) atomicAdd(row + s, static_cast<u64>(hist[s]));
  }
}

unsigned blocks_for(std::int64_t n) {
  const std::int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

u64* as_u64(std::int64_t* p) {
  return reinterpret_cast<u64*>(p);
}

template <typename T>
void launch_add(std::int64_t* counter, const T* counts, std::int64_t n, cudaStream_t stream) {
  clear_stale_error();  // the check below must blame this launch only
  add_kernel<T><<<blocks_for(n), kThreads, 0, stream>>>(as_u64(counter), counts, n);
  check_cuda(launch_error(), "DeviceRecorder: count add launch");
}

template <typename T>
void launch_rows(std::int64_t* counter, const T* counts, int layers, int slots,
                 std::int64_t row_stride, cudaStream_t stream) {
  const std::int64_t n = static_cast<std::int64_t>(layers) * slots;
  if (row_stride == slots) return launch_add(counter, counts, n, stream);  // dense: no division
  clear_stale_error();
  add_rows_kernel<T>
      <<<blocks_for(n), kThreads, 0, stream>>>(as_u64(counter), counts, n, slots, row_stride);
  check_cuda(launch_error(), "DeviceRecorder: step add launch");
}

template <typename T>
void launch_ids(std::int64_t* row, std::int64_t* invalid, const T* ids, std::int64_t n, int slots,
                cudaStream_t stream) {
  if (n <= 0) return;
  const bool shared_hist = slots <= kSharedSlots;
  const std::size_t smem = shared_hist ? static_cast<std::size_t>(slots) * sizeof(unsigned) : 0;
  clear_stale_error();
  ids_kernel<T><<<blocks_for(n), kThreads, smem, stream>>>(as_u64(row), as_u64(invalid), ids, n,
                                                           slots, shared_hist);
  check_cuda(launch_error(), "DeviceRecorder: id count launch");
}

}  // namespace

DeviceRecorder::DeviceRecorder(int layers, int slots) : layers_(layers), slots_(slots) {
  if (layers < 1 || slots < 1)
    throw InputError("DeviceRecorder needs at least one layer and one slot (got " +
                     std::to_string(layers) + " x " + std::to_string(slots) + ")");
  const std::size_t words = static_cast<std::size_t>(layers) * static_cast<std::size_t>(slots) + 1;
  taken_.assign(words, 0);
  try {
    check_cuda(cudaMalloc(&counter_, words * sizeof(std::int64_t)), "DeviceRecorder: cudaMalloc");
    check_cuda(cudaMallocHost(&snapshot_, words * sizeof(std::int64_t)),
               "DeviceRecorder: cudaMallocHost");
    check_cuda(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking),
               "DeviceRecorder: cudaStreamCreate");
    check_cuda(cudaEventCreateWithFlags(&engine_mark_, cudaEventDisableTiming),
               "DeviceRecorder: cudaEventCreate");
    check_cuda(cudaEventCreateWithFlags(&gathered_, cudaEventDisableTiming),
               "DeviceRecorder: cudaEventCreate");
    // Zeroed on the side stream, and waited for here: construction is setup, not serving.
    check_cuda(cudaMemsetAsync(counter_, 0, words * sizeof(std::int64_t), side_),
               "DeviceRecorder: cudaMemsetAsync");
    check_cuda(cudaStreamSynchronize(side_), "DeviceRecorder: zeroing the counter");
  } catch (...) {
    release();
    throw;
  }
}

DeviceRecorder::~DeviceRecorder() {
  release();
}

void DeviceRecorder::release() {
  if (side_) (void)cudaStreamSynchronize(side_);  // a gather may still write the snapshot
  if (gathered_) (void)cudaEventDestroy(gathered_);
  if (engine_mark_) (void)cudaEventDestroy(engine_mark_);
  if (side_) (void)cudaStreamDestroy(side_);
  if (snapshot_) (void)cudaFreeHost(snapshot_);
  if (counter_) (void)cudaFree(counter_);
  gathered_ = engine_mark_ = nullptr;
  side_ = nullptr;
  snapshot_ = counter_ = nullptr;
}

void DeviceRecorder::check_layer(int layer) const {
  if (layer < 0 || layer >= layers_)
    throw InputError("DeviceRecorder: layer " + std::to_string(layer) + " out of range [0, " +
                     std::to_string(layers_) + ")");
}

void DeviceRecorder::add_counts(int layer, const std::int32_t* counts, cudaStream_t stream) {
  check_layer(layer);
  launch_add(counter_ + static_cast<std::int64_t>(layer) * slots_, counts, slots_, stream);
}

void DeviceRecorder::add_counts(int layer, const std::int64_t* counts, cudaStream_t stream) {
  check_layer(layer);
  launch_add(counter_ + static_cast<std::int64_t>(layer) * slots_, counts, slots_, stream);
}

std::int64_t DeviceRecorder::checked_stride(std::int64_t row_stride) const {
  const StepCountsLayout layout{layers_, slots_, row_stride};
  if (Status s = layout.check(); !s.ok())
    throw InputError("DeviceRecorder::add_step: " + s.message());
  return layout.stride();
}

void DeviceRecorder::add_step(const std::int32_t* counts, cudaStream_t stream,
                              std::int64_t row_stride) {
  launch_rows(counter_, counts, layers_, slots_, checked_stride(row_stride), stream);
}

void DeviceRecorder::add_step(const std::int64_t* counts, cudaStream_t stream,
                              std::int64_t row_stride) {
  launch_rows(counter_, counts, layers_, slots_, checked_stride(row_stride), stream);
}

void DeviceRecorder::count_ids(int layer, const std::int32_t* ids, std::int64_t n,
                               cudaStream_t stream) {
  check_layer(layer);
  launch_ids(counter_ + static_cast<std::int64_t>(layer) * slots_,
             counter_ + static_cast<std::int64_t>(layers_) * slots_, ids, n, slots_, stream);
}

void DeviceRecorder::count_ids(int layer, const std::int64_t* ids, std::int64_t n,
                               cudaStream_t stream) {
  check_layer(layer);
  launch_ids(counter_ + static_cast<std::int64_t>(layer) * slots_,
             counter_ + static_cast<std::int64_t>(layers_) * slots_, ids, n, slots_, stream);
}

Status DeviceRecorder::start_gather(cudaStream_t engine_stream) {
  if (gathering_) return Status::InvalidInput("DeviceRecorder: the previous gather was not taken");
  const std::size_t bytes = taken_.size() * sizeof(std::int64_t);
  if (Status s = cuda_status(cudaEventRecord(engine_mark_, engine_stream), "gather: event record");
      !s.ok())
    return s;
  if (Status s = cuda_status(cudaStreamWaitEvent(side_, engine_mark_, 0), "gather: stream wait");
      !s.ok())
    return s;
  if (Status s =
          cuda_status(cudaMemcpyAsync(snapshot_, counter_, bytes, cudaMemcpyDeviceToHost, side_),
                      "gather: D2H");
      !s.ok())
    return s;
  if (Status s = cuda_status(cudaEventRecord(gathered_, side_), "gather: event record"); !s.ok())
    return s;
  gathering_ = true;
  return Status::Ok();
}

bool DeviceRecorder::gather_done() {
  return gathering_ && query_event(gathered_) == cudaSuccess;
}

Status DeviceRecorder::wait_gather(Clock::time_point deadline) {
  if (!gathering_) return Status::InvalidInput("DeviceRecorder: no gather was started");
  return wait_event(gathered_, deadline, "DeviceRecorder gather");
}

std::int64_t DeviceRecorder::take_interval(std::span<std::int64_t> out) {
  const std::size_t cells = taken_.size() - 1;
  if (out.size() != cells)
    throw InputError("DeviceRecorder::take_interval: output has " + std::to_string(out.size()) +
                     " values, expected layers x slots = " + std::to_string(cells));
  if (!gather_done()) throw InputError("DeviceRecorder::take_interval: no gather is done");
  for (std::size_t i = 0; i < cells; ++i) out[i] = snapshot_[i] - taken_[i];
  const std::int64_t invalid = snapshot_[cells] - taken_[cells];
  for (std::size_t i = 0; i < taken_.size(); ++i) taken_[i] = snapshot_[i];
  gathering_ = false;
  return invalid;
}

}  // namespace swiftbalancer::device
