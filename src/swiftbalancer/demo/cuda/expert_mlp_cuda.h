// The demo expert MLP (demo/expert_mlp.h) on the GPU, for `demo --device cuda`.
//
// Bit for bit the same results as apply_mlp: every output element is computed by one thread in
// apply_mlp's order (acc = bias, then acc = acc + w * x over k in order, relu, then the second
// product in the same way), with each multiply and add rounded on its own (__fmul_rn /
// __fadd_rn: no fused multiply-add, which apply_mlp's host build does not use either), no fast
// math, denormals kept. The demo compares every token's output with the host reference exactly.
//
// Layout: the experts of one layer's local slots lie back to back from `slots_base`, each
// `expert_bytes` long, its tensors in apply_mlp's order: w1 [ffn][hidden], w2 [hidden][ffn],
// b1 [ffn], b2 [hidden] (fp32).
//
// Launches only (no host sync, no allocation) on `stream`. Thread-safe.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace swiftbalancer::demo_cuda {

// rows: [n][hidden] on the device; slots: [n] local slot of each row; scratch: [n][ffn];
// out: [n][hidden]. Returns the launch error (cudaSuccess when queued).
cudaError_t launch_expert_mlp(int hidden, int ffn, const std::byte* slots_base,
                              std::size_t expert_bytes, const float* rows,
                              const std::int32_t* slots, int n, float* scratch, float* out,
                              cudaStream_t stream);

}  // namespace swiftbalancer::demo_cuda
