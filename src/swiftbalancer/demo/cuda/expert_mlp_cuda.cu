#include "swiftbalancer/demo/cuda/expert_mlp_cuda.h"

#include "swiftbalancer/device/cuda_util.h"

namespace swiftbalancer::demo_cuda {
namespace {

constexpr int kThreads = 128;

__device__ const float* expert_of(const std::byte* base, std::size_t expert_bytes,
                                  std::int32_t slot) {
  return reinterpret_cast<const float*>(base + static_cast<std::size_t>(slot) * expert_bytes);
}

// scratch[r][f] = relu(b1[f] + sum_k w1[f][k] * x[r][k]), summed in k order.
__global__ void first_layer(int H, int F, const std::byte* base, std::size_t expert_bytes,
                            const float* x, const std::int32_t* slots, int n, float* scratch) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(n) * F) return;
  const int r = static_cast<int>(i / F), f = static_cast<int>(i % F);
  const float* e = expert_of(base, expert_bytes, slots[r]);
  const float* w = e + static_cast<std::size_t>(f) * H;
  const float* b1 = e + 2 * static_cast<std::size_t>(F) * H;
  const float* xr = x + static_cast<std::size_t>(r) * H;
  float acc = b1[f];
  for (int k = 0; k < H; ++k) acc = __fadd_rn(acc, __fmul_rn(w[k], xr[k]));
  scratch[static_cast<std::size_t>(r) * F + f] = acc > 0.0f ? acc : 0.0f;
}

// out[r][o] = b2[o] + sum_f w2[o][f] * scratch[r][f], summed in f order.
__global__ void second_layer(int H, int F, const std::byte* base, std::size_t expert_bytes,
                             const float* scratch, const std::int32_t* slots, int n, float* out) {
  const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<long long>(n) * H) return;
  const int r = static_cast<int>(i / H), o = static_cast<int>(i % H);
  const float* e = expert_of(base, expert_bytes, slots[r]);
  const float* w = e + static_cast<std::size_t>(F) * H + static_cast<std::size_t>(o) * F;
  const float* b2 = e + 2 * static_cast<std::size_t>(F) * H + F;
  const float* h = scratch + static_cast<std::size_t>(r) * F;
  float acc = b2[o];
  for (int f = 0; f < F; ++f) acc = __fadd_rn(acc, __fmul_rn(w[f], h[f]));
  out[static_cast<std::size_t>(r) * H + o] = acc;
}

unsigned blocks(long long items) {
  return static_cast<unsigned>((items + kThreads - 1) / kThreads);
}

}  // namespace

cudaError_t launch_expert_mlp(int hidden, int ffn, const std::byte* slots_base,
                              std::size_t expert_bytes, const float* rows,
                              const std::int32_t* slots, int n, float* scratch, float* out,
                              cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  // A stale error of an earlier call on this thread must not fail this launch (issue 19 item 2).
  device::clear_stale_error();
  first_layer<<<blocks(static_cast<long long>(n) * ffn), kThreads, 0, stream>>>(
      hidden, ffn, slots_base, expert_bytes, rows, slots, n, scratch);
  const cudaError_t err = device::launch_error();
  if (err != cudaSuccess) return err;
  second_layer<<<blocks(static_cast<long long>(n) * hidden), kThreads, 0, stream>>>(
      hidden, ffn, slots_base, expert_bytes, scratch, slots, n, out);
  return device::launch_error();
}

}  // namespace swiftbalancer::demo_cuda
