// Test support for the device path: skip without a GPU, and small RAII holders of device memory
// and streams. Every device test starts with SKIP_WITHOUT_DEVICE().
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <span>
#include <vector>

#include "swiftbalancer/device/cuda_util.h"

#define SKIP_WITHOUT_DEVICE()                                                          \
  do {                                                                                 \
    if (const std::string why_ = ::swiftbalancer::device::device_unavailable_reason(); \
        !why_.empty())                                                                 \
      GTEST_SKIP() << why_;                                                            \
  } while (0)

namespace swiftbalancer::testing {

// Device memory of `n` bytes on the current device.
struct DeviceBytes {
  explicit DeviceBytes(std::size_t n) : size(n) {
    device::check_cuda(cudaMalloc(&ptr, n == 0 ? 1 : n), "test cudaMalloc");
  }
  ~DeviceBytes() { (void)cudaFree(ptr); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  std::span<std::byte> span() { return {static_cast<std::byte*>(ptr), size}; }
  template <typename T>
  T* as() {
    return static_cast<T*>(ptr);
  }
  void upload(const void* src) {
    device::check_cuda(cudaMemcpy(ptr, src, size, cudaMemcpyHostToDevice), "test upload");
  }
  std::vector<std::byte> download() const {
    std::vector<std::byte> out(size);
    device::check_cuda(cudaMemcpy(out.data(), ptr, size, cudaMemcpyDeviceToHost), "test download");
    return out;
  }
  void* ptr = nullptr;
  std::size_t size;
};

struct Stream {
  Stream() { device::check_cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream"); }
  ~Stream() {
    (void)cudaStreamSynchronize(s);
    (void)cudaStreamDestroy(s);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t s = nullptr;
};

}  // namespace swiftbalancer::testing
