// A kernel that keeps a stream busy, then reads: what a long forward on an engine stream does
// to the slots it reads. Used by the ordering tests (issue 19, items 4 and 6).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace swiftbalancer::testing {

// Queues on `stream`: every thread spins for about `spin_ms` of GPU clock, then the grid copies
// `bytes` from `src` to `dst` (device memory). Throws DeviceError when the launch fails.
void spin_then_copy(const void* src, void* dst, std::size_t bytes, double spin_ms,
                    cudaStream_t stream);

}  // namespace swiftbalancer::testing
