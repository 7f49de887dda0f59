#include "device/spin_kernel.h"

#include <cuda_runtime.h>

#include "swiftbalancer/device/cuda_util.h"

namespace swiftbalancer::testing {
namespace {

__global__ void spin_then_copy_kernel(const unsigned char* src, unsigned char* dst,
                                      std::size_t bytes, long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < bytes;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

}  // namespace

void spin_then_copy(const void* src, void* dst, std::size_t bytes, double spin_ms,
                    cudaStream_t stream) {
  int device = 0, khz = 0, sms = 0;
  device::check_cuda(cudaGetDevice(&device), "spin: cudaGetDevice");
  device::check_cuda(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device), "spin: clock");
  device::check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
                     "spin: SMs");
  const auto cycles = static_cast<long long>(spin_ms * khz);  // kHz x ms = cycles
  device::clear_stale_error();
  // One wave (2 blocks of 256 per SM): every block spins at once, then copies.
  spin_then_copy_kernel<<<2 * sms, 256, 0, stream>>>(
      static_cast<const unsigned char*>(src), static_cast<unsigned char*>(dst), bytes, cycles);
  device::check_cuda(device::launch_error(), "spin_then_copy launch");
}

}  // namespace swiftbalancer::testing
