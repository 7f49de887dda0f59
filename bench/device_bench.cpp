// Device path benchmark (a table, not Google Benchmark: GPU time is measured with CUDA events).
//   recording: all 58 MoE layers of one DeepSeek-V3 decode step (9 local slots at EP32, 256
//              tokens x top-8 per rank), inside a CUDA graph replayed many times; GPU time per
//              step of the counts path (per layer, and one add for the whole step) and of the
//              top-k id path;
//   staging:   DeviceExpertStore copies of 44 MB experts (a DeepSeek-V3 expert in bf16 with its
//              scales) through stage() + fence, against a plain cudaMemcpyAsync of the same bytes
//              (the device's D2D copy bandwidth); bytes copied per second.
// Targets (issue 10): recording <= 10 us GPU time per step (counts path, one add per step:
// issue 19 item 5; the per-layer figure shows why); staging >= 80% of the device's D2D
// bandwidth. scripts/gpu-check.sh reads the "one add per step" line. Without a GPU it prints "no
// CUDA device: ..." and exits 0.
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "swiftbalancer/device/cuda_util.h"
#include "swiftbalancer/device/device_expert_store.h"
#include "swiftbalancer/device/device_recorder.h"

using namespace swiftbalancer;
using namespace swiftbalancer::device;

namespace {

constexpr int kLayers = 58, kSlots = 9, kTokens = 256, kTopk = 8;
constexpr std::size_t kExpertBytes = 44u << 20;
constexpr int kExperts = 8;  // experts per staging round (one layer's worth on a busy rank)

struct Timer {
  cudaEvent_t a = nullptr, b = nullptr;
  Timer() {
    check_cuda(cudaEventCreate(&a), "event");
    check_cuda(cudaEventCreate(&b), "event");
  }
  ~Timer() {
    (void)cudaEventDestroy(a);
    (void)cudaEventDestroy(b);
  }
  float ms() {
    check_cuda(cudaEventSynchronize(b), "event sync");
    float t = 0;
    check_cuda(cudaEventElapsedTime(&t, a, b), "elapsed");
    return t;
  }
};

// GPU microseconds per replay of a graph captured from `record` on `stream`.
template <typename F>
double graph_us(cudaStream_t stream, int replays, F record) {
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  check_cuda(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "capture");
  record();
  check_cuda(cudaStreamEndCapture(stream, &graph), "end capture");
  check_cuda(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
  for (int i = 0; i < 10; ++i) check_cuda(cudaGraphLaunch(exec, stream), "warm-up");
  Timer t;
  check_cuda(cudaEventRecord(t.a, stream), "record");
  for (int i = 0; i < replays; ++i) check_cuda(cudaGraphLaunch(exec, stream), "launch");
  check_cuda(cudaEventRecord(t.b, stream), "record");
  const double us = 1000.0 * t.ms() / replays;
  (void)cudaGraphExecDestroy(exec);
  (void)cudaGraphDestroy(graph);
  return us;
}

void bench_recording(cudaStream_t stream) {
  DeviceRecorder rec(kLayers, kSlots);
  void* counts = nullptr;
  void* ids = nullptr;
  check_cuda(cudaMalloc(&counts, sizeof(std::int32_t) * kLayers * kSlots), "malloc");
  check_cuda(cudaMemset(counts, 1, sizeof(std::int32_t) * kLayers * kSlots), "memset");
  const std::size_t n_ids = static_cast<std::size_t>(kLayers) * kTokens * kTopk;
  check_cuda(cudaMalloc(&ids, sizeof(std::int32_t) * n_ids), "malloc");
  check_cuda(cudaMemset(ids, 0, sizeof(std::int32_t) * n_ids), "memset");
  auto* c = static_cast<std::int32_t*>(counts);
  auto* id = static_cast<std::int32_t*>(ids);
  const int replays = 2000;
  const double per_layer = graph_us(stream, replays, [&] {
    for (int l = 0; l < kLayers; ++l) rec.add_counts(l, c + l * kSlots, stream);
  });
  const double one_add = graph_us(stream, replays, [&] { rec.add_step(c, stream); });
  const double topk = graph_us(stream, replays / 4, [&] {
    for (int l = 0; l < kLayers; ++l)
      rec.count_ids(l, id + static_cast<std::size_t>(l) * kTokens * kTopk, kTokens * kTopk, stream);
  });
  std::printf("recording, %d layers x %d slots, per step (GPU time, CUDA graph, %d replays):\n",
              kLayers, kSlots, replays);
  std::printf("  counts, one add per layer     %8.2f us\n", per_layer);
  std::printf("  counts, one add per step      %8.2f us   (target <= 10 us)\n", one_add);
  std::printf("  top-k ids (%d tokens x %d)   %8.2f us\n", kTokens, kTopk, topk);
  (void)cudaFree(counts);
  (void)cudaFree(ids);
}

void bench_staging(cudaStream_t engine) {
  DeviceExpertStore store(1, kExperts, engine);
  std::vector<void*> slots(kExperts);
  for (void*& p : slots) {
    check_cuda(cudaMalloc(&p, kExpertBytes), "malloc expert");
    check_cuda(cudaMemset(p, 7, kExpertBytes), "memset");
  }
  for (int s = 0; s < kExperts; ++s)
    store.register_expert(0, s,
                          {std::span<std::byte>(static_cast<std::byte*>(slots[s]), kExpertBytes)});
  if (!store.ready().ok()) throw DeviceError("store not ready");
  auto staging = store.allocate_staging(kExpertBytes * kExperts);
  check_cuda(cudaDeviceSynchronize(), "setup");  // setup only, never on the serving path

  const int rounds = 10;
  // The store: stage every expert, fence, wait (what a layer's local copies cost).
  Timer t;
  check_cuda(cudaEventRecord(t.a, store.side_stream()), "record");
  std::uint64_t f = 0;
  for (int r = 0; r < rounds; ++r) {
    for (int s = 0; s < kExperts; ++s)
      store.stage(0, s, staging->bytes().subspan(s * kExpertBytes, kExpertBytes));
    f = store.fence();
  }
  check_cuda(cudaEventRecord(t.b, store.side_stream()), "record");
  if (!store.wait_fence(f, Clock::now() + std::chrono::seconds(60)).ok())
    throw DeviceError("staging fence not done");
  const double bytes = static_cast<double>(kExpertBytes) * kExperts * rounds;
  const double store_gbs = bytes / (t.ms() * 1e-3) / 1e9;

  // Reference: the device's D2D copy bandwidth, one large cudaMemcpyAsync per round between
  // the two halves of the staging buffer.
  const std::size_t half = kExpertBytes * kExperts / 2;
  std::byte* base = staging->bytes().data();
  Timer ref;
  check_cuda(cudaEventRecord(ref.a, engine), "record");
  for (int r = 0; r < rounds; ++r)
    check_cuda(cudaMemcpyAsync(base + half, base, half, cudaMemcpyDeviceToDevice, engine),
               "reference copy");
  check_cuda(cudaEventRecord(ref.b, engine), "record");
  const double ref_gbs = static_cast<double>(half) * rounds / (ref.ms() * 1e-3) / 1e9;
  std::printf("staging copies, %d experts x %zu MB, %d rounds (bytes copied per second):\n",
              kExperts, kExpertBytes >> 20, rounds);
  std::printf("  DeviceExpertStore stage+fence  %8.1f GB/s\n", store_gbs);
  std::printf("  cudaMemcpyAsync D2D reference  %8.1f GB/s\n", ref_gbs);
  std::printf("  ratio                          %8.1f %%   (target >= 80 %%)\n",
              100.0 * store_gbs / ref_gbs);
  for (void* p : slots) (void)cudaFree(p);
}

}  // namespace

int main() {
  if (const std::string why = device_unavailable_reason(); !why.empty()) {
    std::printf("%s; device benchmark skipped\n", why.c_str());
    return 0;
  }
  try {
    cudaDeviceProp prop{};
    check_cuda(cudaGetDeviceProperties(&prop, 0), "device properties");
    std::printf("device 0: %s, %d SMs, %.0f GiB\n", prop.name, prop.multiProcessorCount,
                static_cast<double>(prop.totalGlobalMem) / (1u << 30));
    cudaStream_t stream = nullptr;
    check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
    bench_recording(stream);
    bench_staging(stream);
    (void)cudaStreamDestroy(stream);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "device benchmark failed: %s\n", e.what());
    return 1;
  }
  return 0;
}
